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


class Errors:
    """A stand-in parser: one error per '(' in the candidate."""

    baseline = 0

    def __call__(self, candidate: str) -> int:
        return candidate.count("(")


def test_parse_check_shortens_to_what_parses() -> None:
    context = ctx("def f(x):\n    |\n")
    done = finish(context, "y = x\n    return (y", parses=Errors())
    assert done is not None and done.text == "y = x"


def test_closing_variants_from_all_to_fewer() -> None:
    from lsp_server.postprocess import closings

    block = ctx("int f(int a) {\n    |\n}\n", "c")
    assert closings(block, "if (a > 0) {\n        return a;") == ["if (a > 0) {\n        return a;\n    }"]
    assert closings(ctx("total = compute(|\n"), "a, b") == []
    assert closings(ctx("total = |\n"), "compute(a, [b") == ["compute(a, [b])", "compute(a, [b]"]
    assert closings(ctx("name = |\n"), "'abc") == ["'abc'"]
    assert closings(ctx("x = |\n"), "f('(')") == []  # brackets in strings do not count


def test_the_parser_picks_how_much_to_close() -> None:
    from lsp_server.languages import language_for_id
    from lsp_server.syntax import error_count_in

    spec = language_for_id("python")
    source = "total = |)\n"  # the hole removed an opening bracket: the suffix closes one
    context = ctx(source)
    baseline = error_count_in(spec, source.replace("|", "").encode())

    class Parses:
        def __init__(self) -> None:
            self.baseline = baseline

        def __call__(self, candidate: str) -> int:
            return error_count_in(spec, (context.prefix + candidate + context.suffix).encode())

    done = finish(context, "compute(a, [b", parses=Parses())
    assert done is not None and done.text == "compute(a, [b]"


def test_a_truncated_block_is_closed_instead_of_dropped() -> None:
    from lsp_server.languages import language_for_id
    from lsp_server.syntax import error_count_in

    source = "int f(int a) {\n    |\n}\n"
    context = ctx(source, "c")
    spec = language_for_id("c")
    baseline = error_count_in(spec, source.replace("|", "").encode())

    class Parses:
        def __init__(self) -> None:
            self.baseline = baseline

        def __call__(self, candidate: str) -> int:
            return error_count_in(spec, (context.prefix + candidate + context.suffix).encode())

    parses = Parses()
    done = finish(context, "if (a > 0) {\n        a = a * 2;\n        return", complete=False, parses=parses)
    assert done is not None and done.text == "if (a > 0) {\n        a = a * 2;\n    }"
