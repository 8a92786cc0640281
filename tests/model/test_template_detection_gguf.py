"""Template detection through llama.cpp's vocabulary, for every supported family."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.context import build_context
from lsp_server.languages import language_for_id
from lsp_server.llama_model import LlamaModel
from lsp_server.prompt import Budget, build_prompt
from lsp_server.templates import INKLING_FORMAT_KEY, detect_template
from tests.model.vocab_gguf import write_vocab_gguf

FAMILIES = [
    (
        "qwen2",
        [
            "<|endoftext|>",
            "<|fim_prefix|>",
            "<|fim_middle|>",
            "<|fim_suffix|>",
            "<|fim_pad|>",
            "<|repo_name|>",
            "<|file_sep|>",
        ],
        {},
        "qwen2.5-coder",
        "psm",
    ),
    (
        "starcoder2",
        [
            "<|endoftext|>",
            "<fim_prefix>",
            "<fim_middle>",
            "<fim_suffix>",
            "<fim_pad>",
            "<repo_name>",
            "<file_sep>",
        ],
        {},
        "starcoder",
        "psm",
    ),
    (
        "llama",
        ["<｜begin▁of▁sentence｜>", "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>", "<|EOT|>"],
        {},
        "deepseek-coder",
        "psm",
    ),
    ("llama", ["<s>", "</s>", "▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"], {}, "codellama", "psm"),
    (
        "gemma",
        ["<eos>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|file_separator|>"],
        {},
        "codegemma",
        "psm",
    ),
    (
        "llama",
        ["<s>", "</s>", "[INST]", "[/INST]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]"],
        {},
        "codestral",
        "spm",
    ),
    (
        "gemma3",
        ["<eos>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>"],
        {INKLING_FORMAT_KEY: "spm"},
        "inkling",
        "spm",
    ),
    ("gemma3", ["<eos>", "<start_of_turn>", "<end_of_turn>"], {}, "prefix-only", "prefix"),
]


@pytest.mark.parametrize(("arch", "specials", "metadata", "family", "order"), FAMILIES)
def test_family_detected_from_gguf_vocabulary(
    tmp_path: Path, arch: str, specials: list[str], metadata: dict[str, str], family: str, order: str
) -> None:
    path = write_vocab_gguf(tmp_path / f"{family}.gguf", arch, specials, metadata)
    model = LlamaModel(path, n_ctx=512, n_threads=1, n_batch=8, vocab_only=True)
    try:
        template = detect_template(model)
        assert (template.family, template.order) == (family, order)
        if not template.is_fim:
            return
        # Rendered through the real tokenizer: markers become their control ids,
        # while the same text typed in the buffer stays plain text.
        text = f"x = '{template.prefix_marker}'\ny = \n"
        context = build_context(text, text.index("y = ") + 4, language_for_id("python"))
        prompt = build_prompt(context, template, model, Budget(256, 256, 512, 16))
        marker_id = model.special_token_id(template.prefix_marker)
        assert marker_id is not None
        assert prompt.tokens.count(marker_id) == 1
        assert marker_id in prompt.stop_token_ids
    finally:
        model.close()
