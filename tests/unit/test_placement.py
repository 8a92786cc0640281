"""The syntax decides the mode on a blank line and where a block ends (lsp_server/placement.py)."""

import pytest

from lsp_server import syntax
from lsp_server.context import Mode, build_context, stop_cut
from lsp_server.languages import LANGUAGES, language_for_id
from lsp_server.placement import EnclosingEnd, Slot, place


def _split(source: str) -> tuple[str, int]:
    offset = source.index("|")
    return source.replace("|", "", 1), offset


def placed(source: str, language: str, *, with_tree: bool = True):
    text, offset = _split(source)
    spec = language_for_id(language)
    assert spec is not None
    tree = syntax.parse(spec, text.encode()) if with_tree else None
    return place(spec, text, offset, tree)


def ctx(source: str, language: str):
    text, offset = _split(source)
    spec = language_for_id(language)
    return build_context(text, offset, spec, syntax.parse(spec, text.encode()) if spec else None)


@pytest.mark.parametrize(
    ("source", "language", "slot", "container", "empty"),
    [
        ("def f():\n    # add them up\n    |\n\nx = 1\n", "python", Slot.BODY, "function_definition", True),
        ('def f():\n    """Doc."""\n    |\n', "python", Slot.BODY, "function_definition", True),
        ("def f():\n    a = 1\n    |\n", "python", Slot.BODY, "function_definition", False),
        ("class A:\n    |\n", "python", Slot.BODY, "class_definition", True),
        ("if x:\n    |\nelse:\n    pass\n", "python", Slot.BODY, "if_statement", True),
        (
            "match x:\n    case 1:\n        |\n    case 2:\n        pass\n",
            "python",
            Slot.BODY,
            "case_clause",
            True,
        ),
        ("x = [\n    |\n]\n", "python", Slot.COLLECTION, "list", True),
        ("x = [\n    1,\n    |\n]\n", "python", Slot.COLLECTION, "list", False),
        ("foo(\n    |\n)\n", "python", Slot.ARGUMENTS, "argument_list", True),
        ("x = foo(a, |)\n", "python", Slot.ARGUMENTS, "argument_list", False),
        ("x = |\n", "python", Slot.EXPRESSION, "assignment", False),
        ("def f():\n    return |\n", "python", Slot.EXPRESSION, "return_statement", True),
        ("@|\ndef f():\n    pass\n", "python", Slot.DECORATOR, "decorator", True),
        ("int f() {\n  // c\n  |\n}\n", "c", Slot.BODY, "function_definition", True),
        (
            "void f() {\n  switch (x) {\n  case 1:\n    |\n  case 2:\n    break;\n  }\n}\n",
            "c",
            Slot.BODY,
            "case_statement",
            True,
        ),
        ("func f() {\n\tswitch x {\n\tcase 1:\n\t\t|\n\t}\n}\n", "go", Slot.BODY, "expression_case", True),
        ("var x = []int{\n\t|\n}\n", "go", Slot.COLLECTION, "literal_value", True),
        ("const f = () => {\n  |\n};\n", "javascript", Slot.BODY, "arrow_function", True),
        ("switch (x) {\n  case 1:\n    |\n}\n", "javascript", Slot.BODY, "switch_case", True),
        ("class A {\n  |\n}\n", "typescript", Slot.BODY, "class_declaration", True),
        ("match x {\n    1 => {\n        |\n    }\n}\n", "rust", Slot.BODY, "match_arm", True),
        ("class A {\n  void f() {\n    |\n  }\n}\n", "java", Slot.BODY, "method_declaration", True),
    ],
)
def test_the_probe_finds_the_container(source, language, slot, container, empty) -> None:
    found = placed(source, language)
    assert found is not None
    assert (found.slot, found.container, found.empty) == (slot, container, empty)
    # The probe's tree is the same whether it was updated from the document's tree or parsed anew.
    assert placed(source, language, with_tree=False) == found


def test_every_language_with_a_grammar_has_rules() -> None:
    assert all(spec.syntax is not None for spec in LANGUAGES)


