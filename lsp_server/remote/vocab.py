"""The tokenizer of a remote engine's model, kept on this side of the connection.

Prompts are built here (budgets, healing, the FIM format), so Inkling needs
the server's vocabulary. Where it can, it reads it from the same GGUF file
(`LlamaModel(..., vocab_only=True)`: no weights, a few MB, microseconds per
call): the file `modelPath` names, else the file of the same name as the
server's model in Inkling's model folders (`inkling model build` writes the
tuned model there on every machine). Otherwise it asks a llama.cpp server's
`/tokenize` and `/detokenize` (one round trip per new text; answers are
cached). Such a vocabulary has no GGUF metadata: the prompt format is then
recognised from the FIM markers the server's tokenizer knows, which misses
Inkling's own spm layout.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lsp_server.remote.client import EngineClient, EngineError

log = logging.getLogger(__name__)

_CACHE_ENTRIES = 4096


class ServerVocabulary:
    """A llama.cpp server's tokenizer over HTTP (a `generator.ModelView`)."""

    lora: Path | None = None
    path: Path | None = None

    def __init__(self, client: EngineClient, n_ctx: int, props: dict[str, Any]) -> None:
        self._client = client
        self.n_ctx = n_ctx
        self._lock = threading.Lock()
        self._tokens: OrderedDict[tuple[str, bool, bool], list[int]] = OrderedDict()
        self._pieces: dict[int, str] = {}
        self._bos_text = str(props.get("bos_token") or "")
        self._eos_text = str(props.get("eos_token") or "")
        with_bos = self.tokenize("", add_bos=True)
        self._add_bos = bool(with_bos)
        self._bos_id = with_bos[0] if with_bos else (self.special_token_id(self._bos_text) or -1)
        eos = self.special_token_id(self._eos_text) if self._eos_text else None
        self._eog = frozenset({eos} if eos is not None else set())

    @property
    def architecture(self) -> str:
        return ""

    def metadata(self, key: str) -> str | None:
        return None  # the server does not publish the GGUF's metadata

    @property
    def add_bos(self) -> bool:
        return self._add_bos

    @property
    def bos_id(self) -> int:
        return self._bos_id

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        key = (text, add_bos, special)
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None:
                self._tokens.move_to_end(key)
                return list(cached)
        answer = self._client.post_json(
            "/tokenize", {"content": text, "add_special": add_bos, "parse_special": special}
        )
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise EngineError(f"the engine at {self._client.endpoint.url}/tokenize gave no token list")
        with self._lock:
            self._tokens[key] = tokens
            if len(self._tokens) > _CACHE_ENTRIES:
                self._tokens.popitem(last=False)
        return list(tokens)

    def detokenize(self, tokens: Sequence[int]) -> str:
        if not tokens:
            return ""
        answer = self._client.post_json("/detokenize", {"tokens": list(tokens)})
        content = answer.get("content") if isinstance(answer, dict) else None
        if not isinstance(content, str):
            raise EngineError(f"the engine at {self._client.endpoint.url}/detokenize gave no text")
        return content

    def token_piece(self, token: int) -> str:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self.detokenize([token])
        return piece

    def learn_pieces(self, pieces: dict[int, str]) -> None:
        """Token texts the server sent along (its top tokens): no round trip for them later."""
        for token, text in pieces.items():
            self._pieces.setdefault(token, text)

    def piece(self, token: int) -> bytes:
        return self.token_piece(token).encode("utf-8", "surrogatepass")

    def token_text(self, token: int) -> str:
        return self.token_piece(token)

    def special_token_id(self, text: str) -> int | None:
        """A token the tokenizer makes of `text` only when asked to parse special tokens."""
        if not text:
            return None
        special = self.tokenize(text, special=True)
        if len(special) != 1 or self.tokenize(text) == special:
            return None
        return special[0]

    def fim_token_ids(self) -> dict[str, int]:
        return {}  # unknown without the GGUF; templates are recognised by their markers

    def is_eog(self, token: int) -> bool:
        return token in self._eog

    def is_control(self, token: int) -> bool:
        return False


@functools.cache
def _local_candidates() -> tuple[Path, ...]:
    from lsp_server.models import installed_models_dir, models_dir

    return (models_dir(), installed_models_dir())


def local_model_for(server_model_path: str) -> Path | None:
    """The file in Inkling's model folders with the name of the server's model file, if any."""
    name = Path(server_model_path.replace("\\", "/")).name
    if not name.endswith(".gguf"):
        return None
    for folder in _local_candidates():
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None
