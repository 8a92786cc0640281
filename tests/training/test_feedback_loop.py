"""`inkling train feedback-loop` end to end at a tiny scale: the real model and server, one
dev session recorded, one SFT and one DPO step, both models built and compared on a test session."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(3600)]

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def test_the_loop_at_a_tiny_scale(tmp_path: Path) -> None:
    source = tmp_path / "replay-source"
    source.mkdir()
    for name in ("textwrap.py", "shlex.py", "fnmatch.py", "colorsys.py", "bisect.py", "glob.py"):
        shutil.copy(STDLIB / name, source / name)
    replay_recipe = tmp_path / "replay.yaml"
    replay_recipe.write_text(
        yaml.safe_dump(
            {"prepare": {"sources": [{"path": str(source), "name": "tiny"}], "validation_share": 0.2}}
        )
    )
    work = tmp_path / "loop"
    config = tmp_path / "loop.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "work": str(work),
                "dev_sessions": 1,
                "test_sessions": 1,
                "lines": 2,
                "replay_recipe": str(replay_recipe),
                "server_args": [
                    "--threads",
                    "2",
                    "--max-tokens-block",
                    "32",
                    "--time-budget-block-ms",
                    "2000",
                ],
                "feedback": {"sft_from_typed": True},
                "sft": {"max_steps": 1, "gradient_accumulation_steps": 2, "eval_examples": 2, "threads": 2},
                "dpo": {"max_steps": 1, "gradient_accumulation_steps": 1, "max_length": 256, "threads": 2},
            }
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "lsp_server", "train", "feedback-loop", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads((work / "report.json").read_text())
    assert set(report["seconds"]) == {"record", "data", "replay", "sft", "dpo", "build", "measure"}
    assert report["record"]["sessions"] == 1 and report["record"]["requests"] > 0
    assert report["record"]["offers"] == sum(report["record"]["feedback"].values()) > 0
    assert report["data"]["records"] == report["record"]["offers"]
    assert report["sft"]["optimizer_steps"] == 1
    assert report["dpo"].get("optimizer_steps") == 1 or report["dpo"] == {"skipped": "no pairs"}
    for name in ("old", "new"):
        assert Path(report["models"][name]["gguf"]).is_file()
    old, new = report["measure"]["old"], report["measure"]["new"]
    assert old["model"].endswith("inkling-start-q4_k_m.gguf") and new["model"].endswith(
        "inkling-feedback-q4_k_m.gguf"
    )
    assert old["keys_planned"] == new["keys_planned"] > 0
    assert set(report["difference"]) == {
        "acceptance_points",
        "chars_per_key_change",
        "latency_p50_ms",
        "latency_p90_ms",
    }
    assert (
        report["dev_files"]
        and report["test_files"]
        and not set(report["dev_files"]) & set(report["test_files"])
    )
    assert "acceptance (accepted / offers)" in (work / "report.txt").read_text()
