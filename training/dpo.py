"""`inkling train dpo`: trl DPO on the pairs, continuing the SFT adapter.

The trained adapter stays one adapter over the base (what `export` merges).
The reference is frozen: by default the SFT model itself (a copy of the
policy with the SFT adapter merged, `reference: sft`), or the base with the
adapter taken off (`reference: base`). The SFT reference is the default:
without the adapter the FIM token rows are untrained, so the base would score
FIM prompts on control tokens it has never seen. (trl's own copy of a peft
adapter as reference copies the LoRA weights but not the trained token rows,
so it is not used.) Reference log-probabilities are computed once, before
training.
Prompts are tokenized like SFT's (`training.tokens`), so the pairs' prompts
are exactly the served ones. The `dpo:` section holds Inkling's keys
(`DpoConfig`) beside any field of trl's `DPOConfig` (`beta`, `max_steps`...).
Like SFT, it runs unchanged under `accelerate launch` (`training.launch`) and
is tracked in TensorBoard event files beside the adapter (`training.tracking`).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from training.config import ConfigError, expand_path, to_dict
from training.private_members import require_members, require_parameters
from training.trainer_args import DPO_DEFAULTS, DPO_KEYS, build_trl_config

PREPARE_DATASET_PARAMETERS = ("self", "dataset", "processing_class", "args", "dataset_name")
"""trl's private `DPOTrainer._prepare_dataset`, which the trainer below overrides."""


@dataclass
class DpoConfig:
    """Inkling's keys of the `dpo:` section; trl's DPOConfig fields sit beside them (`trainer`)."""

    adapter: str = ""
    """The SFT adapter to continue."""
    pairs: str = ""
    """A `pairs` output directory."""
    output: str = ""
    base: str = ""
    """Empty: the base the adapter was trained on."""
    reference: Literal["sft", "base"] = "sft"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """As SFT's: bf16 compute where the GPU or CPU has it in hardware (`training.base.use_bf16`)."""
    resume: bool = False
    threads: int = 0
    accelerate_config: str = ""
    """An accelerate configuration file: `inkling train dpo` then runs under `accelerate launch`."""
    trainer: dict[str, Any] = field(default_factory=lambda: dict(DPO_DEFAULTS), metadata=DPO_KEYS)
    """trl's DPOConfig fields, written beside the keys above: `DPO_DEFAULTS`, then the recipe's."""

    @property
    def max_length(self) -> int:
        """Pairs whose prompt and longer answer do not fit are dropped."""
        return int(self.trainer["max_length"])


def tokenize_pairs(
    rows: Any, tokenizer: Any, vocab: Any, max_length: int, num_proc: int | None = None
) -> Any:
    from training.tokens import completion_ids, encode_example

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        longer = max(row["chosen"], row["rejected"], key=len)
        encoded = encode_example(tokenizer, vocab, {**row, "middle": longer}, max_length)
        if encoded is None:
            return {"prompt_ids": [], "chosen_ids": [], "rejected_ids": []}
        return {
            "prompt_ids": encoded[0],
            "chosen_ids": completion_ids(tokenizer, vocab, row, row["chosen"]),
            "rejected_ids": completion_ids(tokenizer, vocab, row, row["rejected"]),
        }

    tokenized = rows.map(encode, remove_columns=rows.column_names, desc="tokenizing pairs", num_proc=num_proc)
    return tokenized.filter(
        lambda row: len(row["prompt_ids"]) > 0, desc="dropping overlong pairs", num_proc=num_proc
    )


