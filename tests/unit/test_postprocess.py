from lsp_server.context import build_context
from lsp_server.languages import language_for_id
from lsp_server.postprocess import finish, trim_suffix_overlap
from lsp_server.syntax import Tree, error_count, parse


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


class Parses:
    """The real parser's error count with a candidate at the cursor (and without one)."""

    def __init__(self, context, language: str) -> None:
        self.spec = language_for_id(language)
        self.context = context
        self.baseline = self("")

    def __call__(self, candidate: str) -> int:
        return error_count(self._tree(candidate).root_node)

    def errors_from_cursor(self, candidate: str) -> int:
        return error_count(self._tree(candidate).root_node, from_byte=len(self.context.prefix.encode()))

    def _tree(self, candidate: str) -> Tree:
        return parse(self.spec, (self.context.prefix + candidate + self.context.suffix).encode())


class StandIn:
    """A stand-in parser whose errors all lie at or after the cursor."""

    baseline = 0

    def __call__(self, candidate: str) -> int:
        raise NotImplementedError

    def errors_from_cursor(self, candidate: str) -> int:
        return self(candidate)


class Errors(StandIn):
    """One error per '(' in the candidate."""

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
    context = ctx("total = |)\n")  # the hole removed an opening bracket: the suffix closes one
    done = finish(context, "compute(a, [b", parses=Parses(context, "python"))
    assert done is not None and done.text == "compute(a, [b]"


def test_a_truncated_block_is_closed_instead_of_dropped() -> None:
    context = ctx("int f(int a) {\n    |\n}\n", "c")
    parses = Parses(context, "c")
    done = finish(context, "if (a > 0) {\n        a = a * 2;\n        return", complete=False, parses=parses)
    assert done is not None and done.text == "if (a > 0) {\n        a = a * 2;\n    }"


def test_a_tail_that_adds_its_own_error_is_cut_where_the_hole_had_one() -> None:
    """The holed file has errors (an unfinished declaration); the completion fixes them
    and adds one with a body that is not Go: no more errors than the hole left, so the
    rule for new errors keeps it, yet a prefix leaves fewer."""
    source = "package sha256\n\n//go:noescape\n\nfunc block(dig *|\n\nfunc other() int { return 1 }\n"
    context = ctx(source, "go")
    parses = Parses(context, "go")
    assert parses.baseline >= parses("digest, p []byte) { ... }") > parses("digest, p []byte)")
    done = finish(context, "digest, p []byte) { ... }", parses=parses)
    assert done is not None and done.text == "digest, p []byte)" and "parse-tail" in done.steps
    whole = finish(context, "digest, p []byte)", parses=parses)
    assert whole is not None and whole.text == "digest, p []byte)" and not whole.steps


class Asked(Parses):
    def __init__(self, context, language: str) -> None:
        self.asked: list[str] = []
        super().__init__(context, language)

    def __call__(self, candidate: str) -> int:
        self.asked.append(candidate)
        return super().__call__(candidate)


def test_an_error_elsewhere_in_the_file_costs_no_search_for_a_shorter_completion() -> None:
    """Cutting the tail can only mend errors at or after the cursor: with the only error
    on an unfinished line above, each completion is checked once, not prefix by prefix."""
    context = ctx("def broken(:\n\n\ndef area(w, h):\n    result = |\n    return result\n")
    parses = Asked(context, "python")
    assert parses.baseline >= 1 and parses.errors_from_cursor("compute(w, h) * scale(w)") == 0
    parses.asked.clear()
    done = finish(context, "compute(w, h) * scale(w)", parses=parses)
    assert done is not None and done.text == "compute(w, h) * scale(w)" and not done.steps
    assert parses.asked == ["compute(w, h) * scale(w)"]


class FewerWhenOpen(StandIn):
    """Like tree-sitter at times: fewer errors for a prefix that stops inside a bracket
    than for the whole completion."""

    baseline = 1

    def __call__(self, candidate: str) -> int:
        return 0 if candidate.endswith("(") else 1


def test_the_tail_cut_never_stops_inside_a_bracket_the_whole_closed() -> None:
    context = ctx("    notifier = |\n")
    done = finish(context, "subscribe(subscriber, () => 1)", parses=FewerWhenOpen())
    assert done is not None and done.text == "subscribe(subscriber, () => 1)"
