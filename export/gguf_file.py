"""Write a GGUF file that takes everything but its weights from a template GGUF.

The template is the base model's own file: its metadata (tokenizer,
hyper-parameters, licence, ...) is copied field by field, with the edits an
export asks for, and its tensor list fixes the names, the order and the
shapes of the output. The weights come from a merged model, written as F32:
llama.cpp quantizes from F32 to the base's own mix of tensor types.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from export.errors import ExportError

log = logging.getLogger(__name__)

F32Array = npt.NDArray[np.float32]

# Keys the writer produces itself, or that stop being true once weights change.
_WRITER_KEYS = (gguf.Keys.General.ARCHITECTURE, gguf.Keys.General.QUANTIZATION_VERSION)


class GGUFExportError(ExportError):
    """The template and the weights do not fit together; the message says how."""


@dataclass(frozen=True)
class MetadataValue:
    type: gguf.GGUFValueType
    value: Any
    sub_type: gguf.GGUFValueType | None = None


@dataclass
class TemplateModel:
    """What an export needs from the base GGUF, read once (GGUFReader takes ~10 s on a 262k vocab)."""

    path: Path
    architecture: str
    metadata: dict[str, MetadataValue]
    tensors: list[gguf.ReaderTensor]
    endianess: gguf.GGUFEndian
    reader: gguf.GGUFReader = field(repr=False)

    def string(self, key: str) -> str | None:
        item = self.metadata.get(key)
        if item is None or item.type != gguf.GGUFValueType.STRING:
            return None
        return item.value.decode("utf-8") if isinstance(item.value, bytes) else str(item.value)

    def integer(self, key: str) -> int | None:
        item = self.metadata.get(key)
        return int(item.value) if item is not None and isinstance(item.value, int) else None

    def token_list(self) -> list[bytes]:
        return list(self.metadata[gguf.Keys.Tokenizer.LIST].value)

    def block_count(self) -> int:
        count = self.integer(f"{self.architecture}.block_count")
        if count is None:
            raise GGUFExportError(f"{self.path} has no {self.architecture}.block_count")
        return count

    def dequantized(self, name: str) -> F32Array:
        """A template tensor as F32, in numpy's (row-major, reversed GGUF) shape."""
        for tensor in self.tensors:
            if tensor.name == name:
                data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
                return np.asarray(data, dtype=np.float32).reshape(tuple(reversed(tensor.shape.tolist())))
        raise KeyError(name)


def read_template(path: Path) -> TemplateModel:
    try:
        reader = gguf.GGUFReader(path, "r")
    except (OSError, ValueError) as exc:
        raise GGUFExportError(f"cannot read {path} as GGUF: {exc}") from exc
    metadata: dict[str, MetadataValue] = {}
    for item in reader.fields.values():
        if item.name.startswith("GGUF."):
            continue  # virtual fields: version and counts
        metadata[item.name] = _field_value(item)
    architecture = metadata.get(gguf.Keys.General.ARCHITECTURE)
    if architecture is None:
        raise GGUFExportError(f"{path} has no general.architecture")
    arch = (
        bytes(architecture.value).decode()
        if isinstance(architecture.value, bytes)
        else str(architecture.value)
    )
    return TemplateModel(path, arch, metadata, list(reader.tensors), reader.endianess, reader)


def _field_value(item: gguf.ReaderField) -> MetadataValue:
    """The field's value as the writer takes it; strings stay bytes so nothing is re-encoded."""
    kind = item.types[0]
    if kind == gguf.GGUFValueType.ARRAY:
        sub = item.types[-1]
        if sub == gguf.GGUFValueType.STRING:
            return MetadataValue(kind, [bytes(item.parts[i]) for i in item.data], sub)
        return MetadataValue(kind, item.contents(), sub)
    if kind == gguf.GGUFValueType.STRING:
        return MetadataValue(kind, bytes(item.parts[item.data[0]]))
    return MetadataValue(kind, item.contents())


