"""The license rule for training code, and installed Python distributions as a source."""

from __future__ import annotations

import email
import sysconfig
from pathlib import Path

import pytest

from training.config import build
from training.data import packages
from training.data.filters import FilterConfig, detect_language, is_benchmark, rejection
from training.data.licenses import classify, expression_verdict, file_verdict
from training.data.prepare import PrepareConfig, format_stats, prepare
from training.data.sources import SourceConfig, iter_source, source_name, source_root

MIT_TEXT = """MIT License

Copyright (c) 2020 Someone

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
"""
BSD_TEXT = """Copyright (c) 2001-2002 Enthought, Inc. 2003, SciPy Developers.
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:
"""
BUNDLED_GPL = (
    BSD_TEXT + "\n" * 40 + "x" * 3000 + "\nlibgfortran ... under the terms of the GNU General Public License"
)


def _metadata(**fields: str | list[str]) -> email.message.Message:
    message = email.message.Message()
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            message[key.replace("_", "-")] = item
    return message


@pytest.mark.parametrize(
    ("fields", "verdict", "label"),
    [
        # PEP 639: the expression decides alone.
        ({"License_Expression": "MIT"}, "permissive", "MIT"),
        ({"License_Expression": "Apache-2.0 OR BSD-2-Clause"}, "permissive", "Apache-2.0 OR BSD-2-Clause"),
        ({"License_Expression": "MIT OR GPL-3.0-or-later"}, "permissive", "MIT OR GPL-3.0-or-later"),
        ({"License_Expression": "MIT AND GPL-3.0-only"}, "restricted", "MIT AND GPL-3.0-only"),
        ({"License_Expression": "MPL-2.0 AND MIT"}, "restricted", "MPL-2.0 AND MIT"),
        ({"License_Expression": "LGPL-2.1-or-later"}, "restricted", "LGPL-2.1-or-later"),
        ({"License_Expression": "AGPL-3.0-only"}, "restricted", "AGPL-3.0-only"),
        ({"License_Expression": "GPL-2.0-only WITH Classpath-exception-2.0"}, "restricted", None),
        (
            {"License_Expression": "Apache-2.0 WITH LLVM-exception AND (BSD-3-Clause OR GPL-2.0)"},
            "permissive",
            None,
        ),
        ({"License_Expression": "BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0"}, "permissive", None),
        ({"License_Expression": "PSF-2.0"}, "permissive", None),
        ({"License_Expression": "Apache-2.0 AND CNRI-Python"}, "permissive", None),
        ({"License_Expression": "ISC"}, "permissive", None),
        ({"License_Expression": "Unlicense"}, "permissive", None),
        ({"License_Expression": "BSL-1.0"}, "permissive", None),
        ({"License_Expression": "MIT AND LicenseRef-Custom"}, "unknown", None),
        ({"License_Expression": "LicenseRef-Proprietary"}, "restricted", None),
        ({"License_Expression": "(MIT OR"}, "unknown", None),
        # The expression wins over contradicting classifiers.
        (
            {
                "License_Expression": "MIT",
                "Classifier": "License :: OSI Approved :: GNU General Public License v3 (GPLv3)",
            },
            "permissive",
            "MIT",
        ),
        # No expression: the License field and the classifiers together.
        ({"License": "MIT"}, "permissive", "MIT"),
        ({"License": "Apache 2.0"}, "permissive", "Apache 2.0"),
        ({"License": "BSD (3 clause)"}, "permissive", "BSD (3 clause)"),
        ({"License": "MIT or Apache-2.0"}, "permissive", "MIT or Apache-2.0"),
        ({"License": "ISC License"}, "permissive", None),
        ({"License": "Dual License: MIT and GPL"}, "restricted", None),
        ({"License": "GPLv3+"}, "restricted", None),
        ({"License": "LGPL"}, "restricted", None),
        ({"License": "Mozilla Public License 2.0"}, "restricted", None),
        ({"License": "Proprietary"}, "restricted", None),
        ({"License": "UNLICENSED"}, "unknown", None),
        ({"License": "UNKNOWN"}, "unknown", ""),
        ({"License": MIT_TEXT}, "permissive", "MIT"),
        ({"License": BSD_TEXT}, "permissive", "BSD"),
        ({"License": BUNDLED_GPL}, "permissive", "BSD"),  # a bundled library's text comes later
        ({"License": "The Kiwi licensing terms\n\n" + BSD_TEXT}, "permissive", "BSD"),
        ({"License": "Custom terms\n\nSee the file."}, "unknown", "Custom terms"),
        ({"Classifier": "License :: OSI Approved :: MIT License"}, "permissive", "MIT"),
        ({"Classifier": "License :: OSI Approved :: BSD License"}, "permissive", "BSD"),
        (
            {"Classifier": "License :: OSI Approved :: Python Software Foundation License"},
            "permissive",
            "PSF",
        ),
        ({"Classifier": "License :: OSI Approved :: ISC License (ISCL)"}, "permissive", "ISC"),
        ({"Classifier": "License :: OSI Approved :: The Unlicense (Unlicense)"}, "permissive", "Unlicense"),
        ({"Classifier": "License :: OSI Approved :: zlib/libpng License"}, "permissive", "Zlib"),
        ({"Classifier": "License :: Public Domain"}, "permissive", "public domain"),
        (
            {"Classifier": "License :: CC0 1.0 Universal (CC0 1.0) Public Domain Dedication"},
            "permissive",
            None,
        ),
        (
            {"Classifier": "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)"},
            "restricted",
            "MPL",
        ),
        (
            {
                "Classifier": "License :: OSI Approved :: GNU Lesser General Public License v2 or later (LGPLv2+)"
            },
            "restricted",
            "LGPL",
        ),
        (
            {"Classifier": "License :: OSI Approved :: GNU Affero General Public License v3"},
            "restricted",
            "AGPL",
        ),
        ({"Classifier": "License :: OSI Approved :: GNU General Public License (GPL)"}, "restricted", "GPL"),
        ({"Classifier": "License :: Other/Proprietary License"}, "restricted", "proprietary"),
        ({"Classifier": "License :: OSI Approved :: Artistic License"}, "unknown", ""),
        ({"Classifier": "License :: OSI Approved"}, "unknown", ""),  # says nothing about which
        (
            {"Classifier": ["License :: DFSG approved", "License :: OSI Approved :: MIT License"]},
            "permissive",
            "MIT",
        ),
        (
            {
                "Classifier": [
                    "License :: OSI Approved :: MIT License",
                    "License :: OSI Approved :: Apache Software License",
                ]
            },
            "permissive",
            "MIT; Apache",
        ),
        (
            {"License": "Apache", "Classifier": "License :: OSI Approved :: Apache Software License"},
            "permissive",
            "Apache",
        ),
        # Contradictions keep a distribution out.
        (
            {
                "License": "MIT",
                "Classifier": "License :: OSI Approved :: GNU General Public License v2 (GPLv2)",
            },
            "restricted",
            "GPL",
        ),
        # An unrecognised field does not hide a recognised classifier.
        (
            {"License": "Custom terms", "Classifier": "License :: OSI Approved :: BSD License"},
            "permissive",
            "BSD",
        ),
        ({"Classifier": "Programming Language :: Python :: 3"}, "unknown", ""),
        ({}, "unknown", ""),
    ],
)
def test_a_distributions_license_from_its_metadata(
    fields: dict[str, str | list[str]], verdict: str, label: str | None
) -> None:
    found = classify(_metadata(**fields))  # type: ignore[arg-type]
    assert found.verdict == verdict, found
    if label is not None:
        assert found.label == label


