import pytest

from lsp_server import syntax
from lsp_server.context import Mode, build_context, closing_cut, loop_cut, stop_cut
from lsp_server.languages import language_for_id


def ctx(source: str, language: str = "python"):
    """Build the context at the '|' marker."""
    offset = source.index("|")
    text = source.replace("|", "", 1)
    spec = language_for_id(language)
    tree = syntax.parse(spec, text.encode()) if spec else None
    return build_context(text, offset, spec, tree)


@pytest.mark.parametrize(
    ("source", "language", "mode"),
    [
        ("x = fo|o\n", "python", Mode.SKIP),
        ("print('hel|lo')\n", "python", Mode.SKIP),
        ("x = foo(|)\n", "python", Mode.INLINE),
        ("total = |\n", "python", Mode.INLINE),
        ("def f(x):\n    |\n", "python", Mode.BLOCK),
        ("def f(x):\n    |\n    return x\n", "python", Mode.INLINE),
        ("def f(x):\n    y = 1\n    |\n", "python", Mode.INLINE),
        ("    |return x\n", "python", Mode.INLINE),
        ("function f() {\n  |\n}\n", "javascript", Mode.BLOCK),
        ("func f() int {\n\t|\n}\n", "go", Mode.BLOCK),
        ("fn f() -> u8 {\n    |\n}\n", "rust", Mode.BLOCK),
        ("fn f() -> u8 {\n    let a = 1;\n    |\n}\n", "rust", Mode.INLINE),
        ("int main() {\n    /* a com|ment */\n}\n", "c", Mode.SKIP),
        ("if x:\n    |\n", "unknown-language", Mode.BLOCK),
    ],
)
def test_modes(source: str, language: str, mode: Mode) -> None:
    assert ctx(source, language).mode is mode


def test_inline_stops_at_end_of_line() -> None:
    context = ctx("total = |\n")
    assert stop_cut(context, "a + b") is None
    assert stop_cut(context, "a + b\nprint(total)") == 5


def test_inline_stops_where_the_right_side_begins() -> None:
    context = ctx("x = foo(|)\n")
    assert stop_cut(context, "a, bar(b)") is None
    assert stop_cut(context, "a, bar(b))") == 9
    assert closing_cut("a, ')'", ")") is None  # a bracket inside a string does not count


def test_python_block_stops_at_dedent() -> None:
    context = ctx("def f(x):\n    |\n\nprint(1)\n")
    generated = "y = x * 2\n    return y\n\ndef g():\n    pass"
    assert generated[: stop_cut(context, generated)] == "y = x * 2\n    return y\n\n"


def test_brace_block_stops_at_its_closing_brace() -> None:
    context = ctx("function f(a) {\n  |\n}\n", "javascript")
    generated = "if (a) {\n    return 1;\n  }\n  return 2;\n}\nfunction g() {}"
    assert generated[: stop_cut(context, generated)] == "if (a) {\n    return 1;\n  }\n  return 2;\n"


def test_filling_before_code_stops_where_the_right_side_begins() -> None:
    context = ctx("    |return total\n")
    assert stop_cut(context, "total = sum(xs)") is None
    generated = "total = sum(xs); return total"
    assert generated[: stop_cut(context, generated)] == "total = sum(xs);"


def test_the_cursor_line_of_a_giant_minified_file_is_found_at_codec_speed() -> None:
    """It was a Python loop per character to the end of the line: seconds on 5 MB."""
    import time

    line = "var a=1,b=[1,2,3].map(function(x){return x*2});" * 100_000
    started = time.perf_counter()
    context = build_context(line + "\r\nnext()", 7, language_for_id("javascript"))
    assert time.perf_counter() - started < 0.5
    assert context.line_suffix == line[7:] and context.mode is Mode.INLINE


def test_a_block_that_writes_its_own_lines_again_stops_before_the_repeat() -> None:
    context = ctx("function f(a) {\n  |\n}\n", "javascript")
    generated = "// if a is set,\n  // resize it.\n  // if a is set,\n  // resize it.\n  // if a"
    assert context.mode is Mode.BLOCK
    assert generated[: stop_cut(context, generated)] == "// if a is set,\n  // resize it.\n"


@pytest.mark.parametrize(
    "generated",
    [
        "x = 1\n    y = 2\n    return x + y\n",  # no repeat
        "pass\n    pass\n",  # one line twice can be right
        "a.append(1)\n    a.append(2)\n    a.append(1)\n",  # not yet a whole second run
        "\n\n\n\n",  # blank lines are not a run
    ],
)
def test_no_loop_cut_without_a_repeated_run(generated: str) -> None:
    assert loop_cut(generated) is None
