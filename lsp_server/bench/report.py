"""Figures from a bench run: what the user saw, what it cost, and the floor.

Definitions (also printed under the table):

* A request is *shown* when its answer is a non-empty completion and arrives
  before the user's next event (keystroke, paste or cursor jump) is sent;
  that is the only answer an editor can still display. *Empty* answers
  arrived in time with nothing; *late* ones after the next event; *cancelled*
  ones were answered with RequestCancelled after the client cancelled them.
* Latency is client-side: request written -> response read.
* A *pause* is a gap of at least 1 s (on the session's own clock) after an
  event; "after a pause" is the latency of that event's request: how long the
  user, who has stopped typing, waits for ghost text.
* A *cache-answerable* request has a document that an earlier request of
  the session (answered non-empty, even late) had too, either unchanged
  (typo + backspace, erase + retype) or with a prefix of that answer typed
  at its cursor: a completion cache keyed by the document could answer it
  at once (see `replay.mark_cache_answerable`).
* Floor pairing: see `floor.py`. Ratios are server latency over floor time
  (llama-cpp-python prompt evaluation + generation) for the same requests.
  The floor also runs every request before a pause, whatever the server did
  with it: what the user waits for could have taken that long.
* *1-key inline*: a request after one key press, in inline mode, not
  cache-answerable, that the server computed to the end (shown, empty or
  late): the single-line completion the model itself had to make. Its
  latency needs no floor, so it compares runs with different settings
  (for example project context on and off, `--workspace`). Its ratio to the
  floor leaves out *ranked* requests (a blank line, where the server decodes
  `lineCandidates` lines side by side and the floor, with one sequence, the
  greedy line): they have a row of their own, the price of ranking.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lsp_server.bench.floor import PAIRED_OUTCOMES, FloorRecord, FloorRun
from lsp_server.bench.replay import RequestRecord, ServerRun
from lsp_server.bench.sessions import KEYSTROKE_KINDS, PAUSE_MS, Session

SCHEMA = "inkling-bench/1"
OUTCOMES = ("shown", "empty", "late", "late_empty", "cancelled", "error", "unanswered")
KIB_PER_MIB = 1024


def quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def distribution(values: Iterable[float]) -> dict[str, float | int | None]:
    data = list(values)
    if not data:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "mean": None, "max": None}
    return {
        "n": len(data),
        "p50": round(quantile(data, 0.5), 2),
        "p90": round(quantile(data, 0.9), 2),
        "p99": round(quantile(data, 0.99), 2),
        "mean": round(statistics.fmean(data), 2),
        "max": round(max(data), 2),
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _latencies(records: Iterable[RequestRecord]) -> list[float]:
    return [r.latency_ms for r in records if r.latency_ms is not None]


def is_one_key_inline(record: RequestRecord) -> bool:
    return (
        record.kind in KEYSTROKE_KINDS
        and record.mode == "inline"
        and record.cache_of is None
        and record.outcome in PAIRED_OUTCOMES
    )


def request_figures(records: Sequence[RequestRecord]) -> dict[str, Any]:
    outcomes = Counter(r.outcome for r in records)
    modes = Counter(r.mode or "unknown" for r in records)
    completable = [r for r in records if r.mode != "skip"]
    keystrokes = [r for r in records if r.kind in KEYSTROKE_KINDS]
    in_time = [r for r in records if r.outcome in ("shown", "empty")]
    pauses = [r for r in records if r.planned_gap_ms >= PAUSE_MS]
    cached = [r for r in records if r.cache_of is not None]
    pause_outcomes = Counter(r.outcome for r in pauses)
    return {
        "requests": len(records),
        "keystrokes": len(keystrokes),
        "by_kind": dict(Counter(r.kind for r in records)),
        "by_outcome": {name: outcomes.get(name, 0) for name in OUTCOMES},
        "by_mode": dict(modes),
        "answered_before_next_share": _share(len(in_time), len(records)),
        "keystrokes_answered_before_next_share": _share(
            sum(r.outcome in ("shown", "empty") for r in keystrokes), len(keystrokes)
        ),
        "shown_share_of_completable": _share(
            sum(r.outcome == "shown" for r in completable), len(completable)
        ),
        "latency_ms": {
            "shown": distribution(_latencies(r for r in records if r.outcome == "shown")),
            "non_empty_any_time": distribution(
                _latencies(r for r in records if r.outcome in ("shown", "late"))
            ),
            "after_pause_shown": distribution(_latencies(r for r in pauses if r.outcome == "shown")),
            "cache_answerable_shown": distribution(_latencies(r for r in cached if r.outcome == "shown")),
            "one_key_inline": distribution(_latencies(r for r in records if is_one_key_inline(r))),
            "cancel_acknowledged": distribution(
                r.latency_ms - r.gap_ms
                for r in records
                if r.outcome == "cancelled" and r.latency_ms is not None
            ),
        },
        "pauses": {
            "count": len(pauses),
            "completion_shown": pause_outcomes.get("shown", 0),
            "empty_in_time": pause_outcomes.get("empty", 0),
            "nothing_in_time": len(pauses) - pause_outcomes.get("shown", 0) - pause_outcomes.get("empty", 0),
            "skip_position": sum(r.mode == "skip" for r in pauses),
        },
        "keystroke_gap_ms": distribution(r.gap_ms for r in keystrokes),
        "cache_answerable": {
            "count": len(cached),
            "by_kind": dict(Counter(r.cache_kind for r in cached)),
            "shown": sum(r.outcome == "shown" for r in cached),
        },
    }


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def server_figures(run: ServerRun, model_bytes: int) -> dict[str, Any]:
    servers = run.servers
    engine: Counter[str] = Counter()
    for server in servers:
        engine.update(server.engine)
    generated, generate_s = engine["generatedTokens"], engine["generateSeconds"]
    prompt_tokens, reused, prompt_s = engine["promptTokens"], engine["reusedTokens"], engine["promptSeconds"]
    model_mib = model_bytes / 2**20
    rss_peak = max((s.rss_peak_kib for s in servers), default=0) / KIB_PER_MIB
    cpu_replay = sum(s.cpu_replay_s for s in servers)
    wall = sum(s.replay_wall_s for s in servers)
    first = [s.startup.spawn_to_first_completion_s for s in servers]
    return {
        "servers": len(servers),
        "startup": [{"session": s.session, **asdict(s.startup)} for s in servers],
        "spawn_to_first_completion_s": {
            "median": _median([v for v in first if v is not None]),
            "max": round(max(v for v in first if v is not None), 3)
            if any(v is not None for v in first)
            else None,
            "missing": sum(v is None for v in first),
        },
        "spawn_to_ready_s_median": _median([s.startup.spawn_to_ready_s for s in servers]),
        "spawn_to_initialized_s_median": _median([s.startup.spawn_to_initialized_s for s in servers]),
        "rss_start_mib": round((_median([s.rss_start_kib for s in servers]) or 0) / KIB_PER_MIB, 1),
        "rss_peak_mib": round(rss_peak, 1),
        "model_mib": round(model_mib, 1),
        "rss_peak_minus_model_mib": round(rss_peak - model_mib, 1),
        "cpu_s_to_first_completion_median": _median([s.cpu_start_s for s in servers]),
        "cpu_s_replay": round(cpu_replay, 2),
        "cpu_share_of_replay_wall": round(cpu_replay / wall, 3) if wall else None,
        "replay_wall_s": round(wall, 2),
        "session_wall_s": {s.session: round(s.replay_wall_s, 2) for s in servers},
        "client_cpu_s_replay": round(sum(s.client_cpu_replay_s for s in servers), 2),
        "max_send_lag_ms": round(max((s.max_send_lag_ms for s in servers), default=0.0), 2),
        "engine_requests": int(engine["requests"]),
        "engine_cancelled": int(engine["cancelled"]),
        "engine_prefills": int(engine["prefills"]),
        "engine_prefill_tokens": int(engine["prefillTokens"]),
        "cache_hits": sum(s.cache_hits for s in servers),
        "generated_tokens": int(generated),
        "generated_tokens_per_s": round(generated / generate_s, 2) if generate_s else None,
        "prompt_tokens": int(prompt_tokens),
        "prompt_tokens_reused_share": _share(int(reused), int(prompt_tokens)),
        "prompt_tokens_evaluated": int(prompt_tokens - reused),
        "prompt_tokens_shifted": int(engine["shiftedTokens"]),
        "prompt_eval_tokens_per_s": round((prompt_tokens - reused) / prompt_s, 1) if prompt_s else None,
        "project_index": [{"session": s.session, **(s.status.get("index") or {})} for s in servers],
        "exit_codes": [s.exit_code for s in servers],
        "load_avg_before": list(servers[0].load_before) if servers else None,
        "load_avg_after": list(servers[-1].load_after) if servers else None,
    }


def _ratio(pairs: Sequence[tuple[RequestRecord, FloorRecord]]) -> dict[str, Any]:
    if not pairs:
        return {
            "n": 0,
            "server_p50_ms": None,
            "floor_p50_ms": None,
            "ratio_of_medians": None,
            "median_ratio": None,
        }
    server = [s.latency_ms or 0.0 for s, _ in pairs]
    floor = [f.engine_ms for _, f in pairs]
    ratios = [s / f for s, f in zip(server, floor, strict=True) if f > 0]
    return {
        "n": len(pairs),
        "server_p50_ms": round(statistics.median(server), 2),
        "floor_p50_ms": round(statistics.median(floor), 2),
        "ratio_of_medians": round(statistics.median(server) / statistics.median(floor), 3),
        "median_ratio": round(statistics.median(ratios), 3) if ratios else None,
        "same_text_share": _share(sum(s.text == f.text for s, f in pairs), len(pairs)),
    }


def floor_figures(records: Sequence[RequestRecord], floor: FloorRun) -> dict[str, Any]:
    by_key = {(r.session, r.index): r for r in records}
    runs = [(by_key[(f.session, f.index)], f) for f in floor.records]
    pairs = [(s, f) for s, f in runs if s.outcome in PAIRED_OUTCOMES]
    before_pause = [f for s, f in runs if s.planned_gap_ms >= PAUSE_MS]
    # Cache-answerable requests are left out: the server may serve them without the model.
    one_key_inline = [(s, f) for s, f in pairs if is_one_key_inline(s) and not f.ranked]
    generated = sum(f.generated_tokens for f in floor.records)
    generate_s = sum(f.generate_ms for f in floor.records) / 1000
    evaluated = sum(f.prompt_tokens - f.reused_tokens for f in floor.records)
    prompt_s = sum(f.prompt_ms for f in floor.records) / 1000
    return {
        "runs": len(runs),
        "pairs": len(pairs),
        "model": floor.model_path,
        "template": floor.template,
        "engine_ms_paired": distribution(f.engine_ms for _, f in pairs),
        "engine_ms_before_pause": distribution(f.engine_ms for f in before_pause),
        "generated_tokens": generated,
        "generated_tokens_per_s": round(generated / generate_s, 2) if generate_s else None,
        "prompt_eval_tokens_per_s": round(evaluated / prompt_s, 1) if prompt_s else None,
        "ratio_all_paired": _ratio(pairs),
        "ratio_one_key_inline": _ratio(one_key_inline),
        "ratio_one_key_inline_shown": _ratio([(s, f) for s, f in one_key_inline if s.outcome == "shown"]),
        "ratio_ranked": _ratio([(s, f) for s, f in pairs if f.ranked]),
        "cpu_s": round(floor.cpu_s, 2),
        "wall_s": round(floor.wall_s, 2),
        "load_avg_before": list(floor.load_before),
        "load_avg_after": list(floor.load_after),
    }


SCENARIOS = (
    ("open", "open-and-ask (file just opened)"),
    ("jump", "jump (cursor to another function)"),
    ("enter", "Enter-then-wait (new line)"),
)
"""The whole-lines scenario's waits (`sessions.generate_whole_line_session`)."""


