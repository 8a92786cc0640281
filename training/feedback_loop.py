"""`inkling train feedback-loop`: the feedback loop closed on a simulated user, and measured.

No real users are at hand, so a simulated one stands in (`lsp_server.bench.feedback_user`):

1. `record`: it types editing sessions over files of the dev split of the standard
   corpora (or of one half of a codebase, `project`) into the real server
   (`inkling serve --record-feedback`, the starting model), accepting a completion
   exactly when it is what it goes on to type; the server records every offer and
   its outcome in a feedback store of the run's own.
2. `data`: `inkling train pairs --from-feedback` on that store: SFT examples from
   accepted completions (and, with `feedback.sft_from_typed`, from what was typed
   instead), preference pairs from what was typed instead of a rejected one.
3. `replay`: first-stage data to mix back in (`inkling train prepare` with the
   default recipe), unless `replay_dataset` names one.
4. `sft`, then `dpo` (skipped with `dpo.max_steps: 0`): the starting adapter
   continued on that data, as the second-stage recipes continue the first.
5. `build`: `inkling export` (Q4_K_M, LoRA applied on load, no verification) of the
   new adapter, and of the starting adapter too unless `old_model` is given, so that
   both models are made the same way.
6. `measure`: sessions over files of the test split (never seen above) typed into
   the old and the new model side by side, session by session: acceptance, characters
   inserted by accepts per key pressed, keys saved, latency.

Every stage writes into `work`; each stage's command line (`inkling train ...`,
`inkling export ...`) is printed and logged, so any can be run again by hand.
`report.json` holds the figures, the time each stage took and the sizes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.config import ConfigError, expand_path

STAGES = ("record", "data", "replay", "sft", "dpo", "build", "measure")
DEFAULT_ADAPTER = Path(__file__).resolve().parents[1] / "export" / "default_adapter"
DEFAULT_RECIPE = Path(__file__).resolve().parent / "recipes" / "gemma3-270m-cpu.yaml"
NEW_NAME = "inkling-feedback"
OLD_NAME = "inkling-start"


@dataclass
class LoopConfig:
    work: str = "~/.cache/inkling/train/feedback-loop"
    adapter: str = ""
    """The starting adapter (what the old model is built from); empty: Inkling's shipped one."""
    old_model: str = ""
    """The old model's GGUF; empty: built from `adapter` here, as the new one is."""
    corpora: list[str] = field(default_factory=lambda: ["python"])
    """Languages of the standard corpora the sessions come from."""
    project: str = ""
    """A folder of one codebase (a user's own) to take the sessions from instead: half of its
    files (by a hash of the path) for dev, the other half for test."""
    dev_sessions: int = 10
    test_sessions: int = 6
    lines: int = 8
    """Lines typed per session."""
    seed: int = 1
    server_args: list[str] = field(
        default_factory=lambda: ["--time-budget-inline-ms", "60000", "--time-budget-block-ms", "60000"]
    )
    """Setting flags for every server, the same for old and new. By default the time budgets are
    lifted, so that what is offered (and accepted) does not depend on how busy the machine is."""
    replay_dataset: str = ""
    """A `prepare` output to mix in; empty: prepared here with `replay_recipe`."""
    replay_recipe: str = str(DEFAULT_RECIPE)
    feedback: dict[str, Any] = field(default_factory=lambda: {"sft_from_typed": True, "max_pairs": 24})
    """Keys of `inkling train pairs --from-feedback` (training/feedback_data.py). DPO computes the
    reference's log-probabilities of every pair first (tens of seconds a pair on 2 cores), so the
    pairs are capped near what its steps use."""
    sft: dict[str, Any] = field(default_factory=dict)
    """Keys of `inkling train sft` over the loop's defaults (`sft_section`)."""
    dpo: dict[str, Any] = field(default_factory=dict)
    """Keys of `inkling train dpo` over the loop's defaults; `max_steps: 0` skips DPO."""
    threads: int = 2
    """Threads for exporting (the servers take theirs from `server_args`)."""


def sft_section(config: LoopConfig, work: Path, adapter: Path, replay: str) -> dict[str, Any]:
    section: dict[str, Any] = {
        "dataset": str(work / "data"),
        "output": str(work / "sft"),
        "init_adapter": str(adapter),
        "replay_dataset": replay,
        "replay_share": 0.5,
        "fim_format": "spm",
        "max_steps": 30,
        "max_minutes": 20,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 8,
        "learning_rate": 1.0e-4,
        "warmup_steps": 0.1,
        "eval_examples": 40,
        "save_steps": 1000,
        "logging_steps": 5,
    }
    section.update(config.sft)
    return section


def dpo_section(config: LoopConfig, work: Path) -> dict[str, Any]:
    section: dict[str, Any] = {
        "adapter": str(work / "sft"),
        "pairs": str(work / "data"),
        "output": str(work / "dpo"),
        "max_steps": 8,
        "gradient_accumulation_steps": 2,
        "learning_rate": 2.0e-5,
        "max_length": 384,
        "save_steps": 1000,
        "logging_steps": 2,
    }
    section.update(config.dpo)
    return section


