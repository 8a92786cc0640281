"""trl's training configs built from a recipe section, so that a key means what trl says.

The `sft:` and `dpo:` sections hold Inkling's own keys (the fields of
`SftConfig`, `DpoConfig`) beside any field of trl's `SFTConfig` / `DPOConfig`
(`max_steps`, `learning_rate`, `warmup_steps`...), which reach trl as given,
over the defaults below. trl documents them; a handful follow from Inkling's
own keys (`output` -> `output_dir`, `precision` -> `bf16`) and cannot be set.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any

from training.config import ConfigError, passthrough

SFT_DEFAULTS: dict[str, Any] = {
    "max_steps": 1000,
    "per_device_train_batch_size": 1,
    "per_device_eval_batch_size": 1,
    "gradient_accumulation_steps": 8,
    "learning_rate": 2e-4,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.03,
    "weight_decay": 0.0,
    "logging_steps": 10,
    "eval_strategy": "no",
    "save_strategy": "steps",
    "save_steps": 100,
    "save_total_limit": 2,
    "max_length": 512,
    "gradient_checkpointing": False,
    "report_to": "tensorboard",
    "seed": 42,
    "dataloader_num_workers": 0,
    "remove_unused_columns": True,
}
"""Where Inkling's SFT differs from trl's defaults: a small model, LoRA, CPU-sized steps, offline,
tracked in local TensorBoard event files (`training.tracking`).
`warmup_steps` below 1 is a share of the steps (transformers >= 5)."""

DPO_DEFAULTS: dict[str, Any] = {
    "beta": 0.1,
    "learning_rate": 2e-5,
    "max_steps": 40,
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 4,
    "max_length": 512,
    "precompute_ref_log_probs": True,
    "logging_steps": 5,
    "save_strategy": "steps",
    "save_steps": 20,
    "save_total_limit": 2,
    "report_to": "tensorboard",
    "seed": 42,
    "dataloader_num_workers": 0,
}
"""Where Inkling's DPO differs from trl's defaults; the reference's log-probabilities are computed
once, before training (see `training.dpo`)."""

REFUSED = {
    "output_dir": "set from `output` (checkpoints go to <output>/checkpoints)",
    "bf16": "set from `precision`",
    "fp16": "set from `precision`",
    "use_cpu": "set from the device (CUDA when torch has it)",
    "completion_only_loss": "always on: the loss covers the completion only",
    "batch_size": "now trl's per_device_train_batch_size (and per_device_eval_batch_size)",
    "gradient_accumulation": "now trl's gradient_accumulation_steps",
    "lr_scheduler": "now trl's lr_scheduler_type",
    "warmup_ratio": "now trl's warmup_steps (below 1: a share of the steps)",
    "eval_on_start": "set by Inkling: sft measures the validation loss before training (eval_examples)",
}
"""Keys a recipe may not give: trl fields that follow from Inkling's own keys, and Inkling's
former names of trl fields."""


@cache
def trl_fields(config_class: str) -> Mapping[str, Any]:
    """The init fields of trl's `config_class` and their type hints."""
    import trl

    cls = getattr(trl, config_class)
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls) if field.init}


SFT_KEYS = passthrough(lambda: trl_fields("SFTConfig"), "trl's SFTConfig", REFUSED)
DPO_KEYS = passthrough(lambda: trl_fields("DPOConfig"), "trl's DPOConfig", REFUSED)


def build_trl_config(config_class: str, keys: Mapping[str, Any], decided: Mapping[str, Any]) -> Any:
    """trl's `config_class` from a recipe's trl keys (defaults included) and Inkling's decisions."""
    import trl

    cls = getattr(trl, config_class)
    try:
        return cls(**{**keys, **decided})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"trl's {config_class} refused the recipe: {exc}") from exc
