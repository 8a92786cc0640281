"""What several suggestions cost and win: requests made while typing vs explicit ones.

    inkling eval --tasks-only --split test --kinds line,midline --per-group 6 --out tasks.json
    python -m lsp_server.bench.suggestions --tasks tasks.json

For each task the prompt is first evaluated into the KV cache by an untimed request that
writes one token (as when the user asks after the ghost text appeared, or cycles; the
prompt does not depend on how many tokens may follow it), then an automatic request
and an explicit one (`CompletionRequest.explicit`: what an Invoked LSP request or HTTP
`n` > 1 is) are timed at the same place, through `Pipeline.complete` as the server runs
it, with the settings flags and `INKLING_*` variables given. Reported per hole kind: the
median and p90 time of each, exact match of the first item (@1) and of any of the first
k items (@k), how many items came, and how often the explicit request's first item is
the automatic answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from lsp_server.evaluation.metrics import exact_match, percentile
from lsp_server.evaluation.tasks import Task, task_from_record
from lsp_server.pipeline import CompletionRequest, Pipeline
from lsp_server.settings import Settings


@dataclass(frozen=True)
class Measured:
    """One task: what each request offered and how long it took."""

    id: str
    kind: str
    expected: str
    automatic: tuple[str, ...]
    explicit: tuple[str, ...]
    automatic_ms: float
    explicit_ms: float
    evaluated: int = 0
    """Prompt tokens the two timed requests evaluated (0: both found the prompt cached)."""


def measure(pipeline: Pipeline, task: Task, settings: Settings) -> Measured:
    request = CompletionRequest(task.text, task.offset, task.lsp_language_id, path=task.path)
    pipeline.complete(request, _prompt_only(settings))  # untimed: the whole prompt into the cache
    started = time.perf_counter()
    automatic = pipeline.complete(request, settings)
    between = time.perf_counter()
    explicit = pipeline.complete(replace(request, explicit=True), settings)
    ended = time.perf_counter()
    return Measured(
        task.id,
        task.kind.value,
        task.expected,
        automatic.items,
        explicit.items,
        (between - started) * 1000,
        (ended - between) * 1000,
        sum(c.generation.evaluated_tokens for c in (automatic, explicit) if c.generation is not None),
    )


def _prompt_only(settings: Settings) -> Settings:
    """The same prompt, evaluated whole (no quick answer from part of it), one token written."""
    return replace(settings, cold_start_tokens=0, max_tokens_inline=1, max_tokens_block=1, line_candidates=1)


def summary(results: Sequence[Measured], most: int) -> dict[str, Any]:
    """The figures for a group of tasks (see the module's docstring)."""
    n = len(results)
    automatic = [r.automatic_ms for r in results]
    explicit = [r.explicit_ms for r in results]

    def share(hits: int) -> float:
        return hits / n if n else 0.0

    return {
        "tasks": n,
        "automatic_ms": {"p50": percentile(automatic, 0.5), "p90": percentile(automatic, 0.9)},
        "explicit_ms": {"p50": percentile(explicit, 0.5), "p90": percentile(explicit, 0.9)},
        "automatic_items": share(sum(len(r.automatic) for r in results)),
        "explicit_items": share(sum(len(r.explicit) for r in results)),
        "first_is_automatic": share(sum(r.explicit[:1] == r.automatic[:1] for r in results)),
        "automatic_exact_at_1": share(sum(_exact(r.automatic[:1], r.expected) for r in results)),
        "automatic_exact_at_all": share(sum(_exact(r.automatic, r.expected) for r in results)),
        **{
            f"explicit_exact_at_{k}": share(sum(_exact(r.explicit[:k], r.expected) for r in results))
            for k in range(1, most + 1)
        },
    }


def _exact(items: Sequence[str], expected: str) -> bool:
    return any(exact_match(item, expected) for item in items)


def render(groups: dict[str, dict[str, Any]], most: int) -> str:
    head = (
        f"{'kind':8} {'tasks':>5} {'auto p50':>9} {'p90':>7} {'asked p50':>10} {'p90':>7} "
        f"{'items':>5} {'same 1st':>8} {'auto @1':>7} {'auto @all':>9} "
        + " ".join(f"{'@' + str(k):>6}" for k in range(1, most + 1))
    )
    lines = [head]
    for name, s in groups.items():
        lines.append(
            f"{name:8} {s['tasks']:>5} {s['automatic_ms']['p50']:>9.0f} {s['automatic_ms']['p90']:>7.0f} "
            f"{s['explicit_ms']['p50']:>10.0f} {s['explicit_ms']['p90']:>7.0f} {s['explicit_items']:>5.2f} "
            f"{s['first_is_automatic']:>8.0%} {s['automatic_exact_at_1']:>7.1%} "
            f"{s['automatic_exact_at_all']:>9.1%} "
            + " ".join(f"{s[f'explicit_exact_at_{k}']:>6.1%}" for k in range(1, most + 1))
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from lsp_server.cli import add_setting_flags, settings_from_args
    from lsp_server.loading import load_engine

    parser = argparse.ArgumentParser(
        prog="python -m lsp_server.bench.suggestions", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--tasks", type=Path, required=True, help="tasks from `inkling eval --tasks-only`")
    parser.add_argument("--limit", type=int, default=0, help="the first this many tasks only (0: all)")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures and answers as JSON")
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    settings, _ = settings_from_args(args, strict=True)
    records = json.loads(args.tasks.read_text(encoding="utf-8"))["tasks"]
    tasks = [task_from_record(record) for record in records][: args.limit or None]
    engine = load_engine(settings, quiet=True)
    try:
        pipeline = Pipeline(engine)
        model = engine.config.model_path.name
        results: list[Measured] = []
        groups = _groups(results, settings.inline_suggestions)
        for number, task in enumerate(tasks, start=1):
            results.append(measure(pipeline, task, settings))
            print(f"\r{number}/{len(tasks)}", end="", file=sys.stderr, flush=True)
            groups = _groups(results, settings.inline_suggestions)
            if args.out is not None:  # after every task: a run cut short keeps what it measured
                _write(args.out, model, settings, groups, results)
        print(file=sys.stderr)
    finally:
        engine.close()
    most = settings.inline_suggestions
    print(f"model {model}, inlineSuggestions {most}, {len(results)} tasks from {args.tasks}")
    print(render(groups, most))
    return 0


def _groups(results: Sequence[Measured], most: int) -> dict[str, dict[str, Any]]:
    kinds = sorted({r.kind for r in results})
    groups = {kind: summary([r for r in results if r.kind == kind], most) for kind in kinds}
    groups["all"] = summary(results, most)
    return groups


def _write(
    out: Path, model: str, settings: Settings, groups: dict[str, Any], results: Sequence[Measured]
) -> None:
    document: dict[str, Any] = {"model": model, "settings": asdict(settings), "groups": groups}
    document["tasks"] = [asdict(r) for r in results]
    out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
