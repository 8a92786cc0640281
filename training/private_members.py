"""Libraries whose private members training relies on: the versions that have them, and a check.

`token_rows` replaces peft's trainable-token forward pass and calls its
private helpers; `sft` reads trl's `SFTTrainer._metrics`; `dpo` overrides
`DPOTrainer._prepare_dataset`. A release may rename any of them without
notice, so the train extra pins these libraries to the tested range
(pyproject.toml; `tests/training/test_private_members.py` keeps the two equal),
and the code checks the members before it uses them: another version fails
with a message that names the range, not deep inside a training step.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from lsp_server.errors import InklingError

SUPPORTED = {
    "peft": ">=0.21,<0.22",
    "trl": ">=1.16,<1.17",
}
"""The version ranges the train extra pins, for the messages."""


class UnsupportedLibraryError(InklingError):
    """An installed library lacks a private member training relies on."""


def require_members(library: str, owner: object, names: Sequence[str]) -> None:
    """Fail clearly unless `owner` (a class or an instance from `library`) has every one of `names`."""
    missing = [name for name in names if not hasattr(owner, name)]
    if missing:
        where = owner.__name__ if isinstance(owner, type) else type(owner).__name__
        _fail(library, f"{where} has no {', '.join(missing)}")


def require_parameters(library: str, function: Callable[..., Any], names: Sequence[str]) -> None:
    """Fail clearly unless `function` (one Inkling overrides or calls) takes exactly these parameters."""
    found = list(inspect.signature(function).parameters)
    if found != list(names):
        _fail(library, f"{function.__qualname__} takes ({', '.join(found)}), not ({', '.join(names)})")


def unsupported(library: str, problem: str) -> UnsupportedLibraryError:
    """The error for `library` lacking what training relies on (`problem` says what)."""
    try:
        installed = metadata.version(library)
    except metadata.PackageNotFoundError:
        installed = "(not installed)"
    return UnsupportedLibraryError(
        f"{library} {installed} is not a version Inkling's training supports: {problem}. "
        f"Install {library}{SUPPORTED[library]} (pip install '{library}{SUPPORTED[library]}')"
    )


def _fail(library: str, problem: str) -> None:
    raise unsupported(library, problem)
