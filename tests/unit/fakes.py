"""A word-level tokenizer/vocabulary for testing prompt layout without a model."""

from __future__ import annotations

import re


class FakeVocab:
    """Tokens are words, single non-word characters, and the listed specials."""

    def __init__(
        self,
        specials: tuple[str, ...] = (),
        metadata: dict[str, str] | None = None,
        architecture: str = "llama",
        fim: dict[str, int] | None = None,
    ) -> None:
        self._specials = {text: 1000 + i for i, text in enumerate(specials)}
        self._metadata = metadata or {}
        self._architecture = architecture
        self._fim = fim or {}
        self.calls = 0
        self._pieces: dict[int, str] = {}
        self._ids: dict[str, int] = {}

    add_bos = True
    bos_id = 1

    @property
    def architecture(self) -> str:
        return self._architecture

    def metadata(self, key: str) -> str | None:
        return self._metadata.get(key)

    def special_token_id(self, text: str) -> int | None:
        return self._specials.get(text)

    def token_text(self, token_id: int) -> str:
        return next((t for t, i in self._specials.items() if i == token_id), "?")

    def fim_token_ids(self) -> dict[str, int]:
        return dict(self._fim)

    def token_piece(self, token: int) -> str:
        return self._pieces.get(token, "?")

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        self.calls += 1
        pieces = re.findall(r"\w+|\s|[^\w\s]", text)
        ids = [self._id(piece) for piece in pieces]
        return ([self.bos_id] if add_bos else []) + ids

    def _id(self, piece: str) -> int:
        """One id per distinct piece, the same in every run (ids from `hash()` collided
        in about one run in ten, as Python salts string hashes per process)."""
        if piece not in self._ids:
            number = len(self._ids) + 2
            self._ids[piece] = number if number < 1000 else number + 1000  # clear of the specials
            self._pieces[self._ids[piece]] = piece
        return self._ids[piece]
