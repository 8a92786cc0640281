"""Assemble a bundle folder (and optionally its .tar.gz): the one function `inkling bundle` runs.

The folder is written beside OUT under a temporary name and renamed into
place when complete, so that OUT is never a half-written bundle.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from export.bundle import editors, model_files, preflight
from export.bundle.cpu import BASELINES, DEFAULT_BASELINE
from export.bundle.llama_wheel import LlamaWheel, portable_wheel
from export.bundle.wheelhouse import Target, build_wheelhouse, glibc_required
from export.errors import ExportError

HERE = Path(__file__).parent
FORMAT = 1


class BundleError(ExportError):
    pass


@dataclass(frozen=True)
class BundleConfig:
    out: Path
    source: Path
    """The Inkling checkout: its wheel is built from it, and the editor clients come from it."""
    python: str = f"{platform.python_version_tuple()[0]}.{platform.python_version_tuple()[1]}"
    platforms: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    cpu: str = DEFAULT_BASELINE
    gpu: str = ""
    llama_wheel: Path | None = None
    """A llama-cpp-python wheel built elsewhere, used as it is."""
    tuned_model: bool = True
    vscode: bool = True
    archive: bool = False


@dataclass
class BundleResult:
    out: Path
    size_bytes: int
    sums_sha256: str
    llama: LlamaWheel | None
    archive: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


@contextmanager
def _timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    seconds[step] = round(time.monotonic() - started, 1)


def build_bundle(config: BundleConfig, log: Callable[[str], None] = print) -> BundleResult:
    out = config.out.resolve()
    if out.exists() and not (out / preflight.MANIFEST_FILE).is_file() and any(out.iterdir()):
        raise BundleError(f"{out} exists and is not an Inkling bundle: choose a new OUT")
    if not (config.source / "pyproject.toml").is_file() or not (config.source / "editors").is_dir():
        raise BundleError(
            f"{config.source} is not an Inkling checkout (pyproject.toml and editors/ are needed); "
            "pass --source"
        )
    baseline = BASELINES[config.cpu]
    seconds: dict[str, float] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.partial-", dir=out.parent) as scratch:
        stage = Path(scratch) / out.name
        stage.mkdir()
        llama = None
        with _timed(seconds, "llama-cpp-python wheel"):
            if config.llama_wheel is None:
                llama = portable_wheel(baseline, config.gpu, log)
                llama_path = llama.path
            else:
                llama_path = config.llama_wheel
        target = Target(config.python, config.platforms, platform.machine())
        with _timed(seconds, "wheelhouse"):
            requirement = build_wheelhouse(
                config.source, stage / "wheels", llama_path, target, config.extras, log
            )
        with _timed(seconds, "models"):
            models = model_files.tuned_model_files(log) if config.tuned_model else []
            (stage / "models").mkdir()
            for model in models:
                shutil.copy2(model.path, stage / "models" / model.path.name)
        with _timed(seconds, "editors"):
            if config.vscode:
                editors.package_vscode(config.source, stage / "editors" / "vscode", log)
            editors.copy_terminal_editors(config.source, stage / "editors")
        manifest = {
            "format": FORMAT,
            "inkling": requirement.rpartition("==")[2],
            "requirement": requirement,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": _describe_source(config.source),
            "python": config.python,
            "machine": target.machine,
            "platforms": list(config.platforms),
            "glibc": glibc_required(stage / "wheels"),
            "extras": list(config.extras),
            "cpu_baseline": baseline.name if config.llama_wheel is None else "as built elsewhere",
            "cpu_flags": list(baseline.cpu_flags) if config.llama_wheel is None else [],
            "gpu": config.gpu,
            "llama_cmake_args": list(llama.cmake_args) if llama else [],
            "models": [{"file": f"models/{m.path.name}", "sha256": m.sha256, "role": m.role} for m in models],
            "base_model": model_files.base_model_record(),
        }
        (stage / preflight.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        shutil.copy2(HERE / "install.sh", stage / "install.sh")
        (stage / "install.sh").chmod(0o755)
        shutil.copy2(HERE / "preflight.py", stage / "preflight.py")
        _write_readme(stage, manifest, baseline.description)
        with _timed(seconds, "checksums"):
            write_sums(stage)
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    sums_sha256 = preflight.file_sha256(out / preflight.SUMS_FILE)
    result = BundleResult(out, _size(out), sums_sha256, llama, seconds=seconds)
    if config.archive:
        with _timed(seconds, "archive"):
            result.archive = write_archive(out)
    return result


def write_sums(folder: Path) -> Path:
    """SHA256SUMS of every file under `folder`, in `sha256sum -c` format, sorted by path."""
    names = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name not in (preflight.SUMS_FILE, preflight.SUMS_FILE + ".partial")
    )
    lines = [f"{preflight.file_sha256(folder / name)}  {name}\n" for name in names]
    sums = folder / preflight.SUMS_FILE
    partial = sums.with_name(sums.name + ".partial")
    partial.write_text("".join(lines), encoding="utf-8")
    partial.replace(sums)  # a new file: never written through a hard link to another bundle's
    return sums


def write_archive(folder: Path) -> Path:
    """FOLDER.tar.gz beside the folder (level 1: the models and wheels hardly compress)."""
    archive = folder.with_name(folder.name + ".tar.gz")
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
        tar.add(folder, arcname=folder.name)
    partial.replace(archive)
    return archive


def _write_readme(stage: Path, manifest: dict[str, object], cpu_description: str) -> None:
    models = manifest["models"]
    assert isinstance(models, list)
    gpu = manifest["gpu"]
    fields = {
        **{key: str(value) for key, value in manifest.items()},
        "cpu_flags": ", ".join(manifest["cpu_flags"]) or "the instruction sets of its llama.cpp build",  # type: ignore[arg-type]
        "cpu_description": cpu_description,
        "glibc": manifest["glibc"] or "any",
        "gpu_line": (
            f"for the {gpu} build of llama.cpp: the GPU driver and runtime (docs/air-gapped.md#gpu)."
            if gpu
            else "no GPU: llama.cpp runs on the CPU (`gpuLayers` stays 0)."
        ),
        "wheel_count": str(len(list((stage / "wheels").glob("*.whl")))),
        "models_line": ", ".join(f"`{Path(m['file']).name}` ({m['role']})" for m in models)
        or "none: this build of Inkling ships no tuned model",
        "base_sha256": manifest["base_model"]["sha256"],  # type: ignore[index]
    }
    text = (HERE / "README.target.md").read_text(encoding="utf-8").format(**fields)
    (stage / "README.md").write_text(text, encoding="utf-8")


def _describe_source(source: Path) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(source), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return str(source)
    described = result.stdout.strip()
    return f"{source} at {described}" if result.returncode == 0 and described else str(source)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