@pytest.mark.parametrize(
    ("source", "language", "mode"),
    [
        # A comment or a docstring says what the body should do: the whole body is wanted.
        ("def f():\n    # add them up\n    |\n\nx = 1\n", "python", Mode.BLOCK),
        ('def f():\n    """Doc."""\n    |\n\nx = 1\n', "python", Mode.BLOCK),
        ("int f() {\n  // add them up\n  |\n}\n", "c", Mode.BLOCK),
        ("switch (x) {\n  case 1:\n    |\n}\n", "javascript", Mode.BLOCK),
        ("x = [\n    |\n]\n", "python", Mode.BLOCK),
        # Something is there already: the next statement or element, as before.
        ("def f():\n    # add them up\n    |\n    return x\n", "python", Mode.INLINE),
        ("x = [\n    1,\n    |\n]\n", "python", Mode.INLINE),
    ],
)
def test_blank_line_modes(source: str, language: str, mode: Mode) -> None:
    assert ctx(source, language).mode is mode


@pytest.mark.parametrize(
    ("source", "language", "generated", "kept"),
    [
        (
            "void f() {\n  switch (x) {\n  case 1:\n    |\n  case 2:\n    break;\n  }\n}\n",
            "c",
            "y = 2;\n    break;\n  case 3:\n    y = 3;\n",
            "y = 2;\n    break;",
        ),
        (
            "switch (x) {\n  case 1:\n    |\n}\n",
            "javascript",
            "y = 2;\n    break;\n  default:\n    y = 3;\n",
            "y = 2;\n    break;",
        ),
        (
            "func f() {\n\tswitch x {\n\tcase 1:\n\t\t|\n\t}\n}\n",
            "go",
            "y = 2\n\tcase 2:\n\t\ty = 3\n",
            "y = 2",
        ),
        ("x = [\n    |\n]\n", "python", "1,\n    2,\n]\nprint(x)\n", "1,\n    2,"),
        ("var x = []int{\n\t|\n}\n", "go", "1,\n\t2,\n}\n", "1,\n\t2,"),
        (
            "def f():\n    # add\n    |\n\nx = 1\n",
            "python",
            "a = 1\n    return a\n\nprint(3)\n",
            "a = 1\n    return a",
        ),
    ],
)
def test_a_block_ends_where_its_container_ends(source, language, generated, kept) -> None:
    context = ctx(source, language)
    assert context.mode is Mode.BLOCK
    cut = stop_cut(context, generated)
    assert cut is not None
    assert generated[:cut].rstrip() == kept


def test_the_end_is_read_only_at_line_ends_and_a_line_inside_keeps_going() -> None:
    text, offset = _split("def f():\n    |\n\nx = 1\n")
    spec = language_for_id("python")
    found = place(spec, text, offset, syntax.parse(spec, text.encode()))
    assert found is not None
    end = EnclosingEnd(spec, text, offset, found)
    assert end.cut("total = 0") is None  # no complete line yet
    assert end.cut("total = 0\n    for x in xs:\n") is None  # an unfinished statement: inside
    assert end.cut("total = 0\n    for x in xs:\n        total += x\n    return total\n") is None
    assert end.cut("total = 0\n    return total\nprint(1)\n") == len("total = 0\n    return total\n")


@pytest.mark.parametrize(
    "source",
    [
        # A statement follows in the same body: the probe must not swallow it in error recovery.
        "void f(char *h) {\n  if (!h)\n    {\n      |\n      return;\n    }\n}\n",
        # A braceless branch whose statement is the hole: not an empty body of its own.
        "void f(int i) {\n  for (;;) {\n    if (i)\n      |\n    if (i < 24)\n      g();\n  }\n}\n",
    ],
)
def test_a_body_with_statements_is_not_empty_in_c(source: str) -> None:
    assert ctx(source, "c").mode is Mode.INLINE


def test_an_argument_list_gets_one_argument_a_line() -> None:
    assert ctx("foo(\n    |\n)\n", "python").mode is Mode.INLINE
