"""`inkling feedback stats|export|clear|simulate`: the opt-in feedback store (feedback.py).

Registered through the "inkling.commands" entry point; everything it reads is
on this machine, and nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "feedback",
        help="completions offered and what became of them (recorded with --record-feedback): "
        "stats, export, clear",
    )
    actions = parser.add_subparsers(dest="feedback_command", required=True, metavar="ACTION")
    stats = actions.add_parser("stats", help="records per outcome, language, model and editor")
    stats.add_argument("--json", action="store_true", help="print the counts as JSON")
    export = actions.add_parser("export", help="write the records as JSON lines (one record a line)")
    export.add_argument("output", metavar="FILE", help="where to write them ('-': standard output)")
    export.add_argument("--outcome", choices=("accepted", "rejected", "partial"), help="only these")
    clear = actions.add_parser("clear", help="delete every record (asks first)")
    clear.add_argument("--yes", action="store_true", help="do not ask")
    for action in (stats, export, clear):
        action.add_argument(
            "--file", type=Path, help="the database (default: feedback.sqlite3 in the state directory)"
        )
    stats.set_defaults(func=cmd_stats)
    export.set_defaults(func=cmd_export)
    clear.set_defaults(func=cmd_clear)
    from lsp_server.bench.feedback_user import register_simulate

    register_simulate(actions)


def _store(args: argparse.Namespace) -> Any:
    from lsp_server.feedback import FeedbackStore, feedback_path

    return FeedbackStore(args.file or feedback_path())


def cmd_stats(args: argparse.Namespace) -> int:
    store = _store(args)
    if not store.path.is_file():
        print(f"no feedback recorded ({store.path} does not exist; see --record-feedback)")
        return 0
    counts = store.counts()
    if args.json:
        print(json.dumps({"file": str(store.path), **counts}, indent=2))
        return 0
    print(render(counts, store.path))
    return 0


def render(counts: dict[str, Any], path: Path) -> str:
    total = counts["total"]
    if not sum(total.values()):
        return f"no feedback recorded yet ({path})"
    rows: list[tuple[str, dict[str, int]]] = [("all", total)]
    for group, title in (("byLanguage", "language"), ("byModel", "model"), ("byClient", "editor")):
        rows += [(f"{title} {key}", value) for key, value in counts[group].items()]
    width = max(len(name) for name, _ in rows)
    lines = [
        f"feedback in {path}",
        "",
        f"{'':{width}}  {'offered':>8}  {'accepted':>8}  {'partial':>8}  {'rejected':>8}  {'rate':>6}",
    ]
    for name, value in rows:
        offered = sum(value.values())
        rate = value["accepted"] / offered if offered else 0.0
        lines.append(
            f"{name:{width}}  {offered:>8}  {value['accepted']:>8}  {value['partial']:>8}  "
            f"{value['rejected']:>8}  {rate:6.1%}"
        )
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace) -> int:
    store = _store(args)
    if not store.path.is_file():
        print(f"inkling feedback export: {store.path} does not exist", file=sys.stderr)
        return 1
    count = 0
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for record in store.records(args.outcome):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    finally:
        if out is not sys.stdout:
            out.close()
    if args.output != "-":
        print(f"{count} records written to {args.output}")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    store = _store(args)
    if not store.path.is_file():
        print(f"nothing to clear ({store.path} does not exist)")
        return 0
    count = store.count()
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                "inkling feedback clear: not a terminal; add --yes to clear without asking", file=sys.stderr
            )
            return 1
        answer = input(f"delete all {count} feedback records in {store.path}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    print(f"{store.clear()} records deleted from {store.path}")
    return 0
