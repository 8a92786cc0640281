"""The whole pipeline through the `inkling train` command on a tiny model:
prepare -> sft (with checkpoints, resume and a second stage) -> pairs -> dpo.

The model is random and tiny, so these tests check the mechanics and the
adapter contract with `export`; the measured recipe on Gemma 3 270M is in
training/README.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from lsp_server.cli import main
from tests.training.test_data import GO, PYTHON
from training.pairs import TestsConfig, _TestRunner

pytestmark = pytest.mark.slow


def _write_sources(root: Path) -> None:
    for i in range(24):
        body = (
            PYTHON.replace("area", f"area_{i}").replace("Counter", f"Counter{i}").replace("bump", f"bump_{i}")
        )
        body += f"\n\ndef helper_{i}(v):\n    return v * {i} + len(str(v)) - {i * 3}\n"
        (root / f"pkg{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"pkg{i % 3}/mod{i}.py").write_text(body)
    (root / "cmd").mkdir()
    (root / "cmd/main.go").write_text(GO)
    block = "from pkg0 import mod0\n\nfor width in range(10):\n    print(mod0.area_0(width, 3), width)\n"
    (root / "README.md").write_text(f"# Tool\n\n```python\n{block}```\n")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    _write_sources(root / "team")
    recipe = {
        "prepare": {
            "sources": [{"path": str(root / "team")}],
            "output": str(root / "data"),
            "validation_share": 0.25,
            "test_share": 0.1,
            "examples": {"chars_per_example": 150, "max_examples_per_file": 6},
        },
        "sft": {
            "base": str(tiny_model),
            "dataset": str(root / "data"),
            "output": str(root / "sft"),
            "max_length": 256,
            "max_steps": 12,
            "gradient_accumulation_steps": 2,
            "learning_rate": 0.01,
            "warmup_steps": 0,
            "eval_examples": 16,
            "save_steps": 6,
            "logging_steps": 6,
        },
        "pairs": {
            "adapter": str(root / "sft"),
            "dataset": str(root / "data"),
            "output": str(root / "pairs"),
            "holes": 8,
            "samples_per_hole": 2,
            "max_new_tokens": 24,
            "max_length": 256,
        },
        "dpo": {
            "adapter": str(root / "sft"),
            "pairs": str(root / "pairs"),
            "output": str(root / "dpo"),
            "max_steps": 2,
            "gradient_accumulation_steps": 1,
            "max_length": 256,
            "logging_steps": 1,
        },
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", "run", str(root / "recipe.yaml")]) == 0
    return root


def _report(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_prepare_output(workdir: Path) -> None:
    stats = _report(workdir / "data/stats.json")
    assert stats["sources"]["team"]["files_kept"] == 26  # 24 modules, main.go, the README's code block
    assert stats["splits"]["train"]["examples"] > 40
    assert set(stats["examples"]["kind"]) == {"fim", "comment_code", "next_token"}


def test_sft_lowers_validation_loss_and_writes_the_adapter_contract(workdir: Path, tiny_model: Path) -> None:
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from training.base import use_bf16

    report = _report(workdir / "sft/training_report.json")
    assert report["optimizer_steps"] == 12
    assert report["precision"] == ("bf16" if use_bf16("auto") else "fp32")
    assert report["eval_loss_after"] < report["eval_loss_before"]
    metadata = _report(workdir / "sft/inkling_adapter.json")
    assert metadata["fim_tokens"] == {
        "4": "<|fim_prefix|>",
        "5": "<|fim_suffix|>",
        "6": "<|fim_middle|>",
        "7": "<|file_sep|>",
    }
    assert metadata["fim_format"] == "spm" and metadata["stage"] == "sft"
    assert metadata["fim_layout"] == "prefix-last"
    assert metadata["base"]["path"] == str(tiny_model.resolve()) and len(metadata["base"]["sha256"]) == 64
    assert metadata["recipe"]["max_steps"] == 12
    config = _report(workdir / "sft/adapter_config.json")
    assert config["trainable_token_indices"] == [4, 5, 6, 7] and config["r"] == 16
    with safe_open(str(workdir / "sft/adapter_model.safetensors"), "pt") as weights:
        names = list(weights.keys())
        delta = weights.get_tensor(next(n for n in names if "trainable_tokens_delta" in n))
    assert any("lora_A" in n for n in names)
    base_rows = AutoModelForCausalLM.from_pretrained(str(tiny_model)).get_input_embeddings().weight[4:8]
    assert delta.shape == base_rows.shape and delta.dtype == base_rows.dtype  # bf16 compute, float32 weights
    assert (delta - base_rows).abs().max() > 1e-3  # the FIM rows were trained
    assert sorted(p.name for p in (workdir / "sft/checkpoints").glob("checkpoint-*")) == [
        "checkpoint-12",
        "checkpoint-6",
    ]


def test_each_stage_is_tracked_in_tensorboard_events_and_a_png(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.tracking import CURVES_FILE, EVENTS_DIR, read_scalars

    sft = read_scalars(workdir / "sft" / EVENTS_DIR)
    assert [step for step, _ in sft["train/loss"]][:2] == [6, 12]  # logging_steps: 6
    assert [step for step, _ in sft["train/learning_rate"]][:2] == [6, 12]
    report = _report(workdir / "sft/training_report.json")
    eval_loss = dict(sft["eval/loss"])  # before training (step 0) and after (step 12)
    assert eval_loss[0] == pytest.approx(report["eval_loss_before"])
    assert eval_loss[12] < eval_loss[0] and "eval/mean_token_accuracy" in sft
    dpo = read_scalars(workdir / "dpo" / EVENTS_DIR)
    assert [step for step, _ in dpo["train/rewards/margins"]] == [1, 2] and "train/loss" in dpo
    for stage in ("sft", "dpo"):
        assert (workdir / stage / CURVES_FILE).read_bytes()[:4] == b"\x89PNG"
        assert len(list((workdir / stage / EVENTS_DIR).glob("events.out.tfevents.*"))) == 1
    assert main(["train", "report", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert "sft: " in out and "dpo: " in out and "pairs: " in out and "verdicts" in out
    assert f"curves: {workdir / CURVES_FILE}" in out


def test_sft_resumes_from_its_last_checkpoint(workdir: Path) -> None:
    argv = [
        "train",
        "sft",
        "--config",
        str(workdir / "recipe.yaml"),
        "--set",
        "resume=true",
        "--set",
        "max_steps=14",
    ]
    # The last sitting ended at checkpoint-12: its final loss is the new sitting's "before",
    # read from its report instead of measured again (a marker value shows which happened).
    previous = workdir / "sft/training_report.json"
    previous.write_text(json.dumps({**_report(previous), "eval_loss_after": 123.0}), encoding="utf-8")
    assert main(argv) == 0
    report = _report(workdir / "sft/training_report.json")
    assert report["resumed_from"].endswith("checkpoint-12") and report["optimizer_steps"] == 14
    assert report["eval_loss_before"] == 123.0
    # The resumed sitting adds to the run's events: the first sitting's stay.
    from training.tracking import EVENTS_DIR, read_scalars

    events = read_scalars(workdir / "sft" / EVENTS_DIR)
    assert 6 in dict(events["train/loss"]) and sorted(dict(events["eval/loss"]))[-1] == 14


def test_second_stage_mixes_in_first_stage_data(workdir: Path) -> None:
    argv = [
        "train",
        "sft",
        "--config",
        str(workdir / "recipe.yaml"),
        "--set",
        f"init_adapter={workdir / 'sft'}",
        "--set",
        f"replay_dataset={workdir / 'data'}",
        "--set",
        "replay_share=0.5",
        "--set",
        f"output={workdir / 'stage2'}",
        "--set",
        "max_steps=2",
    ]
    assert main(argv) == 0
    stage1 = _report(workdir / "sft/training_report.json")["examples"]["train"]
    report = _report(workdir / "stage2/training_report.json")
    assert report["examples"]["train"] > stage1  # own examples + as many replayed
    assert _report(workdir / "stage2/inkling_adapter.json")["parent"] == str((workdir / "sft").resolve())


def test_pairs_and_dpo(workdir: Path) -> None:
    import datasets

    report = _report(workdir / "pairs/pairs_report.json")
    assert report["holes"] == 8 and report["samples"] == 16 and report["pairs"] >= 1
    pairs = datasets.load_from_disk(str(workdir / "pairs/pairs"))
    validation = set(json.loads((workdir / "data/files.json").read_text())["validation"])
    assert set(pairs["path"]) <= validation  # held-out holes only
    for row in pairs:
        assert row["chosen"] != row["rejected"] and row["rejected_reasons"]
    dpo = _report(workdir / "dpo/training_report.json")
    assert dpo["optimizer_steps"] == 2 and dpo["pairs"] == len(pairs)
    assert abs(dpo["first_log"]["rewards/margins"]) < 1e-3  # the reference is the SFT model itself
    metadata = _report(workdir / "dpo/inkling_adapter.json")
    assert metadata["stage"] == "dpo" and metadata["parent"] == str((workdir / "sft").resolve())
    assert (workdir / "dpo/adapter_model.safetensors").exists() and not (workdir / "dpo/ref").exists()


def test_bad_config_is_a_clear_error(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "sft", "--config", str(workdir / "recipe.yaml"), "--set", "max_stesp=3"]) == 2
    assert "unknown key sft.max_stesp" in capsys.readouterr().err
    assert (
        main(["train", "run", str(workdir / "recipe.yaml"), "--stages", "sft", "--set", "max_steps=3"]) == 2
    )
    assert "prefix it with a stage" in capsys.readouterr().err


def test_tests_decide_when_they_exist(tmp_path: Path) -> None:
    project = tmp_path / "calc"
    project.mkdir()
    (project / "calc.py").write_text("def double(x):\n    return x * 2\n")
    (project / "test_calc.py").write_text("from calc import double\nassert double(3) == 6\n")
    runner = _TestRunner(TestsConfig(root=str(project), command=f"{sys.executable} test_calc.py"))
    window = "def double(x):\n    return x * 2\n"
    assert runner.available("calc/calc.py")
    assert runner.check("calc/calc.py", window, "def double(x):\n    return x + x\n") is True
    assert runner.check("calc/calc.py", window, "def double(x):\n    return x + 2\n") is False
    assert runner.check("calc/calc.py", "not in the file", "x") is None
    assert (project / "calc.py").read_text() == window  # the original is never touched


def test_time_budget_stops_training_and_keeps_the_adapter_and_a_checkpoint(workdir: Path) -> None:
    argv = ["train", "sft", "--config", str(workdir / "recipe.yaml"), "--set", f"output={workdir / 'budget'}"]
    argv += ["--set", "max_steps=50", "--set", "max_minutes=0.0001", "--set", "eval_examples=2"]
    assert main(argv) == 0
    report = _report(workdir / "budget/training_report.json")
    assert report["stopped_by_time_budget"] and report["optimizer_steps"] == 1
    assert (workdir / "budget/adapter_model.safetensors").exists()
    assert [p.name for p in (workdir / "budget/checkpoints").glob("checkpoint-*")] == ["checkpoint-1"]
