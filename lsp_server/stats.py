"""`inkling stats`: the acceptance rate recorded on this machine (see acceptance.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("stats", help="show how often offered completions were accepted")
    parser.add_argument("--json", action="store_true", help="print the stored record as JSON")
    parser.add_argument("--file", default=None, help="counts file (default: in the user's state directory)")
    parser.set_defaults(func=cmd_stats)


def cmd_stats(args: argparse.Namespace) -> int:
    from lsp_server.acceptance import FILE_NAME, read_record, state_dir

    path = Path(args.file) if args.file else state_dir() / FILE_NAME
    record = read_record(path)
    if args.json:
        print(json.dumps({"file": str(path), **with_rates(record)}, indent=2))
        return 0
    print(render(record, path))
    return 0


def with_rates(record: dict[str, Any]) -> dict[str, Any]:
    from lsp_server.acceptance import rate

    out: dict[str, Any] = {"total": {**record["total"], "rate": rate(record["total"])}}
    for group in ("byClient", "byLanguage", "byKind", "byItem"):
        out[group] = {key: {**counts, "rate": rate(counts)} for key, counts in sorted(record[group].items())}
    return out


def render(record: dict[str, Any], path: Path) -> str:
    from lsp_server.acceptance import rate

    total = record["total"]
    if total["shown"] == 0:
        return f"no completions offered yet ({path})"
    lines = [f"acceptance counts in {path}", ""]
    rows = [("all", total)]
    groups = (("byClient", "editor"), ("byLanguage", "language"), ("byKind", "kind"), ("byItem", "item"))
    for group, title in groups:
        if group == "byItem" and set(record[group]) <= {"1"}:
            continue  # no answer carried alternatives: item 1 is all of them
        rows += [(f"{title} {key}", counts) for key, counts in sorted(record[group].items())]
    width = max(len(name) for name, _ in rows)
    lines.append(f"{'':{width}}  {'offered':>8}  {'accepted':>8}  {'rate':>6}")
    for name, counts in rows:
        value = rate(counts)
        shown = f"{value:6.1%}" if value is not None else "     -"
        lines.append(f"{name:{width}}  {counts['shown']:>8}  {counts['accepted']:>8}  {shown}")
    return "\n".join(lines)
