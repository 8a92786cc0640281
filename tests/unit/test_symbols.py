import pytest

from lsp_server import syntax
from lsp_server.languages import language_for_id
from lsp_server.symbols import _QUERIES, read_symbols


@pytest.mark.parametrize("language", sorted(_QUERIES))
def test_queries_fit_the_installed_grammars(language: str) -> None:
    spec = language_for_id(language)
    assert spec is not None
    syntax.query(spec, _QUERIES[language])


def test_python_definitions_are_compact_signatures() -> None:
    source = b'''import os
from .billing import total as t

RATE = 0.2

def compute(items, tax=RATE):
    """Sum with tax.

    Longer text that is not needed."""
    return sum(items) * (1 + tax)

class Point:
    """A point."""
    x: float
    def __init__(self, x, y):
        self.x = x
        self.y = y
    def norm(self):
        return 0
'''
    symbols = read_symbols(language_for_id("python"), "m.py", source)  # type: ignore[arg-type]
    # `total` might be a submodule (billing/total.py): the index tries it too.
    assert symbols.imports == ("os", ".billing", ".billing.total")
    assert symbols.imported_names == ("total",)
    by_name = {d.name: d for d in symbols.definitions}
    assert by_name["compute"].signature == 'def compute(items, tax=RATE):\n    """Sum with tax."""'
    point = by_name["Point"].signature
    assert "x: float" in point and "self.y" in point and "def norm(self):" in point
    assert "return 0" not in point
    assert by_name["RATE"].kind == "variable"


@pytest.mark.parametrize(
    ("language", "source", "names", "imports"),
    [
        (
            "go",
            b'package a\nimport "example.com/m/util"\ntype T struct{ A int }\nfunc New(a int) *T { return nil }\n',
            {"T", "New"},
            ("example.com/m/util",),
        ),
        (
            "typescript",
            b'import {x} from "./util";\nexport interface P { a: number }\nexport function f(a: number): string { return "" }\n',
            {"P", "f"},
            ("./util",),
        ),
        ("rust", b"mod util;\npub fn f(a: u8) -> u8 { a }\npub struct S { x: i32 }\n", {"f", "S"}, ("util",)),
        (
            "java",
            b"import java.util.List;\npublic class C { int get(int k) { return k; } }\n",
            {"C"},
            ("java.util.List",),
        ),
        (
            "c",
            b'#include "util.h"\nint add(int a, int b);\nstruct s { int a; };\n',
            {"add", "s"},
            ("util.h",),
        ),
    ],
)
def test_other_languages(language: str, source: bytes, names: set[str], imports: tuple[str, ...]) -> None:
    symbols = read_symbols(language_for_id(language), "f", source)  # type: ignore[arg-type]
    assert {d.name for d in symbols.definitions} == names
    assert symbols.imports == imports
    for definition in symbols.definitions:
        assert "return" not in definition.signature  # bodies are left out
