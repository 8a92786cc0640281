"""Training tokenizes the served GGUF's prompts exactly as llama.cpp does.

transformers converts the GGUF's tokenizer; these tests hold it to
llama.cpp's ids on awkward code, and the whole training prompt to the
server's `build_prompt` through the real llama.cpp vocabulary.
"""

from __future__ import annotations

from typing import Any

import pytest

from lsp_server import syntax
from lsp_server.context import build_context
from lsp_server.languages import language_for_id
from lsp_server.llama_model import LlamaModel
from lsp_server.models import ensure_base_model
from lsp_server.prompt import Budget, build_prompt
from lsp_server.templates import INKLING_FIM_TOKENS
from tests.requirements import require_train_extra

require_train_extra()  # before importing training, which imports transformers

from training.base import load_tokenizer  # noqa: E402
from training.data.examples import ExampleConfig, fim_example  # noqa: E402
from training.data.holes import Hole  # noqa: E402
from training.tokens import encode_example, encode_text, fim_vocab  # noqa: E402

pytestmark = [pytest.mark.model, pytest.mark.slow]

SAMPLES = [
    "def f(x):\n    return x  +  1\n\n\n",
    "    if a:\n\t\tb = '  x'  # trailing   \n",
    "const x = {a: 1};   // héllo 日本語\r\n",
    "<unused0> <|fim_prefix|> <eos> are text here\n",
    "x" * 300 + "\n" + " " * 17 + "y\n",
]
SOURCE = (
    "import os\n\n\ndef list_files(root):\n    result = []\n"
    "    for name in os.listdir(root):\n        result.append(name)\n    return result\n"
)


class _WithInklingTokens:
    """llama.cpp's vocabulary, with the reserved ids standing for Inkling's FIM tokens (as after export)."""

    def __init__(self, model: LlamaModel, special: dict[str, int]) -> None:
        self.model = model
        self.special = special

    @property
    def add_bos(self) -> bool:
        return self.model.add_bos

    @property
    def bos_id(self) -> int:
        return self.model.bos_id

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        return self.model.tokenize(text, add_bos=add_bos, special=special)

    def special_token_id(self, text: str) -> int | None:
        return self.special.get(text, self.model.special_token_id(text))


@pytest.fixture(scope="module")
def gguf_pair() -> Any:
    path = ensure_base_model()
    llama = LlamaModel(path, n_ctx=512, n_threads=1, n_batch=8, vocab_only=True)
    yield load_tokenizer(path), llama
    llama.close()


def test_hf_tokenizer_from_gguf_gives_llama_cpp_ids(gguf_pair: Any) -> None:
    hf, llama = gguf_pair
    for text in SAMPLES:
        assert encode_text(hf, text) == llama.tokenize(text, add_bos=False, special=False), text


def test_fim_tokens_take_over_gemma_ids_6_to_9(gguf_pair: Any) -> None:
    hf, _ = gguf_pair
    vocab = fim_vocab(hf, "spm")
    assert dict(vocab.taken_over) == dict(zip((6, 7, 8, 9), INKLING_FIM_TOKENS, strict=True))
    assert len(hf) == 262144 and vocab.add_bos and vocab.bos_id == 2


def test_training_prompt_is_the_served_prompt(gguf_pair: Any) -> None:
    hf, llama = gguf_pair
    vocab = fim_vocab(hf, "spm")
    start = SOURCE.index("result.append")
    end = SOURCE.index("\n", start)
    example = fim_example("m.py", SOURCE, "python", Hole(start, end, "line_rest"), "spm", ExampleConfig())
    assert example is not None
    prompt, completion = encode_example(hf, vocab, example.as_row(), max_length=512) or ([], [])
    document = SOURCE[:start] + SOURCE[end:]
    spec = language_for_id("python")
    assert spec is not None
    context = build_context(document, start, spec, syntax.parse(spec, document.encode()))
    served = build_prompt(
        context,
        vocab.template,
        _WithInklingTokens(llama, dict(vocab.special_ids)),
        Budget(prefix_tokens=1024, suffix_tokens=256, n_ctx=4096, reserve=64),
    )
    assert prompt == served.tokens
    assert served.healed == " " * 8  # the server leaves the indentation to the model, as training does
    assert completion == [*llama.tokenize(" " * 8 + "result.append(name)", add_bos=False, special=False), 9]
