"""`inkling`: serve, complete, doctor, and the subcommands other packages register.

Logs go to stderr; in `serve` mode stdout carries only the protocol (the
process's file descriptor 1 is pointed at stderr so that nothing printed by
a C library can corrupt the stream).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from lsp_server import __version__
from lsp_server.errors import InklingError
from lsp_server.net import is_loopback
from lsp_server.settings import (
    Settings,
    SettingsLayer,
    layer_from_cli,
    layer_from_env,
    merge,
    setting_specs,
)

log = logging.getLogger("inkling")

COMMAND_GROUP = "inkling.commands"
"""Entry-point group: `name = "package.module:register"`, register(subparsers)."""


def setup_logging(level: str, log_file: str | None = None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pygls logs whole messages (buffer text included) at INFO: keep it quiet
    # unless the user asked for debug logs explicitly.
    quiet = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in ("pygls", "inkling.llama_cpp"):
        logging.getLogger(name).setLevel(max(quiet, logging.getLogger(name).level))


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, from the settings table."""
    group = parser.add_argument_group("settings (also from INKLING_* variables and the client)")
    for spec in setting_specs():
        names = [spec.flag]
        if spec.name == "model_path":
            names.append("--model")
        if spec.type_name == "boolean":  # `--record-feedback` alone means true
            group.add_argument(
                *names, dest=f"setting_{spec.name}", default=None, nargs="?", const="true", help=spec.help
            )
        else:
            group.add_argument(*names, dest=f"setting_{spec.name}", default=None, help=spec.help)


def settings_from_args(
    args: argparse.Namespace, *, strict: bool = False
) -> tuple[Settings, list[SettingsLayer]]:
    """`strict`, for the one-shot commands: a flag whose value cannot be used is an error
    (the server carries on with the default and says so, but a command's figures would be
    labelled with a value it did not run with), and a bad INKLING_* variable a warning."""
    values = {
        key.removeprefix("setting_"): value for key, value in vars(args).items() if key.startswith("setting_")
    }
    layers = [layer_from_env(), layer_from_cli(values, strict=strict)]
    if strict:
        for warning in layers[0].warnings:
            log.warning("%s", warning)
    return merge(layers), layers


# -- serve ---------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from lsp_server.early_load import EarlyLoad

    settings, layers = settings_from_args(args)
    http_options: dict[str, Any] = {}
    if args.http is not None:
        from lsp_server.http.registry import parse_models

        http_options = {
            "rate_limit": args.http_rate_limit,
            "require_keys": args.http_require_keys,
            "models": parse_models(args.http_model),
            "memory_limit_mib": args.http_memory_mib,
        }
        alone = "--http-only" if args.http_only else "--tcp" if args.tcp else stdin_not_a_client()
        if alone:
            from lsp_server.http.serve import serve_http

            if not args.http_only:
                log.info("HTTP only (%s): LSP is served on stdio beside HTTP when an editor starts it", alone)
            return serve_http(settings, args.http, **http_options)
    elif args.http_only:
        raise InklingError("--http-only needs --http HOST:PORT")
    # Before the protocol stack is imported: the two overlap (a remote engine loads nothing).
    early = None if settings.engine_url else EarlyLoad(settings)
    from lsp_server.log_privacy import redact_buffers_in_logs
    from lsp_server.server import create_server

    server = create_server(layers, early)
    redact_buffers_in_logs(lambda: server.settings.log_buffers)
    if args.http is not None:
        from lsp_server.http.beside_lsp import serve_lsp_and_http
        from lsp_server.http.serve import front_door

        door = front_door(settings, args.http, shared=server.service, **http_options)
        signal.signal(signal.SIGTERM, lambda *_: _on_sigterm(server, door.stop))
        protocol_out = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)  # stray prints from C code go to stderr, never into the protocol
        sys.stdout = sys.stderr
        serve_lsp_and_http(server, door, sys.stdin.buffer, protocol_out)
        server.stop_work()
        # As LSP alone: 0 only after the client's shutdown (or with no LSP session at all).
        return 0 if server.protocol._shutdown or server.protocol._workspace is None else 1
    signal.signal(signal.SIGTERM, lambda *_: _on_sigterm(server))
    if args.tcp:
        host = args.host
        if not is_loopback(host):
            log.warning("listening on %s: other machines can reach this server", host)
        server.start_tcp(host, args.port)
    else:
        protocol_out = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)  # stray prints from C code go to stderr, never into the protocol
        sys.stdout = sys.stderr
        server.start_io(sys.stdin.buffer, protocol_out)
    server.stop_work()  # the client left, with or without saying so: stop generating
    # LSP: exit code 0 only if the client asked for shutdown first.
    return 0 if server.protocol._shutdown else 1


