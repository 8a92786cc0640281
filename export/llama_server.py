"""llama.cpp's `llama-server`, built once from the installed llama-cpp-python's sources and cached.

A team runs generation on a shared machine with llama.cpp's own server and
points each editor's Inkling at it (`engineUrl`); the end-to-end tests and
`inkling eval --engine-url` start one locally. The server is built from the
llama.cpp vendored in the source distribution of the installed
llama-cpp-python (the same llama.cpp that serves in-process), fetched with pip
as `inkling model converter` does, configured with `-DLLAMA_CURL=OFF` (nothing
downloads models at run time) and static libraries (the binary runs from the
cache alone). The build takes about 8 minutes on 2 cores; the binary is kept
in `~/.cache/inkling/llama-server/<llama-cpp-python version>/bin/llama-server`
(`$INKLING_CACHE` or `$XDG_CACHE_HOME` move it) and `$INKLING_LLAMA_SERVER`
names another binary instead.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from export.errors import ExportError
from lsp_server.models import cache_dir

PACKAGE = "llama-cpp-python"
BINARY_ENV = "INKLING_LLAMA_SERVER"
BUILD_STEP = "inkling model llama-server"
CMAKE_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_CCACHE=OFF",
)


class LlamaServerBuildError(ExportError):
    pass


def llama_server_dir(package_version: str = "") -> Path:
    """The cache folder of one llama-cpp-python version's server."""
    return cache_dir() / "llama-server" / (package_version or importlib.metadata.version(PACKAGE))


def cached_llama_server() -> Path | None:
    """The binary to run ($INKLING_LLAMA_SERVER, else the cached build), or None when not built."""
    explicit = os.environ.get(BINARY_ENV, "")
    if explicit:
        path = Path(explicit).expanduser()
        return path if path.is_file() and os.access(path, os.X_OK) else None
    binary = llama_server_dir() / "bin" / "llama-server"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def llama_server_binary(log: Callable[[str], None] = print) -> Path:
    """The cached `llama-server`, built (minutes) when the cache has none."""
    explicit = os.environ.get(BINARY_ENV, "")
    if explicit:
        found = cached_llama_server()
        if found is None:
            raise LlamaServerBuildError(f"{BINARY_ENV}={explicit} is not an executable file")
        return found
    found = cached_llama_server()
    if found is not None:
        return found
    return build_llama_server(log=log)


def build_llama_server(log: Callable[[str], None] = print, jobs: int = 0) -> Path:
    """Download the sdist, build the target `llama-server`, install it into the cache."""
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise LlamaServerBuildError(
                f"building llama-server needs {tool} on this machine (Debian: apt-get install cmake g++)"
            )
    package_version = importlib.metadata.version(PACKAGE)
    folder = llama_server_dir(package_version)
    jobs = jobs or max(1, len(os.sched_getaffinity(0)))
    log(f"building llama-server from {PACKAGE} {package_version}'s llama.cpp ({jobs} jobs, minutes)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".build-", dir=folder.parent) as scratch:
        work = Path(scratch)
        source = _unpack_llama_cpp(package_version, work)
        build = work / "build"
        _run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_ARGS], "cmake configure", log)
        _run(
            [
                "cmake",
                "--build",
                str(build),
                "--config",
                "Release",
                "--target",
                "llama-server",
                "-j",
                str(jobs),
            ],
            "cmake --build",
            log,
        )
        seconds = time.monotonic() - started
        install_built(build / "bin" / "llama-server", folder, package_version, seconds)
    log(f"built {folder / 'bin' / 'llama-server'} in {seconds / 60:.1f} min")
    return folder / "bin" / "llama-server"


def install_built(built: Path, folder: Path, package_version: str, seconds: float) -> Path:
    """Check that a freshly built binary runs, then put it into the cache `folder`."""
    if not built.is_file():
        raise LlamaServerBuildError(f"the build finished without {built}")
    check = subprocess.run([str(built), "--version"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise LlamaServerBuildError(f"the built llama-server does not run: {check.stderr[-1000:]}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".install-", dir=folder.parent) as scratch:
        done = Path(scratch) / "done"
        (done / "bin").mkdir(parents=True)
        shutil.copy2(built, done / "bin" / "llama-server")
        record = {
            "package": PACKAGE,
            "version": package_version,
            "cmake_args": list(CMAKE_ARGS),
            "llama_server_version": (check.stdout + check.stderr).strip().splitlines()[-2:],
            "build_seconds": round(seconds, 1),
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (done / "build.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        done.rename(folder)
    return folder / "bin" / "llama-server"


def _unpack_llama_cpp(package_version: str, work: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    command += ["-d", str(work), f"{PACKAGE}=={package_version}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    archives = list(work.glob("llama_cpp_python-*.tar.gz"))
    if result.returncode != 0 or not archives:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise LlamaServerBuildError(f"pip could not download {PACKAGE}=={package_version}'s source:\n{tail}")
    target = work / "llama.cpp"
    with tarfile.open(archives[0]) as archive:
        members = []
        for member in archive.getmembers():
            inside = member.name.split("/vendor/llama.cpp/", 1)
            if len(inside) == 2 and inside[1] and (member.isfile() or member.isdir()):
                member.name = inside[1]
                members.append(member)
        archive.extractall(target, members=members, filter="data")
    if not (target / "CMakeLists.txt").is_file():
        raise LlamaServerBuildError(f"{PACKAGE}=={package_version}'s source has no vendor/llama.cpp")
    return target


def _run(command: list[str], what: str, log: Callable[[str], None]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise LlamaServerBuildError(f"{what} failed (exit {result.returncode}):\n{tail}")
    log(f"{what}: done")


def server_command(
    binary: Path,
    model: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = 0,
    context: int = 4096,
    slots: int = 1,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The `llama-server` command line that serves `model` the way Inkling's engine runs it.

    `--lora` with the adapter the model file names (llama.cpp does not read Inkling's key
    itself); `--swa-full`, without which a sliding-window model (Gemma 3) cannot keep a
    prompt's prefix in the KV cache when the prompt changes after it; one context of
    `context` tokens per slot; greedy decoding is asked for per request."""
    from lsp_server.llama_model import LlamaModel

    vocab = LlamaModel(model, n_ctx=context, n_threads=1, n_batch=128, vocab_only=True)
    try:
        lora = vocab.declared_lora()
    finally:
        vocab.close()
    command = [str(binary), "--model", str(model)]
    if lora is not None:
        command += ["--lora", str(lora)]
    command += ["--host", host, "--port", str(port), "--ctx-size", str(context * slots)]
    command += ["--parallel", str(slots), "--swa-full", "--no-webui"]
    if threads:
        command += ["--threads", str(threads), "--threads-batch", str(threads)]
    return [*command, *extra]