def scenario_figures(records: Sequence[RequestRecord], floor: FloorRun | None) -> dict[str, Any]:
    """Per wait of the whole-lines scenario: what the user got within the wait, and the
    ratio to the floor of every request the floor ran (each one waited for)."""
    floor_by_key = {(f.session, f.index): f for f in floor.records} if floor else {}
    figures: dict[str, Any] = {}
    for label, _ in SCENARIOS:
        mine = [r for r in records if r.scenario == label]
        if not mine:
            continue
        pairs = [
            (r, floor_by_key[(r.session, r.index)]) for r in mine if (r.session, r.index) in floor_by_key
        ]
        # The floor wrote a line within the user's wait: the server could have shown one.
        answered = [(r, f) for r, f in pairs if f.text and f.engine_ms <= r.planned_gap_ms]
        missed = [r for r, _ in answered if r.outcome != "shown"]
        figures[label] = {
            "requests": len(mine),
            "by_outcome": dict(Counter(r.outcome for r in mine)),
            "latency_ms": distribution(_latencies(mine)),
            "ratio": _ratio([(r, f) for r, f in pairs if r.latency_ms is not None]),
            "floor_answered": len(answered),
            "empty_where_floor_answered": len(missed),
            "empty_where_floor_answered_share": _share(len(missed), len(answered)),
            "empty_share": _share(sum(r.outcome != "shown" for r in mine), len(mine)),
        }
    return figures


