"""`inkling bench-peer`: Inkling against llama.cpp's own `llama-server`, side by side, on
the same held-out holes sent the way llama.vim sends them.

Both servers load the same model file (Inkling's tuned default and its LoRA
file unless told otherwise) with 2 threads; `llama-server` runs as a new
llama.vim user would start it (one slot, `--cache-reuse 256`), Inkling as
`inkling serve --http` with its defaults. For each hole (`tested_holes`: a
missing line in a standard-library function that CPython's tests cover) the
same llama.vim `/infill` request goes to both, one after the other, the order
alternating from hole to hole; nothing else runs on them meanwhile.

Before each request both servers are let go idle (Inkling evaluates a cold
prompt whole in the background after answering from part of it), so that no
request shares the cores with the other server's leftover work.

Each answer becomes the line llama.vim would leave in the buffer (its
`s:fim_render` and accept-line rules, applied alike to both), then is scored:

* exact match      - that line is the original line (trailing blanks aside;
                     indentation counts: the line as it stands in the file);
* code match       - the same with leading whitespace ignored;
* pass             - the module's tests pass with that line in place
                     (`tested_holes.passes`; the exact line passes unrun);
* parses           - the filled file has no syntax error (tree-sitter);
* empty            - nothing to accept (no text, or text llama.vim drops as a
                     repeat of what follows);
* latency          - from sending the request to the whole answer, as the
                     editor waits for it (a fresh connection per request,
                     as llama.vim's curl makes).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lsp_server.bench.http_load import free_port
from lsp_server.bench.report import quantile
from lsp_server.evaluation.metrics import normalize, parses_cleanly
from lsp_server.evaluation.tested_holes import TestedHole, passes, tested_holes
from lsp_server.languages import language_for_id
from lsp_server.lsp_client import cpu_seconds, rss_kib

INKLING = "inkling"
PEER = "llama-server"
LLAMA_VIM = {
    "n_prefix": 256,
    "n_suffix": 64,
    "n_predict": 128,
    "t_max_prompt_ms": 500,
    "t_max_predict_ms": 1000,
}
"""llama.vim's defaults (`s:default_config`)."""
RESPONSE_FIELDS = [
    "content",
    "timings/prompt_n",
    "timings/prompt_ms",
    "timings/prompt_per_token_ms",
    "timings/prompt_per_second",
    "timings/predicted_n",
    "timings/predicted_ms",
    "timings/predicted_per_token_ms",
    "timings/predicted_per_second",
    "truncated",
    "tokens_cached",
]
WARM_UP = {"input_prefix": "import os\n\n\ndef home():\n", "input_suffix": "\n", "prompt": "    return "}
"""Nothing any hole has: neither server's cache holds a hole's prompt before it is asked."""
IDLE_PROBE_S = 0.25
IDLE_SHARE = 0.1
"""A server is idle when it used under a tenth of a core over a probe."""
REQUEST_TIMEOUT_S = 600.0
"""A cold 2,000-token prompt takes llama-server tens of seconds on a busy 2-core machine."""
TARGET_POINTS = 5.0
TARGET_P50_RATIO = 1.15


# -- llama.vim's side ------------------------------------------------------------------------


def _lines(hole: TestedHole) -> tuple[list[str], int, int]:
    """The buffer's lines (the hole's line holds its indentation only, as after Enter),
    the cursor line (0-based) and column."""
    lines = hole.task.text.split("\n")
    return lines, hole.task.line, hole.task.column


