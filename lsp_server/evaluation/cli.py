"""`inkling eval`: build FIM tasks, run ours and the naive baseline on one model, report.

inkling eval --prepare                       # once: unpack the pinned npm corpora
inkling eval --split test --per-group 1      # the CI subset (20 tasks, a few minutes)
inkling eval --split dev --per-group 50 --chart eval-dev.png   # the full dev run (1000 tasks)
inkling eval --track crossfile --lang python,go --per-group 30 --no-baseline
                                             # holes that need another file: project context vs in-file
inkling eval --track crossfile --per-group 100 --context-only
                                             # the same holes: does the context hold the definition?
inkling eval --track exec --split test --per-group 50 --tasks-only
                                             # choose the line and block holes CPython's tests notice
                                             # (runs tests for many minutes; cached)
inkling eval --track exec --split test --per-group 50
                                             # answer them, then run the tests: pass@1 beside EM and ES
inkling eval --rescore inkling-eval-exec-test.json
                                             # metrics again; the stored pass flags are kept, not rerun
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lsp_server.corpora import Corpus, Split
    from lsp_server.evaluation.tasks import HoleKind
    from lsp_server.evaluation.tested_holes import TestedHole

DEFAULT_PER_GROUP = 50


def register(subparsers: Any) -> None:
    from lsp_server.cli import add_setting_flags

    parser = subparsers.add_parser(
        "eval",
        help="fill-in-the-middle benchmark: ours vs a naive baseline on the same model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--track",
        default="fim",
        choices=["fim", "crossfile", "exec"],
        help="fim: holes in single files; crossfile: holes needing another file of the repository, "
        "answered with project context and with the in-file prompt; exec: line and block holes in "
        "standard-library functions that CPython's own tests exercise, also scored by running those "
        "tests with the answer in place (pass@1; Python only)",
    )
    parser.add_argument(
        "--lang",
        default=None,
        help="comma-separated language ids (default: the five standard corpora; "
        "crossfile: python,go,typescript; exec: python, the only one)",
    )
    parser.add_argument(
        "--kinds",
        default=None,
        help="hole kinds (comma-separated; default line,midline,block,span; also comment_code; "
        "exec: line,block, its only ones)",
    )
    parser.add_argument(
        "--split", default="dev", choices=["dev", "test", "both"], help="dev (tuning) or test"
    )
    parser.add_argument(
        "--per-group",
        type=int,
        default=DEFAULT_PER_GROUP,
        help=f"tasks per language, split and kind (default {DEFAULT_PER_GROUP}; exec: choosing new ones runs "
        "tests, many minutes, then they are cached)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--source",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="take files from this directory or git repository instead of the standard corpora "
        "(crossfile: the directory is the repository)",
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="TEXT", help="keep tasks whose id contains TEXT"
    )
    parser.add_argument(
        "--lsp",
        action="store_true",
        help="also run every task through `inkling serve` over stdio (each file opened alone, so "
        "ours runs without project context too)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    parser.add_argument(
        "--no-in-process",
        action="store_true",
        help="with --engine-url: run the pipeline through the engine only (no in-process model, "
        "no baseline); by default both run, each task through both in turn",
    )
    parser.add_argument(
        "--no-project-context",
        action="store_true",
        help="a study: answer each fim task from its file alone (default: as the server does, with "
        "project context from the task's corpus opened as the workspace)",
    )
    parser.add_argument(
        "--first-answer",
        action="store_true",
        help="score the quick answer the server gives where its cache holds little of the prompt "
        "(a file just opened, a jump: coldStartTokens before the cursor, the rest evaluated in the "
        "background); default: the answer from the whole prompt, as while typing",
    )
    parser.add_argument(
        "--lift-budgets",
        action="store_true",
        help="a study, not what users get: lift the time budgets to the most the settings allow, so "
        "that generation ends on tokens and stop rules only and scores do not depend on the load "
        "(default: the server's own budgets)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON results (default: inkling-eval-SPLIT.json)"
    )
    parser.add_argument(
        "--chart", type=Path, default=None, help="also draw a PNG bar chart of ours vs baseline"
    )
    parser.add_argument(
        "--tasks-only",
        action="store_true",
        help="build and write the tasks; load no model (exec: choose and cache the holes)",
    )
    parser.add_argument(
        "--context-only",
        action="store_true",
        help="crossfile: only gather each task's project context and count where it holds the "
        "needed definition (seconds; loads no model)",
    )
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="unpack the pinned npm corpora into the cache and name missing Debian packages, then exit",
    )
    parser.add_argument(
        "--rescore",
        type=Path,
        default=None,
        metavar="RESULTS",
        help="score the answers of a results file again with the current metrics (no model), then exit; "
        "exec results keep their stored pass flags (the tests are not run again)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_setting_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lsp_server.corpora import STANDARD_LANGUAGES
    from lsp_server.errors import InklingError
    from lsp_server.evaluation import corpus
    from lsp_server.evaluation.crossfile import build_crossfile_tasks
    from lsp_server.evaluation.tasks import ALL_KINDS, HoleKind, build_tasks

    if args.prepare:
        return _prepare()
    if args.rescore:
        return _rescore(args.rescore, args.out or args.rescore)
    crossfile, exec_track = args.track == "crossfile", args.track == "exec"
    default_languages = {"crossfile": "python,go,typescript", "exec": "python"}.get(
        args.track, ",".join(STANDARD_LANGUAGES)
    )
    languages = [item.strip() for item in (args.lang or default_languages).split(",") if item.strip()]
    default_kinds = "line,block" if exec_track else "line,midline,block,span"
    try:
        kinds = [HoleKind(item.strip()) for item in (args.kinds or default_kinds).split(",") if item.strip()]
    except ValueError as exc:
        raise InklingError(
            f"unknown hole kind: {exc} (known: {', '.join(k.value for k in ALL_KINDS)})"
        ) from exc
    if HoleKind.CROSSFILE in kinds:
        raise InklingError("crossfile holes come from whole repositories: use --track crossfile")
    if args.per_group < 1:
        raise InklingError("--per-group must be at least 1")
    if crossfile and args.lsp:
        raise InklingError("--lsp is not available on the crossfile track")
    if args.context_only and not crossfile:
        raise InklingError("--context-only measures project context: use it with --track crossfile")
    splits: list[Split] = ["dev", "test"] if args.split == "both" else [args.split]
    started = time.perf_counter()
    holes: dict[str, TestedHole] = {}  # the exec track's, by task id
    if crossfile:
        corpora = _repositories(languages, args.source)
        kinds = [HoleKind.CROSSFILE]
        tasks = build_crossfile_tasks(corpora, splits=splits, per_group=args.per_group, seed=args.seed)
    elif exec_track:
        corpora, holes = _exec_holes(args, languages, kinds, splits)
        tasks = [hole.task for hole in holes.values()]
    else:
        corpora = corpus.discover(languages, args.source)
        tasks = build_tasks(corpora, kinds=kinds, splits=splits, per_group=args.per_group, seed=args.seed)
    if not crossfile:
        if args.lsp:
            args.no_project_context = True  # the server over stdio opens each file alone
        if not args.no_project_context:
            tasks = [_in_workspace(task, [c.root for c in corpora]) for task in tasks]
    if args.only:
        tasks = [task for task in tasks if any(text in task.id for text in args.only)]
    if not tasks:
        raise InklingError("no tasks: the corpora have no suitable holes (or --only matched none)")
    out = args.out or Path(f"inkling-eval-{'' if args.track == 'fim' else args.track + '-'}{args.split}.json")
    meta: dict[str, Any] = {
        "command": ["inkling", *sys.argv[1:]],
        "track": args.track,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seed": args.seed,
        "splits": splits,
        "per_group": args.per_group,
        "languages": languages,
        "kinds": [k.value for k in kinds],
        "corpora": [c.describe() for c in corpora],
        "tasks": len(tasks),
    }
    if exec_track:
        from lsp_server.evaluation.exec_track import describe

        meta["exec"] = describe()
    if args.tasks_only:
        records = [holes[t.id].record() if holes else t.record() for t in tasks]
        return _write_tasks_only(out, meta, tasks, records)
    if args.context_only:
        return _context_only(args, out, meta, tasks)
    return _evaluate(args, out, meta, tasks, started, holes)


def _exec_holes(
    args: argparse.Namespace, languages: list[str], kinds: list[HoleKind], splits: list[Split]
) -> tuple[list[Corpus], dict[str, TestedHole]]:
    """The exec track's corpus (the standard library, the workspace of project context) and
    its holes by task id, chosen or read from the cache; says how long that took."""
    from lsp_server.corpora import standard_corpora
    from lsp_server.evaluation import exec_track

    exec_track.check_options(languages, kinds, args.source)
    started = time.perf_counter()
    holes = exec_track.choose(
        args.per_group, splits=splits, kinds=kinds, seed=args.seed, show_progress=not args.no_progress
    )
    print(f"{len(holes)} tested holes in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return standard_corpora("python"), {hole.task.id: hole for hole in holes}


def _repositories(languages: list[str], sources: list[Path]) -> list[Any]:
    """The crossfile track's repositories: the given directories, else the installed ones."""
    from lsp_server.corpora import CorpusError
    from lsp_server.evaluation import corpus
    from lsp_server.evaluation.repositories import repositories

    if sources:
        return corpus.discover(languages, sources)
    found, problems = [], []
    for language in languages:
        try:
            found.extend(repositories(language))
        except CorpusError as exc:
            problems.append(str(exc))
    if problems:
        raise CorpusError("missing repositories:\n  " + "\n  ".join(problems))
    return found