@pytest.mark.parametrize(
    ("expression", "verdict"),
    [
        ("MIT", "permissive"),
        ("mit or gpl-2.0", "permissive"),
        ("(Apache-2.0 OR MIT) AND BSD-3-Clause", "permissive"),
        ("(Apache-2.0 OR MIT) AND GPL-2.0", "restricted"),
        ("GPL-2.0 OR LGPL-2.1", "restricted"),
        ("GPL-2.0 OR Foo", "unknown"),
        ("", "unknown"),
        ("MIT AND", "unknown"),
        ("MIT)", "unknown"),
        ("curl", "permissive"),
    ],
)
def test_spdx_expressions(expression: str, verdict: str) -> None:
    assert expression_verdict(expression) == verdict


@pytest.mark.parametrize(
    ("header", "verdict"),
    [
        ("/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */\n", "restricted"),
        ("# SPDX-License-Identifier: MIT\n", "permissive"),
        (" * SPDX-License-Identifier: curl\n", "permissive"),
        (
            "/* The GNU C Library is free software; you can redistribute it and/or\n"
            "   modify it under the terms of the GNU Lesser General Public\n   License as published by ... */\n",
            "restricted",
        ),
        (
            "# This Source Code Form is subject to the terms of the Mozilla Public\n# License, v. 2.0.\n",
            "restricted",
        ),
        ("// Use of this source code is governed by a BSD-style license\n", "unknown"),
        ("", "unknown"),
    ],
)
def test_a_files_license_from_its_header(header: str, verdict: str) -> None:
    assert file_verdict(header + "int x;\n" * 20) == verdict


