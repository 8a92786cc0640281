"""The FIM tokens' trained rows, applied without rebuilding the 262k-row matrix.

peft's `trainable_token_indices` writes the trained rows into a copy of the
whole embedding matrix on every forward pass (and, tied, of the output layer
too), then takes that copy's gradient densely: on Gemma 3 that is 262,144 x
640 floats each time for four rows, half a training step on CPU
(training/README.md, "SFT slice"). The same numbers come from the base layer
as it is plus the trained rows where they apply: the embedding of a FIM token
is replaced, the output layer's four logits are replaced. peft still owns the
parameters, saving, merging and loading; only the training-time forward pass
changes, and `tests/training/test_loss.py` checks outputs and gradients
against peft's own.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch.nn import functional


def apply_rows_sparsely(model: Any) -> int:
    """Switch every trainable-token layer of `model` to the sparse forward; returns how many."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    layers = [m for m in model.modules() if isinstance(m, TrainableTokensLayer)]
    for layer in layers:
        layer.forward_adapters = types.MethodType(_forward_adapters, layer)
    return len(layers)


def _forward_adapters(layer: Any, x: torch.Tensor, adapters: list[str], *args: Any, **kwargs: Any) -> Any:
    base = layer.base_layer
    if layer.disable_adapters or not adapters or layer.merged:
        return type(layer).forward_adapters(layer, x, adapters, *args, **kwargs)
    layer._check_overlapping_tokens(adapters)
    result = base(x, *args, **kwargs)
    for name in adapters:
        index = torch.tensor(layer.token_indices[name], device=result.device)
        rows = layer.trainable_tokens_delta[name]
        if isinstance(base, torch.nn.Embedding):
            result = _replace_embeddings(layer, x, index, rows, result)
        elif isinstance(base, torch.nn.Linear):
            logits = functional.linear(x, rows.to(x.dtype))
            result = result.index_copy(-1, index, logits.to(result.dtype))
        else:
            raise ValueError(f"trainable token rows on an unexpected layer: {type(base).__name__}")
    return result


def _replace_embeddings(
    layer: Any, ids: torch.Tensor, index: torch.Tensor, rows: torch.Tensor, result: torch.Tensor
) -> torch.Tensor:
    match = ids.unsqueeze(-1) == index  # (..., rows): which trained row each position holds, if any
    replaced = functional.embedding(match.int().argmax(-1), rows)
    scale = layer._get_embed_scale()
    if scale is not None:  # Gemma's embedding scales its output in its own forward
        replaced = replaced * scale.to(replaced.dtype)
    return torch.where(match.any(-1, keepdim=True), replaced.to(result.dtype), result)