def llama_vim_request(hole: TestedHole, extra: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The body of llama.vim's `llama#fim` for the cursor of `hole` (its `/infill` request)."""
    lines, y, x = _lines(hole)
    line = lines[y]
    prefix, suffix = line[:x], line[x:]
    indent = len(prefix) - len(prefix.lstrip(" \t"))
    if not line.strip():  # a line of blanks: llama.vim starts from the beginning of the line
        prefix, suffix, indent = "", "", 0
    before = lines[max(0, y - LLAMA_VIM["n_prefix"]) : y]
    after = lines[y + 1 : y + 1 + LLAMA_VIM["n_suffix"]]
    return {
        "input_prefix": "\n".join(before) + "\n",
        "input_suffix": suffix + "\n" + "\n".join(after) + "\n",
        "input_extra": list(extra),
        "prompt": prefix,
        "n_predict": LLAMA_VIM["n_predict"],
        "n_indent": indent,
        "top_k": 40,
        "top_p": 0.90,
        "samplers": ["top_k", "top_p", "infill"],
        "stream": False,
        "cache_prompt": True,
        "t_max_prompt_ms": LLAMA_VIM["t_max_prompt_ms"],
        "t_max_predict_ms": LLAMA_VIM["t_max_predict_ms"],
        "response_fields": RESPONSE_FIELDS,
    }


def llama_vim_line(hole: TestedHole, content: str) -> str:
    """The cursor line llama.vim leaves after its accept-line key (Shift-Tab) on `content`;
    '' when it offers nothing (`s:fim_render`: empty, or a repeat of the text below)."""
    lines, y, x = _lines(hole)
    parts = content.split("\n")
    while parts and parts[-1] == "":
        parts.pop()
    if not parts:
        return ""
    line_cur = lines[y]
    if not line_cur.strip():  # trim the suggestion's leading blanks up to the line's
        lead = min(len(parts[0]) - len(parts[0].lstrip(" \t")), len(line_cur))
        line_cur, parts[0] = parts[0][:lead], parts[0][lead:]
    line_prefix, line_suffix = line_cur[:x], line_cur[x:]
    if len(parts) == 1 and parts[0] == "":
        return ""
    if len(parts) > 1 and parts[0] == "" and parts[1:] == lines[y + 1 : y + len(parts)]:
        return ""
    if len(parts) == 1 and parts[0] == line_suffix:
        return ""
    below = y + 1
    while below < len(lines) - 1 and not lines[below].strip():
        below += 1
    if below < len(lines) and line_prefix + parts[0] == lines[below]:
        if len(parts) == 1:
            return ""
        following = lines[below + 1] if below + 1 < len(lines) else ""
        if len(parts) == 2 and parts[-1] == following[: len(parts[-1])]:
            return ""
        if len(parts) > 2 and parts[1:] == lines[below + 1 : below + len(parts)]:
            return ""
    if len(parts) == 1:
        parts[0] += line_suffix
    return line_cur[:x] + parts[0]


# -- the servers -------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str] | None = None) -> None:
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def wait_ready(self, seconds: float = 300) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} was not ready in {seconds:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (user + system)."""
        if self.process is None:
            return 0.0
        try:
            return cpu_seconds(self.process.pid)
        except (OSError, IndexError):
            return 0.0

    def settle(self, seconds: float = 120) -> None:
        """Wait until the server has stopped working (Inkling evaluates a cold prompt whole in
        the background after answering): the next request, to either server, must not share
        the cores with it."""
        deadline = time.monotonic() + seconds
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(IDLE_PROBE_S)
            now = self.cpu_seconds()
            if now - before < IDLE_PROBE_S * IDLE_SHARE:
                return
            before = now

    def rss_mib(self) -> float:
        if self.process is None:
            return 0.0
        try:
            return rss_kib(self.process.pid)[0] / 1024
        except OSError:
            return 0.0


def infill(
    server: Server, body: dict[str, Any], timeout: float = REQUEST_TIMEOUT_S
) -> tuple[dict[str, Any], float]:
    """POST /infill on a fresh connection; the answer and the wall time in ms."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        f"{server.url}/infill", data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer: dict[str, Any] = json.load(response)
    return answer, (time.perf_counter() - started) * 1000


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    line: str
    latency_ms: float
    content: str
    exact: bool = False
    code_match: bool = False
    passed: bool = False
    parses: bool = False
    timings: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.line.strip()


@dataclass
class Config:
    model: Path
    lora: Path | None
    llama_server: Path
    holes: int = 100
    seed: int = 0
    threads: int = 2
    context: int = 4096
    inkling_args: tuple[str, ...] = ()
    peer_args: tuple[str, ...] = ()
    work: Path | None = None


def peer_command(config: Config, port: int) -> list[str]:
    command = [str(config.llama_server), "--model", str(config.model)]
    if config.lora is not None:
        command += ["--lora", str(config.lora)]
    command += ["--threads", str(config.threads), "--threads-batch", str(config.threads)]
    command += ["--parallel", "1", "--cache-reuse", "256", "--ctx-size", str(config.context)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--seed", "1", "--no-webui"]
    return [*command, *config.peer_args]


def inkling_command(config: Config, port: int) -> list[str]:
    command = [sys.executable, "-m", "lsp_server", "serve", "--http", f"127.0.0.1:{port}", "--http-only"]
    command += ["--model", str(config.model), "--threads", str(config.threads)]
    command += ["--context-size", str(config.context), "--http-rate-limit", "0"]
    return [*command, *config.inkling_args]


def run(config: Config, progress: Callable[[str], None] = print) -> dict[str, Any]:
    holes = tested_holes(config.holes, seed=config.seed, progress=progress)
    if not holes:
        raise RuntimeError("no holes were found (is the Python standard library's test suite installed?)")
    progress(f"{len(holes)} holes; starting both servers")
    work = Path(config.work or tempfile.mkdtemp(prefix="inkling-bench-peer-"))
    work.mkdir(parents=True, exist_ok=True)
    ours, theirs = free_port(), free_port()
    servers = {
        INKLING: Server(INKLING, inkling_command(config, ours), ours, work / "inkling.log"),
        PEER: Server(PEER, peer_command(config, theirs), theirs, work / "llama-server.log"),
    }
    state = work / "state"  # Inkling's keys and usage: not the user's
    results: dict[str, list[Outcome]] = {INKLING: [], PEER: []}
    load = os.getloadavg()
    rss: dict[str, float] = {}
    try:
        servers[INKLING].start({**os.environ, "INKLING_STATE": str(state)})
        servers[PEER].start()
        for server in servers.values():
            server.wait_ready()
        for server in servers.values():  # the first request after a load: not timed
            infill(server, {**llama_vim_request(holes[0]), **WARM_UP})
        for index, hole in enumerate(holes):
            body = llama_vim_request(hole)
            order = [INKLING, PEER] if index % 2 == 0 else [PEER, INKLING]
            for name in order:
                for server in servers.values():
                    server.settle()
                answer, ms = infill(servers[name], body)
                content = str(answer.get("content", ""))
                timings = {
                    k: v for k, v in answer.items() if k.startswith("timings/") or k == "tokens_cached"
                }
                results[name].append(Outcome(llama_vim_line(hole, content), ms, content, timings=timings))
            if (index + 1) % 10 == 0:
                progress(f"{index + 1}/{len(holes)} holes asked")
        rss = {name: server.rss_mib() for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    progress("scoring (the tests run for each answer that is not the original line)")
    _score(holes, results)
    return _report(config, holes, results, servers, load, rss)


def _score(holes: Sequence[TestedHole], results: dict[str, list[Outcome]]) -> None:
    spec = language_for_id("python")
    verdicts: dict[tuple[str, str], bool] = {}  # two servers with the same line: one run
    for index, hole in enumerate(holes):
        for outcomes in results.values():
            outcome = outcomes[index]
            expected = hole.expected_line
            outcome.exact = not outcome.empty and normalize(outcome.line) == normalize(expected)
            outcome.code_match = not outcome.empty and outcome.line.strip() == expected.strip()
            if outcome.empty:
                continue
            filled = hole.filled(outcome.line)
            outcome.parses = spec is not None and parses_cleanly(spec, filled, "", "")
            key = (hole.task.id, normalize(outcome.line))
            if key not in verdicts:
                verdicts[key] = passes(hole, outcome.line)
            outcome.passed = verdicts[key]


def _percent(values: Sequence[bool]) -> float:
    return 100.0 * sum(values) / len(values) if values else 0.0


def summary(outcomes: Sequence[Outcome]) -> dict[str, float]:
    latencies = [outcome.latency_ms for outcome in outcomes]
    return {
        "exact_match": _percent([o.exact for o in outcomes]),
        "code_match": _percent([o.code_match for o in outcomes]),
        "pass_rate": _percent([o.passed for o in outcomes]),
        "parses": _percent([o.parses for o in outcomes]),
        "empty": _percent([o.empty for o in outcomes]),
        "p50_ms": statistics.median(latencies) if latencies else 0.0,
        "p90_ms": quantile(latencies, 0.9) if latencies else 0.0,
        "mean_ms": statistics.fmean(latencies) if latencies else 0.0,
    }


def _report(
    config: Config,
    holes: Sequence[TestedHole],
    results: dict[str, list[Outcome]],
    servers: dict[str, Server],
    load: tuple[float, float, float],
    rss: dict[str, float],
) -> dict[str, Any]:
    ours, peer = summary(results[INKLING]), summary(results[PEER])
    ratio = ours["p50_ms"] / peer["p50_ms"] if peer["p50_ms"] else 0.0
    per_hole = [
        {
            "id": hole.task.id,
            "module": hole.module,
            "tests": hole.tests,
            "expected": hole.expected_line,
            **{
                name: {k: v for k, v in asdict(outcomes[index]).items() if k != "content"}
                | {"content": outcomes[index].content}
                for name, outcomes in results.items()
            },
        }
        for index, hole in enumerate(holes)
    ]
    return {
        "holes": len(holes),
        "seed": config.seed,
        INKLING: ours,
        PEER: peer,
        "p50_ratio": ratio,
        "targets": {
            "exact_match_points": ours["exact_match"] - peer["exact_match"],
            "pass_rate_points": ours["pass_rate"] - peer["pass_rate"],
            "p50_ratio": ratio,
            "met": ours["exact_match"] - peer["exact_match"] >= TARGET_POINTS
            and ours["pass_rate"] - peer["pass_rate"] >= TARGET_POINTS
            and 0 < ratio <= TARGET_P50_RATIO,
        },
        "commands": {name: server.command for name, server in servers.items()},
        "rss_mib": rss,
        "load_average_before": load,
        "load_average_after": os.getloadavg(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "request": {k: v for k, v in llama_vim_request(holes[0]).items() if not k.startswith("input")},
        "per_hole": per_hole,
    }


def render(report: dict[str, Any]) -> str:
    ours, peer = report[INKLING], report[PEER]
    rows = [
        ("exact match (the line as it stands)", "exact_match", "%", f"+{TARGET_POINTS:.0f} points"),
        ("pass rate (the module's tests)", "pass_rate", "%", f"+{TARGET_POINTS:.0f} points"),
        ("code match (indentation aside)", "code_match", "%", ""),
        ("filled file parses", "parses", "%", ""),
        ("empty answers", "empty", "%", ""),
        ("latency p50", "p50_ms", "ms", f"<= {TARGET_P50_RATIO}x the peer"),
        ("latency p90", "p90_ms", "ms", ""),
    ]
    lines = [
        f"{report['holes']} held-out single-line holes (functions with tests), llama.vim's /infill request",
        "",
        "| | Inkling | llama-server | difference | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for label, key, unit, target in rows:
        a, b = ours[key], peer[key]
        if unit == "%":
            lines.append(f"| {label} | {a:.1f}% | {b:.1f}% | {a - b:+.1f} points | {target} |")
        else:
            ratio = a / b if b else 0.0
            lines.append(f"| {label} | {a:.0f} ms | {b:.0f} ms | {ratio:.2f}x | {target} |")
    targets = report["targets"]
    lines += [
        "",
        f"targets met: {'yes' if targets['met'] else 'no'}"
        f" (exact {targets['exact_match_points']:+.1f} points,"
        f" pass {targets['pass_rate_points']:+.1f} points,"
        f" p50 {targets['p50_ratio']:.2f}x); load average before/after"
        f" {report['load_average_before'][0]:.2f}/{report['load_average_after'][0]:.2f}",
    ]
    return "\n".join(lines)