def _prepare() -> int:
    from lsp_server import corpora

    for line in corpora.install_npm_packages():
        print(line)
    missing = corpora.missing_debian_packages()
    if missing:
        print(f"missing Debian packages: apt-get install {' '.join(missing)}", file=sys.stderr)
        return 1
    print("Debian corpora: installed")
    return 0


def _rescore(source: Path, out: Path) -> int:
    from lsp_server.evaluation.report import (
        load_results,
        render_findings,
        render_table,
        summaries,
        write_json,
    )

    meta, runners, results = load_results(source)
    meta["rescored_from"] = str(source)
    write_json(out, meta, results, runners)
    print(f"{len(results)} tasks of {source} scored again")
    print(render_table(summaries(results, runners), runners))
    print(render_findings(results, runners))
    print(f"results: {out}")
    return 0


def _context_only(args: argparse.Namespace, out: Path, meta: dict[str, Any], tasks: list[Any]) -> int:
    from tqdm import tqdm

    from lsp_server.cli import settings_from_args
    from lsp_server.evaluation import retrieval

    settings, _ = settings_from_args(args, strict=True)
    meta["settings"] = dataclasses.asdict(settings)
    progress = tqdm(tasks, desc="context", unit="task", disable=args.no_progress, file=sys.stderr)
    results = list(retrieval.retrieve(progress, settings))
    retrieval.write_json(out, meta, results)
    print(retrieval.render(results))
    print(f"results: {out}")
    return 0