def test_copyleft_files_are_dropped_only_when_asked() -> None:
    text = "/* SPDX-License-Identifier: LGPL-2.1-or-later */\n" + "int f(int x) { return x + 1; }\n" * 5
    language = detect_language("a.c", text)
    assert rejection("a.c", text, language, FilterConfig()) is None
    assert rejection("a.c", text, language, FilterConfig(drop_copyleft=True)) == "license"
    assert (
        rejection("a.c", text.replace("LGPL-2.1-or-later", "MIT"), language, FilterConfig(drop_copyleft=True))
        is None
    )


@pytest.mark.parametrize(
    "name", ["human-eval", "human_eval", "evalplus", "eval-plus", "mbpp", "bigcodebench", "ds-1000"]
)
def test_benchmark_names(name: str) -> None:
    assert is_benchmark(name)
    assert not is_benchmark("retrieval-plus") and not is_benchmark("evaluate")


# -- site-packages --------------------------------------------------------------------

CODE = '''"""A module of a fake distribution."""


def scale(values, factor):
    """Every value times factor."""
    return [value * factor for value in values]


def shift(values, offset):
    """Every value plus offset."""
    return [value + offset for value in values]
'''


def _distribution(site: Path, name: str, metadata: str, files: dict[str, str], record: bool = True) -> None:
    """A distribution as pip installs one: its files, and a dist-info with METADATA and RECORD."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.4\nName: {name}\nVersion: 1.0\n{metadata}\n")
    for relative, text in files.items():
        target = site / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if record:
        listed = [
            *files,
            "../../../bin/" + name,
            f"{name}-1.0.dist-info/METADATA",
            f"{name}-1.0.dist-info/RECORD",
        ]
        (info / "RECORD").write_text("".join(f"{path},,\n" for path in listed))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site-packages"
    _distribution(
        site,
        "mitpkg",
        "License-Expression: MIT",
        {
            "mitpkg/__init__.py": "",  # too small to read
            "mitpkg/core.py": CODE,
            "mitpkg/tests/test_core.py": CODE.replace("scale", "check_scale"),
            "mitpkg/core.pyi": CODE.replace("scale", "typed_scale"),
            "mitpkg/_vendor/six.py": CODE.replace("scale", "six_scale"),
            "mitpkg/data.json": '{"a": 1}' * 40,
            "__editable___mitpkg_finder.py": CODE.replace("scale", "finder"),
        },
    )
    (site / "mitpkg/untracked.py").write_text(CODE.replace("scale", "not_in_record"))
    _distribution(
        site,
        "gplpkg",
        "Classifier: License :: OSI Approved :: GNU General Public License v3 (GPLv3)",
        {"gplpkg/core.py": CODE.replace("scale", "gpl_scale")},
    )
    _distribution(site, "mystery", "", {"mystery/core.py": CODE.replace("scale", "mystery_scale")})
    _distribution(
        site, "human_eval", "License: MIT", {"human_eval/execution.py": CODE.replace("scale", "bench")}
    )
    _distribution(site, "norecord", "License: MIT", {"norecord/core.py": CODE}, record=False)
    return site


def test_only_permissive_distributions_files_come_through(site: Path) -> None:
    config = SourceConfig(path=str(site), kind="site-packages")
    files = {f.path: f for f in iter_source(config)}
    assert set(files) == {
        "python-packages/mitpkg/mitpkg/core.py",
        "python-packages/mitpkg/mitpkg/core.pyi",
        "python-packages/mitpkg/mitpkg/tests/test_core.py",
    }
    assert files["python-packages/mitpkg/mitpkg/core.py"].text == CODE
    assert files["python-packages/mitpkg/mitpkg/core.py"].location == str(site / "mitpkg/core.py")
    report = packages.select(site).report()
    assert report["taken"] == {"mitpkg": {"version": "1.0", "license": "MIT"}}
    assert {name: entry["reason"] for name, entry in report["left_out"].items()} == {
        "gplpkg": "license",
        "mystery": "no license",
        "human-eval": "benchmark",
        "norecord": "no RECORD",
    }
    assert report["left_out"]["gplpkg"]["license"] == "GPL"
    assert report["left_out_by_reason"] == {"benchmark": 1, "license": 1, "no RECORD": 1, "no license": 1}


def test_caps_per_distribution_and_in_all_take_turns(site: Path) -> None:
    _distribution(
        site,
        "other",
        "License: BSD",
        {f"other/m{i}.py": CODE.replace("scale", f"scale_{i}") for i in range(5)},
    )
    capped = [
        f.path
        for f in iter_source(SourceConfig(path=str(site), kind="site-packages", max_files_per_distribution=2))
    ]
    assert len(capped) == 4
    assert sum(path.startswith("python-packages/other/") for path in capped) == 2
    # Turns: one file of each distribution before a second of any.
    both = [
        f.path.split("/")[1]
        for f in iter_source(SourceConfig(path=str(site), kind="site-packages", max_files=2))
    ]
    assert sorted(both) == ["mitpkg", "other"]
    picked = list(
        iter_source(SourceConfig(path=str(site), kind="site-packages", exclude=["other/*"], name="pypi"))
    )
    assert {f.path.split("/")[1] for f in picked} == {"mitpkg"}
    assert all(f.path.startswith("pypi/") for f in picked)


def test_site_packages_names_this_interpreters_distributions() -> None:
    assert source_root("site-packages") == Path(sysconfig.get_paths()["purelib"])
    # Not "site-packages": the vendored-code filter drops any path with that folder in it.
    assert source_name(SourceConfig(path="site-packages")) == "python-packages"


def test_prepare_reports_distributions_taken_and_left_out(site: Path, tmp_path: Path) -> None:
    config = build(
        PrepareConfig,
        {
            "sources": [{"path": str(site), "kind": "site-packages"}],
            "output": str(tmp_path / "out"),
            "exclude_evaluation_test": False,
        },
    )
    stats = prepare(config, progress=False)
    source = stats["sources"]["python-packages"]
    assert source["files_kept"] == 3
    assert source["distributions"]["taken"]["mitpkg"] == {"version": "1.0", "license": "MIT", "files_kept": 3}
    assert set(source["distributions"]["left_out"]) == {"gplpkg", "mystery", "human-eval", "norecord"}
    assert stats["examples"]["source"]["python-packages"] == stats["splits"]["train"]["examples"]
    assert "left out: benchmark 1 (human-eval), license 1 (gplpkg)" in format_stats(stats)
