"""The arithmetic of `inkling bench` reports, on records whose answers are known."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from lsp_server.bench.floor import FloorRecord, FloorRun
from lsp_server.bench.replay import RequestRecord, ServerRun, ServerSession, Startup, mark_cache_answerable
from lsp_server.bench.report import (
    build_report,
    distribution,
    floor_figures,
    quantile,
    render_table,
    request_figures,
)
from lsp_server.bench.sessions import QUICK_PLAN, Event, Session, default_sources, generate_session


def record(
    index: int,
    *,
    sent: float,
    latency: float | None,
    next_sent: float,
    text: str = "x",
    error: str = "",
    kind: str = "type",
    mode: str = "inline",
    planned_gap: float = 150.0,
) -> RequestRecord:
    r = RequestRecord("s", index, kind, sent, planned_gap, sent_ms=sent, next_sent_ms=next_sent, mode=mode)
    r.answered_ms = None if latency is None else sent + latency
    r.text, r.error = text, error
    r.settle()
    return r


def test_outcomes_follow_the_moment_the_user_moved_on() -> None:
    assert record(0, sent=0, latency=50, next_sent=100).outcome == "shown"
    assert record(0, sent=0, latency=50, next_sent=100, text="").outcome == "empty"
    assert record(0, sent=0, latency=150, next_sent=100).outcome == "late"
    assert record(0, sent=0, latency=150, next_sent=100, text="").outcome == "late_empty"
    assert record(0, sent=0, latency=101, next_sent=100, error="-32800: cancelled").outcome == "cancelled"
    assert record(0, sent=0, latency=10, next_sent=100, error="-32603: boom").outcome == "error"
    assert record(0, sent=0, latency=None, next_sent=100).outcome == "unanswered"


def test_quantiles_match_numpy() -> None:
    rng = random.Random(4)
    values = [rng.uniform(1, 900) for _ in range(101)]
    for q in (0.5, 0.9, 0.99):
        assert quantile(values, q) == pytest.approx(float(np.percentile(values, q * 100)))
    d = distribution(values)
    assert d["n"] == 101 and d["p50"] <= d["p90"] <= d["p99"] <= d["max"]  # type: ignore[operator]
    assert distribution([])["p50"] is None


def records_of_a_small_session() -> list[RequestRecord]:
    return [
        record(0, sent=0, latency=30, next_sent=150),  # shown
        record(1, sent=150, latency=None, next_sent=300, error="-32800: cancelled"),
        record(2, sent=300, latency=80, next_sent=1500, planned_gap=1200),  # shown after a pause
        record(3, sent=1500, latency=5, next_sent=1650, text="", mode="skip"),  # empty, skip position
        record(4, sent=1650, latency=400, next_sent=1800),  # late
        record(5, sent=1800, latency=20, next_sent=4000, text="", kind="jump", planned_gap=2200),  # empty
    ]


def test_request_figures_count_what_the_user_saw() -> None:
    figures = request_figures(records_of_a_small_session())
    assert figures["requests"] == 6 and figures["keystrokes"] == 5
    assert figures["by_outcome"]["shown"] == 2 and figures["by_outcome"]["late"] == 1
    assert sum(figures["by_outcome"].values()) == 6
    assert figures["answered_before_next_share"] == pytest.approx(4 / 6, abs=1e-4)
    assert figures["keystrokes_answered_before_next_share"] == pytest.approx(3 / 5, abs=1e-4)
    assert figures["shown_share_of_completable"] == pytest.approx(2 / 5, abs=1e-4)
    assert figures["latency_ms"]["shown"]["n"] == 2 and figures["latency_ms"]["shown"]["p50"] == 55
    assert figures["latency_ms"]["non_empty_any_time"]["n"] == 3
    assert figures["latency_ms"]["after_pause_shown"] == distribution([80.0])
    assert figures["pauses"] == {
        "count": 2,
        "completion_shown": 1,
        "empty_in_time": 1,
        "nothing_in_time": 0,
        "skip_position": 0,
    }


def floor_record(index: int, engine_ms: float, text: str = "x") -> FloorRecord:
    return FloorRecord("s", index, 800, 790, 3, engine_ms * 0.25, engine_ms * 0.75, "stop", text)


def test_ratios_pair_each_request_with_its_own_floor() -> None:
    records = records_of_a_small_session()
    floor = FloorRun(
        [floor_record(0, 20), floor_record(2, 40), floor_record(4, 100, text="y")],
        "model.gguf",
        "prefix-only",
        1.0,
        2.0,
        (1.0, 1.0, 1.0),
        (1.0, 1.0, 1.0),
    )
    figures = floor_figures(records, floor)
    all_paired = figures["ratio_all_paired"]
    assert all_paired["n"] == 3
    assert all_paired["server_p50_ms"] == 80 and all_paired["floor_p50_ms"] == 40
    assert all_paired["ratio_of_medians"] == 2.0
    assert all_paired["median_ratio"] == 2.0  # ratios 1.5, 2.0, 4.0
    assert all_paired["same_text_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["engine_ms_before_pause"] == distribution([40.0])  # request 2 precedes a pause
    shown = figures["ratio_one_key_inline_shown"]
    assert shown["n"] == 2 and shown["median_ratio"] == pytest.approx(1.75)


def test_the_table_says_when_time_was_compressed(tmp_path: Path) -> None:
    session = generate_session(default_sources()[0], seed=1, plan=QUICK_PLAN)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + bytes(2**20))

    def server(name: str, first: float, engine: dict[str, float], peak_mib: int) -> ServerSession:
        return ServerSession(
            session=name,
            startup=Startup(0.5, 1.5, first, 7, "x = 1"),
            records=records_of_a_small_session() if name == "a" else [],
            status={"model": str(model), "template": "prefix-only"},
            engine=engine,
            cache_hits=2,
            rss_start_kib=300 * 1024,
            rss_peak_kib=peak_mib * 1024,
            cpu_start_s=2.0,
            cpu_replay_s=10.0,
            client_cpu_replay_s=0.5,
            replay_wall_s=20.0,
            max_send_lag_ms=3.0,
            load_before=(0.5, 0.5, 0.5),
            load_after=(1.5, 1.0, 0.7),
        )

    run = ServerRun(
        [
            server("a", 2.5, {"generatedTokens": 60, "generateSeconds": 1.0, "promptTokens": 600}, 350),
            server("b", 3.5, {"generatedTokens": 40, "generateSeconds": 1.0, "promptTokens": 400}, 360),
            server("c", 9.5, {"generatedTokens": 0, "generateSeconds": 0.0, "reusedTokens": 900}, 340),
        ]
    )
    common = {
        "sessions": [session],
        "run": run,
        "floor": None,
        "floor_template": "prefix-only",
        "settings": {},
        "threads": 2,
        "model_path": model,
        "command": ["inkling", "bench"],
    }
    report = build_report(speed=4.0, **common)  # type: ignore[arg-type]
    assert report["real_time"] is False
    server = report["server"]  # summed over the three servers, peaks are the highest
    assert server["generated_tokens_per_s"] == 50.0
    assert server["prompt_tokens_reused_share"] == 0.9
    assert server["rss_peak_minus_model_mib"] == pytest.approx(359.0, abs=0.1)
    assert server["spawn_to_first_completion_s"] == {"median": 3.5, "max": 9.5, "missing": 0}
    assert server["cache_hits"] == 6 and server["cpu_s_replay"] == 30.0
    assert report["sessions"][0]["fingerprint"] == session.fingerprint()
    assert "TIME-COMPRESSED x4.0" in render_table(report)
    real = render_table(build_report(speed=1.0, **common))  # type: ignore[arg-type]
    assert "REAL-TIME replay" in real and "load average" in real and "median 3.50 s" in real


def test_cache_answerable_requests_repeat_or_type_into_an_answer() -> None:
    events = (
        Event(100, "type", 4, 0, "b", 5),  # 0: answered "ar(1)"
        Event(200, "type", 5, 0, "a", 6),  # 1: typed the answer's first character
        Event(300, "type", 6, 0, "z", 7),  # 2: a typo, not the answer
        Event(400, "backspace", 6, 1, "", 6),  # 3: back to the state of 1
        Event(500, "type", 6, 0, "r", 7),  # 4: "ar" typed into the answer of 0
        Event(600, "jump", 0, 0, "", 0),  # 5: elsewhere
    )
    session = Session("s", "python", "file:///s.py", "test", 0, "a = \n", "a = bar\n", events, 700)
    session.check()
    records = [RequestRecord("s", i, e.kind, e.t_ms) for i, e in enumerate(events)]
    for r, (outcome, text) in zip(
        records,
        [
            ("shown", "ar(1)"),
            ("cancelled", ""),
            ("late", "zz"),
            ("cancelled", ""),
            ("empty", ""),
            ("empty", ""),
        ],
        strict=True,
    ):
        r.outcome, r.text = outcome, text
    mark_cache_answerable(session, records)
    assert [(r.cache_of, r.cache_kind) for r in records] == [
        (None, ""),
        (0, "typed_ahead"),
        (None, ""),  # "az" is not what 0 proposed; 1 had no answer
        (0, "typed_ahead"),
        (0, "typed_ahead"),
        (None, ""),
    ]
    records[1].outcome, records[1].text = "shown", "r(1)"
    mark_cache_answerable(session, records)
    assert (records[3].cache_of, records[3].cache_kind) == (1, "repeat")
