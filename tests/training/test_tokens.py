"""Training renders and tokenizes prompts exactly as the server does."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from lsp_server import syntax
from lsp_server.context import build_context
from lsp_server.holes import Hole, HoleKind
from lsp_server.languages import language_for_id
from lsp_server.prompt import Budget, build_prompt
from lsp_server.templates import INKLING_FIM_TOKENS, ContextFile
from training.data.examples import ExampleConfig, fim_example
from training.tokens import encode_example, encode_text, fim_vocab

SOURCE = "def add(a, b):\n    total = a + b\n    return total\n\n\nprint(add(1, 2))\n"


class _ServerTokenizer:
    """The HF tokenizer behind the server's `prompt.Tokenizer` protocol."""

    def __init__(self, tokenizer: Any, special: dict[str, int]) -> None:
        self.tokenizer = tokenizer
        self.special = special

    @property
    def add_bos(self) -> bool:
        return True

    @property
    def bos_id(self) -> int:
        return int(self.tokenizer.bos_token_id)

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        return encode_text(self.tokenizer, text)

    def special_token_id(self, text: str) -> int | None:
        return self.special.get(text)


def test_reserved_tokens_are_taken_over_for_fim(tiny_tokenizer: Any) -> None:
    vocab = fim_vocab(tiny_tokenizer, "spm")
    assert vocab.template.family == "inkling" and vocab.template.order == "spm" and vocab.template.prefix_last
    assert dict(vocab.taken_over) == dict(zip((4, 5, 6, 7), INKLING_FIM_TOKENS, strict=True))
    assert vocab.stop_id == 7 and vocab.add_bos and vocab.trainable_ids == [4, 5, 6, 7]
    assert len(tiny_tokenizer) == 400  # the vocabulary does not grow


@pytest.mark.parametrize("order", ["psm", "spm"])
@pytest.mark.parametrize("with_context", [False, True])
def test_training_prompt_is_the_servers_prompt(tiny_tokenizer: Any, order: str, with_context: bool) -> None:
    vocab = fim_vocab(tiny_tokenizer, order)  # type: ignore[arg-type]
    start = SOURCE.index("a + b")
    example = fim_example(
        "m.py", SOURCE, "python", Hole(start, start + 5, HoleKind.EXPRESSION), order, ExampleConfig()
    )
    assert example is not None
    extra = (
        (ContextFile("pkg/ops.py", "def plus(a, b):"), ContextFile("pkg/util.py", "TOTAL = 0"))
        if with_context
        else ()
    )
    path = "pkg/m.py" if with_context else ""
    row = dataclasses.replace(example, context_path=path, context=extra).as_row()
    encoded = encode_example(tiny_tokenizer, vocab, row, max_length=512)
    assert encoded is not None
    prompt, completion = encoded

    document = SOURCE[:start] + SOURCE[start + 5 :]
    spec = language_for_id("python")
    assert spec is not None
    context = build_context(document, start, spec, syntax.parse(spec, document.encode()))
    served = build_prompt(
        context,
        vocab.template,
        _ServerTokenizer(tiny_tokenizer, dict(vocab.special_ids)),
        Budget(prefix_tokens=1024, suffix_tokens=256, n_ctx=4096, reserve=64),
        path=path,
        extra=extra,
        order=order,  # type: ignore[arg-type]
    )
    assert prompt == served.tokens
    assert served.healed == " " and completion == [*encode_text(tiny_tokenizer, " a + b"), vocab.stop_id]
    # With context: two other files, then the current one, each after a file separator.
    assert prompt.count(vocab.special_ids["<|file_sep|>"]) == (3 if with_context else 0)


def test_long_examples_lose_the_start_of_the_prefix_and_the_end_of_the_suffix(tiny_tokenizer: Any) -> None:
    vocab = fim_vocab(tiny_tokenizer, "psm")
    row = {
        "kind": "fim",
        "order": "psm",
        "prefix": "".join(f"x{i} = {i}\n" for i in range(300)),
        "suffix": "".join(f"y{i} = {i}\n" for i in range(300)),
        "middle": "z = 1",
        "ends_file": False,
    }
    encoded = encode_example(tiny_tokenizer, vocab, row, max_length=128)
    assert encoded is not None
    prompt, completion = encoded
    assert len(prompt) + len(completion) <= 128
    text = tiny_tokenizer.decode(prompt)
    assert "x299 = 299" in text and "y0 = 0" in text and "x0 = 0" not in text and "y299" not in text
    too_long = {**row, "middle": "w = 2\n" * 200}
    assert encode_example(tiny_tokenizer, vocab, too_long, max_length=128) is None


def test_next_token_examples_have_no_fim_tokens(tiny_tokenizer: Any) -> None:
    vocab = fim_vocab(tiny_tokenizer, "psm")
    row = {
        "kind": "next_token",
        "order": "prefix",
        "prefix": "import os\n",
        "suffix": "",
        "middle": "x = 1\n",
        "ends_file": True,
    }
    encoded = encode_example(tiny_tokenizer, vocab, row, max_length=128)
    assert encoded is not None
    prompt, completion = encoded
    assert not set(prompt) & set(vocab.taken_over)
    assert completion[-1] == tiny_tokenizer.eos_token_id
