"""The standard corpora are installed (.ci/run does it, else these tests skip) and split reproducibly."""

from __future__ import annotations

import re

import pytest

from lsp_server.evaluation.corpus import STANDARD_LANGUAGES, discover, split_of
from lsp_server.evaluation.tasks import build_tasks
from tests.requirements import require_corpora


@pytest.mark.parametrize("language", STANDARD_LANGUAGES)
def test_each_standard_corpus_has_files_in_both_splits(language: str) -> None:
    require_corpora(language)
    corpora = discover([language])
    files = [f for corpus in corpora for f in corpus.files]
    assert len(files) >= 200, f"{language}: only {len(files)} files"
    keys = [f.key for f in files]
    assert len(set(keys)) == len(keys)
    # No version numbers in keys: an upgrade must not move files between the splits.
    assert not [key for key in keys if re.search(r"\d+\.\d+|@", key.split("/")[0])]
    dev = [f for f in files if f.split == "dev"]
    test = [f for f in files if f.split == "test"]
    assert dev and test
    assert all(split_of(f.key) == f.split for f in files)
    for corpus in corpora:
        assert corpus.version, corpus.name


def test_standard_tasks_never_mix_the_splits() -> None:
    require_corpora("python", "c")
    corpora = discover(["python", "c"])
    dev = build_tasks(corpora, splits=("dev",), per_group=3)
    test = build_tasks(corpora, splits=("test",), per_group=3)
    assert {t.split for t in dev} == {"dev"} and {t.split for t in test} == {"test"}
    assert not {t.path for t in dev} & {t.path for t in test}
    assert len(dev) == len(test) == 2 * 4 * 3