STOP_TIMEOUT_S = 10.0
"""How long SIGTERM waits for the running generation to stop and the model to be freed."""


def stdin_not_a_client() -> str:
    """Why stdin cannot carry an LSP session ('' when it can: a pipe, a socket, a file).
    A terminal is a person, and /dev/null (systemd, `docker run` without -i, nohup) or a
    closed stdin is no one: `serve --http` then serves HTTP alone."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return "stdin is closed"
    if stat.S_ISCHR(mode):
        return "stdin is a terminal" if os.isatty(0) else "stdin is a device such as /dev/null"
    return ""


def _on_sigterm(server: Any, *also: Callable[[], None]) -> None:
    """Stop on the event loop when one runs: a signal handler must not take locks
    that the code it interrupted may hold."""
    loop = getattr(server, "event_loop", None)
    if loop is not None and loop.is_running():
        loop.call_soon_threadsafe(_stop_and_exit, server, *also)
    else:
        _stop_and_exit(server, *also)


def _stop_and_exit(server: Any, *also: Callable[[], None]) -> None:
    """Cancel the generation, free the model, flush the logs (and run `also`: the HTTP
    front door's usage counts), exit 0."""
    log.info("SIGTERM: cancelling work and freeing the model")

    def stop() -> None:
        for step in also:
            try:
                step()
            except Exception:
                log.exception("stopping")
        server.stop_work()

    stopper = threading.Thread(target=stop, name="inkling-stop", daemon=True)
    stopper.start()
    stopper.join(STOP_TIMEOUT_S)
    if stopper.is_alive():
        log.warning("the model did not stop within %.0fs; exiting anyway", STOP_TIMEOUT_S)
    else:
        log.info("stopped")
    logging.shutdown()
    # The thread that reads stdin cannot be woken up; the interpreter would wait
    # for it forever at exit. Everything that matters is done: leave now.
    os._exit(0)


# -- complete --------------------------------------------------------------------------


def parse_location(location: str) -> tuple[Path, int, int]:
    """FILE:LINE:COL with 1-based line and column (as compilers print them)."""
    parts = location.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise InklingError(f"expected FILE:LINE:COL (1-based), got {location!r}")
    line, column = int(parts[1]), int(parts[2])
    if line < 1 or column < 1:
        raise InklingError("LINE and COL start at 1")
    return Path(parts[0]), line, column


def cmd_complete(args: argparse.Namespace) -> int:
    from lsp_server.documents import Document
    from lsp_server.languages import lsp_language_id_for_path
    from lsp_server.loading import load_engine
    from lsp_server.pipeline import CompletionRequest, Pipeline

    settings, _ = settings_from_args(args, strict=True)
    settings = dataclasses.replace(settings, cold_start_tokens=0)  # one answer: the whole prompt
    path, line, column = parse_location(args.location)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InklingError(f"cannot read {path}: {exc}") from exc
    document = Document(path.as_uri() if path.is_absolute() else str(path), "", 0, text)
    offset = document.offset_at(line - 1, column - 1, "utf-32")
    started = time.perf_counter()
    from lsp_server.engine import Engine
    from lsp_server.remote import RemoteGenerator, open_engine

    engine: Engine | RemoteGenerator = (
        open_engine(settings) if settings.engine_url else load_engine(settings, quiet=args.json)
    )
    loaded = time.perf_counter()
    pipeline = Pipeline(engine)
    language_id = args.language or lsp_language_id_for_path(str(path))
    completion = pipeline.complete(CompletionRequest(text, offset, language_id, path=str(path)), settings)
    done = time.perf_counter()
    family = pipeline.template.family  # detected from the model: ask before closing it
    engine.close()
    if args.json:
        generation = completion.generation
        print(
            json.dumps(
                {
                    "file": str(path),
                    "line": line,
                    "column": column,
                    "language": language_id,
                    "mode": completion.mode.value,
                    "reason": completion.reason,
                    "completion": completion.text,
                    "template": family,
                    "load_ms": round((loaded - started) * 1000, 1),
                    "completion_ms": round((done - loaded) * 1000, 1),
                    "timings_ms": {k: round(v, 1) for k, v in completion.timings_ms.items()},
                    "prompt_tokens": generation.prompt_tokens if generation else 0,
                    "generated_tokens": generation.generated_tokens if generation else 0,
                },
                indent=2,
            )
        )
        return 0
    before = text[max(0, text.rfind("\n", 0, offset) + 1) : offset]
    print(f"{path}:{line}:{column} [{completion.mode.value}: {completion.reason}]", file=sys.stderr)
    if completion.text:
        print(before + "\033[2m" + completion.text + "\033[0m" if sys.stdout.isatty() else completion.text)
    else:
        print("(no completion)", file=sys.stderr)
    generation = completion.generation
    tokens = f", {generation.generated_tokens} tokens" if generation else ""
    print(
        f"model loaded in {(loaded - started) * 1000:.0f} ms; "
        f"completion in {(done - loaded) * 1000:.0f} ms{tokens} ({family} prompt)",
        file=sys.stderr,
    )
    return 0


# -- doctor ------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from lsp_server.doctor import run_doctor

    settings, _ = settings_from_args(args, strict=True)
    report = run_doctor(settings, speed_probe=not args.no_speed)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.render())
    return 0 if report.ok else 1


