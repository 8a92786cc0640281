"""`inkling keys add NAME | list | revoke NAME`: the HTTP server's API keys."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("keys", help="API keys for `inkling serve --http`")
    parser.add_argument("--file", type=Path, default=None, help="keys file (default: in the state directory)")
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="make a key for NAME and print it (once)")
    add.add_argument("name")
    actions.add_parser("list", help="the names of the keys")
    revoke = actions.add_parser("revoke", help="remove the key of NAME")
    revoke.add_argument("name")
    parser.set_defaults(func=cmd_keys)


def cmd_keys(args: argparse.Namespace) -> int:
    from lsp_server.errors import InklingError
    from lsp_server.http.keys import KeyStore

    store = KeyStore(args.file)
    try:
        if args.action == "add":
            secret = store.add(args.name)
            print(secret)
            print(f"key {args.name!r} added to {store.path}; it is not shown again", file=sys.stderr)
        elif args.action == "revoke":
            store.revoke(args.name)
            print(f"key {args.name!r} revoked", file=sys.stderr)
        else:
            for record in store.records():
                print(f"{record.name}\t{record.created}")
    except InklingError as exc:
        print(f"inkling keys: {exc}", file=sys.stderr)
        return 1
    return 0
