"""Runs tracked locally: TensorBoard event files beside each adapter, a PNG of the curves.

Each training stage (sft, dpo) logs through transformers' own TensorBoard
callback (trl's `report_to: tensorboard`, Inkling's default), which writes with
tensorboardX: no TensorFlow, no server, nothing sent anywhere. The events go
to `<output>/tensorboard/` (`track`), from the main process only: the
training loss, learning rate and gradient norm at every `logging_steps`, the
validation loss and token accuracy before training (step 0), at trl's
`eval_steps` and after training, and each stage's own figures (DPO's reward
margins and accuracies). `tensorboard --logdir ~/.cache/inkling/train` shows
them where TensorBoard is installed; Inkling reads them itself
(`read_scalars`), writes `<output>/training_curves.png` when a stage ends and
prints a run with `inkling train report RUN`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config import ConfigError, expand_path, load_yaml

EVENTS_DIR = "tensorboard"
CURVES_FILE = "training_curves.png"
EVENT_FILES = "events.out.tfevents.*"
REPORTS = ("training_report.json", "pairs_report.json")
"""A stage's own summary beside its events (sft and dpo; pairs: the judged samples)."""
STAGES = ("sft", "pairs", "dpo")

Series = list[tuple[int, float]]
"""(step, value) points in step order."""


def track(trainer: Any, output: Path, resumed: bool) -> None:
    """Send `trainer`'s TensorBoard logs (when its `report_to` has tensorboard) to <output>/tensorboard.

    A run that starts afresh (not resumed from a checkpoint) first drops the events of an earlier
    run there. transformers' callback closes its writer when training ends and opens a new file
    for the evaluation after it; tensorboardX names files by the second and opens them for
    writing, so on a run shorter than a second the second file would replace the first.
    Inkling's callback keeps one writer open until `finish`."""
    from transformers.integrations import TensorBoardCallback

    if not any(isinstance(c, TensorBoardCallback) for c in trainer.callback_handler.callbacks):
        return
    directory = output / EVENTS_DIR
    if trainer.is_world_process_zero() and not resumed and directory.is_dir():
        for stale in directory.glob(EVENT_FILES):
            stale.unlink()

    class Events(TensorBoardCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.logging_dir = str(directory)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.tb_writer is not None:
                self.tb_writer.flush()

    trainer.remove_callback(TensorBoardCallback)
    trainer.add_callback(Events())


def finish(trainer: Any) -> None:
    """Close the writer `track` kept open."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.tb_writer is not None:
            callback.tb_writer.close()
            callback.tb_writer = None


def read_scalars(directory: Path) -> dict[str, Series]:
    """Every scalar in the event files of `directory`, by tag. The files are read in the order
    they were written (a resumed run adds one per sitting); a step logged again keeps its
    latest value. A record cut short (a run killed while writing) ends its file."""
    from tensorboardX.proto.event_pb2 import Event

    points: dict[str, dict[int, float]] = {}
    for file in sorted(directory.glob(EVENT_FILES), key=_written_at):
        for record in _records(file):
            event = Event.FromString(record)
            for value in event.summary.value:
                number = _number(value)
                if number is not None:
                    points.setdefault(value.tag, {})[int(event.step)] = number
    return {tag: sorted(steps.items()) for tag, steps in sorted(points.items())}


def _written_at(file: Path) -> tuple[int, str]:
    """Event file names carry the time they were opened: events.out.tfevents.<seconds>.<host>..."""
    parts = file.name.split(".")
    seconds = parts[3] if len(parts) > 3 and parts[3].isdigit() else "0"
    return int(seconds), file.name


def _records(file: Path) -> Iterator[bytes]:
    """The TFRecord framing: length (uint64), its masked CRC, data, the data's masked CRC."""
    from tensorboardX.record_writer import masked_crc32c

    with file.open("rb") as handle:
        while True:
            header = handle.read(12)
            if len(header) < 12:
                return
            length = struct.unpack("<Q", header[:8])[0]
            if struct.unpack("<I", header[8:])[0] != masked_crc32c(header[:8]):
                return
            data = handle.read(length)
            footer = handle.read(4)
            if len(data) < length or len(footer) < 4:
                return
            yield data


def _number(value: Any) -> float | None:
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor") and len(value.tensor.float_val) == 1:  # the newer summary format
        return float(value.tensor.float_val[0])
    return None


@dataclass
class Stage:
    """One tracked stage of a run: its directory, scalars and report."""

    name: str
    directory: Path
    scalars: dict[str, Series] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def load_stage(directory: Path, name: str = "") -> Stage:
    events = directory / EVENTS_DIR
    scalars = read_scalars(events) if events.is_dir() else {}
    report: dict[str, Any] = {}
    for file in REPORTS:
        if (directory / file).is_file():
            report = json.loads((directory / file).read_text(encoding="utf-8"))
            break
    return Stage(name or directory.name, directory, scalars, report)


def find_stages(run: str) -> list[Stage]:
    """A stage directory, a directory of stages (a recipe's output root), or a recipe file."""
    path = Path(expand_path(run))
    if path.is_file():
        recipe = load_yaml(path)
        directories = [
            (name, Path(expand_path(str(recipe[name]["output"]))))
            for name in STAGES
            if isinstance(recipe.get(name), dict) and recipe[name].get("output")
        ]
    elif path.is_dir():
        if _is_stage(path):
            directories = [(path.name, path)]
        else:
            directories = [(p.name, p) for p in sorted(path.iterdir()) if p.is_dir() and _is_stage(p)]
    else:
        raise ConfigError(f"{run} is neither a run directory nor a recipe")
    stages = [load_stage(directory, name) for name, directory in directories if _is_stage(directory)]
    if not stages:
        raise ConfigError(f"{run}: no tracked stage there (no {EVENTS_DIR}/ nor report of sft, pairs or dpo)")
    return stages


def _is_stage(directory: Path) -> bool:
    return (directory / EVENTS_DIR).is_dir() or any((directory / f).is_file() for f in REPORTS)


LOSS_TAGS = ("train/loss", "eval/loss")
RATE_TAG = "train/learning_rate"
FIGURE_TAGS = (
    "train/mean_token_accuracy",
    "eval/mean_token_accuracy",
    "train/rewards/accuracies",
    "train/rewards/margins",
)
"""Each stage's own figures, the third panel of its row."""
REPORTED = (
    "eval_loss_before",
    "eval_loss_after",
    "optimizer_steps",
    "processes",
    "train_loss",
    "train_seconds",
    "seconds_per_optimizer_step",
    "stopped_by_time_budget",
    "pairs",
    "holes",
    "samples",
    "verdicts",
)
"""The figures of a stage's report that `inkling train report` prints."""
UNPRINTED = ("runtime", "samples_per_second", "steps_per_second", "total_flos", "epoch", "num_tokens")
"""Throughput and bookkeeping tags: in the event files, not in the printed table."""


def format_stage(stage: Stage) -> str:
    lines = [f"{stage.name}: {stage.directory}"]
    figures = {key: stage.report[key] for key in REPORTED if key in stage.report}
    if figures:
        lines.append("  " + ", ".join(f"{key} {_show(value)}" for key, value in figures.items()))
    if not stage.scalars:
        lines.append("  no TensorBoard events")
        return "\n".join(lines)
    shown = {tag: series for tag, series in stage.scalars.items() if not tag.endswith(UNPRINTED)}
    width = max(len(tag) for tag in shown) if shown else 3
    lines.append(f"  {'tag':<{width}}  points  first (step)         last (step)          min")
    for tag, series in shown.items():
        (first_step, first), (last_step, last) = series[0], series[-1]
        low = min(value for _, value in series)
        lines.append(
            f"  {tag:<{width}}  {len(series):>6}  {_show(first):>10} ({first_step:>5})  "
            f"{_show(last):>10} ({last_step:>5})  {_show(low):>10}"
        )
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} {v}" for k, v in value.items()) + "}"
    return str(value)


