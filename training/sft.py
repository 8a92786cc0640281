"""`inkling train sft`: LoRA (CPU) / QLoRA (CUDA) supervised fine-tuning with trl.

The loss covers only what the model must produce (the middle and its stop
token, or a next-token continuation): the examples carry a completion mask
and trl turns it into labels. Only those positions go through the output
layer, so a 262k-token vocabulary does not dominate the step: trl's fused LM
head does that on GPUs, but on CPU it scores every position, so there the
model is asked for the logits of the labelled positions alone
(`logits_to_keep` with their indices, see `completion_loss`).

The FIM control tokens' embedding rows are trained through peft's
`trainable_token_indices`. The same code runs under `accelerate launch` on
several processes (`training.launch`): the Trainer shards the batches and
averages the gradients; data preparation runs on the main process first
(the others read its `datasets` cache), and only the main process writes the
adapter, the report and the curves. Each run is tracked in TensorBoard event
files beside the adapter (`training.tracking`).

A second stage (domain adaptation) starts from a first-stage adapter
(`init_adapter`) and mixes a share of first-stage data back in
(`replay_dataset`, `replay_share`) so that it does not forget.

The `sft:` section holds Inkling's keys (`SftConfig`) beside any field of
trl's `SFTConfig` (`max_steps`, `learning_rate`, `warmup_steps`...), which
reaches trl as written (`training.trainer_args`).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from training.config import ConfigError, expand_path, to_dict
from training.private_members import require_members
from training.trainer_args import SFT_DEFAULTS, SFT_KEYS, build_trl_config

log = logging.getLogger(__name__)

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))


@dataclass
class SftConfig:
    """Inkling's keys of the `sft:` section; trl's SFTConfig fields sit beside them (`trainer`)."""

    dataset: str = ""
    """A `prepare` output directory (or its dataset/ directory)."""
    output: str = ""
    """Adapter directory; checkpoints go to <output>/checkpoints."""
    base: str = ""
    """Hugging Face directory or GGUF file; empty: Gemma 3 270M from its package."""
    fim_format: Literal["psm", "spm"] = "spm"
    """Order the server should prompt in (both are trained); spm keeps its KV cache valid while typing."""
    quantization: Literal["auto", "none", "4bit"] = "auto"
    """auto: 4-bit QLoRA on CUDA, full precision LoRA on CPU."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Compute dtype of the forward and backward passes (the trained weights stay float32);
    auto: bf16 where the GPU or CPU has it in hardware (`training.base.use_bf16`)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    train_fim_tokens: bool = True
    """Train the embedding rows of the reserved tokens taken over for FIM."""
    max_train_examples: int = 0
    """0: all."""
    eval_examples: int = 200
    """Validation examples for the loss before and after training (and at trl's eval_steps, with
    eval_strategy: steps)."""
    resume: bool = False
    """Continue from the last checkpoint in <output>/checkpoints."""
    init_adapter: str = ""
    """Second stage: start from this adapter (trained on the same base)."""
    replay_dataset: str = ""
    """Second stage: the first stage's prepared data, mixed in against forgetting."""
    replay_share: float = 0.2
    """Share of replayed first-stage examples in the second stage's training set."""
    max_minutes: float = 0.0
    """Stop training after this long (0: no limit), so a recipe keeps its time budget on a slower
    or busier machine; the adapter is saved and evaluated as at the last step."""
    threads: int = 0
    """torch CPU threads; 0: torch's default (one per core)."""
    accelerate_config: str = ""
    """An accelerate configuration file (training/accelerate/): `inkling train sft` then runs under
    `accelerate launch --config_file` it (see `training.launch`)."""
    trainer: dict[str, Any] = field(default_factory=lambda: dict(SFT_DEFAULTS), metadata=SFT_KEYS)
    """trl's SFTConfig fields, written beside the keys above: `SFT_DEFAULTS`, then the recipe's.
    Gradient checkpointing is always on for 4-bit QLoRA."""

    def __post_init__(self) -> None:
        if not 0 <= self.replay_share < 1:
            raise ConfigError("replay_share must be in [0, 1)")
        if not isinstance(self.trainer.get("max_length"), int) or self.max_length < 64:
            raise ConfigError("max_length must be at least 64")

    @property
    def max_length(self) -> int:
        """Examples longer than this are dropped (trl's max_length: they would be cut)."""
        return int(self.trainer["max_length"])

    @property
    def seed(self) -> int:
        """trl's seed, which also orders and samples the examples."""
        return int(self.trainer["seed"])