def train_dpo(config: DpoConfig) -> dict[str, Any]:
    import datasets
    import torch
    from peft import PeftModel
    from transformers.trainer_utils import get_last_checkpoint

    from training.adapter import check_same_base, is_prefix_last, read_metadata, write_metadata
    from training.base import base_info, load_model, load_tokenizer, resolve_base, use_bf16
    from training.sft import expose_output_bias
    from training.token_rows import apply_rows_sparsely
    from training.tokens import fim_vocab
    from training.tracking import finish, track, write_curves

    if not (config.adapter and config.pairs and config.output):
        raise ConfigError("dpo: adapter, pairs and output are required")
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.monotonic()
    adapter = Path(expand_path(config.adapter)).resolve()
    metadata = read_metadata(adapter)
    base_path = resolve_base(config.base or metadata["base"]["path"])
    info = base_info(base_path)
    check_same_base(metadata, info, str(adapter))
    tokenizer = load_tokenizer(base_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    fim_format = metadata.get("fim_format", "psm")
    vocab = fim_vocab(tokenizer, fim_format, prefix_last=is_prefix_last(metadata))
    pairs_dir = Path(expand_path(config.pairs)) / "pairs"
    if not pairs_dir.is_dir():
        raise ConfigError(f"dpo: {pairs_dir} does not exist (run `inkling train pairs` first)")
    output = Path(expand_path(config.output))
    cuda = torch.cuda.is_available()
    decided = {
        "output_dir": str(output / "checkpoints"),
        "bf16": use_bf16(config.precision),
        "fp16": False,
        "use_cpu": not cuda,
    }
    args = build_trl_config("DPOConfig", config.trainer, decided)  # under a launcher: joins the group
    main = args.process_index == 0
    if not main:
        datasets.disable_progress_bars()
    with args.main_process_first(desc="tokenizing pairs"):  # the others read the main process's cache
        rows = datasets.load_from_disk(str(pairs_dir))
        train_set = tokenize_pairs(rows, tokenizer, vocab, config.max_length, args.dataset_num_proc)
    if len(train_set) == 0:
        raise ConfigError("dpo: no pair fits max_length")

    model = PeftModel.from_pretrained(load_model(base_path, "none"), str(adapter), is_trainable=True)
    reference = copy.deepcopy(model)
    reference = reference.merge_and_unload() if config.reference == "sft" else reference.unload()
    reference.eval().requires_grad_(False)
    expose_output_bias(model)
    apply_rows_sparsely(model)

    trainer = _PretokenizedDPOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=train_set, processing_class=tokenizer
    )
    checkpoint = None
    if config.resume and (output / "checkpoints").is_dir():
        checkpoint = get_last_checkpoint(str(output / "checkpoints"))
    track(trainer, output, resumed=checkpoint is not None)
    train_started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    train_seconds = time.monotonic() - train_started
    finish(trainer)

    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    report = {
        "base": info.as_dict(),
        "pairs": len(train_set),
        "reference": config.reference,
        "processes": args.world_size,
        "optimizer_steps": result.global_step,
        "train_seconds": round(train_seconds, 1),
        "seconds_per_optimizer_step": round(train_seconds / max(1, result.global_step), 2),
        "train_loss": result.training_loss,
        "first_log": logs[0] if logs else {},
        "last_log": logs[-1] if logs else {},
        "total_seconds": round(time.monotonic() - started, 1),
    }
    # Every process takes part in gathering the weights (FSDP and ZeRO-3 shard them); the main one saves.
    weights = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    if main:
        output.mkdir(parents=True, exist_ok=True)
        policy = trainer.accelerator.unwrap_model(trainer.model)
        policy.save_pretrained(str(output), selected_adapters=["default"], state_dict=weights)
        write_metadata(
            output, info, vocab, fim_format, "dpo", to_dict(config), parent=str(adapter), results=report
        )
        (output / "training_report.json").write_text(
            json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8"
        )
        write_curves(output)
    return report


def _trainer_class() -> type:
    from trl import DPOTrainer

    require_members("trl", DPOTrainer, ("_prepare_dataset",))
    require_parameters("trl", DPOTrainer._prepare_dataset, PREPARE_DATASET_PARAMETERS)

    class PretokenizedDPOTrainer(DPOTrainer):  # type: ignore[misc]
        """trl tokenizes prompt/chosen/rejected text itself; ours arrive as ids
        rendered with the server's template (control tokens by id, not by text)."""

        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
            if {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(dataset.column_names):
                return dataset
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    return PretokenizedDPOTrainer


def _PretokenizedDPOTrainer(**kwargs: Any) -> Any:  # noqa: N802 - reads as the class it builds
    return _trainer_class()(**kwargs)
