"""The bundle's wheelhouse: Inkling, every runtime dependency and pip itself, as wheels.

Inkling's own wheel is built from the checkout; everything else comes from
the package index through `pip download --only-binary=:all:` for the target's
Python version and platform (pip's `--python-version` and `--platform`; by
default the running interpreter's), with llama-cpp-python given as the
portable wheel's file so that pip takes it instead of any other build.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import requires, version
from pathlib import Path

from export.bundle.llama_wheel import glibc_needed
from export.errors import ExportError

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


class WheelhouseError(ExportError):
    pass


@dataclass(frozen=True)
class Target:
    python: str
    """'3.11'."""
    platforms: tuple[str, ...] = ()
    """pip platform tags; empty: this machine's."""
    machine: str = "x86_64"

    def pip_args(self) -> list[str]:
        args = ["--python-version", self.python]
        if self.platforms:
            # The portable llama-cpp-python wheel is built here: its tag is linux_<machine>.
            tags = [tag for given in self.platforms for tag in older_manylinux(given)]
            for tag in dict.fromkeys([*tags, f"linux_{self.machine}"]):
                args += ["--platform", tag]
        return args


def older_manylinux(tag: str) -> list[str]:
    """`tag` and the older manylinux tags a system with that glibc also runs (pip expands only
    manylinux2014 and manylinux2010 itself, not manylinux_2_28)."""
    match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", tag)
    if not match:
        return [tag]
    newest, arch = int(match[1]), match[2]
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(newest, 4, -1)]
    aliases = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{alias}_{arch}" for minor, alias in aliases.items() if minor <= newest]


def build_wheelhouse(
    source: Path,
    wheels: Path,
    llama_wheel: Path,
    target: Target,
    extras: tuple[str, ...],
    log: Callable[[str], None] = print,
) -> str:
    """Fill `wheels`; returns the requirement install.sh installs ('inkling[train]==0.1.0')."""
    wheels.mkdir(parents=True, exist_ok=True)
    log(f"building Inkling's wheel from {source}")
    with tempfile.TemporaryDirectory() as scratch:
        # From a copy: setuptools reuses ./build, where files deleted from the checkout live on.
        _pip("wheel", "--no-deps", "--quiet", "-w", str(wheels), str(_clean_copy(source, Path(scratch))))
    inkling = _single(wheels, "inkling-*.whl")
    inkling_version = inkling.name.split("-")[1]
    extra = f"[{','.join(extras)}]" if extras else ""
    with_extras = f" with {', '.join(extras)}" if extras else ""
    log(f"downloading wheels of every dependency{with_extras} (Python {target.python})")
    with tempfile.TemporaryDirectory() as scratch:
        _pip(
            "download",
            "--quiet",
            "--only-binary=:all:",
            "-d",
            str(wheels),
            *target.pip_args(),
            *(_cpu_torch_args(Path(scratch), log) if "train" in extras else []),
            f"{inkling}{extra}",
            str(llama_wheel),
            f"pip=={version('pip')}",
        )
    return f"inkling{extra}=={inkling_version}"


def _cpu_torch_args(scratch: Path, log: Callable[[str], None]) -> list[str]:
    """Only the CPU build of the pinned torch (an index's plain `torch` on Linux is the multi-GB
    CUDA one): a constraint on its `+cpu` release, and PyTorch's CPU index when reachable."""
    pins = [r for r in requires("inkling") or [] if re.match(r"torch\s*==", r)]
    if not pins:
        raise WheelhouseError("the installed Inkling pins no torch version for the train extra")
    pinned = re.split(r"[;\s]", pins[0].split("==", 1)[1].strip())[0]
    constraints = scratch / "cpu-torch.txt"
    constraints.write_text(f"torch=={pinned}+cpu\n", encoding="utf-8")
    args = ["-c", str(constraints)]
    if _reachable(TORCH_CPU_INDEX):
        args += ["--extra-index-url", TORCH_CPU_INDEX]
    else:
        log(f"{TORCH_CPU_INDEX} is out of reach: torch {pinned}+cpu must come from pip's configured indexes")
    return args


def _reachable(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=5):
            return True
    except OSError:
        return False


def _clean_copy(source: Path, scratch: Path) -> Path:
    """The files of `source` that git tracks or would track (ignored ones, such as build/, .venv/
    and node_modules/, left out); the whole folder when it is not a git checkout."""
    copy = scratch / "source"
    listing = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=False,
    )
    if listing.returncode != 0:
        ignore = shutil.ignore_patterns("build", ".venv", "node_modules", "*.egg-info", ".git")
        shutil.copytree(source, copy, ignore=ignore)
        return copy
    for name in filter(None, listing.stdout.decode().split("\0")):
        if (source / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, copy / name)
    return copy


def _single(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise WheelhouseError(f"expected one {pattern} in {folder}, found {[p.name for p in found]}")
    return found[0]


def _pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise WheelhouseError(
            f"`pip {args[0]}` failed (is the package index reachable?):\n"
            + (result.stdout + result.stderr)[-3000:]
        )


_MANYLINUX_ALIASES = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def wheel_glibc(wheel: Path) -> tuple[int, int] | None:
    """The oldest glibc that can run `wheel` (None: no compiled code, or not for glibc)."""
    platform_tags = wheel.name.removesuffix(".whl").split("-")[-1].split(".")
    needs: list[tuple[int, int]] = []
    for tag in platform_tags:
        if match := re.fullmatch(r"manylinux_(\d+)_(\d+)_\w+", tag):
            needs.append((int(match[1]), int(match[2])))
        elif (alias := tag.split("_")[0]) in _MANYLINUX_ALIASES:
            needs.append(_MANYLINUX_ALIASES[alias])
        elif tag.startswith("linux_") and (found := glibc_needed(wheel)):
            major, minor = found.split(".")
            needs.append((int(major), int(minor)))
    return min(needs) if needs else None  # any one of a wheel's tags is enough


def glibc_required(wheels: Path) -> str:
    """The newest glibc any wheel of the folder needs ('' if none needs one)."""
    needs = [need for wheel in wheels.glob("*.whl") if (need := wheel_glibc(wheel))]
    return "{}.{}".format(*max(needs)) if needs else ""
