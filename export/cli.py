"""`inkling export`: a base model (+ a LoRA adapter) -> quantized GGUF, verified, with card.

Registered through the "inkling.commands" entry point; torch and
transformers are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="merge an adapter into its base, write GGUF, quantize, verify; Modelfile and model card",
        description=__doc__,
    )
    parser.add_argument(
        "--base",
        default="",
        help="the base: a GGUF file (exported by template) or a Hugging Face directory (llama.cpp's "
        "converter); default: the adapter's base, else Gemma 3 270M from its package",
    )
    parser.add_argument(
        "--adapter", default="", help="an Inkling adapter directory; none: re-export the base"
    )
    parser.add_argument("--output", required=True, help="directory for the files")
    parser.add_argument("--name", default="inkling-model", help="file name stem and general.name")
    parser.add_argument(
        "--quant",
        action="append",
        default=None,
        help="Q4_K_M (default), Q5_K_M, Q8_0 or F16; repeat for several",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip greedy agreement and perplexity")
    parser.add_argument(
        "--heldout", action="append", default=None, help="held-out code file for verification (repeatable)"
    )
    parser.add_argument("--probes", type=int, default=32, help="probe prompts for greedy agreement")
    parser.add_argument("--perplexity-chunks", type=int, default=4, help="512-token chunks for perplexity")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep-f32", action="store_true", help="keep the unquantized F32 file")
    parser.add_argument(
        "--converter", default="", help="llama.cpp's convert_hf_to_gguf.py (Hugging Face bases)"
    )
    parser.add_argument(
        "--ignore-base-hash", action="store_true", help="export even if the base is not the adapter's base"
    )
    parser.add_argument(
        "--merge-with-peft",
        action="store_true",
        help="GGUF bases: merge with transformers + peft (needs the train extra) instead of numpy",
    )
    parser.add_argument(
        "--imatrix", default="", help="quantize with this importance matrix (llama.cpp's GGUF imatrix file)"
    )
    parser.add_argument(
        "--calibration",
        action="append",
        default=None,
        help="code to measure the importance matrix on: a dataset from `inkling train prepare`, "
        "files or directories (repeatable); default: the adapter's training dataset if it is on disk",
    )
    parser.add_argument("--calibration-prompts", type=int, default=64, help="server prompts to measure it on")
    parser.add_argument("--no-imatrix", action="store_true", help="quantize without an importance matrix")
    parser.add_argument(
        "--merge-lora",
        action="store_true",
        help="merge the LoRA layers into every quantized file; by default a file that keeps the GGUF "
        "base's own weights gets them as <name>.lora.gguf, applied when the model loads",
    )
    parser.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from export.run import ExportConfig, run_export
    from lsp_server.errors import InklingError
    from lsp_server.models import ensure_base_model

    try:
        adapter = Path(args.adapter).expanduser() if args.adapter else None
        base = _base_path(args.base, adapter, ensure_base_model)
        config = ExportConfig(
            base=base,
            output=Path(args.output).expanduser(),
            adapter=adapter,
            name=args.name,
            quants=tuple(args.quant or ["Q4_K_M"]),
            verify=not args.no_verify,
            heldout=tuple(Path(p) for p in args.heldout or ()),
            probes=args.probes,
            perplexity_chunks=args.perplexity_chunks,
            threads=args.threads,
            keep_f32=args.keep_f32,
            converter=args.converter,
            check_base_hash=not args.ignore_base_hash,
            merge_with_peft=args.merge_with_peft,
            imatrix=Path(args.imatrix).expanduser() if args.imatrix else None,
            calibration=tuple(Path(p).expanduser() for p in args.calibration or ()),
            calibration_prompts=args.calibration_prompts,
            use_imatrix=not args.no_imatrix,
            lora_at_load=not args.merge_lora,
        )
        result = run_export(config)
    except (InklingError, OSError, ValueError) as exc:  # ours, unreadable files, data a library refuses
        print(f"inkling export: {exc}", file=sys.stderr)
        return 1
    for quant, path in result.files.items():
        print(f"{quant}: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    if result.report is not None:
        print(result.report.table())
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    print(f"model card: {config.output / 'MODEL_CARD.md'}; Modelfile: {config.output / 'Modelfile'}")
    return 0


def _base_path(explicit: str, adapter: Path | None, default_base: Callable[[], Path]) -> Path:
    """--base, else the base the adapter records (if it is on this machine), else the default."""
    if explicit:
        return Path(explicit).expanduser()
    if adapter is not None:
        from export.adapter import read_adapter

        recorded = read_adapter(adapter).base_path
        if recorded and Path(recorded).exists():
            return Path(recorded)
    return default_base()