def dataset_dir(path: str) -> Path:
    root = Path(expand_path(path))
    if (root / "dataset").is_dir():
        return root / "dataset"
    if root.is_dir():
        return root
    raise ConfigError(f"dataset {path} does not exist (run `inkling train prepare` first)")


def tokenize_split(
    dataset: Any, tokenizer: Any, vocab: Any, max_length: int, desc: str, num_proc: int | None = None
) -> Any:
    """Rows -> input_ids + completion_mask, dropping rows whose middle does not fit
    (`num_proc` worker processes: trl's `dataset_num_proc`)."""
    from training.tokens import encode_example

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        encoded = encode_example(tokenizer, vocab, row, max_length)
        if encoded is None:
            return {"input_ids": [], "completion_mask": []}
        prompt, completion = encoded
        return {
            "input_ids": prompt + completion,
            "completion_mask": [0] * len(prompt) + [1] * len(completion),
        }

    tokenized = dataset.map(encode, remove_columns=dataset.column_names, desc=desc, num_proc=num_proc)
    return tokenized.filter(
        lambda row: len(row["input_ids"]) > 0, desc=f"{desc}: dropping overlong", num_proc=num_proc
    )


def expose_output_bias(model: Any) -> None:
    """trl's fused LM head reads `lm_head.bias`; peft's wrapper for trained token rows
    (tied embeddings) forwards only `weight` (the merged rows, so gradients reach them)."""
    head = model.get_output_embeddings()
    if head is not None and not hasattr(head, "bias"):
        head.bias = None


def completion_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> tuple[Any, Any]:
    """Cross-entropy over the labelled positions only, computing only their logits.

    Returns (loss, correct top-1 count / labelled count) as tensors."""
    import torch
    from torch.nn import functional

    labels = inputs["labels"]
    targets = labels[:, 1:]
    keep = (targets != -100).any(dim=0).nonzero().squeeze(-1)
    model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "completion_mask")}
    logits = model(**model_inputs, logits_to_keep=keep, use_cache=False).logits.float()
    kept = targets[:, keep]
    total = functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), kept.reshape(-1), ignore_index=-100, reduction="sum"
    )
    count = (kept != -100).sum()
    denominator = num_items_in_batch if num_items_in_batch is not None else count.clamp(min=1)
    with torch.no_grad():
        accuracy = ((logits.argmax(-1) == kept) & (kept != -100)).sum() / count.clamp(min=1)
    return total / denominator, accuracy


def _trainer_class() -> type:
    from trl import SFTTrainer

    class CompletionSFTTrainer(SFTTrainer):  # type: ignore[misc]
        """trl's SFTTrainer, with the loss computed at the labelled positions only on CPU."""

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            if self.args.device.type != "cpu" or return_outputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, accuracy = completion_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            mode = "train" if model.training else "eval"
            self._metrics[mode]["mean_token_accuracy"].append(accuracy.item())
            return loss

    return CompletionSFTTrainer


def _time_budget(minutes: float) -> Any:
    from accelerate.utils import broadcast_object_list
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.started = time.monotonic()
            self.stopped = False

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not minutes:
                return
            over = time.monotonic() - self.started > minutes * 60
            if args.world_size > 1:  # the main process's clock decides, so that all stop at one step
                over = bool(broadcast_object_list([over])[0])
            if over:
                control.should_training_stop = True
                control.should_save = True  # a checkpoint to resume from, not only the adapter
                self.stopped = True

    return TimeBudget()


