"""The Starlette application: routes, body limits, JSON errors, metrics."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from lsp_server.http.errors import HttpError, error_response
from lsp_server.http.front import Ask, Front
from lsp_server.http.gate import Gate, RateLimit
from lsp_server.http.infill import ask_from_infill, infill_response, pick_fields
from lsp_server.http.keys import KeyStore
from lsp_server.http.metrics import CONTENT_TYPE
from lsp_server.http.ollama import (
    ask_from_ollama,
    generate_response,
    generate_stream,
    tags_response,
)
from lsp_server.http.openai import (
    ask_from_openai,
    choices_wanted,
    completion_response,
    models_response,
    stream_events,
)
from lsp_server.http.usage import ANONYMOUS, EVENT_COLUMNS

log = logging.getLogger(__name__)

_ENDPOINTS = frozenset(
    {
        "/infill",
        "/v1/completions",
        "/completions",
        "/v1/models",
        "/models",
        "/v1/events",
        "/api/generate",
        "/api/tags",
        "/v1/usage",
        "/health",
        "/metrics",
    }
)
_NOT_USAGE = frozenset({"/health", "/metrics", "other"})
"""Load balancers' and scrapers' requests, and unknown paths, are nobody's usage."""
EVENT_TYPES = frozenset(EVENT_COLUMNS)
MAX_BODY_BYTES = 8 * 1024 * 1024
"""A request body larger than this is refused (413): far more than any editor sends."""


def create_app(front: Front, keys: KeyStore, *, require_keys: bool, rate_limit: int) -> Starlette:
    """`require_keys`: refuse requests without a valid key (beyond loopback); `rate_limit`:
    requests a minute per client (0: none)."""
    started = time.time()

    async def infill(request: Request) -> Response:
        body = await _json_body(request)
        ask = ask_from_infill(body, _client(request))
        answer = await _complete(front, request, "/infill", ask)
        response = infill_response(answer, answer.model)
        return JSONResponse(pick_fields(response, body.get("response_fields")))

    async def completions(request: Request) -> Response:
        body = await _json_body(request)
        wanted = choices_wanted(body)
        ask = ask_from_openai(body, _client(request), wanted)
        answer = await _complete(front, request, "/v1/completions", ask)
        response = completion_response(answer, wanted, answer.model)
        if body.get("stream"):
            return StreamingResponse(stream_events(response), media_type="text/event-stream")
        return JSONResponse(response)

    async def generate(request: Request) -> Response:
        body = await _json_body(request)
        began = time.perf_counter()
        answer = await _complete(front, request, "/api/generate", ask_from_ollama(body, _client(request)))
        total_ms = (time.perf_counter() - began) * 1000
        if body.get("stream", True):
            stream = generate_stream(answer, answer.model, total_ms)
            return StreamingResponse(stream, media_type="application/x-ndjson")
        return JSONResponse(generate_response(answer, answer.model, total_ms))

    async def tags(request: Request) -> Response:
        return JSONResponse(tags_response(front.registry.sizes()))

    async def events(request: Request) -> Response:
        """An editor says what became of a completion (Tabby's events: view, select, dismiss)."""
        body = await _json_body(request)
        kind = body.get("type")
        if kind not in EVENT_TYPES:
            raise HttpError(400, f"type must be one of {sorted(EVENT_TYPES)}", param="type")
        front.metrics.events.labels(kind, _user(request)).inc()
        if front.usage is not None:
            front.usage.event(_user(request), kind)
        return JSONResponse({})

    async def usage(request: Request) -> Response:
        """Usage kept across restarts: an admin key's request sees every user, any other key
        its own; without a key, only a server that has no keys at all answers (all of it)."""
        if front.usage is None:
            raise HttpError(404, "this server keeps no usage counts")
        since = _since(request.query_params.get("days"))
        user = request.scope.get("inkling.key")
        if request.scope.get("inkling.admin") or (user is None and not keys.records()):
            found = front.usage.read(since=since)
        elif isinstance(user, str):
            found = front.usage.read([user], since=since)
        else:
            raise HttpError(
                401, "usage is shown to its key (Authorization: Bearer KEY)", code="invalid_api_key"
            )
        return JSONResponse({"object": "list", "since": since or None, "data": [u.as_dict() for u in found]})

    async def models(request: Request) -> Response:
        return JSONResponse(models_response(front.registry.names(), started))

    async def health(request: Request) -> Response:
        front.ready()
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        return Response(front.metrics.text(), media_type=CONTENT_TYPE)

    routes = [
        Route("/infill", infill, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/completions", completions, methods=["POST"]),
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/tags", tags, methods=["GET"]),
        Route("/v1/events", events, methods=["POST"]),
        Route("/v1/usage", usage, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            HttpError: _http_error,
            HTTPException: _starlette_error,
            Exception: _server_error,
        },
    )
    app.add_middleware(Gate, keys=keys, require_keys=require_keys, limit=RateLimit(rate_limit))
    app.add_middleware(_Counted, front=front)
    return app


async def _complete(front: Front, request: Request, endpoint: str, ask: Ask) -> Any:
    started = time.perf_counter()
    user = _user(request)
    try:
        answer = await front.complete(ask, request, endpoint)
    except asyncio.CancelledError:  # the client hung up
        if front.usage is not None:
            front.usage.count(user, cancelled=1)
        raise
    front.metrics.completed(endpoint, answer.model, user, answer.completion, time.perf_counter() - started)
    if front.usage is not None:
        front.usage.completed(user, answer.completion)
    return answer


def _since(days: str | None) -> str:
    """`?days=N`: the first day (YYYY-MM-DD, UTC) of the last N days; none: all time."""
    if days is None:
        return ""
    if not days.isdigit() or int(days) < 1:
        raise HttpError(400, "days must be a positive whole number", param="days")
    first = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=int(days) - 1)
    return first.isoformat()


async def _json_body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HttpError(413, f"the request body is over {MAX_BODY_BYTES // (1024 * 1024)} MiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HttpError(413, f"the request body is over {MAX_BODY_BYTES // (1024 * 1024)} MiB")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object")
    return body


def _client(request: Request) -> str:
    """Whose newer request supersedes this one: the API key's name, else the address."""
    key_name = request.scope.get("inkling.key")
    if isinstance(key_name, str):
        return key_name
    return request.client.host if request.client else "unknown"


def _user(request: Request) -> str:
    key_name = request.scope.get("inkling.key")
    return key_name if isinstance(key_name, str) else ANONYMOUS


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    if exc.status >= 500 and exc.retry_after == 0:
        log.warning("%s %s: %s", request.method, request.url.path, exc.message)
    return error_response(exc)


async def _starlette_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(HttpError(exc.status_code, str(exc.detail)))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path)
    return error_response(HttpError(500, f"internal error: {type(exc).__name__}"))


class _Counted:
    """Counts every response by endpoint, model, user and status code."""

    def __init__(self, app: Callable[..., Awaitable[None]], front: Front) -> None:
        self.app = app
        self.front = front

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [0]

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            user = scope.get("inkling.key", ANONYMOUS)
            path = scope.get("path", "")
            path = path if path in _ENDPOINTS else "other"
            self.front.metrics.requests.labels(path, user, str(status[0])).inc()
            if self.front.usage is not None and path not in _NOT_USAGE:
                self.front.usage.count(user, requests=1)
