"""`inkling bench-http`: several people typing at once into one `inkling serve --http`.

Each simulated user has an API key of their own and types a function of a
different standard-library file, one key every `--interval-ms`, sending
llama.vim's `/infill` request at every key. A request still unanswered at the
next key is abandoned (the connection closed, as llama.vim stops its curl
job), so each user has at most one request in flight, and the server cancels
the abandoned one. Reported per user and over all: latency of the answered
requests (p50, p90), the share answered before the next key, errors, and the
server's resident memory before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lsp_server.bench.report import quantile

LINES_BEFORE = 32
LINES_AFTER = 8


def register(commands: Any) -> None:
    from lsp_server.cli import add_setting_flags

    parser = commands.add_parser(
        "bench-http",
        help="several users typing at once into `inkling serve --http` (/infill); latency, errors, memory",
    )
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--keys", type=int, default=80, help="keys each user types (default 80)")
    parser.add_argument("--interval-ms", type=int, default=150, help="time between keys (default 150)")
    parser.add_argument("--out", type=Path, default=Path("inkling-bench-http.json"))
    add_setting_flags(parser)
    parser.set_defaults(func=cmd_bench_http)


@dataclass
class UserResult:
    name: str
    source: str
    latencies_ms: list[float] = field(default_factory=list)
    """Requests answered before the next key."""
    pause_ms: float | None = None
    """The last key's request, which the user waits for (None: not answered in 30 s)."""
    late: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.latencies_ms) + self.late + len(self.errors) + (self.pause_ms is not None)


def cmd_bench_http(args: argparse.Namespace) -> int:
    from lsp_server.http.keys import FILE_NAME, KeyStore

    state = Path(tempfile.mkdtemp(prefix="inkling-bench-http-"))
    store = KeyStore(state / FILE_NAME)
    keys = {f"user{n + 1}": store.add(f"user{n + 1}") for n in range(args.users)}
    port = free_port()
    flags = _setting_flags(args)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lsp_server",
            "serve",
            "--http",
            f"127.0.0.1:{port}",
            "--http-only",
            "--http-rate-limit",
            "0",
            *flags,
        ],
        env={**os.environ, "INKLING_STATE": str(state)},
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(port, server)
        sources = _sources(args.users)
        warm = asyncio.run(_post(port, "/infill", _infill(sources[0][1], 0), keys["user1"]))
        if warm[0] != 200:
            raise RuntimeError(f"the warm-up request failed: {warm}")
        rss_before = _rss_kib(server.pid)
        started = time.perf_counter()
        results = asyncio.run(_run_users(port, keys, sources, args.keys, args.interval_ms / 1000))
        wall = time.perf_counter() - started
        rss_after = _rss_kib(server.pid)
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(state, ignore_errors=True)  # the users' keys
    report = _report(results, args, rss_before, rss_after, wall)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(_table(report))
    print(f"\nJSON: {args.out}")
    return 0 if report["all"]["errors"] == 0 else 1


async def _run_users(
    port: int, keys: dict[str, str], sources: list[tuple[str, str]], count: int, interval: float
) -> list[UserResult]:
    tasks = [
        _user(port, name, key, sources[index], count, interval, index * interval / len(keys))
        for index, (name, key) in enumerate(keys.items())
    ]
    return list(await asyncio.gather(*tasks))


async def _user(
    port: int, name: str, key: str, source: tuple[str, str], count: int, interval: float, offset: float
) -> UserResult:
    path, text = source
    result = UserResult(name, path)
    start = _typing_start(text)
    await asyncio.sleep(offset)  # users do not press keys in step
    pending: asyncio.Task[tuple[int, dict[str, Any]]] | None = None
    sent_at = 0.0
    for typed in range(1, count + 1):
        if pending is not None:
            if pending.done():
                _collect(result, pending, sent_at)
            else:
                pending.cancel()
                result.late += 1
        sent_at = time.perf_counter()
        pending = asyncio.ensure_future(_post(port, "/infill", _infill(text, start + typed), key))
        next_key = sent_at + interval
        await asyncio.wait({pending}, timeout=max(0.0, next_key - time.perf_counter()))
        await asyncio.sleep(max(0.0, next_key - time.perf_counter()))
    if pending is not None:
        await asyncio.wait({pending}, timeout=30)
        if pending.done():
            answered = UserResult(name, path)
            _collect(answered, pending, sent_at)
            result.errors += answered.errors
            result.pause_ms = answered.latencies_ms[0] if answered.latencies_ms else None
        else:
            pending.cancel()
            result.late += 1
    return result


def _collect(result: UserResult, task: asyncio.Task[tuple[int, dict[str, Any]]], sent_at: float) -> None:
    try:
        status, body = task.result()
    except Exception as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}")
        return
    if status != 200:
        result.errors.append(f"HTTP {status}: {body}")
        return
    result.latencies_ms.append(body["_received_at"] * 1000 - sent_at * 1000)


