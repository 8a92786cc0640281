"""Apply a peft LoRA adapter straight to GGUF-layout weights, with numpy alone.

Inkling's adapters are plain LoRA (W += alpha/r * B @ A on linear layers) plus
trained rows of the token embedding (peft's `trainable_token_indices`, which
replace those rows). That arithmetic needs neither torch nor transformers, so
`inkling model build` runs in the server's own environment, in seconds, in
float64 rounded once to float32 (the same result on every machine). Adapter
features beyond that are refused here; `inkling export` then merges with
peft itself. A test checks that both merges give the same model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from export.errors import ExportError

F32Array = npt.NDArray[np.float32]
PREFIX = "base_model.model."
TOKEN_KEY = ".token_adapter.trainable_tokens_delta"


class UnsupportedAdapterError(ExportError):
    """The adapter uses a peft feature this merge does not implement (peft's merge can)."""


@dataclass(frozen=True)
class LoraLayer:
    parameter: str
    """The Hugging Face weight it changes, e.g. model.layers.0.self_attn.q_proj.weight."""
    a: F32Array
    b: F32Array
    scale: float


@dataclass(frozen=True)
class TokenRows:
    parameter: str
    indices: tuple[int, ...]
    rows: F32Array


@dataclass(frozen=True)
class Adapter:
    layers: tuple[LoraLayer, ...]
    token_rows: tuple[TokenRows, ...]

    def parameters(self) -> set[str]:
        return {layer.parameter for layer in self.layers} | {rows.parameter for rows in self.token_rows}


_MUST_BE_OFF = (
    "use_dora",
    "fan_in_fan_out",
    "lora_bias",
    "modules_to_save",
    "layer_replication",
    "alpha_pattern",
    "rank_pattern",
    "target_parameters",
)


def load_tensors(path: Path) -> dict[str, F32Array]:
    """The adapter's tensors as float32 numpy arrays; bfloat16 (which numpy lacks) is
    widened by hand: its 16 bits are the high half of a float32."""
    import struct

    from safetensors.numpy import load_file

    try:
        return {name: value.astype(np.float32) for name, value in load_file(str(path)).items()}
    except TypeError:
        pass  # bfloat16
    data = path.read_bytes()
    (header_size,) = struct.unpack("<Q", data[:8])
    header: dict[str, Any] = json.loads(data[8 : 8 + header_size])
    body = memoryview(data)[8 + header_size :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = body[start:end]
        if info["dtype"] == "BF16":
            value = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] in ("F32", "F16"):
            value = np.frombuffer(raw, dtype="<f4" if info["dtype"] == "F32" else "<f2").astype(np.float32)
        else:
            raise UnsupportedAdapterError(f"adapter tensor {name} has dtype {info['dtype']}")
        tensors[name] = value.reshape(info["shape"])
    return tensors


def read_lora(directory: Path) -> Adapter:
    config: dict[str, Any] = json.loads((directory / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        raise UnsupportedAdapterError(f"peft_type {config.get('peft_type')!r} is not LORA")
    for key in _MUST_BE_OFF:
        if config.get(key):
            raise UnsupportedAdapterError(f"adapter_config.json sets {key}={config[key]!r}")
    if config.get("bias", "none") != "none":
        raise UnsupportedAdapterError(f"adapter_config.json sets bias={config['bias']!r}")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    tensors = load_tensors(directory / "adapter_model.safetensors")
    layers = []
    token_rows = []
    for key in sorted(tensors):
        if key.endswith(".lora_A.weight"):
            module = _module(key.removesuffix(".lora_A.weight"))
            b_key = key.replace(".lora_A.weight", ".lora_B.weight")
            if b_key not in tensors:
                raise UnsupportedAdapterError(f"{key} has no lora_B")
            layers.append(LoraLayer(module + ".weight", tensors[key], tensors[b_key], scale))
        elif key.endswith(".lora_B.weight"):
            continue
        elif key.endswith(TOKEN_KEY):
            module = _module(key.removesuffix(TOKEN_KEY))
            indices = _token_indices(config.get("trainable_token_indices"), module)
            rows = tensors[key]
            if rows.shape[0] != len(indices):
                raise UnsupportedAdapterError(f"{key} has {rows.shape[0]} rows for {len(indices)} token ids")
            token_rows.append(TokenRows(module + ".weight", indices, rows))
        else:
            raise UnsupportedAdapterError(f"adapter tensor {key} is neither LoRA nor trained token rows")
    if not layers and not token_rows:
        raise UnsupportedAdapterError(f"{directory} holds no LoRA weights")
    return Adapter(tuple(layers), tuple(token_rows))


def _module(peft_key: str) -> str:
    """'base_model.model.model.layers.0.self_attn.q_proj' -> 'model.layers.0.self_attn.q_proj'."""
    return peft_key.removeprefix(PREFIX)


def _token_indices(setting: Any, module: str) -> tuple[int, ...]:
    if isinstance(setting, list):
        return tuple(int(i) for i in setting)
    if isinstance(setting, dict):
        for name, indices in setting.items():
            if module == name or module.endswith("." + name):
                return tuple(int(i) for i in indices)
    raise UnsupportedAdapterError(f"trainable_token_indices {setting!r} says nothing about {module}")


def apply_layer(weight: F32Array, layer: LoraLayer) -> F32Array:
    delta = layer.b.astype(np.float64) @ layer.a.astype(np.float64)
    if delta.shape != weight.shape:
        raise UnsupportedAdapterError(
            f"{layer.parameter}: LoRA delta {delta.shape} does not fit {weight.shape}"
        )
    return (weight.astype(np.float64) + layer.scale * delta).astype(np.float32)


def apply_rows(weight: F32Array, rows: TokenRows) -> F32Array:
    if rows.rows.shape[1:] != weight.shape[1:]:
        raise UnsupportedAdapterError(
            f"{rows.parameter}: token rows {rows.rows.shape} do not fit {weight.shape}"
        )
    out = weight.copy()
    out[list(rows.indices)] = rows.rows.astype(np.float32)
    return out
