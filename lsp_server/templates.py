"""Fill-in-the-middle prompt formats, chosen from the model's own vocabulary.

A template is data: marker tokens, their order, the tokens that end a
completion. `detect_template` looks at what the GGUF says about itself (its
FIM token ids, the control tokens it has, Inkling's own metadata key) and
never at the file name. Training (`training/`) renders examples with the same
`Template.render`, so the format a model learns is the format it is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Order = Literal["psm", "spm", "prefix"]
"""psm: prefix, suffix, middle. spm: suffix first (keeps the KV cache valid while
the user types). prefix: no FIM tokens; the prompt is the text before the cursor."""

INKLING_LAYOUT_KEY = "inkling.fim.layout"
"""GGUF metadata key: PREFIX_LAST for Inkling models whose spm prompt ends with the prefix."""

PREFIX_LAST = "prefix-last"
"""The value of INKLING_LAYOUT_KEY (and of an adapter's `fim_layout`) for `Template.prefix_last`."""

INKLING_FORMAT_KEY = "inkling.fim.format"
"""GGUF metadata key that marks a model trained by Inkling; value 'psm' or 'spm'."""

INKLING_FIM_TOKENS = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>")
"""Inkling's FIM control tokens; on a Gemma 3 base they take over ids 6-9."""


class Vocabulary(Protocol):
    """What template detection needs to know about a loaded model."""

    @property
    def architecture(self) -> str: ...

    def metadata(self, key: str) -> str | None: ...

    def special_token_id(self, text: str) -> int | None:
        """The id of `text` if it is one control/special token of this vocabulary."""
        ...

    def token_text(self, token_id: int) -> str: ...

    def fim_token_ids(self) -> dict[str, int]:
        """llama.cpp's view: 'pre', 'suf', 'mid', 'sep', ... -> id (missing ones omitted)."""
        ...


@dataclass(frozen=True)
class Piece:
    """A run of prompt text; `special` pieces are control tokens, never user text."""

    text: str
    special: bool = False
    is_prefix: bool = False
    """The text before the cursor (the prompt builder heals its last token)."""


@dataclass(frozen=True)
class ContextFile:
    """Another file put in front of the prompt (project context)."""

    path: str
    text: str


@dataclass(frozen=True)
class Template:
    family: str
    order: Order
    prefix_marker: str = ""
    suffix_marker: str = ""
    middle_marker: str = ""
    stop_markers: tuple[str, ...] = ()
    file_separator: str = ""
    repo_marker: str = ""
    extra_markers: tuple[str, ...] = field(default=())
    """Other control tokens of the family; generating one ends the completion."""
    prefix_last: bool = False
    """spm as the FIM paper (Bavarian et al., 2022) lays it out: <pre><suf>suffix<mid>prefix,
    so that the prefix runs straight into the middle. The model then fills a hole by
    continuing the text before the cursor, which a base model already does well, instead
    of starting afresh after a control token."""

    @property
    def is_fim(self) -> bool:
        return self.order != "prefix"

    def markers(self) -> tuple[str, ...]:
        found = (
            self.prefix_marker,
            self.suffix_marker,
            self.middle_marker,
            self.file_separator,
            self.repo_marker,
            *self.stop_markers,
            *self.extra_markers,
        )
        return tuple(dict.fromkeys(m for m in found if m))

    def render(
        self,
        prefix: str,
        suffix: str,
        *,
        path: str = "",
        context: Sequence[ContextFile] = (),
        comment: str = "#",
        order: Order | None = None,
    ) -> list[Piece]:
        """The prompt as pieces; the model's completion follows the last piece."""
        pieces = self.render_context(path, context, comment)
        order = order or self.order
        if order == "prefix" or not self.is_fim:
            return [*pieces, Piece(prefix, is_prefix=True)]
        pre, suf, mid = (
            Piece(self.prefix_marker, True),
            Piece(self.suffix_marker, True),
            Piece(self.middle_marker, True) if self.middle_marker else None,
        )
        if order == "spm" and self.prefix_last and mid is not None:
            body = [pre, suf, Piece(suffix), mid, Piece(prefix, is_prefix=True)]
            return [*pieces, *(p for p in body if p.text)]
        if order == "spm":
            body = [suf, Piece(suffix), pre, Piece(prefix, is_prefix=True)]
        else:
            body = [pre, Piece(prefix, is_prefix=True), suf, Piece(suffix)]
        if mid is not None:
            body.append(mid)
        return [*pieces, *(p for p in body if p.text)]

    def render_context(self, path: str, context: Sequence[ContextFile], comment: str) -> list[Piece]:
        """Other files in front of the prompt: repository format where the model has one."""
        if not context:
            return []
        pieces: list[Piece] = []
        if self.file_separator:
            # Repository-level format: <file_sep>path\ncontent ... then the current file.
            for item in context:
                pieces += [Piece(self.file_separator, True), Piece(f"{item.path}\n{item.text}\n")]
            pieces += [Piece(self.file_separator, True), Piece(f"{path}\n")]
            return pieces
        for item in context:
            pieces.append(Piece(f"{comment} {item.path}\n{item.text}\n\n"))
        if path:
            pieces.append(Piece(f"{comment} {path}\n"))
        return pieces


PREFIX_ONLY = Template(family="prefix-only", order="prefix")

# Known families, most specific first. Each is recognised by the control tokens
# its vocabulary has; the first whose `required` markers all exist wins.
_FAMILIES: tuple[tuple[tuple[str, ...], Template], ...] = (
    (
        ("[SUFFIX]", "[PREFIX]"),
        Template(
            family="codestral",
            order="spm",
            prefix_marker="[PREFIX]",
            suffix_marker="[SUFFIX]",
            stop_markers=("</s>",),
            extra_markers=("[MIDDLE]", "[INST]", "[/INST]"),
        ),
    ),
    (
        ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
        Template(
            family="deepseek-coder",
            order="psm",
            prefix_marker="<｜fim▁begin｜>",
            suffix_marker="<｜fim▁hole｜>",
            middle_marker="<｜fim▁end｜>",
            stop_markers=("<|EOT|>", "<｜end▁of▁sentence｜>"),
        ),
    ),
    (
        ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
        Template(
            family="starcoder",
            order="psm",
            prefix_marker="<fim_prefix>",
            suffix_marker="<fim_suffix>",
            middle_marker="<fim_middle>",
            stop_markers=("<|endoftext|>", "<fim_pad>"),
            file_separator="<file_sep>",
            repo_marker="<repo_name>",
        ),
    ),
    (
        ("▁<PRE>", "▁<SUF>", "▁<MID>"),
        Template(
            family="codellama",
            order="psm",
            prefix_marker="▁<PRE>",
            suffix_marker="▁<SUF>",
            middle_marker="▁<MID>",
            stop_markers=("▁<EOT>", "</s>"),
        ),
    ),
    (
        ("<PRE>", "<SUF>", "<MID>"),
        Template(
            family="codellama",
            order="psm",
            prefix_marker="<PRE>",
            suffix_marker="<SUF>",
            middle_marker="<MID>",
            stop_markers=("<EOT>", "</s>"),
        ),
    ),
    (
        ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>"),
        Template(
            family="codegemma",
            order="psm",
            prefix_marker="<|fim_prefix|>",
            suffix_marker="<|fim_suffix|>",
            middle_marker="<|fim_middle|>",
            stop_markers=("<|file_separator|>", "<eos>", "<end_of_turn>"),
        ),
    ),
    (
        ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|repo_name|>"),
        Template(
            family="qwen2.5-coder",
            order="psm",
            prefix_marker="<|fim_prefix|>",
            suffix_marker="<|fim_suffix|>",
            middle_marker="<|fim_middle|>",
            stop_markers=("<|endoftext|>", "<|fim_pad|>", "<|im_end|>"),
            file_separator="<|file_sep|>",
            repo_marker="<|repo_name|>",
        ),
    ),
)


def inkling_template(order: Order, *, prefix_last: bool = True) -> Template:
    prefix, suffix, middle, file_sep = INKLING_FIM_TOKENS
    return Template(
        prefix_last=prefix_last,
        family="inkling",
        order=order,
        prefix_marker=prefix,
        suffix_marker=suffix,
        middle_marker=middle,
        stop_markers=(file_sep, "<eos>", "<end_of_turn>"),
        file_separator=file_sep,
    )


def detect_template(vocab: Vocabulary) -> Template:
    """The prompt format this model was trained with, from its own vocabulary."""
    declared = (vocab.metadata(INKLING_FORMAT_KEY) or "").strip().lower()
    if declared in ("psm", "spm") and all(vocab.special_token_id(t) for t in INKLING_FIM_TOKENS):
        layout = (vocab.metadata(INKLING_LAYOUT_KEY) or "").strip().lower()
        return inkling_template("spm" if declared == "spm" else "psm", prefix_last=layout == PREFIX_LAST)
    for required, template in _FAMILIES:
        if all(vocab.special_token_id(marker) is not None for marker in required):
            return template
    # A vocabulary llama.cpp itself knows FIM tokens for, in a family we do not.
    ids = vocab.fim_token_ids()
    if {"pre", "suf", "mid"} <= ids.keys():
        return Template(
            family="generic-fim",
            order="psm",
            prefix_marker=vocab.token_text(ids["pre"]),
            suffix_marker=vocab.token_text(ids["suf"]),
            middle_marker=vocab.token_text(ids["mid"]),
            stop_markers=tuple(vocab.token_text(ids[k]) for k in ("sep", "pad") if k in ids),
        )
    return PREFIX_ONLY
