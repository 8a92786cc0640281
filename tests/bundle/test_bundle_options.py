"""What `inkling bundle`'s options turn into, without building anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.bundle import llama_wheel
from export.bundle.cpu import BASELINES, baseline
from export.bundle.wheelhouse import Target
from export.errors import ExportError


def test_baselines_never_build_for_the_building_machine() -> None:
    for level in BASELINES.values():
        args = level.cmake_args()
        assert "-DGGML_NATIVE=OFF" in args and "-DGGML_AMX_INT8=OFF" in args
    v3 = baseline("x86-64-v3").cmake_args()
    assert "-DGGML_AVX2=ON" in v3 and "-DGGML_FMA=ON" in v3 and "-DGGML_AVX512=OFF" in v3
    assert "-DGGML_AVX=OFF" in baseline("x86-64-v2").cmake_args()
    assert "-DGGML_AVX512=ON" in baseline("x86-64-v4").cmake_args()
    with pytest.raises(ExportError, match="choose one of x86-64-v2, x86-64-v3, x86-64-v4"):
        baseline("native")


def test_the_wheel_cache_key_tells_builds_apart() -> None:
    v3, v4 = baseline("x86-64-v3"), baseline("x86-64-v4")
    keys = {
        llama_wheel.cache_key("0.3.36", v3, ""),
        llama_wheel.cache_key("0.3.36", v4, ""),
        llama_wheel.cache_key("0.3.36", v3, "cuda"),
        llama_wheel.cache_key("0.3.37", v3, ""),
    }
    assert len(keys) == 4
    assert "-DGGML_OPENMP=OFF" in llama_wheel.cmake_args(
        v3, ""
    ) and "-DGGML_CUDA=ON" in llama_wheel.cmake_args(v3, "cuda")


def test_gpu_builds_stop_early_without_their_toolkit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setattr(llama_wheel.shutil, "which", lambda name: None)
    with pytest.raises(ExportError, match=r"needs the CUDA toolkit \(nvcc\)"):
        llama_wheel.check_gpu_toolchain("cuda")
    with pytest.raises(ExportError, match="Vulkan headers and the glslc"):
        llama_wheel.check_gpu_toolchain("vulkan")
    toolkit = tmp_path / "cuda"
    (toolkit / "bin").mkdir(parents=True)
    (toolkit / "bin" / "nvcc").write_text("#!/bin/sh\n")
    monkeypatch.setattr(llama_wheel.shutil, "which", lambda name: str(toolkit / "bin" / "nvcc"))
    if not llama_wheel._cublas_found(toolkit / "bin" / "nvcc"):  # none installed system-wide either
        with pytest.raises(ExportError, match="cuBLAS"):
            llama_wheel.check_gpu_toolchain("cuda")
    (toolkit / "lib64").mkdir()
    (toolkit / "lib64" / "libcublas.so.13").write_bytes(b"")
    llama_wheel.check_gpu_toolchain("cuda")  # nothing missing now


def test_a_target_platform_also_accepts_the_locally_built_llama_wheel() -> None:
    assert Target("3.11").pip_args() == ["--python-version", "3.11"]
    args = Target("3.12", ("manylinux_2_28_x86_64",), "x86_64").pip_args()
    platforms = args[3::2]
    assert args[:2] == ["--python-version", "3.12"] and set(args[2::2]) == {"--platform"}
    assert platforms[:2] == ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64"]
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(platforms)
    assert "manylinux_2_29_x86_64" not in platforms and platforms[-1] == "linux_x86_64"
    assert Target("3.11", ("manylinux2014_x86_64",)).pip_args()[3::2] == [
        "manylinux2014_x86_64",
        "linux_x86_64",
    ]
