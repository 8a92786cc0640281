"""A recipe's trl keys reach trl's configs as written, beside Inkling's own keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import ConfigError, build, to_dict
from training.dpo import DpoConfig
from training.sft import SftConfig, trainer_arguments
from training.trainer_args import SFT_DEFAULTS


def test_trl_keys_pass_through_over_the_defaults() -> None:
    config = build(
        SftConfig, {"output": "out", "max_steps": 3, "learning_rate": 1e-3, "lora": {"r": 4}}, "sft"
    )
    assert config.output == "out" and config.lora.r == 4
    assert config.trainer == {**SFT_DEFAULTS, "max_steps": 3, "learning_rate": 1e-3}
    args = trainer_arguments(config, Path("/tmp/inkling-run"), cuda=False)
    assert (args.max_steps, args.learning_rate, args.gradient_accumulation_steps) == (3, 1e-3, 8)
    assert args.output_dir == "/tmp/inkling-run/checkpoints" and args.completion_only_loss is True
    assert args.use_cpu and not args.fp16 and not args.gradient_checkpointing


def test_warmup_below_one_is_a_share_of_the_steps() -> None:
    args = trainer_arguments(build(SftConfig, {"max_steps": 1000}, "sft"), Path("/tmp/x"), cuda=False)
    assert args.get_warmup_steps(1000) == 30
    fixed = trainer_arguments(build(SftConfig, {"warmup_steps": 5}, "sft"), Path("/tmp/x"), cuda=False)
    assert fixed.get_warmup_steps(1000) == 5


def test_4bit_always_checkpoints_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("training.base.use_4bit", lambda quantization: quantization == "4bit")  # as on CUDA
    config = build(SftConfig, {"quantization": "4bit", "gradient_checkpointing": False}, "sft")
    assert trainer_arguments(config, Path("/tmp/x"), cuda=False).gradient_checkpointing
    full = build(SftConfig, {"quantization": "none"}, "sft")
    assert not trainer_arguments(full, Path("/tmp/x"), cuda=False).gradient_checkpointing


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"max_stepz": 3},
            r"unknown key sft\.max_stepz; known keys of sft: .*, and the fields of trl's SFTConfig",
        ),
        ({"batch_size": 2}, r"sft\.batch_size: now trl's per_device_train_batch_size"),
        ({"warmup_ratio": 0.1}, r"sft\.warmup_ratio: now trl's warmup_steps \(below 1: a share"),
        ({"output_dir": "x"}, r"sft\.output_dir: set from `output`"),
        ({"max_steps": "many"}, r"sft\.max_steps: expected an integer"),
        ({"max_length": 32}, r"max_length must be at least 64"),
    ],
)
def test_keys_trl_lacks_or_inkling_sets_are_errors(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(SftConfig, section, "sft")


def test_a_value_trl_refuses_is_a_config_error() -> None:
    config = build(SftConfig, {"lr_scheduler_type": "sideways"}, "sft")
    with pytest.raises(ConfigError, match="trl's SFTConfig refused the recipe"):
        trainer_arguments(config, Path("/tmp/x"), cuda=False)


def test_the_recorded_recipe_is_a_section_that_builds_the_same_config() -> None:
    config = build(SftConfig, {"max_steps": 7, "seed": 3, "max_minutes": 5}, "sft")
    recorded = to_dict(config)
    assert "trainer" not in recorded and recorded["max_steps"] == 7 and recorded["max_minutes"] == 5
    assert build(SftConfig, recorded, "sft") == config
    assert config.seed == 3 and config.max_length == 512


def test_dpo_takes_trl_keys_too() -> None:
    config = build(DpoConfig, {"adapter": "a", "beta": 0.3, "gradient_accumulation_steps": 1}, "dpo")
    assert (config.trainer["beta"], config.trainer["gradient_accumulation_steps"]) == (0.3, 1)
    assert config.trainer["precompute_ref_log_probs"] is True and config.max_length == 512
    with pytest.raises(
        ConfigError, match=r"dpo\.gradient_accumulation: now trl's gradient_accumulation_steps"
    ):
        build(DpoConfig, {"gradient_accumulation": 1}, "dpo")
