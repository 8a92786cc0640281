"""Quantize an F32 GGUF with llama.cpp's own quantizer (K-quants included).

gguf-py cannot make K-quants; llama.cpp can, deterministically for a given
input, and picks the same per-tensor mix of types as for the base model.
Quantize from F32, never from F16: F16 would round the merged weights twice.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from export.errors import ExportError

QUANT_TYPES = {
    # name -> llama_ftype (llama.h)
    "Q4_K_M": 15,
    "Q5_K_M": 17,
    "Q8_0": 7,
    "F16": 1,
}
DEFAULT_QUANT = "Q4_K_M"


class QuantizeError(ExportError):
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


def quantize(
    source: Path,
    target: Path,
    quant: str,
    *,
    threads: int = 0,
    importance: Mapping[str, npt.NDArray[np.float32]] | None = None,
) -> QuantizeResult:
    """`importance`: GGUF weight name -> mean squared input per column (`export.imatrix`)."""
    import llama_cpp

    from lsp_server.llama_model import init_backend

    init_backend()  # llama.cpp's per-tensor log goes to Python logging (DEBUG), not the terminal
    name = quant_name(quant)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[name]
    params.nthread = threads or (os.cpu_count() or 1)
    kept = _attach_importance(params, importance) if importance else []
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
    del kept
    partial.replace(target)
    return QuantizeResult(target, name, target.stat().st_size, time.perf_counter() - started)


def _attach_importance(params: Any, importance: Mapping[str, npt.NDArray[np.float32]]) -> list[Any]:
    """Point `params.imatrix` at a name-terminated array; returns what must outlive the call."""
    import llama_cpp

    entries = (llama_cpp.llama_model_imatrix_data * (len(importance) + 1))()
    kept: list[Any] = [entries]
    for entry, (name, values) in zip(entries, sorted(importance.items()), strict=False):
        data = np.ascontiguousarray(values, dtype=np.float32)
        encoded = name.encode("utf-8")
        kept += [data, encoded]
        entry.name = encoded
        entry.data = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entry.size = data.size
    entries[len(importance)].name = None
    params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    return kept
