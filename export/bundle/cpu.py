"""The CPU instruction sets a portable llama.cpp build may assume.

A wheel compiled with `-march=native` on a new CPU dies with SIGILL on an older
one. The bundle builds llama.cpp for a named x86-64 microarchitecture level
instead (`GGML_NATIVE=OFF` plus ggml's own instruction-set switches), records
the CPU flags that level needs, and `install.sh` compares them with the
target's `/proc/cpuinfo` before it installs anything (`preflight.py`).

llama.cpp's alternative, every CPU variant with runtime dispatch
(`GGML_BACKEND_DL` + `GGML_CPU_ALL_VARIANTS`), is not offered: llama-cpp-python
0.3.36 installs only a `ggml-cpu` target into its wheel (the variants,
`ggml-cpu-haswell` ..., would be left out) and its loader does not search the
wheel's library folder for backends (ggml looks beside the executable and in
the working directory), and it compiles the CPU backend 14 times.
"""

from __future__ import annotations

from dataclasses import dataclass

from export.errors import ExportError

_ISA_SWITCHES = ("SSE42", "AVX", "AVX2", "FMA", "F16C", "BMI2", "AVX512", "AVX_VNNI")


@dataclass(frozen=True)
class CpuBaseline:
    name: str
    enabled: tuple[str, ...]
    """ggml's instruction-set switches turned on (the others are turned off)."""
    cpu_flags: tuple[str, ...]
    """What the target's /proc/cpuinfo must list."""
    description: str

    def cmake_args(self) -> list[str]:
        switches = [f"-DGGML_{name}={'ON' if name in self.enabled else 'OFF'}" for name in _ISA_SWITCHES]
        # No -march=native; no AMX (its kernels crash on some machines: llama.cpp#20824).
        return ["-DGGML_NATIVE=OFF", *switches, "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF"]


BASELINES = {
    baseline.name: baseline
    for baseline in (
        CpuBaseline(
            "x86-64-v2",
            ("SSE42",),
            ("sse4_2", "ssse3", "popcnt"),
            "SSE4.2: nearly every x86-64 CPU since 2009 (Nehalem, Bulldozer); slowest",
        ),
        CpuBaseline(
            "x86-64-v3",
            ("SSE42", "AVX", "AVX2", "FMA", "F16C", "BMI2"),
            ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"),
            "AVX2 + FMA: Intel Haswell (2013) and later, AMD Zen (2017) and later",
        ),
        CpuBaseline(
            "x86-64-v4",
            ("SSE42", "AVX", "AVX2", "FMA", "F16C", "BMI2", "AVX512"),
            (
                "sse4_2",
                "avx",
                "avx2",
                "fma",
                "f16c",
                "bmi2",
                "avx512f",
                "avx512cd",
                "avx512vl",
                "avx512dq",
                "avx512bw",
            ),
            "AVX-512: Intel Skylake-SP (2017) and later servers, AMD Zen 4 (2022) and later",
        ),
    )
}
DEFAULT_BASELINE = "x86-64-v3"


def baseline(name: str) -> CpuBaseline:
    try:
        return BASELINES[name]
    except KeyError:
        raise ExportError(f"unknown CPU baseline {name!r}: choose one of {', '.join(BASELINES)}") from None
