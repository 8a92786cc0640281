"""Importance matrix for llama.cpp's quantizer, from the merged model's own activations.

With an importance matrix, llama.cpp's quantizer weighs each weight column's
rounding error by how large that column's input is in practice (the mean square
of the activations it multiplies), so the columns that matter lose least. The
`llama-imatrix` tool that normally measures this is not part of llama-cpp-python;
the activations come instead from the unquantized merged model in transformers,
on the prompts the server itself builds, and the file is llama.cpp's GGUF
imatrix format (`<tensor>.in_sum2`, `<tensor>.counts`), so `llama-quantize
--imatrix` can use it too.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from export.errors import ExportError

IMATRIX_FILE = "imatrix.gguf"
"""Next to a shipped adapter: shipped rather than measured at build time, so every
machine quantizes alike (and `inkling model build` needs no torch)."""
SUMS = ".in_sum2"
COUNTS = ".counts"
DATASETS_KEY = "imatrix.datasets"
CHUNK_COUNT_KEY = "imatrix.chunk_count"
CHUNK_SIZE_KEY = "imatrix.chunk_size"


class ImatrixError(ExportError):
    pass


@dataclass
class Imatrix:
    sums: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    """GGUF weight name -> sum over tokens of each input column's squared activation."""
    counts: dict[str, int] = field(default_factory=dict)
    """GGUF weight name -> tokens summed."""
    datasets: list[str] = field(default_factory=list)
    chunks: int = 0
    chunk_size: int = 0

    def means(self) -> dict[str, npt.NDArray[np.float32]]:
        """What llama.cpp's quantizer takes: the mean square per input column."""
        return {name: (s / max(1, self.counts[name])).astype(np.float32) for name, s in self.sums.items()}


def write_imatrix(imatrix: Imatrix, path: Path) -> None:
    writer = gguf.GGUFWriter(str(path), arch="", endianess=gguf.GGUFEndian.LITTLE)
    writer.add_type("imatrix")
    writer.add_array(DATASETS_KEY, imatrix.datasets)
    writer.add_uint32(CHUNK_COUNT_KEY, imatrix.chunks)
    writer.add_uint32(CHUNK_SIZE_KEY, imatrix.chunk_size)
    for name in sorted(imatrix.sums):
        writer.add_tensor(name + SUMS, imatrix.sums[name].astype(np.float32))
        writer.add_tensor(name + COUNTS, np.array([imatrix.counts[name]], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def read_imatrix(path: Path) -> Imatrix:
    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError) as exc:
        raise ImatrixError(f"{path} is not a GGUF imatrix file: {exc}") from exc
    tensors = {t.name: np.asarray(t.data, dtype=np.float64).reshape(-1) for t in reader.tensors}
    imatrix = Imatrix()
    for name, values in tensors.items():
        if name.endswith(SUMS):
            weight = name.removesuffix(SUMS)
            count = tensors.get(weight + COUNTS)
            if count is None:
                raise ImatrixError(f"{path}: {weight} has sums but no counts")
            imatrix.sums[weight] = values
            imatrix.counts[weight] = int(count[0])
    if not imatrix.sums:
        raise ImatrixError(f"{path} holds no importance data")
    field_ = reader.get_field(DATASETS_KEY)
    if field_ is not None:
        imatrix.datasets = [str(bytes(field_.parts[i]), "utf-8") for i in field_.data]
    for key, attr in ((CHUNK_COUNT_KEY, "chunks"), (CHUNK_SIZE_KEY, "chunk_size")):
        value = reader.get_field(key)
        if value is not None:
            setattr(imatrix, attr, int(value.parts[value.data[0]][0]))
    return imatrix


def calibration_texts(sources: Sequence[Path], limit: int, seed: int = 0) -> list[tuple[str, str]]:
    """(path, text) pairs: rows of a dataset made by `inkling train prepare` (its train
    split, the middle put back), or code files and directories as they are."""
    texts: list[tuple[str, str]] = []
    for source in sources:
        if (source / "dataset_dict.json").is_file() or (source / "dataset" / "dataset_dict.json").is_file():
            texts.extend(_dataset_texts(source))
        elif source.is_dir():
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                texts.append((str(path), path.read_text(encoding="utf-8", errors="replace")))
        elif source.is_file():
            texts.append((str(source), source.read_text(encoding="utf-8", errors="replace")))
        else:
            raise ImatrixError(f"calibration source {source} does not exist")
    texts = [(path, text) for path, text in texts if text.strip()]
    if not texts:
        raise ImatrixError("the calibration sources hold no text")
    if len(texts) > limit:
        texts = random.Random(seed).sample(texts, limit)
    return texts


def _dataset_texts(source: Path) -> list[tuple[str, str]]:
    from datasets import load_from_disk

    root = source / "dataset" if (source / "dataset").is_dir() else source
    rows = load_from_disk(str(root))["train"]
    return [(row["path"], row["prefix"] + row["middle"] + row["suffix"]) for row in rows]


def compute_imatrix(model_file: Path, prompts: Sequence[Sequence[int]], datasets: Sequence[str]) -> Imatrix:
    """Run `prompts` through `model_file` (a GGUF the transformers loader reads) and
    sum the squared inputs of every linear layer inside the transformer blocks."""
    import torch

    from export.merge import load_base

    model = load_base(model_file, torch.float32).eval()
    names = _name_map(model_file)
    imatrix = Imatrix(datasets=list(datasets), chunks=len(prompts))
    hooks = []
    for module_name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        weight = names.get_name(module_name + ".weight", try_suffixes=(".weight",))
        if weight is None or not weight.startswith("blk."):
            continue
        hooks.append(module.register_forward_pre_hook(_accumulate(imatrix, weight)))
    if not hooks:
        raise ImatrixError(f"no linear layer of {model_file} maps to a GGUF block tensor")
    try:
        with torch.no_grad():
            for prompt in tqdm(prompts, desc="importance matrix", unit="prompt"):
                model(input_ids=torch.tensor([list(prompt)], dtype=torch.long))
    finally:
        for hook in hooks:
            hook.remove()
    imatrix.chunk_size = max((len(p) for p in prompts), default=0)
    return imatrix


def _accumulate(imatrix: Imatrix, weight: str) -> Any:
    def hook(_module: Any, args: tuple[Any, ...]) -> None:
        inputs = args[0].detach().reshape(-1, args[0].shape[-1]).double()
        squares = (inputs * inputs).sum(0).numpy()
        imatrix.sums[weight] = imatrix.sums[weight] + squares if weight in imatrix.sums else squares
        imatrix.counts[weight] = imatrix.counts.get(weight, 0) + inputs.shape[0]

    return hook


def _name_map(model_file: Path) -> gguf.TensorNameMap:
    from export.gguf_file import read_template
    from export.tensor_map import name_map

    return name_map(read_template(model_file))
