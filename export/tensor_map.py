"""Hugging Face parameter names and values -> GGUF tensor names and values.

gguf-py's own name map does the naming. What transformers changes on load is
undone here, per architecture: Gemma stores its RMSNorm weights as `w` where
llama.cpp's files store `1 + w`; Gemma has no Q/K permutation and ties its
output layer to the embedding (the template then has no `output.weight`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import gguf
import numpy as np

from export.gguf_file import F32Array, GGUFExportError, TemplateModel
from export.lora import Adapter, apply_layer, apply_rows


@dataclass(frozen=True)
class ArchitectureRules:
    norm_offset: float
    """Added to every `*norm.weight` when writing GGUF."""


SUPPORTED: dict[str, ArchitectureRules] = {
    "gemma3": ArchitectureRules(norm_offset=1.0),
}


def rules_for(architecture: str) -> ArchitectureRules:
    rules = SUPPORTED.get(architecture)
    if rules is None:
        raise GGUFExportError(
            f"export by template supports {', '.join(sorted(SUPPORTED))} bases, not {architecture!r}; "
            "give a Hugging Face directory as the base to use llama.cpp's converter instead"
        )
    return rules


def name_map(template: TemplateModel) -> gguf.TensorNameMap:
    arch = next((a for a, name in gguf.MODEL_ARCH_NAMES.items() if name == template.architecture), None)
    if arch is None:
        raise GGUFExportError(f"gguf-py does not know the architecture {template.architecture!r}")
    return gguf.get_tensor_name_map(arch, template.block_count())


def gguf_names(template: TemplateModel, hf_names: list[str]) -> dict[str, str]:
    """GGUF tensor name -> Hugging Face parameter name, for every template tensor."""
    names = name_map(template)
    by_gguf: dict[str, str] = {}
    for hf_name in hf_names:
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise GGUFExportError(f"no GGUF name for the parameter {hf_name}")
        by_gguf.setdefault(name, hf_name)
    wanted = {tensor.name for tensor in template.tensors}
    missing = sorted(wanted - by_gguf.keys())
    if missing:
        raise GGUFExportError(
            f"the merged model lacks {len(missing)} tensors of the base, e.g. {missing[:3]}"
        )
    # What the template does not have must be a tied copy (Gemma's lm_head) and nothing else.
    extra = sorted(set(by_gguf) - wanted - {"output.weight"})
    if extra:
        raise GGUFExportError(f"the merged model has tensors the base GGUF lacks: {extra[:3]}")
    return {name: hf for name, hf in by_gguf.items() if name in wanted}


def to_gguf(name: str, value: F32Array, rules: ArchitectureRules) -> F32Array:
    if rules.norm_offset and name.endswith("norm.weight"):
        return (value.astype(np.float64) + rules.norm_offset).astype(np.float32)
    return value


def template_weights(
    template: TemplateModel,
    weights: Mapping[str, F32Array],
    touched: frozenset[str],
) -> tuple[dict[str, F32Array], frozenset[str]]:
    """GGUF name -> F32 values: the merged weights where the adapter changed them, the
    base's own values (dequantized, bit for bit) everywhere else; and the GGUF names
    of those unchanged tensors."""
    rules = rules_for(template.architecture)
    names = gguf_names(template, list(weights))
    out: dict[str, F32Array] = {}
    unchanged = set()
    for tensor in template.tensors:
        hf_name = names[tensor.name]
        if hf_name in touched:
            out[tensor.name] = to_gguf(tensor.name, weights[hf_name], rules)
        else:
            out[tensor.name] = template.dequantized(tensor.name)
            unchanged.add(tensor.name)
    return out, frozenset(unchanged)


def lora_targets(template: TemplateModel, adapter: Adapter) -> dict[str, str | None]:
    """Each parameter the adapter changes -> its GGUF tensor (None: the tied output layer,
    which changes with the embedding)."""
    rules_for(template.architecture)
    names = name_map(template)
    present = {tensor.name for tensor in template.tensors}

    def target(parameter: str) -> str | None:
        name = names.get_name(parameter, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise GGUFExportError(f"the adapter changes {parameter}, which has no GGUF name")
        if name not in present:
            if name == "output.weight":
                return None  # tied to the embedding: the embedding's change is the output's
            raise GGUFExportError(f"the adapter changes {parameter} ({name}), which the base GGUF lacks")
        if name.endswith("norm.weight"):
            raise GGUFExportError(f"the adapter changes the norm {parameter}: not supported by this merge")
        return name

    return {parameter: target(parameter) for parameter in sorted(adapter.parameters())}


def lora_weights(template: TemplateModel, adapter: Adapter) -> tuple[dict[str, F32Array], frozenset[str]]:
    """GGUF name -> F32 values of the tensors the adapter changes (the base's values plus the
    adapter's, applied in GGUF layout), and the names of every other tensor."""
    targets = lora_targets(template, adapter)
    changed: dict[str, F32Array] = {}
    for layer in adapter.layers:
        name = targets[layer.parameter]
        if name is not None:
            changed[name] = apply_layer(changed.get(name, template.dequantized(name)), layer)
    for rows in adapter.token_rows:
        name = targets[rows.parameter]
        if name is not None:
            changed[name] = apply_rows(changed.get(name, template.dequantized(name)), rows)
    present = {tensor.name for tensor in template.tensors}
    return changed, frozenset(present - changed.keys())
