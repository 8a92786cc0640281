"""Replay sessions through the real `inkling serve` over stdio, in real time.

Per event the client does what an editor does: cancel the previous request if
it is still open ($/cancelRequest), send the edit (didChange), and ask for an
inline completion at the new cursor. Events are sent on a fixed schedule (the
session's clock), never "after the previous answer", so a slow server cannot
slow the typist down. Latency is client-side: from writing the request to
reading its response.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from lsp_server.bench.sessions import Session
from lsp_server.documents import Document
from lsp_server.errors import InklingError
from lsp_server.lsp_client import SERVE_COMMAND, InklingClient, cpu_seconds, rss_kib

CANCELLED_CODE = -32800
"""JSON-RPC RequestCancelled."""
DRAIN_TIMEOUT_S = 30.0
MAX_PROBE_EVENTS = 30


@dataclass
class RequestRecord:
    """One inline-completion request; times in ms from the session start."""

    session: str
    index: int
    """Index of the event that sent it."""
    kind: str
    scheduled_ms: float
    planned_gap_ms: float = 0.0
    """Time the user takes before the next event, as the session plans it (uncompressed)."""
    sent_ms: float = 0.0
    next_sent_ms: float = 0.0
    """When the next event was sent (or the session ended): the answer must come before."""
    answered_ms: float | None = None
    text: str = ""
    error: str = ""
    outcome: str = ""
    """shown | empty | late | late_empty | cancelled | error | unanswered (see `settle`)."""
    mode: str = ""
    """inline | block | skip, decided offline with the server's own context rules."""
    cache_of: int | None = None
    """An earlier request whose answer a completion cache could serve here (see `mark_cache_answerable`)."""
    cache_kind: str = ""
    """'repeat' (same text and cursor) or 'typed_ahead' (that state plus a typed prefix of its answer)."""
    scenario: str = ""
    """The event's whole-lines scenario ("open", "jump", "enter"), if any."""

    @property
    def latency_ms(self) -> float | None:
        return None if self.answered_ms is None else self.answered_ms - self.sent_ms

    @property
    def gap_ms(self) -> float:
        return self.next_sent_ms - self.sent_ms

    def settle(self) -> None:
        """Classify the answer against the moment the user moved on."""
        if self.error:
            self.outcome = "cancelled" if self.error.startswith(str(CANCELLED_CODE)) else "error"
        elif self.answered_ms is None:
            self.outcome = "unanswered"
        elif self.answered_ms <= self.next_sent_ms:
            self.outcome = "shown" if self.text else "empty"
        else:
            self.outcome = "late" if self.text else "late_empty"


@dataclass
class Startup:
    spawn_to_initialized_s: float
    spawn_to_ready_s: float
    spawn_to_first_completion_s: float | None
    probes: int
    first_completion: str
    probe_events: int = 0
    """Session events the probe typed before a completion came (0: at the starting cursor)."""


@dataclass
class ServerSession:
    """One fresh server process, one session typed into it."""

    session: str
    startup: Startup
    records: list[RequestRecord]
    status: dict[str, Any]
    engine: dict[str, float]
    """The engine's counters over the replay (after minus before)."""
    cache_hits: int
    """Answers the server took from its completion cache during the replay."""
    rss_start_kib: int
    rss_peak_kib: int
    cpu_start_s: float
    """Server CPU seconds from process start to the first completion."""
    cpu_replay_s: float
    client_cpu_replay_s: float
    replay_wall_s: float
    max_send_lag_ms: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    exit_code: int | None = None


@dataclass
class ServerRun:
    servers: list[ServerSession] = field(default_factory=list)

    @property
    def records(self) -> list[RequestRecord]:
        return [r for server in self.servers for r in server.records]

    @property
    def status(self) -> dict[str, Any]:
        return self.servers[-1].status if self.servers else {}


def _answer_text(result: Any) -> str:
    items = getattr(result, "items", None)
    if items is None and isinstance(result, list):
        items = result
    if not items:
        return ""
    return str(getattr(items[0], "insert_text", ""))


