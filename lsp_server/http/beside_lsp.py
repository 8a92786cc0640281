"""LSP on stdio and HTTP in one process, on one event loop and one completion service.

`inkling serve --http HOST:PORT` started by an editor keeps answering that
editor over stdio and serves HTTP clients beside it: one model in memory, one
scheduler in which the LSP session is one client and each HTTP user another
(each one's newer request supersedes only its own older one).

How: pygls' `start_io` is `asyncio.run(run_async(reader, protocol))`, a
coroutine that reads stdin through a thread and dispatches messages on the
loop; uvicorn's `Server.serve()` is a coroutine too. Here both run as tasks
of one `asyncio.run`, so every handler of either protocol runs on the same
thread, and the service's non-thread-safe parts (open buffers, the completion
cache) see one caller, as with LSP alone; generation stays on the scheduler's
thread. No second thread with a second loop, no locks added.

Lifetime: the process is the editor's. When the LSP session ends (`exit`, or
stdin closed) HTTP stops too, after its requests in flight (a few seconds at
most). A stdin that closes before any LSP message arrived (a process manager
that gives a closed pipe) leaves HTTP serving alone. A port that is taken
does not take the editor's completions down: LSP goes on without HTTP, and
the log and the editor say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import BinaryIO

import uvicorn
from pygls.io_ import StdinAsyncReader, StdoutWriter, run_async

from lsp_server.http.serve import FrontDoor, bind, report_load
from lsp_server.server import InklingServer
from lsp_server.settings import SettingsLayer

log = logging.getLogger(__name__)

HTTP_STOP_S = 5.0
"""How long HTTP requests in flight may take to finish once the LSP session has ended."""


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: SIGTERM and SIGINT stay the LSP server's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve_lsp_and_http(server: InklingServer, door: FrontDoor, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Serve LSP on stdin/stdout and HTTP on the front door's address until the LSP session
    ends (then HTTP stops too), or, when stdin closes before any LSP message, until stopped."""
    try:
        sock: socket.socket | None = bind(door.host, door.port)
    except OSError as exc:
        sock = None
        message = f"HTTP not served: {door.host}:{door.port}: {exc.strerror or exc}; completions here go on"
        log.error("%s", message)
        server.base_layers.append(SettingsLayer("--http", warnings=[message]))  # told at `initialize`
    service = server.service
    if sock is not None:
        # HTTP clients need the model before (or without) an editor's `initialized`; the
        # session's own load then joins this one (`ModelSlot.join`) instead of loading again.
        service.load_model(lambda _: None, lambda slot: report_load(door.registry.default_name, slot))
        door.usage.start()
        log.info(
            "serving HTTP on http://%s:%d beside LSP on stdio (one model, one scheduler)",
            door.host,
            door.port,
        )
    server._stop_event = stop_event = threading.Event()
    reader = StdinAsyncReader(stdin, server.thread_pool)
    server.protocol.set_writer(StdoutWriter(stdout))

    async def lsp() -> None:
        with contextlib.suppress(SystemExit):  # pygls ends the session with sys.exit on `exit`
            await run_async(
                stop_event=stop_event,
                reader=reader,
                protocol=server.protocol,
                logger=log,
                error_handler=server.report_server_error,
            )

    async def main() -> None:
        http = _Uvicorn(door.config()) if sock is not None else None
        http_task = asyncio.create_task(http.serve([sock])) if http is not None and sock is not None else None
        try:
            await lsp()
            if http_task is not None and server.protocol._workspace is None:
                log.info("stdin closed before an LSP client spoke: serving HTTP alone")
                await http_task
        finally:
            if http is not None and http_task is not None and not http_task.done():
                http.should_exit = True
                try:
                    await asyncio.wait_for(asyncio.shield(http_task), HTTP_STOP_S)
                except TimeoutError:
                    http.force_exit = True
                    await http_task

    try:
        asyncio.run(main())
    except BrokenPipeError:
        log.error("the LSP client is gone; stopping")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()  # type: ignore[no-untyped-call]
        door.stop()
