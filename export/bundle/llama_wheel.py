"""A portable llama-cpp-python wheel: built once per version and instruction set, then cached.

PyPI has no wheel of llama-cpp-python, and `pip install` on a developer's
machine compiles it with `-march=native`. The bundle needs a wheel that runs
on other machines: built from the source distribution with the CPU baseline's
instruction sets (`export.bundle.cpu`), without OpenMP (so that the target needs
no libgomp) and without the multimodal library Inkling does not use. The
build takes minutes, so the wheel is kept in `~/.cache/inkling/wheels/`
under a key made of the version, the machine, the baseline, the GPU backend
and a hash of the CMake arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from export.bundle.cpu import CpuBaseline
from export.bundle.preflight import file_sha256
from export.errors import ExportError
from lsp_server.models import cache_dir

PACKAGE = "llama-cpp-python"
GPU_BACKENDS = ("cuda", "vulkan")
_COMMON_ARGS = ("-DGGML_OPENMP=OFF", "-DLLAVA_BUILD=OFF", "-DGGML_CCACHE=OFF", "-DLLAMA_CURL=OFF")


class WheelBuildError(ExportError):
    pass


@dataclass(frozen=True)
class LlamaWheel:
    path: Path
    cmake_args: tuple[str, ...]
    cached: bool
    build_seconds: float
    """Seconds the build took when it was made (also for a wheel taken from the cache)."""


def wheels_cache() -> Path:
    return cache_dir() / "wheels"


def cmake_args(baseline: CpuBaseline, gpu: str) -> tuple[str, ...]:
    gpu_args = {"": (), "cuda": ("-DGGML_CUDA=ON",), "vulkan": ("-DGGML_VULKAN=ON",)}[gpu]
    return (*baseline.cmake_args(), *_COMMON_ARGS, *gpu_args)


def cache_key(package_version: str, baseline: CpuBaseline, gpu: str) -> str:
    args = " ".join(cmake_args(baseline, gpu))
    digest = hashlib.sha256(args.encode()).hexdigest()[:10]
    return f"{PACKAGE}-{package_version}-{platform.machine()}-{baseline.name}-{gpu or 'cpu'}-{digest}"


def check_gpu_toolchain(gpu: str) -> None:
    """A GPU build needs its compiler here; say which one is missing rather than fail in CMake."""
    nvcc = shutil.which("nvcc")
    if gpu == "cuda" and nvcc is None:
        raise WheelBuildError(
            "--gpu cuda needs the CUDA toolkit (nvcc) on this machine, and none was found; "
            "see docs/air-gapped.md#gpu"
        )
    if gpu == "cuda" and nvcc is not None and not _cublas_found(Path(nvcc)):
        raise WheelBuildError(
            f"--gpu cuda needs the CUDA toolkit's cuBLAS (libcublas.so), and none was found beside {nvcc} "
            "(a compiler alone, such as the nvidia-cuda-nvcc package, is not enough; set CUDA_PATH "
            "to the toolkit); see docs/air-gapped.md#gpu"
        )
    if gpu == "vulkan" and (
        shutil.which("glslc") is None or not Path("/usr/include/vulkan/vulkan.h").exists()
    ):
        raise WheelBuildError(
            "--gpu vulkan needs the Vulkan headers and the glslc shader compiler on this machine "
            "(Debian: libvulkan-dev glslc), and they were not found; see docs/air-gapped.md#gpu"
        )


def _cublas_found(nvcc: Path) -> bool:
    roots = [Path(os.path.realpath(nvcc)).parent.parent]
    if os.environ.get("CUDA_PATH"):
        roots.append(Path(os.environ["CUDA_PATH"]))
    folders = [Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/lib64")]
    for root in roots:
        folders += [root / "lib64", root / "lib", *root.glob("targets/*/lib")]
    return any(any(folder.glob("libcublas.so*")) for folder in folders)


def portable_wheel(baseline: CpuBaseline, gpu: str = "", log: Callable[[str], None] = print) -> LlamaWheel:
    """The cached wheel for this baseline, built (minutes) when the cache has none."""
    if gpu not in ("", *GPU_BACKENDS):
        raise WheelBuildError(f"unknown GPU backend {gpu!r}: choose {' or '.join(GPU_BACKENDS)}")
    package_version = version(PACKAGE)
    folder = wheels_cache() / cache_key(package_version, baseline, gpu)
    record_path = folder / "build.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        wheel = folder / record["wheel"]
        if wheel.is_file() and file_sha256(wheel) == record["sha256"]:
            log(f"llama-cpp-python {package_version} ({baseline.name}): cached {wheel}")
            return LlamaWheel(wheel, tuple(record["cmake_args"]), True, float(record["build_seconds"]))
        log(f"the cached wheel in {folder} is damaged; building it again")
    check_gpu_toolchain(gpu)
    args = cmake_args(baseline, gpu)
    log(
        f"building llama-cpp-python {package_version} for {baseline.name} ({baseline.description}); "
        f"minutes; cached in {folder}"
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=folder.parent) as scratch:
        work = Path(scratch)
        started = time.monotonic()
        _pip(
            "download", "--no-deps", "--no-binary", ":all:", f"{PACKAGE}=={package_version}", "-d", str(work)
        )
        sdist = next(work.glob("*.tar.gz"))
        env = {
            **os.environ,
            "CMAKE_ARGS": " ".join(args),
            "CMAKE_BUILD_PARALLEL_LEVEL": str(len(os.sched_getaffinity(0))),
        }
        _pip("wheel", "--no-deps", "--no-cache-dir", "-w", str(work / "out"), str(sdist), env=env)
        seconds = time.monotonic() - started
        wheel = next((work / "out").glob("*.whl"))
        _check_cpu_library(wheel)
        done = work / "done"
        done.mkdir()
        shutil.move(wheel, done / wheel.name)
        record = {
            "wheel": wheel.name,
            "sha256": file_sha256(done / wheel.name),
            "cmake_args": list(args),
            "build_seconds": round(seconds, 1),
            "glibc": glibc_needed(done / wheel.name),
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (done / "build.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        done.rename(folder)
    log(f"built {folder / wheel.name} in {seconds / 60:.1f} min")
    return LlamaWheel(folder / wheel.name, args, False, seconds)


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise WheelBuildError(
            f"`pip {' '.join(args[:3])} ...` failed:\n{(result.stdout + result.stderr)[-3000:]}"
        )


def _check_cpu_library(wheel: Path) -> None:
    """A wheel without ggml's CPU backend would install and then load no model."""
    with zipfile.ZipFile(wheel) as archive:
        if not any(re.search(r"libggml-cpu[^/]*\.so$", name) for name in archive.namelist()):
            raise WheelBuildError(f"{wheel.name} has no libggml-cpu library")


def glibc_needed(wheel: Path) -> str:
    """The newest glibc symbol version the wheel's shared libraries ask for ('' if none)."""
    newest: tuple[int, int] = (0, 0)
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if re.search(r"\.so(\.\d+)*$", name):
                for major, minor in re.findall(rb"GLIBC_(\d+)\.(\d+)", archive.read(name)):
                    newest = max(newest, (int(major), int(minor)))
    return f"{newest[0]}.{newest[1]}" if newest != (0, 0) else ""