def _error_text(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return f"{code}: {exc}" if code is not None else f"{type(exc).__name__}: {exc}"


class _Tracker:
    """Records when each response arrives; taken on the reading side, not by an awaiting task."""

    def __init__(self) -> None:
        self.origin = time.perf_counter()

    def now_ms(self) -> float:
        return (time.perf_counter() - self.origin) * 1000

    def send(
        self, client: InklingClient, uri: str, position: tuple[int, int], record: RequestRecord
    ) -> tuple[str, asyncio.Future[Any]]:
        def answered() -> None:
            record.answered_ms = self.now_ms()

        record.sent_ms = self.now_ms()
        msg_id, future = client.request_inline(uri, *position, on_answer=answered)

        def collect(done: asyncio.Future[Any]) -> None:
            if done.cancelled():
                record.error = "client-side cancelled"
            elif (exc := done.exception()) is not None:
                record.error = _error_text(exc)
            else:
                record.text = _answer_text(done.result())

        future.add_done_callback(collect)
        return msg_id, future


async def replay_session(
    client: InklingClient,
    session: Session,
    encoding: str,
    *,
    speed: float = 1.0,
    quiet: bool = False,
) -> list[RequestRecord]:
    """Type `session` into the server; returns one record per event."""
    text = session.initial_text
    client.open(session.uri, session.language_id, text)
    tracker = _Tracker()
    records: list[RequestRecord] = []
    futures: list[asyncio.Future[Any]] = []
    open_request: tuple[str, asyncio.Future[Any]] | None = None
    with tqdm(
        total=len(session.events), desc=session.name, unit="key", file=sys.stderr, disable=quiet
    ) as bar:
        for index, event in enumerate(session.events):
            scheduled = event.t_ms / speed
            delay = (scheduled - tracker.now_ms()) / 1000
            if delay > 0:
                await asyncio.sleep(delay)
            if open_request is not None and not open_request[1].done():
                client.cancel(open_request[0])
            if event.edits:
                before = Document(session.uri, session.language_id, 0, text)
                start = before.position_at(event.offset, encoding)
                end = before.position_at(event.offset + event.delete, encoding)
                client.change(session.uri, start, end, event.insert)
                text = text[: event.offset] + event.insert + text[event.offset + event.delete :]
            position = Document(session.uri, session.language_id, 0, text).position_at(event.cursor, encoding)
            following = session.events[index + 1].t_ms if index + 1 < len(session.events) else session.end_ms
            record = RequestRecord(
                session.name, index, event.kind, scheduled, following - event.t_ms, scenario=event.scenario
            )
            open_request = tracker.send(client, session.uri, position, record)
            futures.append(open_request[1])
            if records:
                records[-1].next_sent_ms = record.sent_ms
            records.append(record)
            bar.update()
        end_delay = (session.end_ms / speed - tracker.now_ms()) / 1000
        if end_delay > 0:
            await asyncio.sleep(end_delay)
        if records:
            records[-1].next_sent_ms = tracker.now_ms()
        await asyncio.wait(futures, timeout=DRAIN_TIMEOUT_S)
    client.close(session.uri)
    if text != session.final_text:
        raise InklingError(f"replay of {session.name} did not end at the session's final text")
    for record in records:
        record.settle()
    mark_cache_answerable(session, records)
    return records


CACHE_LOOKBACK = 64
"""How many earlier requests a state is compared with."""


def mark_cache_answerable(session: Session, records: Sequence[RequestRecord]) -> None:
    """Flag requests a completion cache keyed by the document could answer at once.

    A request qualifies if an earlier request of the session (within
    CACHE_LOOKBACK) got a non-empty answer, even a late one, and this request's
    document is that one's with nothing changed ('repeat': typo + backspace,
    erase + retype) or with a prefix of its answer typed at its cursor
    ('typed_ahead': the user types what was proposed)."""
    states = [(text, event.cursor) for event, text in session.states()]
    answered = {r.index: r.text for r in records if r.outcome in ("shown", "late")}
    for record in records:
        text, cursor = states[record.index]
        for earlier in range(record.index - 1, max(-1, record.index - 1 - CACHE_LOOKBACK), -1):
            answer = answered.get(earlier)
            if answer is None:
                continue
            old_text, old_cursor = states[earlier]
            typed = cursor - old_cursor
            if not 0 <= typed <= len(answer) or len(text) - len(old_text) != typed:
                continue
            if (
                text[cursor:] == old_text[old_cursor:]
                and text[:old_cursor] == old_text[:old_cursor]
                and text[old_cursor:cursor] == answer[:typed]
            ):
                record.cache_of, record.cache_kind = earlier, "typed_ahead" if typed else "repeat"
                break


async def _ready_time(client: InklingClient) -> float:
    """When the server first says its model is ready (polled every 20 ms)."""
    while True:
        status = await client.status()
        if status["state"] == "failed":
            raise InklingError(f"the server could not load its model: {status['error']}")
        if status["state"] == "ready":
            return time.perf_counter()
        await asyncio.sleep(0.02)


async def measure_startup(client: InklingClient, probe: Session, encoding: str, spawned: float) -> Startup:
    """Process start -> first non-empty completion, asking as an impatient editor would.

    Until the model is ready every request is answered empty at once; the
    probe asks again every 20 ms at the session's starting cursor (while a
    separate poll of `inkling/status` notes when the model became ready). If
    that place gives nothing once the model is ready, the probe types on
    through the session's first events (at most MAX_PROBE_EVENTS) until a
    completion comes."""
    initialized = time.perf_counter()
    uri = probe.uri  # the session's own document: another name would be "another file" to the server
    text = probe.initial_text
    client.open(uri, probe.language_id, text)
    cursor = probe.events[0].offset if probe.events else len(text)
    ready = asyncio.ensure_future(asyncio.wait_for(_ready_time(client), timeout=300))
    first_at: float | None = None
    first_text = ""
    probes = typed = 0
    states = iter(probe.states())
    try:
        while True:
            asked_when_ready = ready.done()
            if asked_when_ready:
                ready.result()  # raises if the model failed to load
            document = Document(uri, probe.language_id, 0, text)
            probes += 1
            answer = await client.inline(uri, *document.position_at(cursor, encoding))
            if answer:
                first_at, first_text = time.perf_counter(), answer
                break
            if not asked_when_ready:
                await asyncio.sleep(0.02)
                continue
            step = next(states, None)
            typed += 1
            if step is None or typed > MAX_PROBE_EVENTS:
                break
            event, new_text = step
            start = document.position_at(event.offset, encoding)
            end = document.position_at(event.offset + event.delete, encoding)
            client.change(uri, start, end, event.insert)
            text, cursor = new_text, event.cursor
        ready_at = await ready
    finally:
        ready.cancel()
        client.close(uri)
    return Startup(
        spawn_to_initialized_s=initialized - spawned,
        spawn_to_ready_s=ready_at - spawned,
        spawn_to_first_completion_s=None if first_at is None else first_at - spawned,
        probes=probes,
        first_completion=first_text,
        probe_events=max(0, typed - (first_at is None)),
    )


Between = Callable[[Session, list[RequestRecord]], Awaitable[None]]
"""Work done after a session, once its server has stopped (the floor)."""


async def wait_until_ready(client: InklingClient, spawned: float) -> Startup:
    """Start-up without a probe: the sessions' first request must find the server as a user
    who opens a file would, not warmed by asking there already."""
    initialized = time.perf_counter()
    ready_at = await asyncio.wait_for(_ready_time(client), timeout=300)
    return Startup(
        spawn_to_initialized_s=initialized - spawned,
        spawn_to_ready_s=ready_at - spawned,
        spawn_to_first_completion_s=None,
        probes=0,
        first_completion="",
    )


async def serve_session(
    session: Session,
    *,
    server_args: Sequence[str] = (),
    speed: float = 1.0,
    stderr: TextIO | None = None,
    quiet: bool = False,
    workspace: Path | None = None,
) -> ServerSession:
    """Start a fresh server, measure its start, type the session into it, stop it."""
    return await serve_sessions(
        [session], server_args=server_args, speed=speed, stderr=stderr, quiet=quiet, workspace=workspace
    )


async def serve_sessions(
    sessions: Sequence[Session],
    *,
    server_args: Sequence[str] = (),
    speed: float = 1.0,
    stderr: TextIO | None = None,
    quiet: bool = False,
    workspace: Path | None = None,
    probe: bool = True,
) -> ServerSession:
    """Start a fresh server, type the sessions into it one after the other (each file opened,
    edited, closed), stop it. With `probe`, start-up is measured up to a first completion
    at the first session's cursor; without, up to the model being ready."""
    client = InklingClient([*SERVE_COMMAND, *server_args], stderr=stderr)
    load_before = os.getloadavg()
    spawned = time.perf_counter()
    result = await client.start(workspace=workspace)
    try:
        encoding = str(getattr(result.capabilities.position_encoding, "value", "utf-16") or "utf-16")
        if probe:
            startup = await measure_startup(client, sessions[0], encoding, spawned)
        else:
            startup = await wait_until_ready(client, spawned)
        pid = client.pid
        rss_start, _ = rss_kib(pid)
        cpu_start = cpu_seconds(pid)
        before = await client.status()
        began, client_began = time.perf_counter(), time.process_time()
        records: list[RequestRecord] = []
        for session in sessions:
            records += await replay_session(client, session, encoding, speed=speed, quiet=quiet)
        wall, client_cpu = time.perf_counter() - began, time.process_time() - client_began
        cpu_replay = cpu_seconds(pid) - cpu_start
        after = await client.status()
        _, rss_peak = rss_kib(pid)
        load_after = os.getloadavg()
    finally:
        exit_code = await client.stop()
    return ServerSession(
        session=sessions[0].name if len(sessions) == 1 else f"{len(sessions)} files, one server",
        startup=startup,
        records=records,
        status=after,
        engine={
            key: float(value) - float(before["engine"].get(key, 0)) for key, value in after["engine"].items()
        },
        cache_hits=int(after.get("cacheHits") or 0) - int(before.get("cacheHits") or 0),
        rss_start_kib=rss_start,
        rss_peak_kib=rss_peak,
        cpu_start_s=cpu_start,
        cpu_replay_s=cpu_replay,
        client_cpu_replay_s=client_cpu,
        replay_wall_s=wall,
        max_send_lag_ms=max((r.sent_ms - r.scheduled_ms for r in records), default=0.0),
        load_before=load_before,
        load_after=load_after,
        exit_code=exit_code,
    )


async def run_server(
    sessions: Sequence[Session],
    *,
    server_args: Sequence[str] = (),
    speed: float = 1.0,
    stderr: TextIO | None = None,
    quiet: bool = False,
    between: Between | None = None,
    workspace: Path | None = None,
    one_server: bool = False,
) -> ServerRun:
    """Each session on a fresh server, as a user who opens the editor on one file.

    A server per session keeps sessions independent: the server's project
    context (chunks of *other* files) stays empty, so the floor's prompts are
    the server's, and every session measures a start. `between` runs after
    each session, with no server running, so that the floor is measured
    minutes, not a whole run, away from the replay it is compared with.
    With a `workspace` each server is opened on that folder instead, so that
    its project context is at work (and the floor no longer applies).

    `one_server`: all sessions on one server, as a user who opens file after file (each
    closed before the next); start-up is not probed and the floor runs after the server
    has stopped."""
    run = ServerRun()
    if one_server:
        served = await serve_sessions(
            sessions,
            server_args=server_args,
            speed=speed,
            stderr=stderr,
            quiet=quiet,
            workspace=workspace,
            probe=False,
        )
        run.servers.append(served)
        if between is not None:
            for session in sessions:
                await between(session, [r for r in served.records if r.session == session.name])
        return run
    for session in sessions:
        served = await serve_session(
            session, server_args=server_args, speed=speed, stderr=stderr, quiet=quiet, workspace=workspace
        )
        run.servers.append(served)
        if between is not None:
            await between(session, served.records)
    return run