# -- main ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inkling", description="Offline code completion over the Language Server Protocol."
    )
    parser.add_argument("--version", action="version", version=f"inkling {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-file", default=None, help="log here instead of stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", action="store_true", help="listen on TCP instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="TCP address (default: loopback only)")
    serve.add_argument("--port", type=int, default=2087)
    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        default=None,
        help="also serve HTTP (llama.cpp's /infill, OpenAI's /v1/completions, Ollama's /api/generate) "
        "beside LSP on stdio, with the same model; HTTP alone when stdin is a terminal, /dev/null "
        "or closed",
    )
    serve.add_argument(
        "--http-only",
        action="store_true",
        help="with --http: serve HTTP alone, never LSP on stdio (a team server)",
    )
    serve.add_argument(
        "--http-rate-limit",
        type=int,
        default=1200,
        metavar="N",
        help="HTTP: at most N requests a minute per client (default 1200; 0: no limit)",
    )
    serve.add_argument(
        "--http-require-keys",
        action="store_true",
        help="HTTP: refuse requests without an API key on loopback too (behind a reverse proxy)",
    )
    serve.add_argument(
        "--http-model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="HTTP: also offer this GGUF under NAME (repeatable; loaded when first asked for)",
    )
    serve.add_argument(
        "--http-memory-mib",
        type=int,
        default=0,
        metavar="N",
        help="HTTP: unload the least recently used models to keep loaded model files under N MiB",
    )
    add_setting_flags(serve)
    serve.set_defaults(func=cmd_serve)

    complete = commands.add_parser("complete", help="complete once at FILE:LINE:COL (1-based)")
    complete.add_argument("location", metavar="FILE:LINE:COL")
    complete.add_argument("--language", default=None, help="LSP language id (default: from the extension)")
    complete.add_argument("--json", action="store_true", help="print a JSON record")
    add_setting_flags(complete)
    complete.set_defaults(func=cmd_complete)

    doctor = commands.add_parser("doctor", help="check the model, grammars, speed and offline use")
    doctor.add_argument("--json", action="store_true")
    doctor.add_argument("--no-speed", action="store_true", help="skip the speed probe")
    add_setting_flags(doctor)
    doctor.set_defaults(func=cmd_doctor)

    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        register: Callable[[Any], None] = entry.load()
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level if args.command == "serve" else "WARNING", args.log_file)
    if args.command != "serve" and args.log_level != "INFO":
        setup_logging(args.log_level, args.log_file)
    try:
        result: int = args.func(args)
        return result
    except InklingError as exc:
        print(f"inkling: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
