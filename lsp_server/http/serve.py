"""`inkling serve --http HOST:PORT`: the HTTP front door under uvicorn.

The model starts loading at once (`/health` answers 503 until it is ready, as
llama.cpp's server does); uvicorn stops on SIGINT/SIGTERM, and the model is
freed after it.
"""

from __future__ import annotations

import logging

import uvicorn

from lsp_server.errors import InklingError
from lsp_server.http.app import create_app
from lsp_server.http.front import Front
from lsp_server.http.keys import KeyStore
from lsp_server.http.metrics import Metrics
from lsp_server.http.registry import ModelRegistry
from lsp_server.net import is_loopback
from lsp_server.settings import Settings

log = logging.getLogger(__name__)


def parse_address(address: str) -> tuple[str, int]:
    """HOST:PORT (or [v6]:PORT, or :PORT for loopback)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InklingError(f"--http {address}: expected HOST:PORT, for example 127.0.0.1:8012")
    return host.strip("[]") or "127.0.0.1", int(port)


def serve_http(
    settings: Settings,
    address: str,
    *,
    rate_limit: int = 1200,
    require_keys: bool = False,
    models: dict[str, str] | None = None,
    memory_limit_mib: int = 0,
) -> int:
    """Serve until stopped; beyond loopback (or with `require_keys`) only with API keys."""
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
    registry = ModelRegistry(settings, models or {}, memory_limit_bytes=memory_limit_mib * 1024 * 1024)
    metrics = Metrics(
        lambda: _engine_totals(registry),
        lambda: _pending(registry),
        lambda: [name for name, _ in registry.loaded()],
    )
    front = Front(registry, metrics)
    registry.service(registry.default_name)  # the default model loads at once; others when asked
    app = create_app(front, keys, require_keys=require_keys, rate_limit=rate_limit)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    log.info("serving HTTP on http://%s:%d (/infill, /v1/completions, /health, /metrics)", host, port)
    try:
        uvicorn.Server(config).run()
    finally:
        registry.stop()
    return 0


def _engine_totals(registry: ModelRegistry) -> dict[str, float]:
    totals: dict[str, float] = {}
    for _, service in registry.loaded():
        for key, value in (service.engine_counters() or {}).items():
            totals[key] = totals.get(key, 0) + value
    return totals


def _pending(registry: ModelRegistry) -> int:
    return sum(service.scheduler.pending for _, service in registry.loaded())
