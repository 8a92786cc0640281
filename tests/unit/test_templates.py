import pytest

from lsp_server.templates import INKLING_FIM_TOKENS, INKLING_FORMAT_KEY, INKLING_LAYOUT_KEY, detect_template
from tests.unit.fakes import FakeVocab


@pytest.mark.parametrize(
    ("specials", "family", "order"),
    [
        (
            ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|repo_name|>", "<|file_sep|>"),
            "qwen2.5-coder",
            "psm",
        ),
        (("<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>"), "starcoder", "psm"),
        (("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"), "deepseek-coder", "psm"),
        (("▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"), "codellama", "psm"),
        (("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>"), "codegemma", "psm"),
        (("[SUFFIX]", "[PREFIX]", "</s>"), "codestral", "spm"),
        ((), "prefix-only", "prefix"),
    ],
)
def test_families_are_recognised_by_their_tokens(specials, family, order) -> None:
    template = detect_template(FakeVocab(specials))
    assert (template.family, template.order) == (family, order)


def test_inkling_models_declare_their_format() -> None:
    vocab = FakeVocab(INKLING_FIM_TOKENS, metadata={INKLING_FORMAT_KEY: "spm"}, architecture="gemma3")
    template = detect_template(vocab)
    assert template.family == "inkling" and template.order == "spm"
    assert "<|file_sep|>" in template.stop_markers
    assert not template.prefix_last, "a model exported before the layout key keeps the earlier spm"


def test_inkling_models_declare_their_layout() -> None:
    metadata = {INKLING_FORMAT_KEY: "spm", INKLING_LAYOUT_KEY: "prefix-last"}
    template = detect_template(FakeVocab(INKLING_FIM_TOKENS, metadata=metadata, architecture="gemma3"))
    assert template.order == "spm" and template.prefix_last
    pieces = template.render("def f(", "):\n    pass\n")
    assert [p.text for p in pieces] == [
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "):\n    pass\n",
        "<|fim_middle|>",
        "def f(",
    ]


def test_unknown_family_with_llama_cpp_fim_ids() -> None:
    vocab = FakeVocab(("<pre>", "<suf>", "<mid>"), fim={"pre": 1000, "suf": 1001, "mid": 1002})
    template = detect_template(vocab)
    assert template.family == "generic-fim" and template.prefix_marker == "<pre>"


def test_user_text_never_becomes_a_marker() -> None:
    template = detect_template(FakeVocab(("<fim_prefix>", "<fim_suffix>", "<fim_middle>")))
    pieces = template.render("x = '<fim_suffix>'", "")
    specials = [p.text for p in pieces if p.special]
    assert specials == ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]
