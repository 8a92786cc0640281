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

Under bf16 autocast the frozen output layer also computes from one bf16
copy of its weight, kept until the weight changes: autocast caches the casts
of weights that train only, so it converted all 262,144 x 640 floats again
on every forward pass (279 ms against 61 ms a pass for 41 positions, one
thread). The arithmetic is the same: autocast multiplies in bf16 either way.

The replacement calls peft's private helpers, so it first checks that the
installed peft has them (`training.private_members`).
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch.nn import functional

from training.private_members import require_members, require_parameters, unsupported

LAYER_MEMBERS = ("forward_adapters", "_check_overlapping_tokens", "_get_embed_scale")
"""What `_forward_adapters` calls on peft's TrainableTokensLayer class (two of them private)."""
FORWARD_PARAMETERS = ("self", "x", "active_adapters", "args", "kwargs")
"""peft's `TrainableTokensLayer.forward_adapters`, which `_forward_adapters` stands in for."""
INSTANCE_MEMBERS = ("base_layer", "token_indices", "trainable_tokens_delta", "disable_adapters", "merged")
"""What it reads from each layer."""


def apply_rows_sparsely(model: Any) -> int:
    """Switch every trainable-token layer of `model` to the sparse forward; returns how many."""
    try:
        from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
    except ImportError as exc:
        raise unsupported("peft", "peft.tuners.trainable_tokens.layer.TrainableTokensLayer is gone") from exc
    require_members("peft", TrainableTokensLayer, LAYER_MEMBERS)
    require_parameters("peft", TrainableTokensLayer.forward_adapters, FORWARD_PARAMETERS)
    layers = [m for m in model.modules() if isinstance(m, TrainableTokensLayer)]
    for layer in layers:
        require_members("peft", layer, INSTANCE_MEMBERS)
        layer.forward_adapters = types.MethodType(_forward_adapters, layer)
    return len(layers)


def _forward_adapters(layer: Any, x: torch.Tensor, adapters: list[str], *args: Any, **kwargs: Any) -> Any:
    base = layer.base_layer
    if layer.disable_adapters or not adapters or layer.merged:
        return type(layer).forward_adapters(layer, x, adapters, *args, **kwargs)
    layer._check_overlapping_tokens(adapters)
    if isinstance(base, torch.nn.Linear) and not args and not kwargs:
        result = _frozen_output(layer, base, x)
    else:
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


def _frozen_output(layer: Any, base: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    device = x.device.type
    if base.weight.requires_grad or not torch.is_autocast_enabled(device):
        output: torch.Tensor = base(x)
        return output
    dtype = torch.get_autocast_dtype(device)
    key = (base.weight.data_ptr(), base.weight._version, dtype)
    cached: tuple[Any, torch.Tensor] | None = getattr(layer, "_low_precision_weight", None)
    if cached is None or cached[0] != key:
        cached = (key, base.weight.detach().to(dtype))
        layer._low_precision_weight = cached
    bias = None if base.bias is None else base.bias.to(dtype)
    return functional.linear(x.to(dtype), cached[1], bias)
