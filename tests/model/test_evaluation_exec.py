"""`inkling eval --track exec` end to end on the real model: two held-out holes from the cache,
answered by ours and the baseline, every answer judged by running CPython's tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from lsp_server.corpora import SourceFile
from lsp_server.errors import ModelError
from lsp_server.evaluation import tested_holes
from lsp_server.evaluation.metrics import exact_match
from lsp_server.holes import HoleKind
from lsp_server.models import resolve_model
from tests.requirements import DEV_EXTRA, require

pytestmark = [pytest.mark.model, pytest.mark.slow]

EVAL = [sys.executable, "-m", "lsp_server", "eval", "--no-progress"]


def _has_model() -> bool:
    try:
        resolve_model()
    except ModelError:
        return False
    return True


def _seed_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> list[tested_holes.TestedHole]:
    """The test split's selection in `cache`, made of colorsys's holes (seconds to choose,
    where the real selection takes many minutes)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    source = SourceFile("python", stdlib / "colorsys.py", "python-stdlib/colorsys.py", "python-stdlib")
    kinds = (HoleKind.LINE, HoleKind.BLOCK)
    holes = tested_holes.choose_holes(1, kinds=kinds, sources=[source])
    monkeypatch.setenv("INKLING_CACHE", str(cache))
    monkeypatch.setattr(tested_holes, "choose_holes", lambda *args, **kwargs: holes)
    assert tested_holes.exec_selection(1, split="test", kinds=kinds) == holes
    return holes


def test_both_runners_are_scored_by_running_the_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(_has_model(), "the default model", DEV_EXTRA)
    holes = _seed_cache(tmp_path / "cache", monkeypatch)
    out = tmp_path / "exec.json"
    environment = {**os.environ, "INKLING_CACHE": str(tmp_path / "cache")}
    argv = [*EVAL, "--track", "exec", "--split", "test", "--per-group", "1", "--out", str(out)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    meta, tasks = report["meta"], report["tasks"]
    assert meta["track"] == "exec" and meta["runners"] == ["ours", "baseline"]
    assert meta["exec"]["sandbox"] and meta["exec"]["test_runs"] >= 0
    assert [task["id"] for task in tasks] == [hole.task.id for hole in holes]
    for task in tasks:
        assert (task["module"], task["tests"]) == ("colorsys", "test.test_colorsys")
        assert task["repository"] == sysconfig.get_paths()["stdlib"]  # project context: the stdlib
        for answer in task["answers"].values():
            assert isinstance(answer["score"]["passed"], bool)
            if exact_match(answer["text"], task["expected"]):
                assert answer["score"]["passed"]
            if not answer["text"].strip():
                assert not answer["score"]["passed"]
    for runner in ("ours", "baseline"):
        passed = [task["answers"][runner]["score"]["passed"] for task in tasks]
        assert report["summary"][runner]["all"]["pass_at_1"] == sum(passed) / len(passed)
    assert "pass@1%" in result.stdout

    # --rescore: the metrics again, the pass flags as stored.
    again = tmp_path / "again.json"
    rescored = subprocess.run(
        [*EVAL, "--rescore", str(out), "--out", str(again)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
    )
    assert rescored.returncode == 0, rescored.stderr[-3000:]
    assert json.loads(again.read_text())["summary"] == report["summary"]
    assert "pass@1%" in rescored.stdout
