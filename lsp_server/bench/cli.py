"""`inkling bench`: type like a person into the real server and report what the user would see.

Registered through the "inkling.commands" entry point; imports stay inside
the command so that `inkling --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_OUT = "inkling-bench.json"


def register(commands: Any) -> None:
    from lsp_server.cli import add_setting_flags

    parser = commands.add_parser(
        "bench",
        help="replay human-paced editing sessions through the real server; latency, CPU, memory, floor",
        description=(
            "Starts `inkling serve` over stdio, types seeded editing sessions into it in real time "
            "(didChange + inline completion per keystroke, cancelling the previous request), then runs "
            "the same prompts straight through llama-cpp-python as the floor. Prints a table, writes JSON "
            "(and the sessions, to repeat the run exactly)."
        ),
    )
    source = parser.add_argument_group("sessions")
    source.add_argument(
        "--sessions", type=Path, help="replay these sessions (JSON written by an earlier run)"
    )
    source.add_argument(
        "--file",
        type=Path,
        action="append",
        default=[],
        help="make a session from this file (repeatable; default: Python, C and JavaScript files "
        "from the standard library, numpy and matplotlib)",
    )
    source.add_argument(
        "--scenario",
        choices=("typing", "whole-lines"),
        default="typing",
        help="typing (default): a stretch of lines typed at human speed, one fresh server per file; "
        "whole-lines: one server, file after file opened and asked at once on a missing line of a "
        "function, then a jump to another function and Enter on a new line, waiting for the answer "
        "each time (the waits are reported apart, each with its floor)",
    )
    source.add_argument(
        "--files",
        type=int,
        default=20,
        help="whole-lines: how many standard-library Python files (default 20; --file picks others)",
    )
    source.add_argument("--seed", type=int, default=1)
    source.add_argument("--lines", type=int, default=16, help="lines typed per session (default 16)")
    source.add_argument("--jumps", type=int, default=2, help="cursor jumps to other lines per session")
    source.add_argument("--paste-lines", type=int, default=4, help="lines in the one paste per session")
    source.add_argument(
        "--quick",
        action="store_true",
        help="one short Python session (3 lines, 1 jump, a 2-line paste): a smoke test, not a benchmark",
    )
    source.add_argument(
        "--workspace",
        type=Path,
        help="open each server on this folder, as an editor opened on a project, so that project "
        "context is at work; sessions from --file name their real files, which must lie inside it. "
        "The floor has no project context, so it is skipped",
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="time compression: play the sessions this many times faster (reported as such; "
        "headline figures need 1)",
    )
    run.add_argument("--no-floor", action="store_true", help="skip the llama-cpp-python floor")
    run.add_argument(
        "--out", type=Path, default=Path(DEFAULT_OUT), help=f"JSON report (default {DEFAULT_OUT})"
    )
    run.add_argument("--plot", type=Path, help="write a latency histogram (PNG) here")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    add_setting_flags(parser)
    parser.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    import asyncio

    from lsp_server.bench.floor import FloorRun, Workload, classify, floor_generator, run_floor
    from lsp_server.bench.replay import RequestRecord, run_server
    from lsp_server.bench.report import build_report, plot_histogram, render_table
    from lsp_server.bench.sessions import Session, save_sessions
    from lsp_server.cli import settings_from_args
    from lsp_server.errors import InklingError
    from lsp_server.pipeline import Pipeline
    from lsp_server.settings import effective_threads

    if args.speed <= 0:
        raise InklingError("--speed must be positive")
    settings, _ = settings_from_args(args, strict=True)
    workspace: Path | None = args.workspace
    if workspace is not None:
        if not workspace.is_dir():
            raise InklingError(f"--workspace {workspace}: not a folder")
        if not args.no_floor:
            print("--workspace: no floor (its prompts would lack the project context)", file=sys.stderr)
            args.no_floor = True
    sessions = _sessions(args)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    sessions_path = out.with_suffix(".sessions.json")
    if args.sessions is None or args.sessions.resolve() != sessions_path.resolve():
        save_sessions(sessions_path, sessions)
    log_path = out.with_suffix(".server.log")
    engine = floor_generator(settings)  # resolves the model the server will load, and its vocabulary
    workload = Workload(sessions)
    pipeline = Pipeline(engine)
    floor_parts: list[FloorRun] = []

    async def after_session(session: Session, records: list[RequestRecord]) -> None:
        """Classify the session's requests and run its floor while the server is idle."""
        classify(pipeline, workload, records, settings)
        if not args.no_floor:
            part = await asyncio.to_thread(run_floor, engine, workload, records, settings, quiet=args.quiet)
            floor_parts.append(part)

    try:
        with log_path.open("w", encoding="utf-8") as server_log:
            run = asyncio.run(
                run_server(
                    sessions,
                    server_args=_server_args(args),
                    speed=args.speed,
                    stderr=server_log,
                    quiet=args.quiet,
                    between=after_session,
                    workspace=workspace,
                    one_server=any(event.scenario for session in sessions for event in session.events),
                )
            )
        # Through an engine (--engine-url) the server names its URL: serving the floor's model
        # file there is the caller's part (the bench's own check ends here).
        if run.status.get("model") != (settings.engine_url or str(engine.config.model_path)):
            raise InklingError(
                f"the server loaded {run.status.get('model')} but the floor used "
                f"{engine.config.model_path}: the comparison is not fair"
            )
        floor = FloorRun.merge(floor_parts) if floor_parts else None
        report = build_report(
            sessions=sessions,
            run=run,
            floor=floor,
            floor_template=pipeline.template.family,
            settings=_plain_settings(settings),
            threads=effective_threads(settings),
            speed=args.speed,
            model_path=engine.config.model_path,
            command=sys.argv,
        )
    finally:
        engine.close()
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(render_table(report))
    print(f"\nreport: {out}; sessions: {sessions_path}; server log: {log_path}")
    if args.plot is not None:
        plot_histogram(report, run.records, args.plot)
        print(f"histogram: {args.plot}")
    return 0


