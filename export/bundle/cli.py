"""`inkling bundle OUT`: gather an offline installation on a connected machine (docs/air-gapped.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from export.bundle.cpu import BASELINES, DEFAULT_BASELINE
from export.bundle.llama_wheel import GPU_BACKENDS

EXTRAS = ("train",)


def default_source() -> Path:
    """The checkout the running Inkling was installed from (`pip install -e`)."""
    return Path(__file__).resolve().parents[2]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="write a folder that installs Inkling on a machine without network (install.sh inside)",
        description=__doc__,
    )
    parser.add_argument("out", metavar="OUT", help="the bundle folder to write (replaced if it is a bundle)")
    parser.add_argument("--archive", action="store_true", help="also write OUT.tar.gz")
    parser.add_argument(
        "--with",
        dest="extras",
        action="append",
        choices=EXTRAS,
        default=[],
        help="optional dependencies to include: train (CPU torch and the fine-tuning libraries)",
    )
    parser.add_argument(
        "--python",
        default="",
        metavar="X.Y",
        help="the target's Python version (default: this interpreter's); its wheels must exist",
    )
    parser.add_argument(
        "--platform",
        dest="platforms",
        action="append",
        default=[],
        metavar="TAG",
        help="pip platform tag of the target, repeatable (e.g. manylinux_2_28_x86_64; default: this machine)",
    )
    parser.add_argument(
        "--cpu",
        default=DEFAULT_BASELINE,
        choices=list(BASELINES),
        help="instruction sets the llama.cpp build may use: "
        + "; ".join(f"{b.name}: {b.description}" for b in BASELINES.values())
        + f" (default {DEFAULT_BASELINE})",
    )
    parser.add_argument(
        "--gpu",
        default="",
        choices=GPU_BACKENDS,
        help="build llama.cpp with this GPU backend (needs its toolkit here; docs/air-gapped.md#gpu)",
    )
    parser.add_argument(
        "--llama-wheel",
        default="",
        metavar="WHEEL",
        help="use this llama-cpp-python wheel (built elsewhere) instead of building one",
    )
    parser.add_argument("--source", default="", help="the Inkling checkout (default: this installation's)")
    parser.add_argument("--no-tuned-model", action="store_true", help="leave out the tuned model")
    parser.add_argument("--no-vscode", action="store_true", help="leave out the VS Code extension")
    parser.set_defaults(func=cmd_bundle)


def cmd_bundle(args: argparse.Namespace) -> int:
    from export.bundle.build import BundleConfig, build_bundle
    from lsp_server.errors import InklingError

    config = BundleConfig(
        out=Path(args.out).expanduser(),
        source=Path(args.source).expanduser().resolve() if args.source else default_source(),
        platforms=tuple(args.platforms),
        extras=tuple(dict.fromkeys(args.extras)),
        cpu=args.cpu,
        gpu=args.gpu,
        llama_wheel=Path(args.llama_wheel).expanduser().resolve() if args.llama_wheel else None,
        tuned_model=not args.no_tuned_model,
        vscode=not args.no_vscode,
        archive=args.archive,
    )
    if args.python:
        config = BundleConfig(**{**vars(config), "python": args.python})
    try:
        result = build_bundle(config, log=lambda line: print(f"inkling bundle: {line}", file=sys.stderr))
    except (InklingError, OSError) as exc:
        print(f"inkling bundle: {exc}", file=sys.stderr)
        return 1
    print(f"{result.out}: {result.size_bytes / 2**20:.0f} MiB")
    if result.archive is not None:
        print(f"{result.archive}: {result.archive.stat().st_size / 2**20:.0f} MiB")
    print(f"SHA-256 of SHA256SUMS: {result.sums_sha256} (compare it on the target: sha256sum SHA256SUMS)")
    print("seconds: " + ", ".join(f"{step} {value:.0f}" for step, value in result.seconds.items()))
    print(f"on the target: {result.out.name}/install.sh PREFIX")
    return 0
