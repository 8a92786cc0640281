"""Load on the real server: a flood of completion requests and a keystroke soak.

    .venv/bin/python -m tests.stress                      # the full run: 1,000 requests
                                                          # in 10 s, 10,000 keystrokes
    .venv/bin/python -m tests.stress --requests 200 --seconds 2 --keystrokes 1000 --json out.json

It starts `inkling serve` over stdio with the real model, prints the figures
and writes them as JSON: how many requests were answered, cancelled or lost,
the worst latency of the answered ones, how long the server took to drain
after the flood (a queue would show here), whether every buffer stayed
exact (SHA-256 through `inkling/documentState`), and the server's resident
memory (RSS) sampled during the soak. The fault suite runs the same
functions with smaller numbers (tests/lsp/test_load_faults_e2e.py).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pygls.exceptions import JsonRpcRequestCancelled

from lsp_server.lsp_client import InklingClient, rss_kib
from tests.editor_model import position_of

SOURCE = (
    "def area(width: float, height: float) -> float:\n"
    '    """Surface in m² — naïve 😀 but fine."""\n'
    "    return width * height\n"
    "\n"
    "def perimeter(width, height):\n"
    "    return 2 * (width + height)\n"
    "\n"
    "totals = [area(w, h) for w, h in [(1, 2), (3, 4)]]\n"
)
"""What the soak types, character by character (multi-byte and astral included)."""

FLOOD_DOCUMENT = SOURCE * 6 + "def main():\n    result = area(2, 3) + \n"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class FloodResult:
    requests: int
    seconds: float
    answered: int
    with_text: int
    cancelled: int
    cancels_sent: int
    """Cancel notifications sent; only those that reach a pending request can be honoured."""
    errors: list[str]
    lost: int
    worst_latency_ms: float
    median_latency_ms: float
    drain_ms: float
    """From the last request sent to the last answer received."""
    alone_ms: float
    """One request with nothing else going on, at the place the flood ends (before it)."""
    rss_kib_before: int
    rss_kib_after: int
    buffer_exact: bool
    cache_hits: int = 0
    """Answers the server took from its completion cache during the flood."""


@dataclass
class SoakResult:
    keystrokes: int
    seconds: float
    requests: int
    answered: int
    cancelled: int
    errors: list[str]
    rss_kib: list[tuple[int, int]] = field(default_factory=list)
    """(keystrokes so far, RSS in KiB), sampled during the soak."""
    buffer_exact: bool = False
    checks: int = 0

    @property
    def rss_start_kib(self) -> int:
        return self.rss_kib[0][1]

    @property
    def rss_end_kib(self) -> int:
        return self.rss_kib[-1][1]

    @property
    def rss_growth_second_half_kib(self) -> int:
        """RSS at the end minus RSS halfway: a leak keeps growing here, warm-up does not."""
        middle = self.rss_kib[len(self.rss_kib) // 2][1]
        return self.rss_end_kib - middle


def _outcome(future: asyncio.Future[Any]) -> str:
    if future.cancelled():
        return "cancelled"
    error = future.exception()
    if error is None:
        return "answered"
    if isinstance(error, JsonRpcRequestCancelled):
        return "cancelled"
    return f"error: {type(error).__name__}: {error}"


async def flood(
    client: InklingClient, requests: int = 1000, seconds: float = 10.0, cancel_every: int = 2
) -> FloodResult:
    """`requests` inline-completion requests spread evenly over `seconds`; before
    every `cancel_every`-th one the client cancels the request before it if that
    is still pending, as editors do while the user types. Before each request a character is added
    to the last line, below every cursor: the text after the cursor changes, so no
    answer can come from the completion cache and every request needs the model."""
    uri = "file:///stress/flood.py"
    client.open(uri, "python", FLOOD_DOCUMENT)
    editor = FLOOD_DOCUMENT
    lines = FLOOD_DOCUMENT.split("\n")
    cursors = [(len(lines) - 2, len(lines[-2])), (len(lines) - 3, len(lines[-3])), (2, 10)]
    hits_before = (await client.status()).get("cacheHits", 0)
    rss_before = rss_kib(client.pid)[0]
    # Baseline in the same run: one request alone, at the place the flood ends.
    alone = time.perf_counter()
    await client.request_inline(uri, *cursors[(requests - 1) % len(cursors)])[1]
    alone_ms = (time.perf_counter() - alone) * 1000
    loop = asyncio.get_running_loop()
    done_at: dict[int, float] = {}
    sent_at: list[float] = []
    futures: list[asyncio.Future[Any]] = []
    ids: list[str] = []
    started = loop.time()
    cancels_sent = 0
    for number in range(requests):
        await asyncio.sleep(max(0.0, started + number * seconds / requests - loop.time()))
        if cancel_every and number % cancel_every == 1 and not futures[number - 1].done():
            client.cancel(ids[number - 1])
            cancels_sent += 1
        end = position_of(editor, len(editor))
        client.change(uri, end, end, "#")
        editor += "#"
        line, character = cursors[number % len(cursors)]
        msg_id, future = client.request_inline(uri, line, character)
        sent_at.append(time.perf_counter())
        future.add_done_callback(lambda _, n=number: done_at.setdefault(n, time.perf_counter()))
        futures.append(future)
        ids.append(msg_id)
    last_sent = time.perf_counter()
    await asyncio.wait(futures, timeout=300)
    outcomes = [_outcome(f) if f.done() else "lost" for f in futures]
    answered = [n for n, outcome in enumerate(outcomes) if outcome == "answered"]
    latencies = [(done_at[n] - sent_at[n]) * 1000 for n in answered]
    with_text = sum(1 for n in answered if getattr(futures[n].result(), "items", None))
    state = await client.document_state(uri)
    cache_hits = (await client.status()).get("cacheHits", 0) - hits_before
    return FloodResult(
        requests=requests,
        seconds=round(last_sent - sent_at[0], 2),
        answered=len(answered),
        with_text=with_text,
        cancelled=outcomes.count("cancelled"),
        cancels_sent=cancels_sent,
        errors=sorted({o for o in outcomes if o.startswith("error")}),
        lost=outcomes.count("lost"),
        worst_latency_ms=round(max(latencies, default=0.0), 1),
        median_latency_ms=round(statistics.median(latencies), 1) if latencies else 0.0,
        drain_ms=round((max(done_at.values(), default=last_sent) - last_sent) * 1000, 1),
        alone_ms=round(alone_ms, 1),
        rss_kib_before=rss_before,
        rss_kib_after=rss_kib(client.pid)[0],
        buffer_exact=state["sha256"] == sha256(editor),
        cache_hits=cache_hits,
    )


async def soak(
    client: InklingClient, keystrokes: int = 10_000, rate: float = 100.0, samples: int = 20
) -> SoakResult:
    """Type `keystrokes` characters (with a backspace now and then) at `rate` per second,
    asking for a completion after each and cancelling the one before, as an editor does;
    sample the server's RSS `samples` times and compare the buffer's fingerprint."""
    uri = "file:///stress/soak.py"
    editor = ""
    client.open(uri, "python", editor)
    loop = asyncio.get_running_loop()
    result = SoakResult(keystrokes, 0.0, 0, 0, 0, [])
    pending: tuple[str, asyncio.Future[Any]] | None = None
    futures: list[asyncio.Future[Any]] = []
    every = max(1, keystrokes // samples)
    started = loop.time()
    result.rss_kib.append((0, rss_kib(client.pid)[0]))
    for number in range(1, keystrokes + 1):
        await asyncio.sleep(max(0.0, started + number / rate - loop.time()))
        end = position_of(editor, len(editor))
        if number % 17 == 0 and editor:  # backspace
            start = position_of(editor, len(editor) - 1)
            client.change(uri, start, end, "")
            editor = editor[:-1]
        else:
            char = SOURCE[number % len(SOURCE)]
            client.change(uri, end, end, char)
            editor += char
        if pending is not None and not pending[1].done():
            client.cancel(pending[0])
        line, character = position_of(editor, len(editor))
        pending = client.request_inline(uri, line, character)
        futures.append(pending[1])
        if number % every == 0:
            result.rss_kib.append((number, rss_kib(client.pid)[0]))
            state = await client.document_state(uri)
            result.checks += 1
            if state["sha256"] != sha256(editor):
                result.errors.append(f"buffer differs after {number} keystrokes")
    result.seconds = round(loop.time() - started, 1)
    await asyncio.wait(futures, timeout=300)
    outcomes = [_outcome(f) if f.done() else "lost" for f in futures]
    result.requests = len(futures)
    result.answered = outcomes.count("answered")
    result.cancelled = outcomes.count("cancelled")
    result.errors += sorted({o for o in outcomes if o not in {"answered", "cancelled"}})
    state = await client.document_state(uri)
    result.buffer_exact = state["sha256"] == sha256(editor) and state["version"] == client.versions[uri]
    result.rss_kib.append((keystrokes, rss_kib(client.pid)[0]))
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    options = {"timeBudgetInlineMs": args.budget_ms}
    client = InklingClient(stderr=sys.stderr if args.server_log else None)
    await client.start(options)
    try:
        ready = await client.wait_ready()
        if ready["state"] != "ready":
            raise SystemExit(f"the model did not load: {ready}")
        report: dict[str, Any] = {"rss_kib_ready": rss_kib(client.pid)[0]}
        if args.requests:
            flooded = await flood(client, args.requests, args.seconds)
            report["flood"] = asdict(flooded)
        if args.keystrokes:
            soaked = await soak(client, args.keystrokes, args.rate)
            report["soak"] = {
                **asdict(soaked),
                "rss_start_kib": soaked.rss_start_kib,
                "rss_end_kib": soaked.rss_end_kib,
                "rss_growth_second_half_kib": soaked.rss_growth_second_half_kib,
            }
        report["rss_kib_peak"] = rss_kib(client.pid)[1]
    finally:
        report_exit = await client.stop()
    report["exit_code"] = report_exit
    return report


def _print(report: dict[str, Any]) -> None:
    print(f"RSS when ready: {report['rss_kib_ready'] / 1024:.0f} MiB")
    if "flood" in report:
        f = report["flood"]
        print(
            f"flood: {f['requests']} requests in {f['seconds']} s: {f['answered']} answered "
            f"({f['with_text']} with text, {f['cache_hits']} from the cache), {f['cancelled']} cancelled "
            f"(of {f['cancels_sent']} cancels sent), "
            f"{f['lost']} lost, errors {f['errors'] or 'none'}"
        )
        print(
            f"       latency of answered: median {f['median_latency_ms']} ms, "
            f"worst {f['worst_latency_ms']} ms; drained {f['drain_ms']} ms after the last request "
            f"(one request alone before the flood: {f['alone_ms']} ms); buffer exact: {f['buffer_exact']}"
        )
        print(f"       RSS {f['rss_kib_before'] / 1024:.0f} -> {f['rss_kib_after'] / 1024:.0f} MiB")
    if "soak" in report:
        s = report["soak"]
        print(
            f"soak: {s['keystrokes']} keystrokes in {s['seconds']} s, {s['requests']} requests "
            f"({s['answered']} answered, {s['cancelled']} cancelled), {s['checks']} buffer checks, "
            f"buffer exact: {s['buffer_exact']}, errors {s['errors'] or 'none'}"
        )
        print(
            f"      RSS start {s['rss_start_kib'] / 1024:.1f} MiB, end {s['rss_end_kib'] / 1024:.1f} MiB, "
            f"second half {s['rss_growth_second_half_kib']:+d} KiB"
        )
    print(f"peak RSS {report['rss_kib_peak'] / 1024:.0f} MiB; exit code {report['exit_code']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="flood size (0: no flood)")
    parser.add_argument("--seconds", type=float, default=10.0, help="flood duration")
    parser.add_argument("--keystrokes", type=int, default=10_000, help="soak length (0: no soak)")
    parser.add_argument("--rate", type=float, default=100.0, help="keystrokes per second in the soak")
    parser.add_argument("--budget-ms", type=int, default=1200, help="timeBudgetInlineMs for the server")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--server-log", action="store_true", help="show the server's stderr")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    _print(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
