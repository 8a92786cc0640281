"""Imports go one way: training and export use the server's modules, never the reverse, and
training does not reach into the evaluation (hole cutting and corpora live outside it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported_modules(package: str) -> dict[str, set[str]]:
    """For each module of `package`: the modules it imports, and the module names its code
    spells as strings (what `importlib.import_module` would take)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", node.value)
            ):
                names.add(node.value)
        found[str(path.relative_to(ROOT))] = names
    return found


def _reaching(package: str, forbidden: str) -> dict[str, list[str]]:
    return {
        module: sorted(n for n in names if n == forbidden or n.startswith(forbidden + "."))
        for module, names in _imported_modules(package).items()
        if any(n == forbidden or n.startswith(forbidden + ".") for n in names)
    }


@pytest.mark.parametrize("forbidden", ["training", "export"])
def test_the_server_never_imports_training_or_export(forbidden: str) -> None:
    assert _reaching("lsp_server", forbidden) == {}


def test_training_does_not_import_the_evaluation() -> None:
    assert _reaching("training", "lsp_server.evaluation") == {}


def test_training_still_uses_the_shared_hole_cutter_and_corpora() -> None:
    """The check above would pass on a training package that imports nothing at all."""
    imported = set().union(*_imported_modules("training").values())
    assert {"lsp_server.holes.nodes", "lsp_server.holes.crossfile", "lsp_server.corpora"} <= imported
