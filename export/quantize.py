"""Quantize an F32 GGUF with llama.cpp's own quantizer (K-quants included).

gguf-py cannot make K-quants; llama.cpp can, deterministically for a given
input, and picks the same per-tensor mix of types as for the base model.
Quantize from F32, never from F16: F16 would round the merged weights twice.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

QUANT_TYPES = {
    # name -> llama_ftype (llama.h)
    "Q4_K_M": 15,
    "Q5_K_M": 17,
    "Q8_0": 7,
    "F16": 1,
}
DEFAULT_QUANT = "Q4_K_M"


class QuantizeError(Exception):
    pass


class _QuietFallbacks(logging.Filter):
    """llama.cpp warns twice per tensor whose width is not a multiple of 256 (all of Gemma 3
    270M's 640-wide ones) that it uses the next best type; that is expected, so count them."""

    def __init__(self) -> None:
        super().__init__()
        self.fallbacks = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "not divisible by 256" in message:
            self.fallbacks += 1
            return False
        return "falling back to" not in message and "required fallback quantization" not in message


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    quant: str
    size_bytes: int
    seconds: float


def quant_name(text: str) -> str:
    name = text.strip().upper()
    if name not in QUANT_TYPES:
        raise QuantizeError(f"unknown quantization {text!r}; choose from {', '.join(QUANT_TYPES)}")
    return name


def quantize(source: Path, target: Path, quant: str, *, threads: int = 0) -> QuantizeResult:
    import llama_cpp

    from lsp_server.llama_model import init_backend

    init_backend()  # llama.cpp's per-tensor log goes to Python logging (DEBUG), not the terminal
    name = quant_name(quant)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[name]
    params.nthread = threads or (os.cpu_count() or 1)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    started = time.perf_counter()
    quiet = _QuietFallbacks()
    llama_log = logging.getLogger("inkling.llama_cpp")
    llama_log.addFilter(quiet)
    try:
        status = llama_cpp.llama_model_quantize(
            str(source).encode("utf-8"), str(partial).encode("utf-8"), params
        )
    finally:
        llama_log.removeFilter(quiet)
    if quiet.fallbacks:
        logging.getLogger(__name__).info("%s: %d tensors in a fallback type", name, quiet.fallbacks)
    if status != 0:
        partial.unlink(missing_ok=True)
        raise QuantizeError(f"llama.cpp could not quantize {source} to {name} (status {status})")
    partial.replace(target)
    return QuantizeResult(target, name, target.stat().st_size, time.perf_counter() - started)