def _infill(text: str, cursor: int) -> dict[str, Any]:
    """llama.vim's request for a cursor in `text` (the text typed so far is `text[:cursor]`,
    what follows the cursor line is the rest of the file)."""
    before, after = text[:cursor], text[cursor:]
    line_start = before.rfind("\n") + 1
    rest_of_line = after.split("\n", 1)
    lines_before = before[:line_start].split("\n")[-LINES_BEFORE - 1 :]
    lines_after = rest_of_line[1].split("\n")[:LINES_AFTER] if len(rest_of_line) > 1 else []
    return {
        "id_slot": 0,
        "input_prefix": "\n".join(lines_before),
        "prompt": before[line_start:],
        "input_suffix": rest_of_line[0] + "\n" + "\n".join(lines_after) + "\n",
        "input_extra": [],
        "n_predict": 128,
        "stop": [],
        "cache_prompt": True,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 1000,
        "samplers": ["top_k", "top_p", "infill"],
    }


async def _post(port: int, path: str, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    """One request on its own connection; cancelling it closes the connection (the server
    then cancels the work)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = json.loads(await reader.readexactly(length)) if length else {}
        payload["_received_at"] = time.perf_counter()
        return status, payload
    finally:
        writer.close()


def _sources(users: int) -> list[tuple[str, str]]:
    """A different standard-library module per user, each with a function body to type."""
    import sysconfig

    library = Path(sysconfig.get_paths()["stdlib"])
    names = [
        "textwrap",
        "shlex",
        "fnmatch",
        "glob",
        "calendar",
        "difflib",
        "csv",
        "heapq",
        "bisect",
        "colorsys",
    ]
    found = []
    for name in names:
        path = library / f"{name}.py"
        if path.exists() and "\n    def " in path.read_text(encoding="utf-8"):
            found.append((str(path), path.read_text(encoding="utf-8")))
    if not found:
        raise RuntimeError(f"no standard-library sources under {library}")
    return [found[n % len(found)] for n in range(users)]


def _typing_start(text: str) -> int:
    """Where typing starts: the start of the body of a method in the middle of the file."""
    middle = text.find("\n    def ", len(text) // 3)
    body = text.find(":\n", middle if middle >= 0 else 0)
    return body + 2 if body >= 0 else len(text) // 2


def _report(
    results: list[UserResult], args: argparse.Namespace, rss_before: int, rss_after: int, wall: float
) -> dict[str, Any]:
    every = [ms for result in results for ms in result.latencies_ms]
    sent = sum(result.sent for result in results)
    return {
        "users": args.users,
        "keys_per_user": args.keys,
        "interval_ms": args.interval_ms,
        "wall_s": wall,
        "rss_kib": {"before": rss_before, "after": rss_after},
        "all": _summary(every, sent, sum(r.late for r in results), sum(len(r.errors) for r in results)),
        "per_user": [
            {
                "name": result.name,
                "source": result.source,
                **_summary(result.latencies_ms, result.sent, result.late, len(result.errors)),
                "after_last_key_ms": result.pause_ms,
                "errors_seen": result.errors[:5],
            }
            for result in results
        ],
        "raw": [asdict(result) for result in results],
    }


def _summary(latencies: list[float], sent: int, late: int, errors: int) -> dict[str, Any]:
    return {
        "sent": sent,
        "answered_in_time": len(latencies),
        "in_time_share": len(latencies) / sent if sent else 0.0,
        "late": late,
        "errors": errors,
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p90_ms": quantile(latencies, 0.9) if latencies else None,
    }


def _table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['users']} users, {report['keys_per_user']} keys each, one every {report['interval_ms']} ms",
        f"{'user':8} {'sent':>5} {'in time':>8} {'p50 ms':>8} {'p90 ms':>8} {'errors':>6}",
    ]
    for row in [*report["per_user"], {"name": "all", **report["all"]}]:
        p50 = f"{row['p50_ms']:.0f}" if row["p50_ms"] is not None else "-"
        p90 = f"{row['p90_ms']:.0f}" if row["p90_ms"] is not None else "-"
        share = f"{row['in_time_share'] * 100:.0f}%"
        lines.append(f"{row['name']:8} {row['sent']:>5} {share:>8} {p50:>8} {p90:>8} {row['errors']:>6}")
    rss = report["rss_kib"]
    lines.append(f"server RSS: {rss['before'] / 1024:.0f} MiB before, {rss['after'] / 1024:.0f} MiB after")
    return "\n".join(lines)


def _setting_flags(args: argparse.Namespace) -> list[str]:
    """The setting flags given to this command, passed on to the server."""
    from lsp_server.settings import setting_specs

    given = vars(args)
    return [
        f"{spec.flag}={given[f'setting_{spec.name}']}"
        for spec in setting_specs()
        if given.get(f"setting_{spec.name}") is not None
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int, server: subprocess.Popen[bytes], seconds: float = 180) -> None:
    """Until `/health` answers 200 (raises if the server exits or `seconds` pass)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"the server was not ready in {seconds:.0f} s")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