def _write_tasks_only(out: Path, meta: dict[str, Any], tasks: list[Any], records: list[Any]) -> int:
    import json
    from collections import Counter

    out.write_text(
        json.dumps({"meta": meta, "tasks": records}, indent=1, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    counts = Counter((t.split, t.language, t.kind.value) for t in tasks)
    for (split, language, kind), count in sorted(counts.items()):
        print(f"{split:5} {language:11} {kind:8} {count}")
    print(f"{len(tasks)} tasks written to {out}")
    return 0


def _evaluate(
    args: argparse.Namespace,
    out: Path,
    meta: dict[str, Any],
    tasks: list[Any],
    started: float,
    holes: dict[str, TestedHole],
) -> int:
    from tqdm import tqdm

    from lsp_server.cli import settings_from_args
    from lsp_server.evaluation.report import (
        TaskResult,
        draw_chart,
        render_findings,
        render_table,
        score_answer,
        summaries,
        write_json,
    )
    from lsp_server.evaluation.runners import (
        BaselineRunner,
        LspRunner,
        PipelineRunner,
        ProjectRunner,
        Runner,
        context_of,
    )
    from lsp_server.loading import load_engine
    from lsp_server.models import resolve_model
    from lsp_server.settings import setting_specs

    settings, _ = settings_from_args(args, strict=True)
    if args.lift_budgets:
        settings = _lift_time_budgets(settings)
    resolved = resolve_model(settings.model_path)
    # Every task starts from an empty KV cache: score the prompt the server builds while
    # the user types, unless --first-answer asks for its quick answer to a cold prompt.
    settings = dataclasses.replace(
        settings,
        model_path=str(resolved.path),
        cold_start_tokens=settings.cold_start_tokens if args.first_answer else 0,
    )
    remote = None
    if settings.engine_url:
        from lsp_server.remote import open_engine

        # The same local model file gives the remote runner its tokenizer.
        remote = open_engine(settings)
        meta["engine"] = vars(remote.info) | {"tokenizer": remote.vocab_source}
    elif args.no_in_process:
        from lsp_server.errors import InklingError

        raise InklingError("--no-in-process needs --engine-url")
    remote_only = remote is not None and args.no_in_process
    engine = None if remote_only else load_engine(settings, quiet=args.no_progress)
    runners: list[Runner] = []
    try:
        if engine is None:
            assert remote is not None
            ours = PipelineRunner(remote, settings, name="remote")
            runners.append(ours)
        elif args.track == "crossfile":
            ours = PipelineRunner(engine, settings, name="in-file")
            runners += [ours, ProjectRunner(engine, settings)]
        elif args.no_project_context:
            ours = PipelineRunner(engine, settings)
            runners.append(ours)
        else:
            ours = ProjectRunner(engine, settings, name="ours")
            runners.append(ours)
        if remote is not None and engine is not None:
            # The same runner as ours (the same project context), through the engine.
            runners.append(type(ours)(remote, settings, name="remote"))
        if not args.no_baseline and engine is not None:
            runners.append(BaselineRunner(engine, settings))
        if args.lsp:
            options = {spec.client_key: getattr(settings, spec.name) for spec in setting_specs()}
            runners.append(LspRunner(options, log_path=out.with_suffix(".server.log")))
        meta["model"] = {
            "path": str(resolved.path),
            "source": resolved.source,
            "sha256": _sha256(resolved.path),
            "bytes": resolved.path.stat().st_size,
            "template": ours.pipeline.template.family,
        }
        meta["settings"] = dataclasses.asdict(settings)
        meta["time_budgets"] = "lifted" if args.lift_budgets else "server"
        meta["answer"] = "first (cold prompt)" if args.first_answer else "whole prompt"
        meta["project_context"] = args.track == "crossfile" or not args.no_project_context
        meta["runners"] = [runner.name for runner in runners]
        meta["machine"] = {"cpus": os.cpu_count(), "load_average_start": os.getloadavg()}
        results: list[TaskResult] = []
        with tqdm(tasks, desc="eval", unit="task", disable=args.no_progress, file=sys.stderr) as bar:
            for task in bar:
                answers = {runner.name: runner.run(task) for runner in runners}
                mode, reason = answers[ours.name].mode, answers[ours.name].reason
                if not mode:
                    found_mode, reason = context_of(ours.pipeline, task, settings)
                    mode = found_mode.value
                scores = {name: score_answer(task, answer) for name, answer in answers.items()}
                results.append(TaskResult(task, mode, reason, answers, scores))
                bar.set_postfix(_running(results, [r.name for r in runners]))
    finally:
        for runner in runners:
            runner.close()
        if engine is not None:
            engine.close()
        if remote is not None:
            remote.close()
    names = [runner.name for runner in runners]
    meta["machine"]["load_average_end"] = os.getloadavg()
    if holes:  # the model is done: the tests now have the cores to themselves
        from lsp_server.evaluation.exec_track import judge_results

        results = judge_results(results, holes, show_progress=not args.no_progress, meta=meta)
    meta["duration_s"] = round(time.perf_counter() - started, 1)
    write_json(out, meta, results, names)
    summary = summaries(results, names)
    print(
        f"model {resolved.path.name} (sha256 {meta['model']['sha256'][:12]}…, {meta['model']['template']}), "
        f"split {'+'.join(meta['splits'])}, {len(results)} tasks in {meta['duration_s']:.0f}s"
    )
    print(render_table(summary, names))
    print(render_findings(results, names))
    failed = {name: summary[name]["all"]["errors"] for name in names if summary[name]["all"]["errors"]}
    if failed:
        print(f"failed answers (counted as empty; the error is in the JSON): {failed}")
    print(f"results: {out}")
    if args.chart:
        draw_chart(args.chart, summary, names, f"{'+'.join(meta['splits'])}: {resolved.path.name}")
        print(f"chart: {args.chart}")
    return 0


def _in_workspace(task: Any, roots: list[Path]) -> Any:
    """The task with its corpus (the innermost root holding its file) as its workspace."""
    path = Path(task.path)
    holding = [root for root in roots if path.is_relative_to(root)]
    if not holding:
        return task
    return dataclasses.replace(task, repository=str(max(holding, key=lambda root: len(root.parts))))


def _lift_time_budgets(settings: Any) -> Any:
    """The largest budgets the settings allow: generation ends on tokens and stop rules only."""
    from lsp_server.settings import setting_specs

    limits = {spec.name: spec.maximum for spec in setting_specs()}
    return dataclasses.replace(
        settings,
        time_budget_inline_ms=int(limits["time_budget_inline_ms"] or settings.time_budget_inline_ms),
        time_budget_block_ms=int(limits["time_budget_block_ms"] or settings.time_budget_block_ms),
    )


def _running(results: list[Any], names: list[str]) -> dict[str, str]:
    return {
        f"EM {name}": f"{sum(r.scores[name].exact for r in results) / len(results) * 100:.0f}%"
        for name in names
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