@dataclass(frozen=True)
class Edits:
    """Metadata changes on top of the template's."""

    set: Mapping[str, MetadataValue] = field(default_factory=dict)
    remove: frozenset[str] = frozenset()


TensorSource = Callable[[gguf.ReaderTensor], "F32Array | gguf.ReaderTensor"]
"""For each template tensor: new F32 values, or a tensor (of any type) to copy as it is."""


def write_gguf(
    template: TemplateModel,
    out: Path,
    weights: TensorSource | None,
    edits: Edits = Edits(),
    *,
    f32: bool | None = None,
    progress: bool = True,
) -> Path:
    """Write `out`: the template's metadata with `edits`, and for each template tensor,
    in the template's order, what `weights(tensor)` gives (the template's own data
    when `weights` is None: a metadata-only rewrite). `f32` (default: weights are given)
    marks the file as F32 in general.file_type."""
    with gguf_writer(out, template.architecture) as writer:
        for key, value in _merged_metadata(template, edits, f32=weights is not None if f32 is None else f32):
            writer.add_key_value(key, value.value, value.type, sub_type=value.sub_type)
        arrays = list(_tensor_arrays(template, weights))
        for name, array, raw_type in arrays:
            if raw_type is None:
                writer.add_tensor_info(name, array.shape, array.dtype, array.nbytes)
            else:
                writer.add_tensor_info(name, array.shape, array.dtype, array.nbytes, raw_dtype=raw_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        total = sum(array.nbytes for _, array, _ in arrays)
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=f"writing {out.name}", disable=not progress
        ) as bar:
            for _, array, _ in arrays:
                writer.write_tensor_data(array)
                bar.update(array.nbytes)
    return out


@contextmanager
def gguf_writer(out: Path, architecture: str) -> Iterator[gguf.GGUFWriter]:
    """A GGUFWriter to `<out>.partial`, moved to `out` when the block ends well and removed
    when it does not: a half-written model is never left where llama.cpp would load it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(partial, architecture)
    try:
        yield writer
        writer.close()
        partial.replace(out)
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise


def _merged_metadata(
    template: TemplateModel, edits: Edits, *, f32: bool
) -> Iterator[tuple[str, MetadataValue]]:
    remove = set(edits.remove) | set(_WRITER_KEYS)
    for key, value in template.metadata.items():
        if key in remove or key in edits.set:
            continue
        if f32 and key == gguf.Keys.General.FILE_TYPE:
            yield key, MetadataValue(gguf.GGUFValueType.UINT32, int(gguf.LlamaFileType.ALL_F32))
            continue
        yield key, value
    yield from edits.set.items()
    if not f32 and gguf.Keys.General.QUANTIZATION_VERSION in template.metadata:
        yield (
            gguf.Keys.General.QUANTIZATION_VERSION,
            template.metadata[gguf.Keys.General.QUANTIZATION_VERSION],
        )


def _tensor_arrays(
    template: TemplateModel, weights: TensorSource | None
) -> Iterator[tuple[str, npt.NDArray[Any], gguf.GGMLQuantizationType | None]]:
    for tensor in template.tensors:
        source = tensor if weights is None else weights(tensor)
        if isinstance(source, gguf.ReaderTensor):
            if source.name != tensor.name or list(source.shape) != list(tensor.shape):
                raise GGUFExportError(
                    f"tensor {tensor.name} cannot be copied from {source.name} {source.shape}"
                )
            yield tensor.name, source.data, source.tensor_type
            continue
        array = np.ascontiguousarray(source, dtype=np.float32)
        expected = tuple(reversed(tensor.shape.tolist()))
        if array.shape != expected:
            raise GGUFExportError(
                f"tensor {tensor.name}: the merged model has shape {array.shape}, the base GGUF {expected}"
            )
        yield tensor.name, array, None
