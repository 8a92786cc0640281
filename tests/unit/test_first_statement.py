"""Where a cold block's first answer ends: the first complete statement."""

import pytest

from lsp_server.context import first_statement_end


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("    w = 1\n    x = 2\n", "    w = 1"),
        ('"""Doc.\n\n    More.\n    """\n    w = 1\n', '"""Doc.\n\n    More.\n    """'),
        ("if (x) {\n  y();\n}\nz();\n", "if (x) {\n  y();\n}"),
        ("# why\nx = 1\ny = 2\n", "# why\nx = 1"),
        ("# one\n# two\nx = 1\n", "# one"),
        ("  // a\n\n  // b\n  x();\n", "  // a"),
        ("x = 1  # why\n# next\n", "x = 1  # why"),
        ("// it's fine\nx = 1;\n", "// it's fine\nx = 1;"),
        ('a = "it\'s"\nb = 2\n', 'a = "it\'s"'),
        ("x = (1,\n     2)\ny\n", "x = (1,\n     2)"),
        ("s = `a\nb`\nt\n", "s = `a\nb`"),
        ("\n\n  x = 1\n", "\n\n  x = 1"),
    ],
)
def test_first_statement(text: str, first: str) -> None:
    end = first_statement_end(text)
    assert end is not None and text[:end] == first


@pytest.mark.parametrize(
    "text", ["", "   ", "\n\n", "x = (1,\n", '"""Doc.\n', "if (x) {\n  y();\n", "# only"]
)
def test_no_statement_yet(text: str) -> None:
    assert first_statement_end(text) is None
