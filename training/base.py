"""The base model: a Hugging Face directory or a GGUF file, and its tokenizer.

A GGUF base is dequantized on load by transformers (which also undoes
Gemma's +1 norm convention), so the same file the server runs is the one
that is tuned. On CUDA the weights can be loaded in 4 bits (QLoRA); a GGUF
base is then first written once as a Hugging Face directory in the cache,
because transformers cannot quantize a GGUF checkpoint while loading it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lsp_server.models import ensure_base_model, models_dir
from training.config import ConfigError, expand_path

log = logging.getLogger(__name__)

Quantization = Literal["auto", "none", "4bit"]
Precision = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True)
class BaseInfo:
    path: str
    sha256: str
    format: str
    """'gguf' or 'hf'."""

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "sha256": self.sha256, "format": self.format}


def resolve_base(path: str) -> Path:
    """The base path, or the default Gemma 3 270M GGUF assembled from its package."""
    if not path:
        return ensure_base_model()
    resolved = Path(expand_path(path))
    if not resolved.exists():
        raise ConfigError(f"base model {path} does not exist")
    return resolved


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    )
    for item in files:
        with item.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def base_info(path: Path) -> BaseInfo:
    return BaseInfo(str(path.resolve()), file_sha256(path), "gguf" if path.is_file() else "hf")


def offline() -> None:
    """No hub access at run time, whatever the environment says."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # On CPUs with AVX512-BF16, importing bitsandbytes asks the hub (through `kernels`) for an
    # optional 4-bit kernel; offline, that fails with warnings that read like network errors.
    # CPU training never runs 4-bit (full-precision LoRA): nothing there a user can act on.
    for noisy in ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    offline()
    if path.is_file():
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return AutoTokenizer.from_pretrained(str(path))


def use_4bit(quantization: Quantization) -> bool:
    import torch

    if quantization == "4bit" and not torch.cuda.is_available():
        log.warning("4-bit (QLoRA) loading needs CUDA here; loading full precision instead")
        return False
    return quantization == "4bit" or (quantization == "auto" and torch.cuda.is_available())


def use_bf16(precision: Precision) -> bool:
    """Mixed bf16 compute (weights and optimizer stay float32).

    auto: on CUDA when the GPU has bf16, and on CPUs with bf16 dot products
    (AVX512-BF16 or AMX), where a training step ran 1.4x faster than in
    float32 (2-core AVX512-BF16 machine, training/README.md); plain AVX2 CPUs only
    emulate bf16, which is slower, so they stay float32."""
    import torch

    if precision != "auto":
        return precision == "bf16"
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_bf16()


def cpu_has_bf16() -> bool:
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def load_model(path: Path, quantization: Quantization = "auto") -> Any:
    """A trainable causal LM (float32 on CPU, bf16 or 4-bit NF4 on CUDA)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    offline()
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if use_4bit(quantization):
        hf_dir = path if path.is_dir() else _hf_copy(path, dtype)
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
        from peft import prepare_model_for_kbit_training

        model = AutoModelForCausalLM.from_pretrained(str(hf_dir), quantization_config=config, dtype=dtype)
        return prepare_model_for_kbit_training(model)
    if path.is_file():
        return _dequantized(
            AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
        )
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)


def _dequantized(model: Any) -> Any:
    """A GGUF checkpoint loads as plain float weights, but transformers still marks the
    model quantized (and the Trainer refuses it): drop the marks with its own helper."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    return model


def _hf_copy(gguf: Path, dtype: Any) -> Path:
    """A dequantized Hugging Face copy of a GGUF base, written once per file content."""
    from transformers import AutoModelForCausalLM

    target = models_dir() / "hf" / file_sha256(gguf)[:16]
    if not (target / "config.json").exists():
        log.info("writing a dequantized copy of %s to %s for 4-bit loading", gguf, target)
        model = _dequantized(
            AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype)
        )
        model.save_pretrained(str(target))
        load_tokenizer(gguf).save_pretrained(str(target))
    return target
