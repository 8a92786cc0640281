"""Examples -> token ids, rendered exactly as the server renders prompts.

The server builds a prompt from `Template.render` pieces, tokenizing each text
piece on its own and mapping each control piece to its id
(`lsp_server.prompt.build_prompt`). Training does the same here with the base
model's Hugging Face tokenizer (which, for a GGUF base, gives llama.cpp's ids:
a model test checks that), so the model learns the prompts it is served.

A base without FIM tokens gets Inkling's: they take over the first four
reserved entries of its vocabulary (`<unused0>`... on Gemma), so the
vocabulary size and the GGUF tokenizer stay as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lsp_server.languages import language_for_id
from lsp_server.templates import (
    INKLING_FIM_TOKENS,
    PREFIX_ONLY,
    ContextFile,
    Order,
    Piece,
    Template,
    detect_template,
    inkling_template,
)
from training.config import ConfigError

_RESERVED = re.compile(r"^(<unused\d+>|<\|reserved_special_token_\d+\|>|\[unused\d+\]|<extra_id_\d+>)$")


class HFTokenizer(Protocol):
    """The part of a transformers tokenizer used here."""

    bos_token_id: int | None
    eos_token_id: int | None

    def __call__(self, text: str, **kwargs: Any) -> Any: ...

    def convert_ids_to_tokens(self, ids: int) -> str: ...

    def get_added_vocab(self) -> dict[str, int]: ...

    def __len__(self) -> int: ...


class _HFVocabulary:
    """A transformers tokenizer seen through the server's `templates.Vocabulary`."""

    def __init__(self, tokenizer: HFTokenizer) -> None:
        self.added = tokenizer.get_added_vocab()
        self.tokenizer = tokenizer

    @property
    def architecture(self) -> str:
        return ""

    def metadata(self, key: str) -> str | None:
        return None

    def special_token_id(self, text: str) -> int | None:
        return self.added.get(text)

    def token_text(self, token_id: int) -> str:
        return str(self.tokenizer.convert_ids_to_tokens(token_id))

    def fim_token_ids(self) -> dict[str, int]:
        return {}


@dataclass(frozen=True)
class FimVocab:
    """How FIM prompts become ids for one base model."""

    template: Template
    special_ids: Mapping[str, int]
    """Control piece text -> id."""
    taken_over: Mapping[int, str]
    """Reserved id -> Inkling token it now stands for (empty when the base has its own FIM tokens)."""
    add_bos: bool
    bos_id: int | None
    eos_id: int | None

    @property
    def stop_id(self) -> int:
        """The token that ends a middle: the template's first stop marker."""
        return self.special_ids[self.template.stop_markers[0]]

    @property
    def trainable_ids(self) -> list[int]:
        return sorted(self.taken_over)


def fim_vocab(tokenizer: HFTokenizer, order: Order = "psm", *, prefix_last: bool = True) -> FimVocab:
    """The template for this base, taking over reserved tokens if it has no FIM tokens.

    `prefix_last`: Inkling's spm layout (see `Template.prefix_last`); False only to
    continue an adapter trained before that layout."""
    vocabulary = _HFVocabulary(tokenizer)
    template = detect_template(vocabulary)
    taken_over: dict[int, str] = {}
    special = dict(vocabulary.added)
    if template is PREFIX_ONLY:
        reserved = sorted(
            (token_id, text) for text, token_id in vocabulary.added.items() if _RESERVED.match(text)
        )
        if len(reserved) < len(INKLING_FIM_TOKENS):
            raise ConfigError(
                "the base model has no FIM tokens and fewer than four reserved tokens "
                "(<unused0>... or <|reserved_special_token_0|>...) for Inkling's"
            )
        for (token_id, _), name in zip(reserved, INKLING_FIM_TOKENS, strict=False):
            taken_over[token_id] = name
            special[name] = token_id
        template = inkling_template(order, prefix_last=prefix_last)
    required = (
        template.prefix_marker,
        template.suffix_marker,
        template.middle_marker,
        template.stop_markers[0],
    )
    for marker in required:
        if marker and marker not in special:
            raise ConfigError(
                f"the base model's tokenizer has no {marker!r} token for the {template.family} format"
            )
    probe = tokenizer("a")["input_ids"]
    bos = tokenizer.bos_token_id
    return FimVocab(
        template=template,
        special_ids={m: special[m] for m in template.markers() if m in special},
        taken_over=taken_over,
        add_bos=bos is not None and bool(probe) and probe[0] == bos,
        bos_id=bos,
        eos_id=tokenizer.eos_token_id,
    )


