"""`inkling model build`: the tuned default model, built locally from the committed adapter."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("model", help="Inkling's tuned default model", description=__doc__)
    actions = parser.add_subparsers(dest="model_command", required=True)
    build = actions.add_parser(
        "build",
        help="apply the committed adapter to Gemma 3 270M, quantize, check the hash, install into the cache",
    )
    build.add_argument(
        "--adapter", default="", help="adapter directory (default: the one shipped with Inkling)"
    )
    build.add_argument("--base", default="", help="base GGUF (default: Gemma 3 270M from its package)")
    build.add_argument(
        "--record",
        action="store_true",
        help="maintainers: build twice, check both agree, and record the hash in the adapter's build.json",
    )
    build.add_argument("--threads", type=int, default=2)
    build.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    from export.build import DEFAULT_ADAPTER_DIR, BuildError, build_default_model
    from export.run import ExportError
    from lsp_server.errors import InklingError

    adapter = Path(args.adapter).expanduser() if args.adapter else DEFAULT_ADAPTER_DIR
    try:
        result = build_default_model(
            adapter_dir=adapter,
            base=Path(args.base).expanduser() if args.base else None,
            record=args.record,
            threads=args.threads,
        )
    except (BuildError, ExportError, InklingError, OSError, ValueError) as exc:
        print(f"inkling model build: {exc}", file=sys.stderr)
        return 1
    verb = "recorded" if result.recorded else "verified"
    print(f"{result.path} ({result.size_bytes / 2**20:.1f} MiB), sha256 {result.sha256} ({verb})")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    print("`inkling serve` now loads this model unless a model path is configured.")
    return 0
