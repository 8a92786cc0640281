from lsp_server.context import build_context
from lsp_server.languages import language_for_id
from lsp_server.prompt import Budget, build_prompt
from lsp_server.templates import PREFIX_ONLY, inkling_template
from tests.unit.fakes import FakeVocab

SPECIALS = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>")


def make_source(lines: int) -> str:
    return "".join(f"value_{i} = compute({i}, other_{i})\n" for i in range(lines))


def test_prefix_window_is_stable_while_typing() -> None:
    vocab = FakeVocab()
    source = make_source(400)
    budget = Budget(prefix_tokens=600, suffix_tokens=0, n_ctx=4096, reserve=64)
    cursor = source.index("value_300 = ") + len("value_300 = ")
    starts = set()
    for typed in ["", "c", "co", "com", "comp"]:
        text = source[:cursor] + typed + source[cursor:]
        context = build_context(text, cursor + len(typed), language_for_id("python"))
        prompt = build_prompt(context, PREFIX_ONLY, vocab, budget)
        assert len(prompt.tokens) <= 600 + 1
        starts.add(prompt.prefix_text[:40])
    assert len(starts) == 1, "the window must not move while the user types on one line"


def test_whitespace_is_healed() -> None:
    vocab = FakeVocab()
    context = build_context("x = ", 4, language_for_id("python"))
    prompt = build_prompt(context, PREFIX_ONLY, vocab, Budget(100, 0, 512, 16))
    assert prompt.prefix_text == "x =" and prompt.healed == " "
    assert prompt.unheal(" 42") == "42"
    assert prompt.unheal("\n") is None


def test_fim_layouts_put_markers_in_order() -> None:
    vocab = FakeVocab(SPECIALS)
    text = "a = 1\nb = \nc = 3\n"
    context = build_context(text, text.index("b = ") + 4, language_for_id("python"))
    budget = Budget(100, 100, 512, 16)
    psm = build_prompt(context, inkling_template("psm"), vocab, budget)
    earlier_spm = build_prompt(context, inkling_template("spm", prefix_last=False), vocab, budget)
    pre, suf, mid = (vocab.special_token_id(s) for s in SPECIALS[:3])
    assert psm.tokens.index(pre) < psm.tokens.index(suf) < psm.tokens.index(mid)
    assert psm.tokens[-1] == mid
    assert earlier_spm.tokens.index(suf) < earlier_spm.tokens.index(pre) < earlier_spm.tokens.index(mid)
    assert earlier_spm.tokens[-1] == mid
    assert {pre, suf, mid} <= psm.stop_token_ids


def test_inkling_spm_ends_with_the_prefix_so_that_the_middle_continues_it() -> None:
    vocab = FakeVocab(SPECIALS)
    text = "a = 1\nb = compute(\nc = 3\n"
    context = build_context(text, text.index("compute(") + len("compute("), language_for_id("python"))
    prompt = build_prompt(context, inkling_template("spm"), vocab, Budget(100, 100, 512, 16))
    pre, suf, mid = (vocab.special_token_id(s) for s in SPECIALS[:3])
    assert prompt.tokens.index(pre) < prompt.tokens.index(suf) < prompt.tokens.index(mid)
    after_mid = prompt.tokens[prompt.tokens.index(mid) + 1 :]
    assert "".join(map(vocab.token_piece, after_mid)).endswith("b = compute(")
    assert pre not in after_mid and suf not in after_mid
    between = prompt.tokens[prompt.tokens.index(suf) + 1 : prompt.tokens.index(mid)]
    assert "".join(map(vocab.token_piece, between)).startswith("\nc = 3")
    assert {pre, suf, mid} <= prompt.stop_token_ids


def test_suffix_budget_is_respected() -> None:
    vocab = FakeVocab(SPECIALS)
    source = make_source(300)
    cursor = source.index("value_10 = ") + len("value_10 = ")
    context = build_context(source, cursor, language_for_id("python"))
    prompt = build_prompt(context, inkling_template("psm"), vocab, Budget(200, 100, 4096, 16))
    assert len(vocab.tokenize(prompt.suffix_text)) <= 100
    assert prompt.suffix_text and source[cursor:].startswith(prompt.suffix_text)


def test_one_giant_line_is_cut_inside() -> None:
    vocab = FakeVocab()
    text = "var a=" + ",".join(str(i) for i in range(200_000)) + ";"
    context = build_context(text, len(text) - 1, language_for_id("javascript"))
    prompt = build_prompt(context, PREFIX_ONLY, vocab, Budget(500, 0, 4096, 64))
    assert 0 < len(prompt.tokens) <= 501
    assert text[: len(text) - 1].endswith(prompt.prefix_text)


def test_half_typed_word_is_healed() -> None:
    vocab = FakeVocab()
    context = build_context("total = compu", 13, language_for_id("python"))
    prompt = build_prompt(context, PREFIX_ONLY, vocab, Budget(100, 0, 512, 16))
    assert prompt.healed == "compu"
    assert vocab.token_piece(prompt.tokens[-1]) == " "  # the prompt stops before the word
    assert prompt.unheal("compute(x)") == "te(x)"


def test_complete_words_and_punctuation_are_not_healed() -> None:
    vocab = FakeVocab()
    for text in ("call(a, ", "x = y.", "value = 12;"):
        prompt = build_prompt(
            build_context(text, len(text), None), PREFIX_ONLY, vocab, Budget(100, 0, 512, 16)
        )
        assert prompt.healed == text[len(text.rstrip(" ")) :]


class _LengthRecordingVocab(FakeVocab):
    def __init__(self) -> None:
        super().__init__(SPECIALS)
        self.longest = 0

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        self.longest = max(self.longest, len(text))
        return super().tokenize(text, add_bos=add_bos, special=special)


def test_a_giant_minified_line_is_never_tokenized_whole() -> None:
    """A 5 MB one-line file: windows that cannot fit are not tokenized (it took seconds)."""
    line = "var a=1,b=[1,2,3].map(function(x){return x*2});" * 100_000
    for order, cursor in (("prefix", len(line)), ("psm", len(line) // 2)):
        vocab = _LengthRecordingVocab()
        context = build_context(line, cursor, language_for_id("javascript"))
        template = PREFIX_ONLY if order == "prefix" else inkling_template("psm")
        budget = Budget(prefix_tokens=1024, suffix_tokens=256, n_ctx=4096, reserve=64)
        prompt = build_prompt(context, template, vocab, budget)
        assert 0 < len(prompt.tokens) <= 1024 + 256 + 8
        assert vocab.longest <= 1024 * 64, f"{order}: tokenized {vocab.longest} characters at once"
