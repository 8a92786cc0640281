"""Adopt a trained adapter as Inkling's default: copy it, with its weights in bfloat16.

peft saves LoRA weights in float32 on CPU: about 15 MB for the default
recipe, more than a repository should carry. bfloat16 halves that and keeps
float32's range; `export.lora.load_tensors` widens it again when merging, so
the built model is exactly what this adapter encodes (its hash is recorded by
`inkling model build --record`).
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

from export.adapter import METADATA_FILE, PEFT_FILES
from export.imatrix import IMATRIX_FILE
from export.lora import load_tensors

WEIGHTS = "adapter_model.safetensors"


def to_bfloat16(values: np.ndarray) -> bytes:
    """float32 -> bfloat16 bytes, rounded to nearest even (as torch does)."""
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def write_bfloat16_safetensors(tensors: dict[str, np.ndarray], path: Path, metadata: dict[str, str]) -> None:
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        data = to_bfloat16(tensors[name])
        header[name] = {
            "dtype": "BF16",
            "shape": list(tensors[name].shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the format aligns the data to 8 bytes
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for chunk in chunks:
            out.write(chunk)


def _metadata(path: Path) -> dict[str, str]:
    with path.open("rb") as source:
        (size,) = struct.unpack("<Q", source.read(8))
        header: dict[str, Any] = json.loads(source.read(size))
    found = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in found.items()}


def adopt_adapter(source: Path, target: Path, imatrix: Path | None = None) -> dict[str, int]:
    """Copy `source` (an `inkling train sft` output) into `target`, with the importance
    matrix measured for it if one is given; returns file sizes."""
    missing = [name for name in (*PEFT_FILES, METADATA_FILE) if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{source} is not a trained adapter: {', '.join(missing)} missing")
    target.mkdir(parents=True, exist_ok=True)
    for name in (*PEFT_FILES, METADATA_FILE):
        if name != WEIGHTS:
            shutil.copyfile(source / name, target / name)
    tensors = load_tensors(source / WEIGHTS)
    write_bfloat16_safetensors(tensors, target / WEIGHTS, _metadata(source / WEIGHTS))
    (target / "build.json").unlink(missing_ok=True)  # recorded again by `inkling model build --record`
    names = [*PEFT_FILES, METADATA_FILE]
    # One measured for an earlier adapter must not outlive it.
    (target / IMATRIX_FILE).unlink(missing_ok=True)
    if imatrix is not None:
        shutil.copyfile(imatrix, target / IMATRIX_FILE)
        names.append(IMATRIX_FILE)
    return {name: (target / name).stat().st_size for name in names}