def session_figures(session: Session) -> dict[str, Any]:
    gaps = [b.t_ms - a.t_ms for a, b in zip(session.events, session.events[1:], strict=False)]
    return {
        "name": session.name,
        "source": session.source,
        "fingerprint": session.fingerprint(),
        "events": len(session.events),
        "keystrokes": sum(e.kind in KEYSTROKE_KINDS for e in session.events),
        "by_kind": dict(Counter(e.kind for e in session.events)),
        "pauses": sum(g >= PAUSE_MS for g in gaps) + 1,  # the final pause counts
        "duration_s": round(session.end_ms / 1000, 1),
    }


def request_rows(records: Sequence[RequestRecord], floor: FloorRun | None) -> list[dict[str, Any]]:
    floor_by_key = {(f.session, f.index): f for f in floor.records} if floor else {}
    rows = []
    for r in records:
        row: dict[str, Any] = {
            "session": r.session,
            "index": r.index,
            "kind": r.kind,
            "mode": r.mode,
            "outcome": r.outcome,
            "sent_ms": round(r.sent_ms, 2),
            "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 2),
            "gap_ms": round(r.gap_ms, 2),
            "planned_gap_ms": r.planned_gap_ms,
            "cache_of": r.cache_of,
            "cache_kind": r.cache_kind,
            "scenario": r.scenario,
            "text": r.text,
        }
        paired = floor_by_key.get((r.session, r.index))
        if paired is not None:
            row["floor"] = {
                "engine_ms": round(paired.engine_ms, 2),
                "prompt_ms": round(paired.prompt_ms, 2),
                "generate_ms": round(paired.generate_ms, 2),
                "prompt_tokens": paired.prompt_tokens,
                "reused_tokens": paired.reused_tokens,
                "generated_tokens": paired.generated_tokens,
                "finish_reason": paired.finish_reason,
                "text": paired.text,
            }
        rows.append(row)
    return rows


