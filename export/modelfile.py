"""An Ollama Modelfile whose TEMPLATE is the prompt format the model was trained on.

The template text comes from `lsp_server.templates.Template.render` with
Ollama's placeholders as prefix and suffix, so Ollama, the server and
training share one format. Without a suffix (plain generation) the prompt is
the text alone.
"""

from __future__ import annotations

from pathlib import Path

from lsp_server.templates import Template

PREFIX_SLOT = "{{ .Prompt }}"
SUFFIX_SLOT = "{{ .Suffix }}"


def ollama_template(template: Template) -> str:
    if not template.is_fim:
        return PREFIX_SLOT
    fim = "".join(piece.text for piece in template.render(PREFIX_SLOT, SUFFIX_SLOT))
    return f"{{{{- if .Suffix }}}}{fim}{{{{- else }}}}{PREFIX_SLOT}{{{{- end }}}}"


def modelfile_text(
    model_file: str, template: Template, *, name: str = "inkling", n_ctx: int = 4096, lora_file: str = ""
) -> str:
    lines = [
        f"# Inkling code completion model; prompt format {template.family} ({template.order}).",
        f"# ollama create {name} -f Modelfile",
        f"FROM ./{model_file}",
        *([f"ADAPTER ./{lora_file}"] if lora_file else []),
        f'TEMPLATE """{ollama_template(template)}"""',
        "PARAMETER temperature 0",
        f"PARAMETER num_ctx {n_ctx}",
    ]
    lines += [f'PARAMETER stop "{marker}"' for marker in template.markers() if marker]
    return "\n".join(lines) + "\n"


def write_modelfile(
    directory: Path, model_file: str, template: Template, name: str, lora_file: str = ""
) -> Path:
    """`lora_file`: the LoRA adapter the model applies at load time (Ollama's ADAPTER)."""
    path = directory / "Modelfile"
    path.write_text(modelfile_text(model_file, template, name=name, lora_file=lora_file), encoding="utf-8")
    return path
