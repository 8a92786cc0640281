"""What a test needs beyond the README's set-up, and the step that provides it.

The README's first command (`pip install -e '.[dev]'`, the model) is all that
most tests need. The others need a step that `.ci/run` takes and the README
leaves out (the train extra, Debian packages, npm packages, the npm corpora);
without it they skip, and the skip names the step. With `CI` set a missing
step fails instead: CI runs `.ci/run`, which takes every step, so there a skip
would only hide a broken set-up.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from importlib import metadata
from typing import NoReturn

import pytest
from packaging.requirements import Requirement

from lsp_server.corpora import C_SOURCES, CorpusError, standard_corpora

DEV_EXTRA = ".venv/bin/pip install -e '.[dev]'"
TRAIN_EXTRA = ("the train extra", ".venv/bin/pip install -e '.[dev,train]'")
CORPORA = {
    "go": ("Go's standard library sources", "apt-get install golang-src"),
    "javascript": ("the npm corpora", "`.venv/bin/inkling eval --prepare` (with npm installed)"),
    "typescript": ("the npm corpora", "`.venv/bin/inkling eval --prepare` (with npm installed)"),
    "c": ("C sources from Debian packages", "apt-get install " + " ".join(s.package for s in C_SOURCES)),
}


def missing(needs: Iterable[tuple[str, str]]) -> NoReturn:
    """Skip (fail under CI) for want of each (what, the step that installs it)."""
    __tracebackhide__ = True  # the skip is reported at the test's line
    unique = list(dict.fromkeys(needs))
    message = "needs " + "; ".join(f"{what}: {step}" for what, step in unique) + " (as .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require(condition: bool, what: str, step: str) -> None:
    __tracebackhide__ = True  # the skip is reported at the test's line
    if not condition:
        missing([(what, step)])


@functools.cache
def has_train_extra() -> bool:
    """Every distribution of the `train` extra is installed (as declared by the installed project)."""
    wanted = [
        requirement.name
        for requirement in map(Requirement, metadata.requires("inkling") or [])
        if requirement.marker is not None
        and requirement.marker.evaluate({"extra": "train"})
        and not requirement.marker.evaluate({"extra": ""})
    ]
    assert wanted, "the installed inkling declares no train extra"
    try:
        for name in wanted:
            metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def require_train_extra() -> None:
    __tracebackhide__ = True  # the skip is reported at the test's line
    require(has_train_extra(), *TRAIN_EXTRA)


@functools.cache
def _corpus_installed(language: str) -> bool:
    try:
        standard_corpora(language)
    except (CorpusError, OSError):  # OSError: no dpkg at all (not a Debian machine)
        return False
    return True


def require_corpora(*languages: str) -> None:
    """The standard corpora of `inkling eval` for these languages (Python's is always there)."""
    __tracebackhide__ = True  # the skip is reported at the test's line
    absent = [language for language in languages if not _corpus_installed(language)]
    if absent:
        missing(CORPORA[language] for language in absent)