class Loop:
    def __init__(self, config: LoopConfig, stages: list[str]) -> None:
        self.config = config
        self.stages = stages
        self.work = Path(expand_path(config.work)).resolve()
        self.adapter = Path(expand_path(config.adapter)).resolve() if config.adapter else DEFAULT_ADAPTER
        self.report_path = self.work / "report.json"
        self.report: dict[str, Any] = {}
        if self.report_path.is_file():
            self.report = json.loads(self.report_path.read_text(encoding="utf-8"))
        self.report.setdefault("seconds", {})
        self.report["config"] = asdict(config)

    # -- plumbing -----------------------------------------------------------------------------

    def log(self, message: str) -> None:
        print(f"[feedback-loop] {message}", file=sys.stderr, flush=True)

    def command(self, argv: list[str], log_name: str) -> None:
        """Run an `inkling` command in its own process (its memory goes when it ends)."""
        full = [sys.executable, "-m", "lsp_server", *argv]
        self.log("$ inkling " + " ".join(argv))
        with (self.work / f"{log_name}.log").open("w", encoding="utf-8") as log:
            result = subprocess.run(full, stdout=log, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            tail = (self.work / f"{log_name}.log").read_text(encoding="utf-8")[-3000:]
            raise ConfigError(f"`inkling {' '.join(argv)}` failed ({result.returncode}):\n{tail}")

    def save(self) -> None:
        self.report_path.write_text(json.dumps(self.report, indent=1, default=str) + "\n", encoding="utf-8")

    def run(self) -> dict[str, Any]:
        self.work.mkdir(parents=True, exist_ok=True)
        for stage in self.stages:
            started = time.monotonic()
            self.log(f"== {stage}")
            getattr(self, f"stage_{stage}")()
            self.report["seconds"][stage] = round(time.monotonic() - started, 1)
            self.log(f"== {stage} took {self.report['seconds'][stage]:.0f} s")
            self.save()
        return self.report

    def sessions(self, split: str, count: int) -> list[Any]:
        from lsp_server.bench.feedback_user import SIMULATION_PLAN, project_sessions, split_sessions
        from lsp_server.bench.sessions import SessionPlan

        plan = SessionPlan(
            lines=self.config.lines, jumps=SIMULATION_PLAN.jumps, paste_lines=SIMULATION_PLAN.paste_lines
        )
        if self.config.project:
            root = Path(expand_path(self.config.project)).resolve()
            return project_sessions(root, split, count, seed=self.config.seed, plan=plan)
        return split_sessions(split, count, languages=self.config.corpora, seed=self.config.seed, plan=plan)

    def old_model(self) -> Path:
        if self.config.old_model:
            return Path(expand_path(self.config.old_model)).resolve()
        return self.work / "old" / f"{OLD_NAME}-q4_k_m.gguf"

    def new_model(self) -> Path:
        return self.work / "new" / f"{NEW_NAME}-q4_k_m.gguf"

    def server(self, model: Path) -> list[str]:
        return [*self.config.server_args, "--model-path", str(model), "--record-feedback", "true"]

    def recipe(self) -> Path:
        """The sft and dpo sections this loop runs, as a recipe file (to run again by hand)."""
        replay = self.report.get("replay_dataset") or self.config.replay_dataset
        path = self.work / "loop-recipe.yaml"
        recipe = {
            "sft": sft_section(self.config, self.work, self.adapter, replay),
            "dpo": dpo_section(self.config, self.work),
        }
        path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
        return path

    # -- stages -------------------------------------------------------------------------------

    def stage_record(self) -> None:
        from lsp_server.bench.feedback_user import render, run_simulation

        if not self.config.old_model:
            self.stage_build(which=("old",))
        state = self.work / "dev-state"
        shutil.rmtree(state, ignore_errors=True)
        sessions = self.sessions("dev", self.config.dev_sessions)
        with (self.work / "record-server.log").open("w", encoding="utf-8") as server_log:
            run = asyncio.run(
                run_simulation(
                    sessions,
                    server_args=self.server(self.old_model()),
                    state=state,
                    label="dev",
                    stderr=server_log,
                )
            )
        summary = run.summary()
        self.report["record"] = summary
        self.report["dev_files"] = [s.source for s in sessions]
        self.log("\n" + render([summary]))

    def stage_data(self) -> None:
        from training.config import build
        from training.feedback_data import FeedbackPairsConfig, make_feedback_data

        shutil.rmtree(self.work / "data", ignore_errors=True)
        source = self.work / "dev-state" / "feedback.sqlite3"
        config = build(
            FeedbackPairsConfig,
            {**self.config.feedback, "source": str(source), "output": str(self.work / "data")},
        )
        self.log(f"$ inkling train pairs --from-feedback {source} --set output={self.work / 'data'}")
        self.report["data"] = make_feedback_data(config)
        self.log(json.dumps(self.report["data"]))

    def stage_replay(self) -> None:
        if self.config.replay_dataset:
            self.report["replay_dataset"] = self.config.replay_dataset
            return
        output = self.work / "replay"
        if not (output / "dataset").is_dir():
            self.command(
                ["train", "prepare", "--config", self.config.replay_recipe, "--set", f"output={output}"],
                "replay",
            )
        self.report["replay_dataset"] = str(output)

    def stage_sft(self) -> None:
        shutil.rmtree(self.work / "sft", ignore_errors=True)
        self.command(["train", "sft", "--config", str(self.recipe())], "sft")
        self.report["sft"] = json.loads((self.work / "sft" / "training_report.json").read_text())

    def stage_dpo(self) -> None:
        section = dpo_section(self.config, self.work)
        shutil.rmtree(self.work / "dpo", ignore_errors=True)
        if not section["max_steps"] or not (self.work / "data" / "pairs").is_dir():
            self.report["dpo"] = {"skipped": "dpo.max_steps is 0" if not section["max_steps"] else "no pairs"}
            return
        self.command(["train", "dpo", "--config", str(self.recipe())], "dpo")
        self.report["dpo"] = json.loads((self.work / "dpo" / "training_report.json").read_text())

    def trained(self) -> Path:
        return (
            self.work / "dpo" if (self.work / "dpo" / "adapter_config.json").is_file() else self.work / "sft"
        )

    def stage_build(self, which: tuple[str, ...] = ("new",)) -> None:
        for name in which:
            adapter, folder, stem = (
                (self.trained(), self.work / "new", NEW_NAME)
                if name == "new"
                else (self.adapter, self.work / "old", OLD_NAME)
            )
            if name == "old" and self.old_model().is_file():
                continue
            shutil.rmtree(folder, ignore_errors=True)
            self.command(
                [
                    "export",
                    "--adapter",
                    str(adapter),
                    "--output",
                    str(folder),
                    "--name",
                    stem,
                    "--no-verify",
                    "--no-imatrix",
                    "--threads",
                    str(self.config.threads),
                ],
                f"build-{name}",
            )
            self.report.setdefault("models", {})[name] = {
                "adapter": str(adapter),
                "gguf": str(folder / f"{stem}-q4_k_m.gguf"),
            }

    def stage_measure(self) -> None:
        from lsp_server.bench.feedback_user import render, run_side_by_side

        sessions = self.sessions("test", self.config.test_sessions)
        servers = []
        for label, model in (("old", self.old_model()), ("new", self.new_model())):
            state = self.work / f"test-state-{label}"
            shutil.rmtree(state, ignore_errors=True)
            servers.append((label, self.server(model), state))
        with (self.work / "measure-server.log").open("w", encoding="utf-8") as server_log:
            runs = asyncio.run(run_side_by_side(sessions, servers, stderr=server_log))
        summaries = [run.summary() for run in runs]
        self.report["measure"] = {s["label"]: s for s in summaries}
        self.report["test_files"] = [s.source for s in sessions]
        old, new = summaries
        self.report["difference"] = {
            "acceptance_points": _points(new["acceptance"], old["acceptance"]),
            "chars_per_key_change": _relative(new["chars_per_key"], old["chars_per_key"]),
            "latency_p50_ms": _minus(new["latency_ms"]["p50"], old["latency_ms"]["p50"]),
            "latency_p90_ms": _minus(new["latency_ms"]["p90"], old["latency_ms"]["p90"]),
        }
        table = render(summaries)
        (self.work / "report.txt").write_text(table + "\n", encoding="utf-8")
        self.log("\n" + table + "\n" + json.dumps(self.report["difference"]))


def _points(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else round(100 * (new - old), 2)


def _relative(new: float | None, old: float | None) -> float | None:
    return None if new is None or not old else round(new / old - 1, 4)


def _minus(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else round(new - old, 1)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "feedback-loop",
        help="record feedback from a simulated user on dev sessions, train on it, "
        "compare old and new model on test sessions",
    )
    parser.add_argument("--config", help="a YAML file of the loop's keys (training/feedback_loop.py)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a key"
    )
    parser.add_argument("--stages", default="", help=f"comma-separated subset of {','.join(STAGES)}")
    parser.set_defaults(func=cmd_loop)


def cmd_loop(args: Any) -> int:
    from training.base import offline
    from training.config import apply_overrides, build, load_yaml

    offline()
    data = load_yaml(args.config) if args.config else {}
    apply_overrides(data, args.overrides)
    if isinstance(data.get("feedback"), dict):  # keys given add to the defaults, not replace them
        data["feedback"] = {**LoopConfig().feedback, **data["feedback"]}
    config = build(LoopConfig, data, "feedback-loop")
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] or list(STAGES)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ConfigError(f"unknown stages {unknown}; stages: {', '.join(STAGES)}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    report = Loop(config, stages).run()
    print(json.dumps({k: report.get(k) for k in ("difference", "seconds")}, indent=2))
    return 0
