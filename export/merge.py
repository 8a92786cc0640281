"""Load the base model, apply a LoRA adapter and merge it into full-precision weights.

The merge runs in float64 and is rounded to float32 once at the end, so that
the merged weights (and the quantized file built from them, whose hash
`inkling model build` checks) do not depend on the order in which this
machine's BLAS happens to sum a low-rank product.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from export.errors import ExportError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class MergeError(ExportError):
    """The base or the adapter cannot be loaded or do not fit together."""


@dataclass
class MergedModel:
    weights: dict[str, npt.NDArray[np.float32]]
    """Hugging Face parameter name -> float32 array."""
    touched: frozenset[str]
    """Parameter names the adapter changed; every other weight is the base's own."""
    model: Any = field(repr=False)
    """The merged transformers model (float32), for the Hugging Face route."""
    seconds: dict[str, float] = field(default_factory=dict)


def load_base(base: Path, dtype: torch.dtype) -> Any:
    """A transformers causal LM from a GGUF file (dequantized) or a Hugging Face directory."""
    from transformers import AutoModelForCausalLM, GgufConfig

    try:
        if base.is_file():
            return AutoModelForCausalLM.from_pretrained(
                base.parent,
                gguf_file=base.name,
                quantization_config=GgufConfig(dequantize=True),
                dtype=dtype,
                local_files_only=True,
            )
        return AutoModelForCausalLM.from_pretrained(base, dtype=dtype, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise MergeError(f"transformers cannot load the base model {base}: {exc}") from exc


def merge_adapter(base: Path, adapter: Path | None) -> MergedModel:
    """The base with `adapter` merged in (or the base alone when `adapter` is None)."""
    import torch

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    model = load_base(base, torch.float64)
    seconds["load_base"] = time.perf_counter() - started
    touched: set[str] = set()
    if adapter is not None:
        started = time.perf_counter()
        model, touched = _apply_and_merge(model, adapter)
        seconds["merge"] = time.perf_counter() - started
    model = model.to(torch.float32)
    weights = {name: tensor.detach().contiguous().numpy() for name, tensor in model.state_dict().items()}
    return MergedModel(weights, frozenset(touched), model, seconds)


def _apply_and_merge(model: Any, adapter: Path) -> tuple[Any, set[str]]:
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    try:
        peft_model = PeftModel.from_pretrained(model, adapter, is_trainable=False)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise MergeError(f"peft cannot apply the adapter {adapter} to this base: {exc}") from exc
    tuned = [
        _hf_name(name) for name, module in peft_model.named_modules() if isinstance(module, BaseTunerLayer)
    ]
    merged = peft_model.merge_and_unload(safe_merge=True)
    parameters = set(merged.state_dict())
    touched = {_owning_parameter(name, parameters) for name in tuned}
    if not touched:
        raise MergeError(f"the adapter {adapter} changes no layer of this base")
    if getattr(merged.config, "tie_word_embeddings", False) and "model.embed_tokens.weight" in touched:
        touched.add("lm_head.weight")
    log.info("merged %s into %d weights", adapter, len(touched))
    return merged, touched


def _hf_name(peft_name: str) -> str:
    """'base_model.model.model.layers.0.self_attn.q_proj' -> 'model.layers.0.self_attn.q_proj'."""
    prefix = "base_model.model."
    return peft_name[len(prefix) :] if peft_name.startswith(prefix) else peft_name


def _owning_parameter(module_name: str, parameters: set[str]) -> str:
    """The weight a tuner layer changes: peft names some layers below the module they wrap
    ('model.embed_tokens.token_adapter' for trained token rows)."""
    parts = module_name.split(".")
    while parts:
        candidate = ".".join(parts) + ".weight"
        if candidate in parameters:
            return candidate
        parts.pop()
    raise MergeError(f"cannot tell which weight the adapter layer {module_name} changes")
