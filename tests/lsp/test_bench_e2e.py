"""`inkling bench --quick` end to end: the real server over stdio, the real model, the floor.

A smoke test of the instrument: it checks that the report is complete and
consistent with itself and with the session, never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lsp_server.bench.floor import PAIRED_OUTCOMES, wanted
from lsp_server.bench.replay import RequestRecord
from lsp_server.bench.report import OUTCOMES
from lsp_server.bench.sessions import load_sessions

pytestmark = [pytest.mark.model, pytest.mark.slow]

Run = tuple[dict[str, Any], Path, str]
"""The report, its path, and what the command printed."""


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    """`inkling bench --quick --quiet ARGS`, which must succeed."""
    result = subprocess.run(
        [sys.executable, "-m", "lsp_server", "bench", "--quick", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    result = _bench("--out", str(out), "--plot", str(out.with_suffix(".png")))
    return json.loads(out.read_text()), out, result.stdout


def test_the_table_is_printed_and_the_files_are_written(bench_run: Run) -> None:
    report, out, stdout = bench_run
    assert "REAL-TIME replay" in stdout and "load average" in stdout
    assert "server / floor, 1-key inline" in stdout
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.with_suffix(".server.log").read_text()  # the server's own log, for post-mortems
    (session,) = load_sessions(out.with_suffix(".sessions.json"))
    assert report["sessions"][0]["fingerprint"] == session.fingerprint()
    assert report["real_time"] is True and report["time_compression"] == 1
    assert len(report["environment"]["model"]) > 0 and report["environment"]["cpus"] >= 1


def test_every_event_has_one_classified_request(bench_run: Run) -> None:
    report, out, _ = bench_run
    (session,) = load_sessions(out.with_suffix(".sessions.json"))
    records = report["records"]
    requests = report["requests"]
    assert [r["index"] for r in records] == list(range(len(session.events)))
    assert [r["kind"] for r in records] == [e.kind for e in session.events]
    assert requests["requests"] == len(records)
    assert sum(requests["by_outcome"].values()) == len(records)
    assert requests["by_outcome"]["error"] == 0
    for r in records:
        assert r["outcome"] in OUTCOMES and r["mode"] in ("inline", "block", "skip")
        if r["outcome"] == "shown":
            assert r["text"] and 0 < r["latency_ms"] <= r["gap_ms"]
        if r["outcome"] in ("late", "late_empty"):
            assert r["latency_ms"] > r["gap_ms"]
    shown = [r["latency_ms"] for r in records if r["outcome"] == "shown"]
    assert report["requests"]["latency_ms"]["shown"]["n"] == len(shown)
    for share in ("answered_before_next_share", "shown_share_of_completable"):
        assert 0 <= requests[share] <= 1


def test_start_resources_and_engine_counters_are_measured(bench_run: Run) -> None:
    report, _, _ = bench_run
    server = report["server"]
    (start,) = server["startup"]  # one session, one fresh server
    assert start["first_completion"]  # the real model answered through LSP
    assert (
        0
        < start["spawn_to_initialized_s"]
        <= start["spawn_to_ready_s"]
        <= start["spawn_to_first_completion_s"]
    )
    assert server["spawn_to_first_completion_s"]["median"] == round(start["spawn_to_first_completion_s"], 3)
    assert server["rss_peak_mib"] >= server["rss_start_mib"] > server["model_mib"] / 2
    assert server["cpu_s_replay"] > 0 and server["cpu_s_to_first_completion_median"] > 0
    assert server["engine_requests"] > 0 and server["prompt_tokens"] > 0
    assert len(server["load_avg_before"]) == 3 and server["exit_codes"] == [0]


def test_the_floor_ran_the_paired_requests(bench_run: Run) -> None:
    report, _, _ = bench_run
    floor = report["floor"]

    def as_record(row: dict[str, Any]) -> RequestRecord:
        return RequestRecord(
            row["session"],
            row["index"],
            row["kind"],
            0.0,
            row["planned_gap_ms"],
            outcome=row["outcome"],
            mode=row["mode"],
        )

    ran = [r for r in report["records"] if "floor" in r]
    assert ran == [r for r in report["records"] if wanted(as_record(r))]
    assert any(r["planned_gap_ms"] >= 1000 for r in ran)  # the final pause at least
    paired = [r for r in ran if r["outcome"] in PAIRED_OUTCOMES]
    assert floor["runs"] == len(ran) and floor["pairs"] == len(paired)
    assert floor["template"] == report["environment"]["server_template"]
    assert floor["model"] == report["environment"]["server_model"]
    for row in ran:
        assert row["floor"]["engine_ms"] > 0 and row["floor"]["prompt_tokens"] > 0
    if paired:
        ratio = floor["ratio_all_paired"]
        assert ratio["n"] == len(paired) and ratio["ratio_of_medians"] > 0


def test_a_workspace_run_indexes_the_project_and_skips_the_floor(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "shapes.py").write_text(
        "".join(
            f"def area_{i}(width: float, height: float) -> float:\n    return width * height * {i}\n\n\n"
            for i in range(20)
        )
    )
    main = project / "main.py"
    main.write_text(
        "from shapes import area_1, area_2\n\n\n"
        + "".join(
            f"def total_{i}(w: float, h: float) -> float:\n    return area_1(w, h) + area_2(h, w) + {i}\n\n\n"
            for i in range(40)
        )
    )
    out = tmp_path / "workspace.json"
    result = _bench("--file", str(main), "--workspace", str(project), "--out", str(out))
    assert "no floor" in result.stderr
    report = json.loads(out.read_text())
    assert report["floor"] is None
    (index,) = report["server"]["project_index"]
    assert index["files"] >= 2 and index["definitions"] >= 60  # both files, as the editor's server sees them
    assert "project index (--workspace)" in result.stdout
