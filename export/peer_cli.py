"""`inkling bench-peer`: Inkling's HTTP front door against llama.cpp's own `llama-server`
(built once from the llama.cpp vendored in llama-cpp-python's source, `export.llama_server`),
same model, same held-out holes, llama.vim's requests. The comparison itself is
`lsp_server.bench.peer`; this module only finds the binary and the model's LoRA file
(the server package does not import `export`)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench-peer",
        help="Inkling against llama.cpp's llama-server on the same holes, through llama.vim's /infill",
        description=__doc__,
    )
    parser.add_argument("--holes", type=int, default=100, help="held-out single-line holes (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="which holes (the same seed, the same holes)")
    parser.add_argument(
        "--model", default="", help="GGUF for both servers (default: Inkling's tuned default)"
    )
    parser.add_argument(
        "--lora",
        default=None,
        help="LoRA file for llama-server (default: the one the model file names; 'none' for none)",
    )
    parser.add_argument("--threads", type=int, default=2, help="threads of each server (default 2)")
    parser.add_argument(
        "--llama-server", default="", help="the binary (default: built once into the cache, minutes)"
    )
    parser.add_argument(
        "--inkling-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `inkling serve` (repeatable), e.g. --inkling-arg=--line-candidates=1",
    )
    parser.add_argument(
        "--peer-arg", action="append", default=[], metavar="ARG", help="extra argument for llama-server"
    )
    parser.add_argument("--out", default="inkling-bench-peer.json", help="the JSON report")
    parser.add_argument("--work", default="", help="folder for the servers' logs (default: a temporary one)")
    parser.set_defaults(func=cmd_bench_peer)


def cmd_bench_peer(args: argparse.Namespace) -> int:
    from export.llama_server import llama_server_binary
    from lsp_server.bench.peer import Config, render, run
    from lsp_server.errors import InklingError
    from lsp_server.llama_model import LlamaModel
    from lsp_server.models import resolve_model

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # through the run's `finally`: both servers are stopped

    signal.signal(signal.SIGTERM, stop)

    try:
        model = resolve_model(args.model).path
        if args.lora == "none":
            lora: Path | None = None
        elif args.lora:
            lora = Path(args.lora).expanduser()
        else:
            vocab = LlamaModel(model, n_ctx=512, n_threads=1, n_batch=128, vocab_only=True)
            try:
                lora = vocab.declared_lora()
            finally:
                vocab.close()
        binary = Path(args.llama_server).expanduser() if args.llama_server else llama_server_binary(log=say)
        config = Config(
            model=model,
            lora=lora,
            llama_server=binary,
            holes=args.holes,
            seed=args.seed,
            threads=args.threads,
            inkling_args=tuple(args.inkling_arg),
            peer_args=tuple(args.peer_arg),
            work=Path(args.work) if args.work else None,
        )
        report = run(config, progress=say)
    except (InklingError, OSError, RuntimeError) as exc:
        print(f"inkling bench-peer: {exc}", file=sys.stderr)
        return 1
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(render(report))
    print(f"\nreport: {args.out}", file=sys.stderr)
    return 0