def _sessions(args: argparse.Namespace) -> list[Any]:
    from lsp_server.bench.sessions import (
        QUICK_PLAN,
        SessionPlan,
        default_sources,
        generate_session,
        generate_whole_line_session,
        load_sessions,
        source_for_path,
        whole_line_sources,
    )
    from lsp_server.errors import InklingError

    if args.sessions is not None:
        return load_sessions(args.sessions)
    if args.scenario == "whole-lines":
        if args.workspace is not None:
            raise InklingError("--scenario whole-lines runs without --workspace (its floor needs none)")
        chosen = [source_for_path(path) for path in args.file] or whole_line_sources(args.files, args.seed)
        if not chosen:
            raise InklingError("no source file holds two function bodies far enough apart")
        return [
            generate_whole_line_session(source, seed=args.seed + number)
            for number, source in enumerate(chosen)
        ]
    if args.file:
        sources = [source_for_path(path) for path in args.file]
    else:
        sources = default_sources()[:1] if args.quick else default_sources()
    plan = (
        QUICK_PLAN
        if args.quick
        else SessionPlan(lines=args.lines, jumps=args.jumps, paste_lines=args.paste_lines)
    )
    if args.workspace is None:
        return [generate_session(source, seed=args.seed, plan=plan) for source in sources]
    root = args.workspace.resolve()
    outside = [str(s.path) for s in sources if not s.path.resolve().is_relative_to(root)]
    if outside:
        raise InklingError(f"--workspace {root} does not hold {', '.join(outside)}")
    return [
        generate_session(source, seed=args.seed, plan=plan, uri=source.path.resolve().as_uri())
        for source in sources
    ]


def _server_args(args: argparse.Namespace) -> list[str]:
    """The setting flags given to `bench`, passed on to `inkling serve` unchanged."""
    from lsp_server.settings import setting_specs

    passed = []
    for spec in setting_specs():
        value = getattr(args, f"setting_{spec.name}", None)
        if value is not None:
            passed += [spec.flag, str(value)]
    return passed


def _plain_settings(settings: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return dict(asdict(settings))
