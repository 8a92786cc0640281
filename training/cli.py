"""`inkling train prepare|sft|pairs|dpo|run`, registered through "inkling.commands".

Every command takes `--config RECIPE.yaml` (a file with one section per
command, or one command's config) and `--set key=value` overrides. Imports of
torch and friends happen inside the commands: `inkling --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

COMMANDS = ("prepare", "sft", "pairs", "dpo")


def register(subparsers: Any) -> None:
    train = subparsers.add_parser("train", help="fine-tune a completion model on your code (data, SFT, DPO)")
    commands = train.add_subparsers(dest="train_command", required=True, metavar="STEP")
    helps = {
        "prepare": "sources -> filtered, deduplicated, scrubbed FIM examples (a datasets dataset + stats)",
        "sft": "LoRA (CPU) / QLoRA (CUDA) supervised fine-tuning with trl",
        "pairs": "preference pairs from the SFT model's own samples on held-out holes "
        "(--from-feedback: pairs and SFT examples from recorded feedback)",
        "dpo": "DPO on those pairs with trl",
    }
    for name in COMMANDS:
        parser = commands.add_parser(name, help=helps[name])
        _common(parser)
        parser.set_defaults(func=_runner(name))
    commands.choices["pairs"].add_argument(
        "--from-feedback",
        nargs="?",
        const="state",
        default=None,
        metavar="FILE|state",
        help="from what users accepted and rejected (`recordFeedback`): the feedback database in the "
        "state directory (default), a database file or an `inkling feedback export` file; writes "
        "<output>/dataset (SFT examples) and <output>/pairs; keys of a recipe's `feedback:` section "
        "(training/feedback_data.py)",
    )
    commands.choices["pairs"].set_defaults(func=_feedback_pairs)
    run = commands.add_parser("run", help="run a recipe's stages in order (default: every section it has)")
    run.add_argument("config", metavar="RECIPE", help="recipe YAML (see training/recipes/)")
    _common(run, with_config=False)
    run.add_argument("--stages", default="", help="comma-separated subset, e.g. prepare,sft")
    run.set_defaults(func=_run_recipe)


def _common(parser: argparse.ArgumentParser, with_config: bool = True) -> None:
    if with_config:
        parser.add_argument("--config", help="recipe YAML (see training/recipes/)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (dotted keys; with `run`, prefix the stage: sft.max_steps=30)",
    )


def _load(name: str, args: argparse.Namespace, prefixed: bool = False) -> Any:
    from training.config import apply_overrides, build, load_yaml, section

    data = section(load_yaml(args.config), name, COMMANDS) if args.config else {}
    overrides = args.overrides
    if prefixed:
        overrides = [o.split(".", 1)[1] for o in overrides if o.startswith(f"{name}.")]
    apply_overrides(data, overrides)
    return build(_config_class(name), data, name)


def _config_class(name: str) -> type:
    if name == "prepare":
        from training.data.prepare import PrepareConfig

        return PrepareConfig
    if name == "sft":
        from training.sft import SftConfig

        return SftConfig
    if name == "pairs":
        from training.pairs import PairsConfig

        return PairsConfig
    from training.dpo import DpoConfig

    return DpoConfig


def _execute(name: str, config: Any) -> None:
    from training.base import offline

    offline()  # before the commands import peft and trl, which import bitsandbytes, which asks the hub
    if name == "prepare":
        from training.data.prepare import format_stats, prepare

        print(format_stats(prepare(config)))
        return
    if name == "sft":
        from training.sft import train_sft

        print(json.dumps(train_sft(config), indent=2))
        return
    if name == "pairs":
        from training.pairs import make_pairs

        print(json.dumps(make_pairs(config), indent=2))
        return
    from training.dpo import train_dpo

    print(json.dumps(train_dpo(config), indent=2))


def _runner(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        _execute(name, _load(name, args))
        return 0

    return run


def _feedback_pairs(args: argparse.Namespace) -> int:
    if args.from_feedback is None:
        return _runner("pairs")(args)
    from training.config import apply_overrides, build, load_yaml, section
    from training.feedback_data import FeedbackPairsConfig, make_feedback_data

    data = section(load_yaml(args.config), "feedback", (*COMMANDS, "feedback")) if args.config else {}
    apply_overrides(data, args.overrides)
    data["source"] = args.from_feedback
    print(json.dumps(make_feedback_data(build(FeedbackPairsConfig, data, "feedback")), indent=2))
    return 0


def _run_recipe(args: argparse.Namespace) -> int:
    import time

    from training.config import ConfigError, load_yaml

    recipe = load_yaml(args.config)
    unknown = sorted(set(recipe) - set(COMMANDS))
    if unknown:
        raise ConfigError(f"recipe {args.config}: unknown sections {unknown}; known: {list(COMMANDS)}")
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] or [c for c in COMMANDS if c in recipe]
    for stage in stages:
        if stage not in recipe:
            raise ConfigError(f"recipe {args.config} has no {stage!r} section")
    for override in args.overrides:
        if override.split(".", 1)[0] not in stages:
            raise ConfigError(f"override {override!r}: with `run`, prefix it with a stage run here: {stages}")
    configs = [(stage, _load(stage, args, prefixed=True)) for stage in stages]  # all checked before any runs
    for stage, config in configs:
        started = time.monotonic()
        print(f"== {stage}", flush=True)
        _execute(stage, config)
        print(f"== {stage} took {time.monotonic() - started:.0f} s", flush=True)
    return 0
