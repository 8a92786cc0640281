"""install.sh's checks, without building a bundle: checksums, and the target against the bundle."""

from __future__ import annotations

import zipfile
from pathlib import Path

from export.bundle import preflight
from export.bundle.build import write_sums
from export.bundle.wheelhouse import glibc_required, wheel_glibc

MANIFEST = {
    "python": "3.11",
    "machine": "x86_64",
    "glibc": "2.36",
    "cpu_baseline": "x86-64-v3",
    "cpu_flags": ["sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"],
}
HASWELL = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma f16c bmi2 popcnt\n"


def _bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    (bundle / "wheels").mkdir(parents=True)
    (bundle / "wheels" / "a-1.0-py3-none-any.whl").write_bytes(b"wheel a")
    (bundle / "wheels" / "b-1.0-py3-none-any.whl").write_bytes(b"wheel b")
    (bundle / "bundle.json").write_text("{}")
    write_sums(bundle)
    return bundle


def test_an_intact_bundle_passes_and_its_sums_are_sha256sum_format(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    assert preflight.check_files(bundle) == []
    lines = (bundle / "SHA256SUMS").read_text().splitlines()
    assert [line.split("  ")[1] for line in lines] == [
        "bundle.json",
        "wheels/a-1.0-py3-none-any.whl",
        "wheels/b-1.0-py3-none-any.whl",
    ]
    assert lines[1].split("  ")[0] == preflight.file_sha256(bundle / "wheels/a-1.0-py3-none-any.whl")


def test_each_bad_file_is_named(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    (bundle / "wheels" / "a-1.0-py3-none-any.whl").write_bytes(b"wheel A")
    (bundle / "wheels" / "b-1.0-py3-none-any.whl").unlink()
    (bundle / "wheels" / "stray-2.0-py3-none-any.whl").write_bytes(b"not ours")
    problems = preflight.check_files(bundle)
    assert len(problems) == 3, problems
    assert problems[0].startswith("wheels/a-1.0-py3-none-any.whl: SHA-256 mismatch")
    assert problems[1] == "wheels/b-1.0-py3-none-any.whl: missing (listed in SHA256SUMS)"
    assert problems[2].startswith("wheels/stray-2.0-py3-none-any.whl: not listed in SHA256SUMS")


def test_missing_or_malformed_sums_and_paths_outside_the_bundle(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    sums = bundle / "SHA256SUMS"
    good = sums.read_text()
    sums.write_text(good + f"{'0' * 64}  ../../etc/passwd\n")
    assert "is not '<sha256>  <relative path>'" in preflight.check_files(bundle)[0]
    sums.unlink()
    assert preflight.check_files(bundle) == [
        f"SHA256SUMS is missing from {bundle}: this is not a complete Inkling bundle"
    ]


def test_main_reports_on_stderr_and_fails(tmp_path: Path, capsys: object) -> None:
    bundle = _bundle(tmp_path)
    (bundle / "wheels" / "b-1.0-py3-none-any.whl").unlink()
    assert preflight.main([str(bundle)]) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "install.sh: wheels/b-1.0-py3-none-any.whl: missing" in err


def _target(**changes: object) -> list[str]:
    machine: dict[str, object] = {
        "python": (3, 11),
        "machine": "x86_64",
        "libc": ("glibc", "2.36"),
        "cpuinfo": HASWELL,
    }
    machine.update(changes)
    return preflight.check_target(MANIFEST, **machine)  # type: ignore[arg-type]


def test_a_matching_machine_passes() -> None:
    assert _target() == []
    assert _target(libc=("glibc", "2.39")) == []
    assert _target(cpuinfo=None) == []  # no /proc/cpuinfo: nothing to compare


def test_each_mismatch_says_what_to_do() -> None:
    (python,) = _target(python=(3, 12))
    assert "Python 3.11" in python and "is 3.12" in python and "--python 3.12" in python
    (libc,) = _target(libc=("glibc", "2.31"))
    assert libc == "the bundle's wheels need glibc 2.36 or later; this system has 2.31"
    assert "has no glibc" in _target(libc=("", ""))[0]
    (cpu,) = _target(cpuinfo="flags\t: fpu sse4_2 avx popcnt\n")
    assert cpu.startswith("this CPU lacks avx2, fma, f16c, bmi2") and "--cpu x86-64-v2" in cpu
    assert "for x86_64 machines, this one is aarch64" in _target(machine="aarch64")[0]


def test_glibc_from_wheel_tags_and_from_a_locally_built_library(tmp_path: Path) -> None:
    assert wheel_glibc(Path("numpy-2.3.0-cp311-cp311-manylinux_2_28_x86_64.whl")) == (2, 28)
    two_tags = "x-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    assert wheel_glibc(Path(two_tags)) == (2, 17)
    assert wheel_glibc(Path("pure-1.0-py3-none-any.whl")) is None
    local = tmp_path / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    with zipfile.ZipFile(local, "w") as archive:
        archive.writestr("llama_cpp/lib/libllama.so", b"\x7fELF..GLIBC_2.2.5\x00GLIBC_2.34\x00GLIBC_2.17\x00")
        archive.writestr("llama_cpp/__init__.py", "GLIBC_9.99 in Python code is not a requirement")
    assert wheel_glibc(local) == (2, 34)
    (tmp_path / "numpy-2.3.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    assert glibc_required(tmp_path) == "2.34"
