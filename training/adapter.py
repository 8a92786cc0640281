"""The adapter directory contract with `export`.

peft's `save_pretrained` writes adapter_config.json and
adapter_model.safetensors (LoRA weights plus the trained rows of the FIM
token embeddings, from `trainable_token_indices`). Next to them,
inkling_adapter.json says what export needs and peft does not know:

    {"base": {"path", "sha256", "format"},
     "fim_tokens": {"6": "<|fim_prefix|>", ...},  # reserved id -> Inkling token ({}: base has FIM tokens)
     "fim_format": "psm" | "spm",                 # the order the server should prompt in
     "fim_layout": "prefix-last" | "",            # spm with the prefix running into the middle
     "template": "inkling" | "<family>",
     "stage": "sft" | "dpo", "parent": "<adapter this one continued>",
     "recipe": {...}}                              # the config that trained it
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lsp_server.templates import PREFIX_LAST
from training.base import BaseInfo
from training.config import ConfigError
from training.tokens import FimVocab

METADATA_FILE = "inkling_adapter.json"


def write_metadata(
    directory: Path,
    base: BaseInfo,
    vocab: FimVocab,
    fim_format: str,
    stage: str,
    recipe: dict[str, Any],
    parent: str = "",
    results: dict[str, Any] | None = None,
) -> Path:
    data = {
        "base": base.as_dict(),
        "fim_tokens": {str(token_id): name for token_id, name in sorted(vocab.taken_over.items())},
        "fim_format": fim_format,
        "fim_layout": PREFIX_LAST if vocab.template.prefix_last else "",
        "template": vocab.template.family,
        "stage": stage,
        "parent": parent,
        "recipe": recipe,
        "results": results or {},
    }
    path = directory / METADATA_FILE
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def is_prefix_last(metadata: dict[str, Any]) -> bool:
    """Whether the adapter learnt Inkling's spm with the prefix last (older ones did not)."""
    return metadata.get("fim_layout") == PREFIX_LAST


def read_metadata(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / METADATA_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{directory} is not an Inkling adapter ({METADATA_FILE}: {exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    return data


def check_same_base(metadata: dict[str, Any], base: BaseInfo, where: str) -> None:
    expected = metadata.get("base", {}).get("sha256")
    if expected and expected != base.sha256:
        raise ConfigError(
            f"{where} was trained on another base "
            f"({metadata['base'].get('path')}, sha256 {expected[:12]}...), "
            f"not {base.path} (sha256 {base.sha256[:12]}...)"
        )
