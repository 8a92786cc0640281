"""Completion jobs, latest first: a client's new request supersedes its request before.

Editors ask for a completion after nearly every keystroke; only the newest
answer can still be shown. One worker thread runs the jobs in the order they
came; submitting a job cancels the token of the same client's previous one
(which the engine checks per token and per prompt batch), and a job that is
already superseded when its turn comes does no work at all. Clients (the
users of an HTTP server; an LSP session is one client) do not supersede each
other: their latest requests take turns, so each waits at most one request
per other client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from lsp_server.errors import RequestCancelledError
from lsp_server.generator import CancelToken

T = TypeVar("T")


class Scheduler:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inkling-pipeline")
        self._latest: dict[str, CancelToken] = {}
        self._lock = threading.Lock()
        self.superseded = 0
        self.pending = 0
        """Jobs submitted and not finished (the running one included)."""

    def submit(self, job: Callable[[CancelToken], T], client: str = "") -> tuple[CancelToken, Future[T]]:
        token = CancelToken()
        with self._lock:
            previous = self._latest.get(client)
            if previous is not None and not previous.cancelled:
                previous.cancel("superseded", finish_batch=True)
                self.superseded += 1
            self._latest[client] = token
            self.pending += 1
        future = self._executor.submit(self._run, job, token)
        future.add_done_callback(lambda _: self._finished(client, token))
        return token, future

    def _finished(self, client: str, token: CancelToken) -> None:
        with self._lock:
            self.pending -= 1
            if self._latest.get(client) is token:
                del self._latest[client]

    @staticmethod
    def _run(job: Callable[[CancelToken], T], token: CancelToken) -> T:
        if token.cancelled:
            raise RequestCancelledError(token.reason or "cancelled")
        return job(token)

    def cancel_all(self, reason: str, *, finish_batch: bool = False) -> None:
        """Cancel every client's latest job; `finish_batch`: let its prompt batch in flight
        finish (see `CancelToken`), for the user's next request rather than for a shutdown."""
        with self._lock:
            for token in self._latest.values():
                token.cancel(reason, finish_batch=finish_batch)

    def close(self) -> None:
        self.cancel_all("shutdown")
        self._executor.shutdown(wait=False, cancel_futures=True)
