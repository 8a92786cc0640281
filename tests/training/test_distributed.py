"""`inkling train sft|dpo --processes 2`: two CPU processes under `accelerate launch` (DDP over
gloo) train the same adapter as one process on the same global batch.

The global batch is the whole (tiny) training set: 4 examples, as 4 accumulated micro-batches
of 1 in one process and 2 x 2 in two, so every optimizer step sees the same examples whatever
order the sampler deals them in. Both runs are float32 (`precision: fp32`; bf16 autocast would
add rounding of its own) from the same seed, so they differ only in the order of additions:
the gradient summed in one process, or in two and averaged by gloo's all-reduce, the labelled
tokens counted across processes. That is float32 rounding, about 1e-7 relative, and the losses
agree to 1e-7 (tolerance 1e-5 relative). AdamW divides each gradient element by its own running
size, so an element whose gradient nearly cancels out carries its rounding into its update at a
larger scale: the largest single weight difference seen was 7e-6 (typically 5e-7), against
2e-2 for a real fault (before the fix in `training/sft.py`, an evaluation before training left
the model unwrapped: each process trained on its own half, gradients never averaged). Hence
1e-4 on any single weight (one hundredth of one step's learning rate), and 1e-4 on the norm of
the LoRA B difference relative to the norm of B itself (B starts at zero, so its norm is what
training wrote; seen: 3e-7).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lsp_server.cli import main
from tests.training.test_pipeline import _write_sources
from training.tracking import EVENTS_DIR, read_scalars

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

LOSS_TOLERANCE = 1e-5
WEIGHT_TOLERANCE = 1e-4
B_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    import datasets

    root = tmp_path_factory.mktemp("distributed")
    _write_sources(root / "team")
    same_global_batch = {"per_device_train_batch_size": 1, "learning_rate": 0.01, "warmup_steps": 0}
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
            "max_length": 256,
            "max_train_examples": 4,
            "max_steps": 4,
            "eval_examples": 8,
            "logging_steps": 1,
            "precision": "fp32",
            "lora": {"dropout": 0.0},  # dropout masks are random, and differ between processes
            **same_global_batch,
        },
        "dpo": {
            "adapter": str(root / "sft-1"),
            "pairs": str(root / "pairs"),
            "max_steps": 2,
            "max_length": 256,
            "logging_steps": 1,
            **same_global_batch,
            "learning_rate": 0.001,
        },
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["train", "prepare", "--config", str(root / "recipe.yaml")]) == 0
    # Four preference pairs made from validation rows (what `inkling train pairs` would keep).
    rows = datasets.load_from_disk(str(root / "data/dataset"))["validation"].select(range(4))
    pairs = [
        {**row, "chosen": row["middle"], "rejected": "pass\n", "rejected_reasons": "test"} for row in rows
    ]
    datasets.Dataset.from_list(pairs).save_to_disk(str(root / "pairs/pairs"))
    return root / "recipe.yaml"


def _one_process(stage: str, recipe: Path, output: Path) -> dict:  # type: ignore[type-arg]
    argv = ["train", stage, "--config", str(recipe), "--set", f"output={output}"]
    assert main([*argv, "--set", "gradient_accumulation_steps=4"]) == 0
    return _report(output)


def _two_processes(stage: str, recipe: Path, output: Path) -> tuple[dict, str, str]:  # type: ignore[type-arg]
    """The real command line: `inkling train STAGE --processes 2` re-runs itself under accelerate."""
    argv = [sys.executable, "-m", "lsp_server.cli", "train", stage, "--processes", "2"]
    argv += ["--config", str(recipe), "--set", f"output={output}", "--set", "gradient_accumulation_steps=2"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=400, cwd=output.parent, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return _report(output), done.stdout, done.stderr


def _report(output: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((output / "training_report.json").read_text())  # type: ignore[no-any-return]


def _weights_difference(first: Path, second: Path) -> tuple[float, float]:
    """The largest difference of any weight, and that of the LoRA B matrices relative to B."""
    import torch
    from safetensors.torch import load_file

    a = load_file(str(first / "adapter_model.safetensors"))
    b = load_file(str(second / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    largest = max(float((a[name] - b[name]).abs().max()) for name in a)
    lora_b = [name for name in a if "lora_B" in name]
    difference = torch.cat([(a[name] - b[name]).flatten() for name in lora_b]).norm()
    return largest, float(difference / torch.cat([a[name].flatten() for name in lora_b]).norm())


def _losses(output: Path, tag: str) -> list[tuple[int, float]]:
    return read_scalars(output / EVENTS_DIR)[tag]


def _only_the_main_process_wrote(output: Path, stdout: str, stderr: str) -> None:
    assert "accelerate launch" in stderr and "--num_processes 2" in stderr  # the command, printed first
    assert stdout.count('"optimizer_steps"') == 1  # one report printed
    assert len(list((output / EVENTS_DIR).glob("events.out.tfevents.*"))) == 1  # one writer
    assert (output / "training_curves.png").is_file()
    assert not (output.parent / "runs").exists()  # no stray TensorBoard directory from a replica


def test_two_processes_train_the_same_sft_adapter_as_one(recipe: Path) -> None:
    root = recipe.parent
    one = _one_process("sft", recipe, root / "sft-1")
    two, stdout, stderr = _two_processes("sft", recipe, root / "sft-2")
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["optimizer_steps"] == two["optimizer_steps"] == 4
    assert one["examples"] == two["examples"] == {"train": 4, "validation": 8}
    for key in ("eval_loss_before", "eval_loss_after", "train_loss"):
        assert two[key] == pytest.approx(one[key], rel=LOSS_TOLERANCE), key
    steps_one, steps_two = _losses(root / "sft-1", "train/loss"), _losses(root / "sft-2", "train/loss")
    assert [s for s, _ in steps_one] == [s for s, _ in steps_two] == [1, 2, 3, 4]
    assert [v for _, v in steps_two] == pytest.approx([v for _, v in steps_one], rel=LOSS_TOLERANCE)
    assert one["eval_loss_after"] < one["eval_loss_before"]  # it did train
    largest, relative = _weights_difference(root / "sft-1", root / "sft-2")
    assert largest < WEIGHT_TOLERANCE and relative < B_TOLERANCE
    _only_the_main_process_wrote(root / "sft-2", stdout, stderr)


def test_two_processes_train_the_same_dpo_adapter_as_one(recipe: Path) -> None:
    root = recipe.parent
    if not (root / "sft-1/adapter_model.safetensors").exists():
        pytest.skip("needs the SFT adapter of the test above")
    one = _one_process("dpo", recipe, root / "dpo-1")
    two, stdout, stderr = _two_processes("dpo", recipe, root / "dpo-2")
    assert (one["processes"], two["processes"], one["pairs"], two["pairs"]) == (1, 2, 4, 4)
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=LOSS_TOLERANCE)
    steps_one, steps_two = _losses(root / "dpo-1", "train/loss"), _losses(root / "dpo-2", "train/loss")
    assert [v for _, v in steps_two] == pytest.approx([v for _, v in steps_one], rel=LOSS_TOLERANCE)
    largest, relative = _weights_difference(root / "dpo-1", root / "dpo-2")
    assert largest < WEIGHT_TOLERANCE and relative < B_TOLERANCE
    assert _weights_difference(root / "sft-1", root / "dpo-1")[0] > 1e-4  # DPO moved the adapter
    _only_the_main_process_wrote(root / "dpo-2", stdout, stderr)
