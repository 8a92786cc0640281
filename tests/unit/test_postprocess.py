from lsp_server.context import build_context
from lsp_server.languages import language_for_id
from lsp_server.postprocess import finish, trim_suffix_overlap


def ctx(source: str, language: str = "python"):
    offset = source.index("|")
    return build_context(source.replace("|", "", 1), offset, language_for_id(language))


def test_suffix_overlap_is_trimmed() -> None:
    assert trim_suffix_overlap("a, b)", ")") == "a, b"
    assert trim_suffix_overlap("a, b):", "):") == "a, b"
    assert trim_suffix_overlap("a, b)", "") == "a, b)"
    assert trim_suffix_overlap("name", ")") == "name"


def test_inline_result_keeps_one_line_without_trailing_space() -> None:
    done = finish(ctx("total = |\n"), "a + b   \nprint(total)")
    assert done is not None and done.text == "a + b"


def test_empty_and_suffix_repeats_are_rejected() -> None:
    assert finish(ctx("total = |\n"), "   \n") is None
    assert finish(ctx("x = foo(|bar)\n"), "bar") is None


def test_repeating_the_line_above_is_rejected() -> None:
    context = ctx("    value = compute()\n    |\n")
    assert finish(context, "value = compute()") is None


def test_block_drops_lines_that_exist_below_and_incomplete_lines() -> None:
    context = ctx("def f(x):\n    |\n    return y\n".replace("    return y\n", "") + "print(f(1))\n")
    done = finish(context, "y = x + 1\n    return y\nprint(f(1))")
    assert done is not None and done.text == "y = x + 1\n    return y"
    truncated = finish(context, "y = x + 1\n    return", complete=False)
    assert truncated is not None and truncated.text == "y = x + 1"


def test_parse_check_shortens_to_what_parses() -> None:
    context = ctx("def f(x):\n    |\n")
    done = finish(context, "y = x\n    return (y", parses=lambda text: "(" not in text)
    assert done is not None and done.text == "y = x"
