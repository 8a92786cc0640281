"""The metadata that makes an exported model a FIM model for llama.cpp and for Inkling.

The adapter was trained with Inkling's FIM markers on vocabulary slots that
the base left unused (Gemma 3: `<unused0>`.. at ids 6-9). The export renames
those entries, marks them CONTROL, and records llama.cpp's FIM token ids, so
that llama.cpp's own infill and `lsp_server.templates.detect_template` both
see the format; `INKLING_FORMAT_KEY` tells the server the marker order.
"""

from __future__ import annotations

from collections.abc import Mapping

import gguf

from export.gguf_file import Edits, GGUFExportError, MetadataValue, TemplateModel
from lsp_server.templates import INKLING_FIM_TOKENS, INKLING_FORMAT_KEY, INKLING_LAYOUT_KEY

FIM_ID_KEYS = dict(
    zip(
        INKLING_FIM_TOKENS,
        (
            gguf.Keys.Tokenizer.FIM_PRE_ID,
            gguf.Keys.Tokenizer.FIM_SUF_ID,
            gguf.Keys.Tokenizer.FIM_MID_ID,
            gguf.Keys.Tokenizer.FIM_SEP_ID,
        ),
        strict=True,
    )
)
FIM_FORMATS = ("psm", "spm")


def fim_edits(
    template: TemplateModel, fim_tokens: Mapping[int, str], fim_format: str, fim_layout: str = ""
) -> Edits:
    """Rename the adapter's FIM slots and declare them; refuses to overwrite a real token."""
    if fim_format not in FIM_FORMATS:
        raise GGUFExportError(f"unknown FIM format {fim_format!r}; expected one of {FIM_FORMATS}")
    if sorted(fim_tokens.values()) != sorted(INKLING_FIM_TOKENS):
        raise GGUFExportError(
            f"the adapter's FIM tokens {dict(fim_tokens)} are not Inkling's {INKLING_FIM_TOKENS}"
        )
    tokens = template.token_list()
    types = list(template.metadata[gguf.Keys.Tokenizer.TOKEN_TYPE].value)
    for token_id, text in fim_tokens.items():
        if not 0 <= token_id < len(tokens):
            raise GGUFExportError(f"FIM token id {token_id} is outside the vocabulary of {len(tokens)}")
        current = tokens[token_id].decode("utf-8", "replace")
        if current != text and not (
            current.startswith("<unused") or types[token_id] == gguf.TokenType.UNUSED
        ):
            raise GGUFExportError(
                f"token {token_id} of the base is {current!r}, not a free slot for {text!r}"
            )
        tokens[token_id] = text.encode("utf-8")
        types[token_id] = int(gguf.TokenType.CONTROL)
    array, string, uint32 = gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING, gguf.GGUFValueType.UINT32
    changes: dict[str, MetadataValue] = {
        gguf.Keys.Tokenizer.LIST: MetadataValue(array, tokens, string),
        gguf.Keys.Tokenizer.TOKEN_TYPE: MetadataValue(array, types, gguf.GGUFValueType.INT32),
        INKLING_FORMAT_KEY: MetadataValue(string, fim_format),
    }
    if fim_layout:
        changes[INKLING_LAYOUT_KEY] = MetadataValue(string, fim_layout)
    for token_id, text in fim_tokens.items():
        changes[FIM_ID_KEYS[text]] = MetadataValue(uint32, token_id)
    return Edits(set=changes)
