"""`inkling train prepare|sft|pairs|dpo|run|report`, registered through "inkling.commands".

Every command takes `--config RECIPE.yaml` (a file with one section per
command, or one command's config) and `--set key=value` overrides. Imports of
torch and friends happen inside the commands: `inkling --help` stays fast.
sft and dpo run on several processes under `accelerate launch`; `--processes N`
or a recipe's `accelerate_config:` starts that launcher (`training.launch`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from training.launch import DISTRIBUTED_STAGES

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
        if name in DISTRIBUTED_STAGES:
            _processes(parser)
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
    from training.feedback_loop import register as register_feedback_loop

    register_feedback_loop(commands)
    run = commands.add_parser("run", help="run a recipe's stages in order (default: every section it has)")
    run.add_argument("config", metavar="RECIPE", help="recipe YAML (see training/recipes/)")
    _common(run, with_config=False)
    run.add_argument("--stages", default="", help="comma-separated subset, e.g. prepare,sft")
    _processes(run)
    run.set_defaults(func=_run_recipe)
    report = commands.add_parser(
        "report", help="print a tracked run's curves and figures and plot them to a PNG"
    )
    report.add_argument(
        "run",
        metavar="RUN",
        help="a stage's output directory (sft/, dpo/), a directory holding several, or a recipe YAML",
    )
    report.add_argument("--plot", default="", help="where to write the PNG (default: in RUN)")
    report.add_argument("--no-plot", action="store_true", help="print only")
    report.set_defaults(func=_report)


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


def _processes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        metavar="N",
        help="train sft/dpo on N processes: re-runs the command under `accelerate launch` (with the "
        "recipe's accelerate_config, if it names one) and prints that command first",
    )


def _load(name: str, args: argparse.Namespace, prefixed: bool = False) -> Any:
    from training.base import offline
    from training.config import apply_overrides, build, load_yaml, section

    offline()  # checking trl's keys imports trl, and with it bitsandbytes, which asks the hub
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
    from training.launch import is_main_process, refuse_single_process_stage

    refuse_single_process_stage(name)
    offline()  # before the commands import peft and trl, which import bitsandbytes, which asks the hub
    if name == "prepare":
        from training.data.prepare import format_stats, prepare

        print(format_stats(prepare(config)))
        return
    if name == "pairs":
        from training.pairs import make_pairs

        print(json.dumps(make_pairs(config), indent=2))
        return
    if name == "sft":
        from training.sft import train_sft

        report = train_sft(config)
    else:
        from training.dpo import train_dpo

        report = train_dpo(config)
    if is_main_process():  # under a launcher every process has the report; one prints it
        print(json.dumps(report, indent=2))


def _launch(name: str, config: Any, recipe: str | None, overrides: list[str], processes: int) -> int | None:
    """Run `name` under `accelerate launch` when asked to (and not launched already): its exit status;
    None: run it in this process."""
    from training import launch

    if name not in DISTRIBUTED_STAGES or not launch.wanted(config.accelerate_config, processes):
        return None
    argv = [name, *(["--config", recipe] if recipe else [])]
    for override in overrides:
        argv += ["--set", override]
    accelerate_config = launch.config_file(config.accelerate_config)
    return launch.run_launched(launch.launch_command(argv, accelerate_config, processes))


def _runner(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        config = _load(name, args)
        status = _launch(name, config, args.config, args.overrides, getattr(args, "processes", 0))
        if status is not None:
            return status
        _execute(name, config)
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
    from training.launch import refuse_single_process_stage

    refuse_single_process_stage("run")
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
        own = [o.split(".", 1)[1] for o in args.overrides if o.startswith(f"{stage}.")]
        status = _launch(stage, config, args.config, own, args.processes)
        if status is None:
            _execute(stage, config)
        elif status != 0:
            print(f"== {stage} failed (exit status {status})", flush=True)
            return status
        print(f"== {stage} took {time.monotonic() - started:.0f} s", flush=True)
    return 0


def _report(args: argparse.Namespace) -> int:
    from training.tracking import report_run

    print(report_run(args.run, plot=None if args.no_plot else args.plot))
    return 0
