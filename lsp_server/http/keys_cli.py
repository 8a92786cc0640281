"""`inkling keys add NAME | list | stats | revoke NAME`: the HTTP server's API keys and
each user's usage (kept across restarts: `lsp_server.http.usage`)."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("keys", help="API keys for `inkling serve --http`, and their usage")
    parser.add_argument("--file", type=Path, default=None, help="keys file (default: in the state directory)")
    parser.add_argument(
        "--usage-file", type=Path, default=None, help="usage counts (default: in the state directory)"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="make a key for NAME and print it (once)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="this key may read every user's usage")
    actions.add_parser("list", help="the keys, with each one's usage and acceptance")
    stats = actions.add_parser(
        "stats", help="usage of every user the server has seen (revoked keys and keyless requests too)"
    )
    stats.add_argument("name", nargs="?", default=None, help="one user only")
    stats.add_argument("--days", type=int, default=0, help="the last N days only (default: all)")
    stats.add_argument("--json", action="store_true")
    revoke = actions.add_parser("revoke", help="remove the key of NAME (its usage is kept)")
    revoke.add_argument("name")
    parser.set_defaults(func=cmd_keys)


def cmd_keys(args: argparse.Namespace) -> int:
    from lsp_server.errors import InklingError
    from lsp_server.http.keys import KeyStore
    from lsp_server.http.usage import read_usage

    store = KeyStore(args.file)
    try:
        if args.action == "add":
            secret = store.add(args.name, admin=args.admin)
            print(secret)
            role = " (admin)" if args.admin else ""
            print(f"key {args.name!r}{role} added to {store.path}; it is not shown again", file=sys.stderr)
        elif args.action == "revoke":
            store.revoke(args.name)
            print(f"key {args.name!r} revoked", file=sys.stderr)
        elif args.action == "list":
            records = store.records()
            usage = {u.user: u for u in read_usage(args.usage_file, [r.name for r in records])}
            rows = [
                [
                    record.name + (" (admin)" if record.admin else ""),
                    record.created[:10],
                    *_cells(usage.get(record.name)),
                ]
                for record in records
            ]
            print(_table(["key", "created", *_HEADERS], rows))
        else:
            since = _since(args.days)
            found = read_usage(args.usage_file, None if args.name is None else [args.name], since=since)
            if args.json:
                print(json.dumps({"since": since or None, "data": [u.as_dict() for u in found]}, indent=2))
            else:
                active = {record.name for record in store.records()}
                rows = [
                    [u.user + ("" if u.user in active or u.user == "anonymous" else " (revoked)"), *_cells(u)]
                    for u in found
                ]
                print(_table(["user", *_HEADERS], rows))
                if since:
                    print(f"since {since} (UTC days)")
    except InklingError as exc:
        print(f"inkling keys: {exc}", file=sys.stderr)
        return 1
    return 0


_HEADERS = ["requests", "shown", "accepted", "dismissed", "acceptance", "tokens in/out", "last day"]


def _cells(usage: Any) -> list[str]:
    if usage is None:
        return ["0", "0", "0", "0", "-", "0/0", "-"]
    counts = usage.counts
    acceptance = counts.acceptance
    return [
        str(counts.requests),
        str(counts.shown),
        str(counts.accepted),
        str(counts.dismissed),
        "-" if acceptance is None else f"{acceptance:.0%}",
        f"{counts.prompt_tokens}/{counts.generated_tokens}",
        usage.last_day,
    ]


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(headers, widths, strict=True))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _since(days: int) -> str:
    if days <= 0:
        return ""
    first = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=days - 1)
    return first.isoformat()
