"""An adapter's LoRA layers as llama.cpp's GGUF adapter file, applied when the model loads.

Merged into the weights and quantized to 4-5 bits, a fine-tune's delta is
mostly rounded away: it is about 1% of a weight, below half a quantization
step, so most weights round back to the base's value (measured on the shipped
adapter: 15% of the delta survives Q4_K_M, 1-10% in the Q4_K and Q5_0
tensors). Kept apart, the quantized file holds the base's own weights and
llama.cpp adds `scale * B @ (A @ x)` on every projection, so the quantized
model computes what the merged F32 model computes, up to the base's own
quantization. A and B are stored in float16, as llama.cpp's own converter
does: a bfloat16-trained adapter's values are exact there down to 6e-5 (of
the shipped one's, 1.4% are smaller, and off by less than that). The trained
embedding rows are not in this file: they are merged (the embedding is Q8_0,
which keeps them).
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from export.gguf_file import GGUFExportError, TemplateModel, gguf_writer
from export.lora import Adapter
from export.tensor_map import lora_targets


def lora_file_name(name: str) -> str:
    return f"{name}.lora.gguf"


def projection_targets(template: TemplateModel, adapter: Adapter) -> frozenset[str]:
    """The GGUF tensors the adapter's LoRA layers change (its embedding rows excluded)."""
    targets = lora_targets(template, adapter)
    return frozenset(name for layer in adapter.layers if (name := targets[layer.parameter]) is not None)


def write_lora_gguf(template: TemplateModel, adapter: Adapter, out: Path) -> Path:
    """Write the adapter's LoRA layers for `template`'s architecture and tensor names."""
    if not adapter.layers:
        raise GGUFExportError("the adapter has no LoRA layers to apply at load time")
    ranks = {layer.a.shape[0] for layer in adapter.layers}
    scales = {layer.scale for layer in adapter.layers}
    if len(ranks) != 1 or len(scales) != 1:
        # llama.cpp's file holds one alpha and takes each rank from the tensors.
        raise GGUFExportError(
            f"the adapter's layers differ in rank {sorted(ranks)} or scale {sorted(scales)}"
        )
    targets = lora_targets(template, adapter)
    with gguf_writer(out, template.architecture) as writer:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        # llama.cpp scales by alpha / rank.
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, scales.pop() * ranks.pop())
        for layer in adapter.layers:
            name = targets[layer.parameter]
            if name is None:
                raise GGUFExportError(f"{layer.parameter} has no tensor of its own in the base GGUF")
            # ggml's shapes are numpy's reversed: a (rank, in) and b (out, rank), as peft has them.
            writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(layer.a, dtype=np.float16))
            writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(layer.b, dtype=np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    return out
