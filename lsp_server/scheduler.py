"""Completion jobs, latest first: a new request supersedes the one before it.

Editors ask for a completion after nearly every keystroke; only the newest
answer can still be shown. One worker thread runs the jobs; submitting a job
cancels the token of the previous one (which the engine checks per token and
per prompt batch), and
a job that is already superseded when its turn comes does no work at all.
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
        self._latest: CancelToken | None = None
        self._lock = threading.Lock()
        self.superseded = 0

    def submit(self, job: Callable[[CancelToken], T]) -> tuple[CancelToken, Future[T]]:
        token = CancelToken()
        with self._lock:
            if self._latest is not None and not self._latest.cancelled:
                self._latest.cancel("superseded", finish_batch=True)
                self.superseded += 1
            self._latest = token
        return token, self._executor.submit(self._run, job, token)

    @staticmethod
    def _run(job: Callable[[CancelToken], T], token: CancelToken) -> T:
        if token.cancelled:
            raise RequestCancelledError(token.reason or "cancelled")
        return job(token)

    def cancel_all(self, reason: str, *, finish_batch: bool = False) -> None:
        """Cancel the latest job; `finish_batch`: let its prompt batch in flight finish
        (see `CancelToken`), for the user's next request rather than for a shutdown."""
        with self._lock:
            if self._latest is not None:
                self._latest.cancel(reason, finish_batch=finish_batch)

    def close(self) -> None:
        self.cancel_all("shutdown")
        self._executor.shutdown(wait=False, cancel_futures=True)
