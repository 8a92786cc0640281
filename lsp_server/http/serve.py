"""`inkling serve --http HOST:PORT`: the HTTP front door under uvicorn.

Alone (`--http-only`, or when stdin is no editor's pipe) it runs uvicorn as
the process's main loop: the model starts loading at once (`/health` answers
503 until it is ready, as llama.cpp's server does); uvicorn stops on
SIGINT/SIGTERM, and the model is freed after it. Beside an LSP session on
stdio, `lsp_server.http.beside_lsp` runs the same front door in the LSP
server's event loop, on the LSP session's completion service.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from lsp_server.errors import InklingError
from lsp_server.http.app import create_app
from lsp_server.http.front import Front
from lsp_server.http.keys import KeyStore
from lsp_server.http.metrics import Metrics
from lsp_server.http.registry import ModelRegistry
from lsp_server.http.usage import UsageLog
from lsp_server.model_slot import ModelSlot, ModelState
from lsp_server.net import is_loopback
from lsp_server.service import CompletionService
from lsp_server.settings import Settings

log = logging.getLogger(__name__)


def parse_address(address: str) -> tuple[str, int]:
    """HOST:PORT (or [v6]:PORT, or :PORT for loopback)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InklingError(f"--http {address}: expected HOST:PORT, for example 127.0.0.1:8012")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass
class FrontDoor:
    """Everything one HTTP server holds: the app, its models, its usage counts."""

    app: Starlette
    registry: ModelRegistry
    usage: UsageLog
    host: str
    port: int

    def config(self) -> uvicorn.Config:
        return uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", access_log=False)

    def stop(self) -> None:
        """Write the usage counts and free the models this front door loaded."""
        self.usage.close()
        self.registry.stop()


def front_door(
    settings: Settings,
    address: str,
    *,
    rate_limit: int = 1200,
    require_keys: bool = False,
    models: dict[str, str] | None = None,
    memory_limit_mib: int = 0,
    shared: CompletionService | None = None,
) -> FrontDoor:
    """The HTTP server's parts; beyond loopback (or with `require_keys`) only with API keys.
    `shared`: the default model's service, owned by the LSP session beside it."""
    host, port = parse_address(address)
    keys = KeyStore()
    reachable = not is_loopback(host)
    require_keys = require_keys or reachable
    if require_keys and not keys.records():
        why = "is reachable from other machines" if reachable else "requires API keys"
        raise InklingError(
            f"--http {address} {why}: add an API key first "
            f"(`inkling keys add NAME`; keys are kept in {keys.path})"
        )
    if reachable:
        log.warning("listening on %s: other machines can reach this server (API keys required)", host)
    registry = ModelRegistry(
        settings, models or {}, memory_limit_bytes=memory_limit_mib * 1024 * 1024, shared=shared
    )
    metrics = Metrics(
        lambda: _engine_totals(registry),
        lambda: _pending(registry),
        lambda: [name for name, _ in registry.loaded()],
        registry.model_loads,
    )
    try:
        usage = UsageLog()
    except Exception as exc:  # sqlite3.Error, OSError: a state directory that cannot be written
        raise InklingError(f"cannot keep the HTTP usage counts: {exc}") from exc
    front = Front(registry, metrics, usage=usage)
    app = create_app(front, keys, require_keys=require_keys, rate_limit=rate_limit)
    return FrontDoor(app, registry, usage, host, port)


def serve_http(
    settings: Settings,
    address: str,
    *,
    rate_limit: int = 1200,
    require_keys: bool = False,
    models: dict[str, str] | None = None,
    memory_limit_mib: int = 0,
) -> int:
    """HTTP only: serve until stopped."""
    door = front_door(
        settings,
        address,
        rate_limit=rate_limit,
        require_keys=require_keys,
        models=models,
        memory_limit_mib=memory_limit_mib,
    )
    door.registry.service(door.registry.default_name)  # the default model loads at once; others when asked
    door.usage.start()
    log.info(
        "serving HTTP on http://%s:%d (/infill, /v1/completions, /health, /metrics)", door.host, door.port
    )
    try:
        uvicorn.Server(door.config()).run()
    finally:
        door.stop()
    return 0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on HOST:PORT (OSError when the address is taken)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def report_load(name: str, slot: ModelSlot) -> None:
    if slot.state is ModelState.READY:
        log.info("model %s ready: %s", name, slot.model_path)
    else:
        log.error("could not load model %s: %s", name, slot.error)


def _engine_totals(registry: ModelRegistry) -> dict[str, float]:
    totals: dict[str, float] = {}
    for _, service in registry.loaded():
        for key, value in (service.engine_counters() or {}).items():
            totals[key] = totals.get(key, 0) + value
    return totals


def _pending(registry: ModelRegistry) -> int:
    return sum(service.scheduler.pending for _, service in registry.loaded())