def _loss_at_checkpoint(output: Path, checkpoint: str | None) -> float | None:
    """The previous sitting's final validation loss, when it ended at this checkpoint.

    A long recipe runs in several sittings; measuring the same loss again on resume
    costs minutes of a sitting for a figure the last report already holds.
    """
    if checkpoint is None:
        return None
    try:
        report = json.loads((output / "training_report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    step = int(Path(checkpoint).name.split("-")[-1])
    loss = report.get("eval_loss_after")
    return float(loss) if report.get("optimizer_steps") == step and loss is not None else None


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def trainer_arguments(config: SftConfig, output: Path, cuda: bool) -> Any:
    """trl's SFTConfig: the recipe's trl keys, and what Inkling's own keys decide (the event
    files' place: `training.tracking`)."""
    from training.base import use_4bit, use_bf16

    keys = dict(config.trainer)
    keys["gradient_checkpointing"] = keys.get("gradient_checkpointing") or use_4bit(config.quantization)
    decided = {
        "output_dir": str(output / "checkpoints"),
        "completion_only_loss": True,
        "bf16": use_bf16(config.precision),
        "fp16": False,
        "use_cpu": not cuda,
    }
    return build_trl_config("SFTConfig", keys, decided)


def train_sft(config: SftConfig) -> dict[str, Any]:
    """Train; returns the report it also writes to <output>/training_report.json."""
    import datasets
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from training.adapter import check_same_base, is_prefix_last, read_metadata, write_metadata
    from training.base import base_info, load_model, load_tokenizer, resolve_base, use_4bit
    from training.token_rows import apply_rows_sparsely
    from training.tokens import fim_vocab
    from training.tracking import finish, track, write_curves

    if not config.output:
        raise ConfigError("sft: no output directory given (output: ...)")
    if not config.dataset:
        raise ConfigError("sft: no dataset given (dataset: <prepare output>)")
    if config.threads:
        torch.set_num_threads(config.threads)
    output = Path(expand_path(config.output))
    started = time.monotonic()
    base_path = resolve_base(config.base)
    info = base_info(base_path)
    tokenizer = load_tokenizer(base_path)
    # A second stage keeps the layout its first stage learnt.
    prefix_last = (
        is_prefix_last(read_metadata(expand_path(config.init_adapter))) if config.init_adapter else True
    )
    vocab = fim_vocab(tokenizer, config.fim_format, prefix_last=prefix_last)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    cuda = torch.cuda.is_available()
    args = trainer_arguments(config, output, cuda)  # under a launcher, this joins the process group
    main = args.process_index == 0
    if not main:
        datasets.disable_progress_bars()  # one set of bars, the main process's
    checkpoint = (
        get_last_checkpoint(str(output / "checkpoints"))
        if config.resume and (output / "checkpoints").is_dir()
        else None
    )
    # The main process tokenizes first; the others then read its `datasets` cache.
    with args.main_process_first(desc="tokenizing"):
        train_set, eval_set = _examples(config, tokenizer, vocab, args.dataset_num_proc)
    if len(train_set) == 0:
        raise ConfigError(f"sft: no training example fits max_length={config.max_length}")

    model = load_model(base_path, config.quantization)
    set_seed(config.seed)  # the LoRA weights' initial values: the same run after run, and in every process
    parent = ""
    if config.init_adapter:
        parent = str(Path(expand_path(config.init_adapter)).resolve())
        check_same_base(read_metadata(parent), info, parent)
        model = PeftModel.from_pretrained(model, parent, is_trainable=True)
    else:
        lora = LoraConfig(
            r=config.lora.r,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=config.lora.target_modules,
            trainable_token_indices=vocab.trainable_ids
            if config.train_fim_tokens and vocab.taken_over
            else None,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    expose_output_bias(model)
    apply_rows_sparsely(model)

    before = _loss_at_checkpoint(output, checkpoint)
    # The loss before training is measured by the Trainer itself at the start of train(), once it has
    # wrapped the model for several processes. An evaluate() before train() would mark the bare model
    # prepared, and train() would then run it unwrapped: every process on its own shard, gradients never
    # averaged (accelerate 1.16 with transformers 5.25; tests/training/test_distributed.py saw it).
    args.eval_on_start = before is None and len(eval_set) > 0
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set if len(eval_set) else None,  # trl refuses an empty one
        processing_class=tokenizer,
    )
    require_members("trl", trainer, ("_metrics",))  # compute_loss logs its accuracy there
    track(trainer, output, resumed=checkpoint is not None)
    budget = _time_budget(config.max_minutes)
    trainer.add_callback(budget)
    train_started, cpu_started = time.monotonic(), time.process_time()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    train_seconds = time.monotonic() - train_started
    train_cpu_seconds = time.process_time() - cpu_started
    after = trainer.evaluate()["eval_loss"] if len(eval_set) else None
    finish(trainer)
    first_step = int(Path(checkpoint).name.split("-")[-1]) if checkpoint else 0
    if args.eval_on_start:
        before = _eval_loss_at(trainer.state.log_history, first_step)

    steps_done = max(1, result.global_step - first_step)
    examples_done = steps_done * args.train_batch_size * args.gradient_accumulation_steps * args.world_size
    report = {
        "base": info.as_dict(),
        "examples": {"train": len(train_set), "validation": len(eval_set)},
        "eval_loss_before": before,
        "eval_loss_after": after,
        "optimizer_steps": result.global_step,
        "stopped_by_time_budget": budget.stopped,
        "resumed_from": checkpoint,
        "train_seconds": round(train_seconds, 1),
        "seconds_per_optimizer_step": round(train_seconds / steps_done, 2),
        "seconds_per_example": round(train_seconds / examples_done, 3),
        # The main process's CPU time, times the processes (they do the same work).
        "cpu_seconds_per_example": round(train_cpu_seconds * args.world_size / examples_done, 3),
        "processes": args.world_size,
        "threads": torch.get_num_threads(),
        "precision": "bf16" if args.bf16 else "fp32",
        "load_average": round(os.getloadavg()[0], 1),
        "train_loss": result.training_loss,
        "peak_rss_mib": _peak_rss_mib(),  # of the main process
        "total_seconds": round(time.monotonic() - started, 1),
        "device": "cuda" if cuda else "cpu",
        "quantization": "4bit" if use_4bit(config.quantization) else "none",
    }
    # Every process takes part in gathering the weights (FSDP and ZeRO-3 shard them); the main one saves.
    weights = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    if main:
        # The adapter alone (the tokenizer is the base's own; export reads it from the base).
        trainer.accelerator.unwrap_model(trainer.model).save_pretrained(str(output), state_dict=weights)
        write_metadata(
            output, info, vocab, config.fim_format, "sft", to_dict(config), parent=parent, results=report
        )
        (output / "training_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        write_curves(output)
    return report


def _examples(config: SftConfig, tokenizer: Any, vocab: Any, num_proc: int | None) -> tuple[Any, Any]:
    """The tokenized training and validation sets."""
    import datasets

    data = datasets.load_from_disk(str(dataset_dir(config.dataset)))
    train_rows = data["train"].shuffle(seed=config.seed)
    if config.max_train_examples:
        train_rows = train_rows.select(range(min(config.max_train_examples, len(train_rows))))
    if config.replay_dataset:
        replay = datasets.load_from_disk(str(dataset_dir(config.replay_dataset)))["train"]
        wanted = int(len(train_rows) * config.replay_share / (1 - config.replay_share))
        replay = replay.shuffle(seed=config.seed).select(range(min(wanted, len(replay))))
        train_rows = datasets.concatenate_datasets([train_rows, replay]).shuffle(seed=config.seed)
    eval_rows = data["validation"].shuffle(seed=config.seed)
    eval_rows = eval_rows.select(range(min(config.eval_examples, len(eval_rows))))
    train_set = tokenize_split(train_rows, tokenizer, vocab, config.max_length, "tokenizing train", num_proc)
    eval_set = tokenize_split(
        eval_rows, tokenizer, vocab, config.max_length, "tokenizing validation", num_proc
    )
    return train_set, eval_set


def _eval_loss_at(history: list[dict[str, Any]], step: int) -> float | None:
    """The validation loss the Trainer logged at `step` (its evaluation at the start of training)."""
    losses = [entry["eval_loss"] for entry in history if "eval_loss" in entry and entry.get("step") == step]
    return float(losses[-1]) if losses else None
