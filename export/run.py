"""`inkling export` as a function: base (+ adapter) -> F32 GGUF -> quantized GGUFs -> checks.

Steps, each timed:
1. merge: the adapter into the base, in float64 (transformers + peft);
2. write F32: by template from a GGUF base (every metadata field copied, FIM
   tokens declared), or through llama.cpp's converter from a Hugging Face base;
3. quantize: llama.cpp, from the F32 file, weighted by an importance matrix
   (given, or measured on calibration code: `imatrix.py`);
4. verify: greedy agreement and perplexity, quantized vs F32 (`verify.py`);
5. Modelfile and model card next to the files.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, GGUFValueType, Keys

from export.adapter import AdapterInfo, file_sha256, read_adapter
from export.card import write_card
from export.errors import ExportError
from export.fim_vocab import fim_edits
from export.gguf_file import Edits, MetadataValue, TemplateModel, read_template, write_gguf
from export.imatrix import Imatrix, calibration_texts, compute_imatrix, read_imatrix, write_imatrix
from export.lora import Adapter, UnsupportedAdapterError, read_lora
from export.lora_gguf import lora_file_name, projection_targets, write_lora_gguf
from export.modelfile import write_modelfile
from export.quantize import DEFAULT_QUANT, QUANT_TYPES, quant_name, quantize
from export.verify import VerifyConfig, VerifyReport, build_probes, verify, write_report
from lsp_server.llama_model import LORA_KEY, LlamaModel
from lsp_server.templates import Template

log = logging.getLogger(__name__)

ADAPTER_SHA_KEY = "inkling.adapter.sha256"
BASE_SHA_KEY = "inkling.base.sha256"
LORA = "LoRA"
"""`ExportResult.files` key of the adapter file applied at load time."""


@dataclass(frozen=True)
class ExportConfig:
    base: Path
    output: Path
    adapter: Path | None = None
    name: str = "inkling-model"
    quants: tuple[str, ...] = (DEFAULT_QUANT,)
    verify: bool = True
    heldout: tuple[Path, ...] = ()
    probes: int = 32
    perplexity_chunks: int = 4
    threads: int = 2
    keep_f32: bool = False
    converter: str = ""
    check_base_hash: bool = True
    merge_with_peft: bool = False
    """GGUF bases: merge with transformers + peft even when the numpy merge can."""
    imatrix: Path | None = None
    """An importance matrix (llama.cpp's GGUF imatrix format) to quantize with."""
    calibration: tuple[Path, ...] = ()
    """Code to measure an importance matrix on when none is given; default: the
    adapter's training dataset if it is on disk. Needs the `train` extra (torch)."""
    calibration_prompts: int = 64
    use_imatrix: bool = True
    lora_at_load: bool = True
    """GGUF bases, plain LoRA: a quantized file that can keep the base's own projection
    weights keeps them, and the LoRA layers go to `<name>.lora.gguf`, which llama.cpp
    applies when the model loads (`lora_gguf.py` says why); False: merged everywhere."""


@dataclass
class ExportResult:
    files: dict[str, Path]
    """Quantization name ('F32' included while kept) -> file."""
    seconds: dict[str, float] = field(default_factory=dict)
    report: VerifyReport | None = None
    card: dict[str, Any] = field(default_factory=dict)


def file_name(name: str, quant: str) -> str:
    return f"{name}-{quant.lower()}.gguf"


def run_export(config: ExportConfig) -> ExportResult:
    quants = tuple(dict.fromkeys(quant_name(q) for q in config.quants))
    if not (config.base.is_file() or config.base.is_dir()):
        raise ExportError(f"base {config.base} is neither a GGUF file nor a Hugging Face directory")
    adapter = read_adapter(config.adapter) if config.adapter else None
    base_sha = file_sha256(config.base) if config.base.is_file() else ""
    if adapter and config.check_base_hash and config.base.is_file() and adapter.base_sha256 != base_sha:
        raise ExportError(
            f"the adapter was trained on {adapter.base_path or 'another base'} "
            f"(sha256 {adapter.base_sha256[:12]}…), not {config.base} (sha256 {base_sha[:12]}…)"
        )
    config.output.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    f32 = config.output / file_name(config.name, "F32")
    layout: BaseLayout | None = None
    if config.base.is_file():
        layout = _export_by_template(config, adapter, base_sha, f32, seconds)
        architecture = layout.template.architecture
    else:
        architecture = _export_by_converter(config, adapter, f32, seconds)
    files: dict[str, Path] = {"F32": f32}
    try:
        importance = _importance(config, adapter, f32, seconds, layout, quants)
        report, at_load = _quantize_and_verify(config, quants, files, layout, seconds, importance)
        template_used = detected_template(files[quants[0]])
        lora_file = files[LORA].name if quants[0] in at_load else ""
        write_modelfile(config.output, files[quants[0]].name, template_used, config.name, lora_file)
    finally:
        if not config.keep_f32:
            f32.unlink(missing_ok=True)
            files.pop("F32", None)
    card = model_card(
        config, adapter, base_sha, architecture, template_used, files, report, seconds, importance, at_load
    )
    write_card(config.output, card)
    return ExportResult(files, seconds, report, card)


def _quantize_and_verify(
    config: ExportConfig,
    quants: tuple[str, ...],
    files: dict[str, Path],
    layout: BaseLayout | None,
    seconds: dict[str, float],
    importance: Importance | None,
) -> tuple[VerifyReport | None, tuple[str, ...]]:
    """Quantize, graft the base's bytes back, verify; returns the report and the
    quantizations that apply the LoRA layers at load time (`files[LORA]`)."""
    f32 = files["F32"]
    means = importance.imatrix.means() if importance else None
    lora_path = config.output / lora_file_name(config.name)
    at_load: list[str] = []
    for quant in quants:
        target = config.output / file_name(config.name, quant)
        result = quantize(f32, target, quant, threads=config.threads, importance=means)
        seconds[f"quantize_{quant}"] = result.seconds
        if layout is not None and (layout.at_load or _quantized_among(layout.template, layout.unchanged)):
            started = time.perf_counter()
            grafted, uses_lora = graft_unchanged(
                result.path,
                layout.template,
                layout.unchanged,
                at_load=layout.at_load,
                lora_file=lora_path.name,
            )
            seconds[f"graft_{quant}"] = time.perf_counter() - started
            log.info("%s: %d tensors copied from the base", quant, grafted)
            if uses_lora:
                at_load.append(quant)
        files[quant] = result.path
        log.info("%s: %.1f MiB in %.1fs", result.path.name, result.size_bytes / 2**20, result.seconds)
    if at_load:
        assert layout is not None and layout.adapter is not None
        started = time.perf_counter()
        files[LORA] = write_lora_gguf(layout.template, layout.adapter, lora_path)
        seconds["write_lora"] = time.perf_counter() - started
        log.info("LoRA layers applied at load time by %s: %s", ", ".join(at_load), lora_path.name)
    if not config.verify:
        return None, tuple(at_load)
    started = time.perf_counter()
    report = verify(
        f32,
        [files[q] for q in quants],
        VerifyConfig(
            config.heldout or default_heldout(),
            config.probes,
            perplexity_chunks=config.perplexity_chunks,
            threads=config.threads,
        ),
    )
    seconds["verify"] = time.perf_counter() - started
    write_report(report, config.output / "verify.json")
    return report, tuple(at_load)


@dataclass(frozen=True)
class Importance:
    imatrix: Imatrix
    path: Path
    source: str
    """"given" or "measured"."""

    def describe(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "sha256": file_sha256(self.path),
            "source": self.source,
            "datasets": self.imatrix.datasets,
            "prompts": self.imatrix.chunks,
            "tensors": len(self.imatrix.sums),
        }


def _importance(
    config: ExportConfig,
    adapter: AdapterInfo | None,
    f32: Path,
    seconds: dict[str, float],
    layout: BaseLayout | None,
    quants: tuple[str, ...],
) -> Importance | None:
    """The importance matrix to quantize with: the given one, else one measured on the
    calibration code (written next to the outputs), else none."""
    if not config.use_imatrix:
        return None
    if config.imatrix is not None:
        return Importance(read_imatrix(config.imatrix), config.imatrix, "given")
    if _keeps_base_weights(layout, quants):
        log.info(
            "every quantization keeps the base's weights, the LoRA applied on load: no importance matrix"
        )
        return None
    sources = config.calibration or _adapter_dataset(adapter)
    if not sources:
        log.info("no calibration code (--calibration): quantizing without an importance matrix")
        return None
    started = time.perf_counter()
    texts = calibration_texts(sources, config.calibration_prompts)
    model = LlamaModel(f32, n_ctx=2048, n_threads=config.threads, n_batch=128, vocab_only=True)
    try:
        prompts = build_probes(model, texts, config.calibration_prompts)
    finally:
        model.close()
    imatrix = compute_imatrix(f32, prompts, [str(source) for source in sources])
    path = config.output / f"{config.name}.imatrix.gguf"
    write_imatrix(imatrix, path)
    seconds["imatrix"] = time.perf_counter() - started
    return Importance(imatrix, path, "measured")


def _keeps_base_weights(layout: BaseLayout | None, quants: tuple[str, ...]) -> bool:
    """Whether every quantization is the base's own file type with a LoRA to apply on load:
    then the block weights are grafted back from the base, and a matrix (minutes to measure)
    would steer only the embedding with the trained token rows (Q8_0 in Gemma 3 270M's
    Q4_K_M, which takes none)."""
    if layout is None or not layout.at_load:
        return False
    base_type = layout.template.integer(Keys.General.FILE_TYPE)
    return all(QUANT_TYPES[quant] == base_type for quant in quants)


def _adapter_dataset(adapter: AdapterInfo | None) -> tuple[Path, ...]:
    dataset = str((adapter.recipe if adapter else {}).get("dataset") or "")
    path = Path(dataset).expanduser() if dataset else None
    return (path,) if path is not None and path.is_dir() else ()


def _provenance(adapter: AdapterInfo | None, base_sha: str, name: str) -> dict[str, MetadataValue]:
    values = {Keys.General.NAME: MetadataValue(GGUFValueType.STRING, name)}
    if base_sha:
        values[BASE_SHA_KEY] = MetadataValue(GGUFValueType.STRING, base_sha)
    if adapter is not None:
        values[ADAPTER_SHA_KEY] = MetadataValue(GGUFValueType.STRING, adapter.sha256())
    return values


def _fim_and_provenance(
    template: TemplateModel, adapter: AdapterInfo | None, base_sha: str, name: str
) -> Edits:
    changes = dict(_provenance(adapter, base_sha, name))
    if adapter is not None and adapter.fim_tokens:
        changes.update(fim_edits(template, adapter.fim_tokens, adapter.fim_format, adapter.fim_layout).set)
    return Edits(set=changes)


@dataclass(frozen=True)
class BaseLayout:
    """What the quantized files may take from a GGUF base."""

    template: TemplateModel
    unchanged: frozenset[str]
    """Tensors the adapter left as they are."""
    adapter: Adapter | None = None
    at_load: frozenset[str] = frozenset()
    """Tensors whose LoRA layers can be applied at load time instead of merged."""


def _export_by_template(
    config: ExportConfig, adapter: AdapterInfo | None, base_sha: str, f32: Path, seconds: dict[str, float]
) -> BaseLayout:
    """Write the (fully merged) F32 file; returns what the quantized files may keep of the base."""
    from export.merge import merge_adapter
    from export.tensor_map import lora_weights, rules_for, template_weights

    started = time.perf_counter()
    template = read_template(config.base)
    rules_for(template.architecture)  # fail before the slow part
    seconds["read_base"] = time.perf_counter() - started
    plain = None if adapter is None or config.merge_with_peft else _plain_lora(adapter)
    if plain is not None:
        started = time.perf_counter()
        changed, unchanged = lora_weights(template, plain)
        seconds["merge"] = time.perf_counter() - started

        def source(name: str) -> Any:
            return changed[name] if name in changed else template.dequantized(name)

    elif adapter is not None:
        merged = merge_adapter(config.base, adapter.directory)
        seconds.update(merged.seconds)
        started = time.perf_counter()
        weights, unchanged = template_weights(template, merged.weights, merged.touched)
        del merged
        seconds["map_weights"] = time.perf_counter() - started

        def source(name: str) -> Any:
            return weights[name]

    else:
        unchanged = frozenset(tensor.name for tensor in template.tensors)

        def source(name: str) -> Any:
            return template.dequantized(name)

    edits = _fim_and_provenance(template, adapter, base_sha, config.name)
    started = time.perf_counter()
    write_gguf(template, f32, lambda tensor: source(tensor.name), edits)
    seconds["write_f32"] = time.perf_counter() - started
    if plain is None or not plain.layers or not config.lora_at_load:
        return BaseLayout(template, unchanged)
    return BaseLayout(template, unchanged, plain, projection_targets(template, plain))


def _plain_lora(adapter: AdapterInfo) -> Adapter | None:
    """The adapter for the numpy merge, or None when it needs peft's."""
    try:
        return read_lora(adapter.directory)
    except UnsupportedAdapterError as exc:
        log.info("merging with peft: %s", exc)
        return None


def _quantized_among(base: TemplateModel, names: frozenset[str]) -> bool:
    """Whether any of these base tensors is quantized (F32 and F16 ones come through exact)."""
    exact = {GGMLQuantizationType.F32, GGMLQuantizationType.F16}
    return any(t.tensor_type not in exact for t in base.tensors if t.name in names)


def graft_unchanged(
    quantized: Path,
    base: TemplateModel,
    unchanged: frozenset[str],
    *,
    at_load: frozenset[str] = frozenset(),
    lora_file: str = "",
) -> tuple[int, bool]:
    """Put the base's own bytes back into `quantized` for every tensor the adapter did not
    change and llama.cpp quantized to the base's type: re-quantizing a dequantized K-quant
    does not give the same blocks back, and the base's output should survive an export
    untouched. If every `at_load` tensor has the base's type too, those get the base's
    bytes as well and the file names `lora_file` (LORA_KEY), whose LoRA layers llama.cpp
    then applies on load. Returns how many tensors were copied, and whether `lora_file`
    is named."""
    import numpy as np

    out = read_template(quantized)
    by_name = {tensor.name: tensor for tensor in base.tensors}
    same_type = {t.name for t in out.tensors if by_name[t.name].tensor_type == t.tensor_type}
    uses_lora = bool(at_load) and at_load <= same_type
    keep = unchanged | at_load if uses_lora else unchanged
    graft = {
        tensor.name
        for tensor in out.tensors
        if tensor.name in keep
        and tensor.name in same_type
        and not np.array_equal(by_name[tensor.name].data, tensor.data)
    }
    if graft or uses_lora:
        edits = (
            Edits(set={LORA_KEY: MetadataValue(GGUFValueType.STRING, lora_file)}) if uses_lora else Edits()
        )
        partial = quantized.with_name(quantized.name + ".grafted")
        write_gguf(
            out,
            partial,
            lambda t: by_name[t.name] if t.name in graft else t,
            edits,
            f32=False,
            progress=False,
        )
        partial.replace(quantized)
    return len(graft), uses_lora


def _export_by_converter(
    config: ExportConfig, adapter: AdapterInfo | None, f32: Path, seconds: dict[str, float]
) -> str:
    from export.hf_convert import convert, find_converter, save_merged
    from export.merge import merge_adapter

    converter = find_converter(config.converter)
    merged = merge_adapter(config.base, adapter.directory if adapter else None)
    seconds.update(merged.seconds)
    started = time.perf_counter()
    staging = config.output / "merged-hf"
    save_merged(merged.model, config.base, staging)
    del merged
    raw = config.output / f"{f32.stem}.converted.gguf"
    convert(staging, raw, converter)
    shutil.rmtree(staging)
    seconds["convert"] = time.perf_counter() - started
    started = time.perf_counter()
    template = read_template(raw)
    write_gguf(template, f32, None, _fim_and_provenance(template, adapter, "", config.name))
    raw.unlink()
    seconds["write_f32"] = time.perf_counter() - started
    return template.architecture


def detected_template(path: Path) -> Template:
    """The prompt format the server will pick for this file (llama.cpp's vocabulary)."""
    from lsp_server.llama_model import LlamaModel
    from lsp_server.templates import detect_template

    model = LlamaModel(path, n_ctx=512, n_threads=1, n_batch=8, vocab_only=True)
    try:
        return detect_template(model)
    finally:
        model.close()


def default_heldout() -> tuple[Path, ...]:
    """Inkling's own sources: code the default recipe (the Python standard library) never trains on."""
    import lsp_server

    return tuple(sorted(Path(lsp_server.__file__).parent.glob("*.py")))


def model_card(
    config: ExportConfig,
    adapter: AdapterInfo | None,
    base_sha: str,
    architecture: str,
    template: Template,
    files: dict[str, Path],
    report: VerifyReport | None,
    seconds: dict[str, float],
    importance: Importance | None = None,
    at_load: tuple[str, ...] = (),
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "name": config.name,
        "summary": (
            f"{architecture} model exported by Inkling"
            + (f" with the adapter {adapter.directory.name}" if adapter else " (base weights, no adapter)")
            + f"; prompt format {template.family} ({template.order})."
        ),
        "base": {"path": str(config.base), "sha256": base_sha, "architecture": architecture},
        "adapter": None,
        "template": {"family": template.family, "order": template.order, "markers": list(template.markers())},
        "fim_tokens": {str(k): v for k, v in (adapter.fim_tokens if adapter else {}).items()},
        "files": [
            {
                "file": path.name,
                "quant": quant,
                "size_bytes": path.stat().st_size,
                "sha256": file_sha256(path),
            }
            for quant, path in files.items()
        ],
        "seconds": {key: round(value, 1) for key, value in seconds.items()},
        "verification": None,
        "imatrix": importance.describe() if importance else None,
        "lora_at_load": {"file": files[LORA].name, "quants": list(at_load)} if at_load else None,
        "commands": [export_command(config)],
    }
    if adapter is not None:
        card["adapter"] = {
            "path": str(adapter.directory),
            "sha256": adapter.sha256(),
            "fim_format": adapter.fim_format,
            "fim_layout": adapter.fim_layout,
            "recipe": adapter.recipe,
            "extra": adapter.extra,
        }
    if report is not None:
        card["verification"] = {**report.to_json(), "table": report.table()}
    return card


def export_command(config: ExportConfig) -> str:
    parts = [
        "inkling export",
        "--base",
        str(config.base),
        "--output",
        str(config.output),
        "--name",
        config.name,
    ]
    if config.adapter:
        parts += ["--adapter", str(config.adapter)]
    for quant in config.quants:
        parts += ["--quant", quant]
    if not config.verify:
        parts.append("--no-verify")
    if not config.use_imatrix:
        parts.append("--no-imatrix")
    elif config.imatrix is not None:
        parts += ["--imatrix", str(config.imatrix)]
    for source in config.calibration:
        parts += ["--calibration", str(source)]
    if not config.lora_at_load:
        parts.append("--merge-lora")
    return " ".join(parts)
