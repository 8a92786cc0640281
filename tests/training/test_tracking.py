"""Runs tracked locally: event files read back without TensorBoard, the curves' PNG, the report.

The training stages' own events are checked in test_pipeline.py; here the files are written
with tensorboardX directly, as transformers' TensorBoard callback writes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lsp_server.cli import main
from training.config import ConfigError
from training.tracking import CURVES_FILE, EVENTS_DIR, find_stages, read_scalars, report_run


def _write_run(stage: Path, steps: int = 10, **extra: list[tuple[int, float]]) -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(stage / EVENTS_DIR))
    writer.add_text("args", "{}", 0)  # not a scalar: skipped
    writer.add_scalar("eval/loss", 3.0, 0)
    for step in range(1, steps + 1):
        writer.add_scalar("train/loss", 3.0 - 0.1 * step, step)
        writer.add_scalar("train/learning_rate", 1e-3 * (1 - step / (steps + 1)), step)
    for tag, points in extra.items():
        for step, value in points:
            writer.add_scalar(tag.replace("__", "/"), value, step)
    writer.add_scalar("eval/loss", 2.0, steps)  # the last record
    writer.close()
    report = {"eval_loss_before": 3.0, "eval_loss_after": 2.0, "optimizer_steps": steps, "processes": 1}
    (stage / "training_report.json").write_text(json.dumps(report))


def test_scalars_read_back_in_step_order(tmp_path: Path) -> None:
    _write_run(tmp_path / "sft")
    scalars = read_scalars(tmp_path / "sft" / EVENTS_DIR)
    assert scalars["eval/loss"] == [(0, 3.0), (10, 2.0)]
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, 11))
    assert scalars["train/loss"][-1][1] == pytest.approx(2.0)
    assert "args" not in scalars


def test_a_record_cut_short_ends_its_file(tmp_path: Path) -> None:
    _write_run(tmp_path / "sft")
    (file,) = (tmp_path / "sft" / EVENTS_DIR).glob("events.out.tfevents.*")
    data = file.read_bytes()
    file.write_bytes(data[:-7])  # a run killed while writing its last record
    scalars = read_scalars(tmp_path / "sft" / EVENTS_DIR)
    assert scalars["eval/loss"] == [(0, 3.0)] and len(scalars["train/loss"]) == 10


def test_report_prints_each_stage_and_plots_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_run(tmp_path / "run/sft")
    _write_run(
        tmp_path / "run/dpo", steps=4, train__rewards__margins=[(1, 0.0), (2, 0.1), (3, 0.3), (4, 0.4)]
    )
    (tmp_path / "run/data").mkdir()  # not a stage
    assert main(["train", "report", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.index("sft: ") > out.index("dpo: ")  # in directory order
    assert "eval_loss_before 3, eval_loss_after 2, optimizer_steps 10" in out
    assert "train/rewards/margins" in out and "data" not in out.replace("run/data", "")
    png = tmp_path / "run" / CURVES_FILE
    assert f"curves: {png}" in out and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # One stage, printed only.
    text = report_run(str(tmp_path / "run/sft"), plot=None)
    assert text.startswith("sft: ") and "curves:" not in text


def test_a_recipe_names_its_stages(tmp_path: Path) -> None:
    _write_run(tmp_path / "out/sft")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump({"sft": {"output": str(tmp_path / "out/sft")}, "prepare": {"output": "x"}})
    )
    assert [stage.name for stage in find_stages(str(recipe))] == ["sft"]
    written = report_run(str(recipe), plot=str(tmp_path / "curves.png"))
    assert written.endswith(f"curves: {tmp_path / 'curves.png'}")


def test_nothing_tracked_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no tracked stage"):
        find_stages(str(tmp_path))
    with pytest.raises(ConfigError, match="neither a run directory nor a recipe"):
        find_stages(str(tmp_path / "missing"))
