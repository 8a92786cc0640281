"""Read an Inkling adapter directory (the contract with `training`).

peft's `save_pretrained` files (adapter_config.json, adapter_model.safetensors)
plus inkling_adapter.json: {"base": {"path", "sha256", ...}, "fim_tokens":
{"6": "<|fim_prefix|>", ...}, "fim_format": "psm" | "spm", "recipe": {...}}.
Only what export relies on is checked; everything else is carried into the
model card as it is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.errors import ExportError
from lsp_server.templates import PREFIX_LAST

METADATA_FILE = "inkling_adapter.json"
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")
FIM_LAYOUTS = ("", PREFIX_LAST)


class AdapterError(ExportError):
    """The directory is not a usable Inkling adapter; the message says what is missing."""


@dataclass(frozen=True)
class AdapterInfo:
    directory: Path
    base_path: str
    base_sha256: str
    fim_tokens: dict[int, str]
    fim_format: str
    fim_layout: str = ""
    """'prefix-last' (see `lsp_server.templates.Template.prefix_last`) or '' for the earlier spm."""
    recipe: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """Every other field of inkling_adapter.json (stage, results, ...), for the model card."""

    def sha256(self) -> str:
        """One digest over the adapter's own files, in a fixed order."""
        digest = hashlib.sha256()
        for name in (*PEFT_FILES, METADATA_FILE):
            digest.update(name.encode() + b"\0")
            digest.update(file_sha256(self.directory / name).encode())
        return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_adapter(directory: Path) -> AdapterInfo:
    if not directory.is_dir():
        raise AdapterError(f"adapter {directory} is not a directory")
    missing = [name for name in (*PEFT_FILES, METADATA_FILE) if not (directory / name).is_file()]
    if missing:
        raise AdapterError(f"adapter {directory} lacks {', '.join(missing)}")
    try:
        data = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise AdapterError(f"{directory / METADATA_FILE} cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise AdapterError(f"{directory / METADATA_FILE} is not a JSON object")
    base = data.get("base")
    if not isinstance(base, dict) or not base.get("sha256"):
        raise AdapterError(f"{directory / METADATA_FILE} does not name its base (base.sha256)")
    fim_format = str(data.get("fim_format", ""))
    if fim_format not in ("psm", "spm"):
        raise AdapterError(
            f"{directory / METADATA_FILE}: fim_format must be 'psm' or 'spm', not {fim_format!r}"
        )
    raw_tokens = data.get("fim_tokens") or {}
    try:
        fim_tokens = {int(key): str(value) for key, value in raw_tokens.items()}
    except (AttributeError, ValueError) as exc:
        raise AdapterError(f"{directory / METADATA_FILE}: fim_tokens must map token ids to text") from exc
    fim_layout = str(data.get("fim_layout") or "")
    if fim_layout not in FIM_LAYOUTS:
        raise AdapterError(
            f"{directory / METADATA_FILE}: fim_layout must be one of {FIM_LAYOUTS}, not {fim_layout!r}"
        )
    known = {"base", "fim_tokens", "fim_format", "fim_layout", "recipe"}
    return AdapterInfo(
        directory=directory,
        base_path=str(base.get("path", "")),
        base_sha256=str(base["sha256"]),
        fim_tokens=fim_tokens,
        fim_format=fim_format,
        fim_layout=fim_layout,
        recipe=dict(data.get("recipe") or {}),
        extra={key: value for key, value in data.items() if key not in known},
    )