def plot_stages(stages: list[Stage], path: Path, title: str = "") -> Path:
    """One row per stage with events: loss and validation loss, learning rate, the stage's figures."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tracked = [stage for stage in stages if stage.scalars]
    if not tracked:
        places = ", ".join(str(stage.directory) for stage in stages)
        raise ConfigError(f"nothing to plot: no TensorBoard events in {places}")
    figure = Figure(figsize=(15, 3.6 * len(tracked)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(tracked), 3, squeeze=False)
    for row, stage in zip(axes, tracked, strict=True):
        _panel(row[0], stage, LOSS_TAGS, f"{stage.name}: loss")
        _panel(row[1], stage, (RATE_TAG,), f"{stage.name}: learning rate")
        _panel(row[2], stage, FIGURE_TAGS, f"{stage.name}: figures")
    if title:
        figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(str(path), dpi=90)
    return path


def _panel(ax: Any, stage: Stage, tags: tuple[str, ...], title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    shown = [tag for tag in tags if tag in stage.scalars]
    for tag in shown:
        steps, values = zip(*stage.scalars[tag], strict=True)
        few = len(steps) <= 3  # a validation loss before and after: points, not a line
        ax.plot(steps, values, marker="o" if few or tag.startswith("eval/") else None, label=tag)
    if not shown:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize="small")
    ax.set_title(title)
    ax.set_xlabel("optimizer step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if tags == (RATE_TAG,) and shown and all(v > 0 for _, v in stage.scalars[RATE_TAG]):
        rates = [v for _, v in stage.scalars[RATE_TAG]]
        if max(rates) / min(rates) > 100:
            ax.set_yscale("log")
    if ax.get_yscale() == "linear":
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))


def write_curves(output: Path) -> Path | None:
    """`<output>/training_curves.png` from the stage's events (None when it logged none)."""
    stage = load_stage(output)
    if not stage.scalars:
        return None
    return plot_stages([stage], output / CURVES_FILE, title=str(output))


def report_run(run: str, plot: str | None = "") -> str:
    """`inkling train report RUN`: each stage's figures and curves; the PNG unless `plot` is None
    (empty: CURVES_FILE in the run's directory, or beside the recipe's first stage)."""
    stages = find_stages(run)
    text = "\n\n".join(format_stage(stage) for stage in stages)
    if plot is None or not any(stage.scalars for stage in stages):
        return text
    if plot:
        target = Path(expand_path(plot))
    else:
        root = Path(expand_path(run))
        target = (root if root.is_dir() else stages[0].directory.parent) / CURVES_FILE
    written = plot_stages(stages, target, title=str(Path(expand_path(run))))
    return f"{text}\n\ncurves: {written}"
