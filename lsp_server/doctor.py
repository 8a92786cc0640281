"""`inkling doctor`: is this installation able to complete code, offline, quickly?"""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from lsp_server.errors import InklingError
from lsp_server.settings import Settings, effective_threads

_NETWORK_EVENTS = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "urllib.Request")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [vars(check) for check in self.checks],
            "info": self.info,
        }

    def render(self) -> str:
        lines = [f"{'ok' if c.ok else 'FAIL':>4}  {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines) + ("\n\nall checks passed" if self.ok else "\n\nsome checks failed")


class _NetworkWatch:
    """Counts socket activity through Python's audit hooks while the doctor runs."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.active = False
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.active and event in _NETWORK_EVENTS:
            self.events.append(f"{event}{args[:2]!r}")


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def run_doctor(settings: Settings, *, speed_probe: bool = True) -> DoctorReport:
    from lsp_server.models import resolve_model
    from lsp_server.project_index import ProjectIndex
    from lsp_server.syntax import available_grammars

    report = DoctorReport()
    watch = _NetworkWatch()
    watch.active = True
    report.info.update(
        python=platform.python_version(),
        inkling=_package_version("inkling"),
        llama_cpp_python=_package_version("llama-cpp-python"),
        tree_sitter=_package_version("tree-sitter"),
        pygls=_package_version("pygls"),
    )
    threads = effective_threads(settings)
    report.add("threads", True, f"{threads} llama.cpp threads (setting threads={settings.threads})")

    grammars = available_grammars()
    broken = {lang: why for lang, why in grammars.items() if why}
    report.add(
        "grammars",
        not broken,
        f"{len(grammars) - len(broken)}/{len(grammars)} load: {', '.join(sorted(grammars))}"
        + (f"; broken: {broken}" if broken else ""),
    )

    index = ProjectIndex([Path.cwd()], max_files=2000)
    index.crawl_now()
    files, definitions = index.size
    report.info["index"] = {"files": files, "definitions": definitions, "seconds": index.crawl_seconds}
    report.add(
        "project index",
        True,
        f"{files} files, {definitions} definitions under {Path.cwd()} in {index.crawl_seconds:.1f}s",
    )

    if settings.engine_url:
        _check_engine(report, settings, speed_probe=speed_probe)
        watch.active = False
        host = _engine_host(settings.engine_url)
        elsewhere = [event for event in watch.events if host not in event]
        report.add(
            "offline",
            not elsewhere,
            f"network used only for the engine at {settings.engine_url}"
            if not elsewhere
            else f"network used beyond the engine: {elsewhere[:3]}",
        )
        return report

    try:
        resolved = resolve_model(settings.model_path)
    except InklingError as exc:
        report.add("model", False, str(exc))
        watch.active = False
        return report
    size = resolved.path.stat().st_size
    report.info["model_sha256"] = _sha256(resolved.path)
    report.add("model file", True, f"{resolved.path} ({size / 2**20:.0f} MiB, from {resolved.source})")

    from lsp_server.llama_model import build_features, builds_amx
    from lsp_server.loading import load_engine

    features, gpu_offload = build_features()
    report.info["llama_cpp_features"] = features
    unused = settings.gpu_layers > 0 and not gpu_offload
    report.add(
        "llama.cpp build",
        True,
        f"CPU: {' '.join(features) or 'no SIMD'}; "
        + ("GPU offload built in" if gpu_offload else "CPU only")
        + f" (gpuLayers={settings.gpu_layers}{', ignored' if unused else ''})",
    )
    from lsp_server.pipeline import CompletionRequest, Pipeline

    try:
        engine = load_engine(settings, quiet=True)
    except InklingError as exc:
        report.add("model load", False, str(exc))
        watch.active = False
        return report
    try:
        model = engine.model
        report.add(
            "model load",
            True,
            f"{model.description()}, {model.n_params() / 1e6:.0f}M parameters, "
            f"loaded in {engine.stats.load_seconds:.2f}s, context {model.n_ctx}"
            + (
                f"; LoRA {model.lora.name} ({model.lora.stat().st_size / 2**20:.1f} MiB) applied"
                if model.lora
                else ""
            )
            + ("; AMX build: weights in plain CPU buffers (llama.cpp#20824)" if builds_amx() else ""),
        )
        pipeline = Pipeline(engine)
        template = pipeline.template
        fim = model.fim_token_ids()
        report.add(
            "prompt template",
            True,
            f"{template.family} ({template.order})"
            + (f"; FIM token ids {fim}" if fim else "; no FIM tokens: prefix-only prompts"),
        )
        if speed_probe:
            report.info["speed"] = _speed_probe(engine)
            speed = report.info["speed"]
            report.add(
                "speed",
                True,
                f"prompt {speed['prompt_tokens_per_s']:.0f} tok/s, "
                f"generation {speed['generate_tokens_per_s']:.0f} tok/s",
            )
        sample = "def add(a, b):\n    return "
        started = time.perf_counter()
        completion = pipeline.complete(CompletionRequest(sample, len(sample), "python"), settings)
        report.add(
            "completion",
            bool(completion.text),
            f"{sample.strip()!r} -> {completion.text!r} in {(time.perf_counter() - started) * 1000:.0f} ms",
        )
    finally:
        engine.close()
    watch.active = False
    report.add(
        "offline",
        not watch.events,
        "no network access attempted" if not watch.events else f"network used: {watch.events[:3]}",
    )
    return report


def _speed_probe(engine: Any) -> dict[str, float]:
    def probe(model: Any) -> dict[str, float]:
        text = "import os\n" + "".join(f"value_{i} = compute({i}, 'x')\n" for i in range(60))
        tokens = model.tokenize(text, add_bos=True)[: model.n_batch * 2]
        model.kv_clear()
        started = time.perf_counter()
        for start in range(0, len(tokens), model.n_batch):
            model.decode(tokens[start : start + model.n_batch], start)
        prompt_s = time.perf_counter() - started
        position = len(tokens)
        started = time.perf_counter()
        for _ in range(32):
            token = int(model.last_logits().argmax())
            model.decode([token], position)
            position += 1
        generate_s = time.perf_counter() - started
        model.kv_clear()
        return {
            "prompt_tokens": float(len(tokens)),
            "prompt_tokens_per_s": len(tokens) / prompt_s,
            "generate_tokens_per_s": 32 / generate_s,
        }

    result: dict[str, float] = engine.run_on_engine_thread(probe).result()
    return result


def _sha256(path: Any) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _engine_host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or url


def _check_engine(report: DoctorReport, settings: Settings, *, speed_probe: bool) -> None:
    """`engineUrl`: reachable, what it serves, Inkling's tokenizer and prompt format for it,
    its speed seen from here, and one completion through it."""
    from lsp_server.generator import CancelToken, GenerationRequest
    from lsp_server.pipeline import CompletionRequest, Pipeline
    from lsp_server.remote import detect, open_engine

    try:
        started = time.perf_counter()
        _, info = detect(settings.engine_url)
        answered_ms = (time.perf_counter() - started) * 1000
    except InklingError as exc:
        report.add("engine", False, str(exc))
        return
    report.info["engine"] = vars(info) | {"probe_ms": round(answered_ms, 1)}
    report.add(
        "engine",
        True,
        f"{info.kind} server at {info.url} answered in {answered_ms:.0f} ms: model {info.model}, "
        f"context {info.n_ctx or 'not said'}" + (f" per slot, {info.slots} slots" if info.slots else ""),
    )
    try:
        engine = open_engine(settings)
    except InklingError as exc:
        report.add("engine tokenizer", False, str(exc))
        return
    try:
        pipeline = Pipeline(engine)
        template = pipeline.template
        report.add(
            "engine tokenizer",
            True,
            f"{engine.vocab_source}; prompt template {template.family} ({template.order})",
        )
        if speed_probe:
            model = engine.model
            text = "import os\n" + "".join(
                f"value_{i} = compute({i}, 'x{time.time_ns()}')\n" for i in range(40)
            )
            tokens = model.tokenize(text, add_bos=model.add_bos)[:512]
            probe = GenerationRequest(prompt=tokens, max_tokens=32, time_budget_s=60.0)
            cold = engine.generate(probe, CancelToken())
            warm = engine.generate(probe, CancelToken())
            speed = {
                "prompt_tokens": len(tokens),
                "first_token_ms_cold": round(cold.prompt_ms, 1),
                "first_token_ms_cached": round(warm.prompt_ms, 1),
                "generate_tokens_per_s": round(
                    max(0, warm.generated_tokens - 1) / max(warm.generate_ms / 1000, 1e-6), 1
                ),
            }
            report.info["engine_speed"] = speed
            report.add(
                "engine speed",
                True,
                f"first token after {len(tokens)} new prompt tokens {cold.prompt_ms:.0f} ms, "
                f"after the same prompt again {warm.prompt_ms:.0f} ms (the slot's cache); "
                f"generation {speed['generate_tokens_per_s']:.0f} tok/s (seen from here)",
            )
        sample = "def add(a, b):\n    return "
        started = time.perf_counter()
        completion = pipeline.complete(CompletionRequest(sample, len(sample), "python"), settings)
        report.add(
            "completion",
            bool(completion.text),
            f"{sample.strip()!r} -> {completion.text!r} in {(time.perf_counter() - started) * 1000:.0f} ms "
            "through the engine",
        )
    except InklingError as exc:
        report.add("completion", False, str(exc))
    finally:
        engine.close()