# -- the table ------------------------------------------------------------------------------


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _num(value: Any, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


LABEL = 34


def _row(label: str, value: str) -> str:
    return f"{label + ':':<{LABEL}}{value}"


def _latency_row(label: str, d: dict[str, Any]) -> str:
    return f"{label:<44}{_ms(d['p50']):>10}{_ms(d['p90']):>10}{_ms(d['p99']):>10}{d['n']:>7}"


def _ratio_text(r: dict[str, Any]) -> str:
    return (
        f"{_num(r['ratio_of_medians'], 'x', 2)} "
        f"(medians {_ms(r['server_p50_ms'])} / {_ms(r['floor_p50_ms'])}), "
        f"median ratio {_num(r['median_ratio'], 'x', 2)}, n={r['n']}, "
        f"same text {_pct(r.get('same_text_share'))}"
    )


def render_table(report: dict[str, Any]) -> str:
    req, srv, env = report["requests"], report["server"], report["environment"]
    lat, floor = req["latency_ms"], report.get("floor")
    speed = report["time_compression"]
    loads = f"at start {_load(srv['load_avg_before'])}, at end {_load(srv['load_avg_after'])}"
    lines = [
        f"inkling bench: {len(report['sessions'])} session(s), {req['requests']} requests "
        f"({req['keystrokes']} keystrokes); {env['model_name']}, {report['floor_template']} prompt, "
        f"{env['threads']} thread(s)",
        "REAL-TIME replay" if speed == 1 else f"TIME-COMPRESSED x{speed}: not headline figures",
        f"load average (1/5/15 min): {loads}; {env['cpus']} CPUs",
        "",
        f"{'latency (client-side)':<44}{'p50':>10}{'p90':>10}{'p99':>10}{'n':>7}",
        _latency_row("completions shown (before the next event)", lat["shown"]),
        _latency_row("non-empty answers, whenever they came", lat["non_empty_any_time"]),
        _latency_row("after a pause (>= 1 s), shown", lat["after_pause_shown"]),
        _latency_row("cache-answerable requests, shown", lat["cache_answerable_shown"]),
        _latency_row("1-key inline (see below), computed", lat["one_key_inline"]),
        _latency_row("cancel -> RequestCancelled answer", lat["cancel_acknowledged"]),
    ]
    if floor:
        lines.append(_latency_row("floor: llama-cpp-python, paired requests", floor["engine_ms_paired"]))
        lines.append(_latency_row("floor: requests before a pause", floor["engine_ms_before_pause"]))
    pauses = req["pauses"]
    lines += [
        "",
        _row(
            "answered before the next event",
            f"{_pct(req['answered_before_next_share'])} of requests, "
            f"{_pct(req['keystrokes_answered_before_next_share'])} of keystrokes",
        ),
        _row(
            "completion shown",
            f"{_pct(req['shown_share_of_completable'])} of requests outside skip positions",
        ),
        _row("outcomes", ", ".join(f"{k} {v}" for k, v in req["by_outcome"].items() if v)),
        _row("modes", ", ".join(f"{k} {v}" for k, v in req["by_mode"].items())),
        _row(
            "cache-answerable requests",
            f"{req['cache_answerable']['count']} "
            f"({', '.join(f'{k} {v}' for k, v in req['cache_answerable']['by_kind'].items()) or 'none'}), "
            f"shown {req['cache_answerable']['shown']}",
        ),
        _row(
            "pauses",
            f"{pauses['count']}: completion shown {pauses['completion_shown']}, "
            f"empty {pauses['empty_in_time']}, "
            f"nothing in time {pauses['nothing_in_time']} (at skip positions {pauses['skip_position']})",
        ),
    ]
    if floor:
        lines += [
            _row("server / floor, all paired", _ratio_text(floor["ratio_all_paired"])),
            _row("server / floor, 1-key inline*", _ratio_text(floor["ratio_one_key_inline"])),
            _row("  of which shown", _ratio_text(floor["ratio_one_key_inline_shown"])),
            "  * after one key press, inline mode, not cache-answerable, computed to the end, not ranked",
            _row("ranked blank lines / greedy floor", _ratio_text(floor["ratio_ranked"])),
        ]
    scenarios = report.get("scenarios") or {}
    if scenarios:
        lines += [
            "",
            f"{'whole lines: server / floor':<44}{'server p50':>11}{'floor p50':>11}"
            f"{'median ratio':>14}{'empty*':>9}{'n':>5}",
        ]
        for label, title in SCENARIOS:
            if label in scenarios:
                item = scenarios[label]
                ratio = item["ratio"]
                lines.append(
                    f"{title:<44}{_ms(ratio['server_p50_ms']):>11}{_ms(ratio['floor_p50_ms']):>11}"
                    f"{_num(ratio['median_ratio'], 'x', 2):>14}"
                    f"{_pct(item['empty_where_floor_answered_share']):>9}{item['requests']:>5}"
                )
        lines.append("  * nothing shown within the wait where the floor wrote a line within it")
    tokens = f"server {_num(srv['generated_tokens_per_s'])}"
    prompt = f"server {_num(srv['prompt_eval_tokens_per_s'])}"
    if floor:
        tokens += f", floor {_num(floor['generated_tokens_per_s'])}"
        prompt += f", floor {_num(floor['prompt_eval_tokens_per_s'])}"
    lines += [
        "",
        _row(
            "start -> first completion",
            f"median {_num(srv['spawn_to_first_completion_s']['median'], ' s', 2)} over "
            f"{srv['servers']} server start(s) ("
            + ", ".join(_num(st["spawn_to_first_completion_s"], " s", 2) for st in srv["startup"])
            + f"); ready median {_num(srv['spawn_to_ready_s_median'], ' s', 2)}",
        ),
        _row(
            "RSS",
            f"start {srv['rss_start_mib']:.0f} MiB, peak {srv['rss_peak_mib']:.0f} MiB "
            f"(model {srv['model_mib']:.0f} MiB; peak - model {srv['rss_peak_minus_model_mib']:.0f} MiB)",
        ),
        _row(
            "server CPU",
            f"{srv['cpu_s_replay']:.1f} s in {srv['replay_wall_s']:.0f} s of replay "
            f"({_pct(srv['cpu_share_of_replay_wall'])} of one core); "
            f"median {_num(srv['cpu_s_to_first_completion_median'])} s to the first completion",
        ),
        _row("generated tokens/s", f"{tokens} (server generated {srv['generated_tokens']} tokens)"),
        _row(
            "prompt tokens/s (evaluated)",
            f"{prompt}; KV reuse {_pct(srv['prompt_tokens_reused_share'])} "
            f"of {srv['prompt_tokens']} prompt tokens",
        ),
        _row(
            "engine",
            f"{srv['engine_requests']} generations started, {srv['engine_cancelled']} cancelled; "
            f"{srv['engine_prefills']} background prompt evaluations "
            f"({srv['engine_prefill_tokens']} tokens); "
            f"{srv['cache_hits']} answers from the server's cache; "
            f"client send lag max {srv['max_send_lag_ms']:.1f} ms",
        ),
    ]
    indexed = [p for p in srv["project_index"] if p.get("files")]
    if indexed:
        lines.append(
            _row(
                "project index (--workspace)",
                "; ".join(
                    f"{p['session']}: {p['files']} files, {p['definitions']} definitions, {p['ring']} chunks"
                    for p in indexed
                ),
            )
        )
    return "\n".join(lines)


def _load(values: Sequence[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def plot_histogram(report: dict[str, Any], records: Sequence[RequestRecord], path: Path) -> None:
    """Latency histogram: what was shown, every non-empty answer, and the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    shown = _latencies(r for r in records if r.outcome == "shown")
    answered = _latencies(r for r in records if r.outcome in ("shown", "late"))
    floor_ms = [row["floor"]["engine_ms"] for row in report["records"] if "floor" in row]
    everything = [v for v in (*shown, *answered, *floor_ms) if v > 0] or [1.0]
    low, high = np.log10(max(min(everything), 1.0) * 0.9), np.log10(max(everything) * 1.1)
    bins: list[float] = np.logspace(low, high, 40).tolist()
    figure, axes = plt.subplots(figsize=(9, 5))
    axes.hist(answered, bins=bins, alpha=0.45, label=f"non-empty answers, any time (n={len(answered)})")
    axes.hist(shown, bins=bins, alpha=0.7, label=f"shown before the next key (n={len(shown)})")
    if floor_ms:
        axes.hist(
            floor_ms,
            bins=bins,
            histtype="step",
            linewidth=2,
            label=f"floor, llama-cpp-python (n={len(floor_ms)})",
        )
    gap = report["requests"]["keystroke_gap_ms"]["p50"]
    if gap:
        axes.axvline(gap, color="black", linestyle="--", label=f"median keystroke gap {gap:.0f} ms")
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("requests")
    speed = report["time_compression"]
    axes.set_title("inkling bench" + ("" if speed == 1 else f" (TIME-COMPRESSED x{speed})"))
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def build_report(
    *,
    sessions: Sequence[Session],
    run: ServerRun,
    floor: FloorRun | None,
    floor_template: str,
    settings: dict[str, Any],
    threads: int,
    speed: float,
    model_path: Path,
    command: Sequence[str],
) -> dict[str, Any]:
    import datetime
    import os
    import platform
    from importlib.metadata import version

    from lsp_server import __version__

    records = run.records
    model_bytes = model_path.stat().st_size
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": list(command),
        "time_compression": speed,
        "real_time": speed == 1,
        "definitions": __doc__,
        "environment": {
            "cpus": len(os.sched_getaffinity(0)),
            "threads": threads,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "inkling": __version__,
            "llama_cpp_python": version("llama-cpp-python"),
            "model": str(model_path),
            "model_name": model_path.name,
            "server_model": run.status.get("model"),
            "server_template": run.status.get("template"),
        },
        "floor_template": floor_template,
        "settings": settings,
        "sessions": [session_figures(s) for s in sessions],
        "requests": request_figures(records),
        "server": server_figures(run, model_bytes),
        "floor": floor_figures(records, floor) if floor is not None else None,
        "scenarios": scenario_figures(records, floor),
        "records": request_rows(records, floor),
    }
