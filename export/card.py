"""The model card: what a file is, what it was made from, how, and how well it does.

One record, written twice: model_card.json for tools, MODEL_CARD.md for people.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_card(directory: Path, card: dict[str, Any]) -> tuple[Path, Path]:
    json_path = directory / "model_card.json"
    json_path.write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    md_path = directory / "MODEL_CARD.md"
    md_path.write_text(card_markdown(card), encoding="utf-8")
    return json_path, md_path


def card_markdown(card: dict[str, Any]) -> str:
    base = card.get("base", {})
    adapter = card.get("adapter") or {}
    lines = [
        f"# {card.get('name', 'Inkling model')}",
        "",
        card.get("summary", ""),
        "",
        "## Files",
        "",
        "| file | quantization | size MiB | sha256 |",
        "| --- | --- | ---: | --- |",
    ]
    for item in card.get("files", []):
        size = item["size_bytes"] / 2**20
        lines.append(f"| {item['file']} | {item['quant']} | {size:.1f} | `{item['sha256'][:16]}…` |")
    imatrix = card.get("imatrix")
    lines += [
        "",
        (
            f"Quantized with an importance matrix ({imatrix['source']}, {imatrix['prompts']} prompts "
            f"from {', '.join(imatrix['datasets']) or 'unnamed data'}; `{Path(imatrix['file']).name}`, "
            f"sha256 `{imatrix['sha256'][:16]}…`)."
            if imatrix
            else "Quantized without an importance matrix."
        ),
    ]
    lines += [
        "",
        "## Base",
        "",
        f"* file: `{base.get('path', '')}`",
        f"* sha256: `{base.get('sha256', '')}`",
        f"* architecture: {base.get('architecture', '')}",
        "",
        "## Prompt format",
        "",
        f"* template: {card.get('template', {}).get('family', '')} "
        f"({card.get('template', {}).get('order', '')})",
    ]
    for token_id, text in sorted(card.get("fim_tokens", {}).items(), key=lambda item: int(item[0])):
        lines.append(f"* token {token_id}: `{text}`")
    lines += ["", "## Adapter and recipe", ""]
    if adapter:
        lines += [
            f"* adapter: `{adapter.get('path', '')}` (sha256 `{adapter.get('sha256', '')[:16]}…`)",
            "",
            "```json",
            json.dumps(
                {"recipe": adapter.get("recipe", {}), **adapter.get("extra", {})}, indent=2, default=str
            ),
            "```",
        ]
    else:
        lines.append("No adapter: the base model's weights, re-exported.")
    verification = card.get("verification")
    lines += ["", "## Verification", ""]
    if verification:
        lines += [
            f"{verification['probes']} probe prompts from held-out code, "
            f"{verification['continuation_tokens']} greedy tokens of the unquantized model; "
            f"perplexity over {verification['perplexity_tokens']} tokens.",
            "",
            verification["table"],
        ]
    else:
        lines.append("Not verified.")
    lines += ["", "## Commands", "", "```sh", *card.get("commands", []), "```", ""]
    return "\n".join(lines)
