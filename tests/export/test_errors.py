"""Export's errors are InklingErrors, so its commands print one line for any of them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import export
from export.errors import ExportError
from lsp_server.cli import main
from lsp_server.errors import InklingError


def _error_classes() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.iter_modules(export.__path__):
        module = importlib.import_module(f"export.{info.name}")
        found += [
            value
            for value in vars(module).values()
            if inspect.isclass(value)
            and issubclass(value, BaseException)
            and value.__module__ == module.__name__
        ]
    return found


def test_every_error_export_defines_is_an_export_error() -> None:
    classes = _error_classes()
    names = {cls.__name__ for cls in classes}
    assert {"AdapterError", "GGUFExportError", "QuantizeError", "UnsupportedAdapterError"} <= names
    assert [cls.__name__ for cls in classes if not issubclass(cls, ExportError)] == []
    assert issubclass(ExportError, InklingError)


def test_export_prints_an_adapter_error_as_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-adapter"
    assert main(["export", "--adapter", str(missing), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err == f"inkling export: adapter {missing} is not a directory\n"
    assert not (tmp_path / "out").exists()
