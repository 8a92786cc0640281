"""`inkling model build`: the tuned default model, built locally from the committed adapter."""

from __future__ import annotations

import argparse
import os
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
    build.add_argument(
        "--if-available",
        action="store_true",
        help="succeed with a notice when Inkling ships no trained adapter yet (the setup command uses it)",
    )
    build.add_argument("--threads", type=int, default=2)
    build.set_defaults(func=cmd_build)
    adopt = actions.add_parser(
        "adopt",
        help="maintainers: copy a trained adapter into export/default_adapter (weights in bfloat16)",
    )
    adopt.add_argument("adapter", help="an `inkling train sft` output directory")
    adopt.add_argument("--to", default="", help="target directory (default: export/default_adapter)")
    adopt.add_argument(
        "--imatrix",
        default="",
        help="also ship this importance matrix (the one `inkling export` measured for the adapter)",
    )
    adopt.set_defaults(func=cmd_adopt)
    converter = actions.add_parser(
        "converter",
        help="install llama.cpp's Hugging Face -> GGUF converter (from llama-cpp-python's source, with pip)",
    )
    converter.set_defaults(func=cmd_converter)
    server = actions.add_parser(
        "llama-server",
        help="build llama.cpp's llama-server from llama-cpp-python's source (once, minutes); print its path",
    )
    server.add_argument("--rebuild", action="store_true", help="build again even when the cache has a binary")
    server.add_argument("--jobs", type=int, default=0, help="parallel compile jobs (default: one per core)")
    server.add_argument(
        "--command",
        action="store_true",
        help="print the command line that serves a model to editors (`engineUrl`): --lora, --swa-full",
    )
    server.add_argument("--model", default="", help="with --command: the GGUF (default: Inkling's model)")
    server.add_argument("--host", default="127.0.0.1", help="with --command: address to listen on")
    server.add_argument("--port", type=int, default=8080, help="with --command")
    server.add_argument("--slots", type=int, default=1, help="with --command: editors served at once")
    server.add_argument("--context", type=int, default=4096, help="with --command: tokens per slot")
    server.add_argument("--threads", type=int, default=0, help="with --command (0: llama.cpp's default)")
    server.set_defaults(func=cmd_llama_server)
    compare = actions.add_parser(
        "compare",
        help="greedy agreement and perplexity of GGUF files against a reference GGUF (llama.cpp)",
    )
    compare.add_argument("reference", help="the model the others should behave like")
    compare.add_argument("candidates", nargs="+", help="models to score against it")
    compare.add_argument("--heldout", action="append", default=None, help="held-out code file (repeatable)")
    compare.add_argument("--probes", type=int, default=32)
    compare.add_argument("--perplexity-chunks", type=int, default=4)
    compare.add_argument("--threads", type=int, default=2)
    compare.add_argument("--json", default="", help="also write the report here")
    compare.set_defaults(func=cmd_compare)


def cmd_build(args: argparse.Namespace) -> int:
    from export.build import DEFAULT_ADAPTER_DIR, build_default_model, has_adapter
    from lsp_server.errors import InklingError

    adapter = Path(args.adapter).expanduser() if args.adapter else DEFAULT_ADAPTER_DIR
    if args.if_available and not has_adapter(adapter):
        print(
            f"inkling model build: no trained adapter in {adapter} yet; Inkling serves the base Gemma 3 270M"
        )
        return 0
    try:
        result = build_default_model(
            adapter_dir=adapter,
            base=Path(args.base).expanduser() if args.base else None,
            record=args.record,
            threads=args.threads,
        )
    except (InklingError, OSError, ValueError) as exc:
        print(f"inkling model build: {exc}", file=sys.stderr)
        return 1
    verb = "recorded" if result.recorded else "verified"
    print(f"{result.path} ({result.size_bytes / 2**20:.1f} MiB), sha256 {result.sha256} ({verb})")
    if result.lora is not None:
        print(
            f"{result.lora} ({result.lora.stat().st_size / 2**20:.1f} MiB): its LoRA layers, applied on load"
        )
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    print("`inkling serve` now loads this model unless a model path is configured.")
    return 0


def cmd_adopt(args: argparse.Namespace) -> int:
    from export.adopt import adopt_adapter
    from export.build import DEFAULT_ADAPTER_DIR
    from export.imatrix import read_imatrix
    from lsp_server.errors import InklingError

    target = Path(args.to).expanduser() if args.to else DEFAULT_ADAPTER_DIR
    try:
        imatrix = Path(args.imatrix).expanduser() if args.imatrix else None
        if imatrix is not None:
            read_imatrix(imatrix)  # refuse anything else before copying
        sizes = adopt_adapter(Path(args.adapter).expanduser(), target, imatrix)
    except (InklingError, OSError, ValueError) as exc:
        print(f"inkling model adopt: {exc}", file=sys.stderr)
        return 1
    print(f"adopted into {target}: " + ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in sizes.items()))
    print("next: `inkling model build --record` (builds twice, records the model's sha256 in build.json)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from export.run import default_heldout
    from export.verify import VerifyConfig, verify, write_report
    from lsp_server.errors import InklingError

    heldout = tuple(Path(p) for p in args.heldout) if args.heldout else default_heldout()
    config = VerifyConfig(
        heldout, args.probes, perplexity_chunks=args.perplexity_chunks, threads=args.threads
    )
    try:
        report = verify(Path(args.reference), [Path(p) for p in args.candidates], config)
    except (InklingError, OSError, ValueError) as exc:
        print(f"inkling model compare: {exc}", file=sys.stderr)
        return 1
    print(report.table())
    print(
        f"{report.probes} probes, {report.continuation_tokens} reference tokens, template {report.template}"
    )
    if args.json:
        write_report(report, Path(args.json))
    return 0


def cmd_converter(args: argparse.Namespace) -> int:
    from export.hf_convert import install_converter
    from lsp_server.errors import InklingError

    try:
        path = install_converter()
    except (InklingError, OSError) as exc:
        print(f"inkling model converter: {exc}", file=sys.stderr)
        return 1
    print(f"llama.cpp's converter: {path}")
    return 0


def cmd_llama_server(args: argparse.Namespace) -> int:
    from export.llama_server import BINARY_ENV, build_llama_server, cached_llama_server, llama_server_binary
    from lsp_server.errors import InklingError

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        if args.rebuild or not (os.environ.get(BINARY_ENV) or cached_llama_server()):
            path = build_llama_server(log=log, jobs=args.jobs)
        else:
            path = llama_server_binary(log=log)
    except (InklingError, OSError) as exc:
        print(f"inkling model llama-server: {exc}", file=sys.stderr)
        return 1
    if not args.command:
        print(path)
        return 0
    import shlex

    from export.llama_server import server_command
    from lsp_server.models import resolve_model

    try:
        model = resolve_model(args.model).path
        command = server_command(
            path,
            model,
            host=args.host,
            port=args.port,
            threads=args.threads,
            context=args.context,
            slots=args.slots,
        )
    except (InklingError, OSError) as exc:
        print(f"inkling model llama-server: {exc}", file=sys.stderr)
        return 1
    print(shlex.join(command))
    return 0