def encode_text(tokenizer: HFTokenizer, text: str) -> list[int]:
    """User text as llama.cpp tokenizes it with special=False: control-token lookalikes stay text."""
    if not text:
        return []
    ids: list[int] = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return ids


def encode_pieces(tokenizer: HFTokenizer, vocab: FimVocab, pieces: Sequence[Piece]) -> list[int]:
    ids: list[int] = [vocab.bos_id] if vocab.add_bos and vocab.bos_id is not None else []
    for piece in pieces:
        if piece.special:
            ids.append(vocab.special_ids[piece.text])
        else:
            ids.extend(encode_text(tokenizer, piece.text))
    return ids


def _keep_tail(tokenizer: HFTokenizer, text: str, tokens: int) -> str:
    if tokens <= 0:
        return ""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= tokens:
        return text
    return text[offsets[len(offsets) - tokens][0] :]


def _keep_head(tokenizer: HFTokenizer, text: str, tokens: int) -> str:
    if tokens <= 0:
        return ""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= tokens:
        return text
    return text[: offsets[tokens][0]]


def render(vocab: FimVocab, row: Mapping[str, Any], prefix: str, suffix: str) -> list[Piece]:
    order: Order = row["order"]
    if order != "prefix" and vocab.template.family != "inkling":
        order = vocab.template.order  # other families have one trained order
    context = [ContextFile(item["path"], item["text"]) for item in json.loads(row.get("context") or "[]")]
    spec = language_for_id(row.get("language") or "")
    return vocab.template.render(
        prefix,
        suffix,
        path=row.get("context_path") or "",
        context=context,
        comment=spec.line_comment if spec else "#",
        order=order,
    )


def completion_ids(tokenizer: HFTokenizer, vocab: FimVocab, row: Mapping[str, Any], middle: str) -> list[int]:
    ids = encode_text(tokenizer, middle)
    if row["kind"] != "next_token":
        ids.append(vocab.stop_id)
    elif row.get("ends_file") and vocab.eos_id is not None:
        ids.append(vocab.eos_id)
    return ids


def encode_example(
    tokenizer: HFTokenizer,
    vocab: FimVocab,
    row: Mapping[str, Any],
    max_length: int,
    suffix_share: float = 0.25,
) -> tuple[list[int], list[int]] | None:
    """(prompt ids, completion ids) within `max_length`, or None if the middle alone is too long.

    The prefix loses its start and the suffix its end, as the server's windows do."""
    completion = completion_ids(tokenizer, vocab, row, row["middle"])
    budget = max_length - len(completion) - 8
    if budget < max_length // 4:
        return None
    prefix, suffix = row["prefix"], row["suffix"]
    # Markers and project context stay whole; the code around the hole gets the rest.
    code_budget = budget - len(encode_pieces(tokenizer, vocab, render(vocab, row, "", "")))
    if code_budget < budget // 2:
        return None
    for attempt in range(4):
        pieces = render(vocab, row, prefix, suffix)
        prompt = encode_pieces(tokenizer, vocab, pieces)
        if len(prompt) <= budget:
            return prompt, completion
        suffix_tokens = len(encode_text(tokenizer, suffix))
        suffix_room = min(suffix_tokens, int(code_budget * suffix_share))
        suffix = _keep_head(tokenizer, suffix, suffix_room)
        prefix = _keep_tail(tokenizer, prefix, code_budget - suffix_room - 8 * (attempt + 1))
    return None
