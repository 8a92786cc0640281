"""Start loading the model before the protocol stack is imported.

`inkling serve` spends about half a second importing pygls and lsprotocol
(pure Python, holding the GIL), and llama.cpp loads the default model in about
as long without holding it. Started first, from the settings of the command
line and the environment, the load is mostly done when the client's
`initialized` asks for the model. The client may still name another model or
context size in `initializationOptions`: then this load is dropped, and the
server loads what the client asked for, as it would have without it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future

from lsp_server.engine import Engine, EngineConfig
from lsp_server.loading import engine_config
from lsp_server.settings import Settings

log = logging.getLogger(__name__)


class EarlyLoad:
    """A model load begun before the client said which model it wants."""

    def __init__(self, settings: Settings) -> None:
        self._progress: Callable[[float], None] | None = None
        self._done: Future[tuple[EngineConfig, Engine] | None] = Future()
        threading.Thread(target=self._run, args=(settings,), name="inkling-early-load", daemon=True).start()

    def _run(self, settings: Settings) -> None:
        try:
            config, source = engine_config(settings)
        except Exception:  # the server's own load meets the problem and reports it
            self._done.set_result(None)
            return
        log.info("loading %s (%s) while the client connects", config.model_path, source)
        engine = Engine(config)
        # A load that failed is kept too: it fails the same way for the server (`engine.error`).
        with contextlib.suppress(Exception):
            engine.load(self._report).result()
        self._done.set_result((config, engine))

    def _report(self, value: float) -> None:
        if self._progress is not None:
            self._progress(value)

    def take(self, settings: Settings, on_progress: Callable[[float], None]) -> Engine | None:
        """The engine, loaded (or failed: `engine.error`), if it is the one `settings` ask for;
        else None, after freeing it. Waits for the load to end; call it once."""
        self._progress = on_progress
        loaded = self._done.result()
        if loaded is None:
            return None
        config, engine = loaded
        try:
            wanted: EngineConfig | None = engine_config(settings)[0]
        except Exception:
            wanted = None
        if wanted != config:
            log.info("the client's settings ask for another model or context: loading again")
            engine.close()
            return None
        return engine

    def discard(self) -> None:
        """Free the engine when its load ends (the server stopped before taking it)."""
        self._done.add_done_callback(lambda done: _close(done.result()))


def _close(loaded: tuple[EngineConfig, Engine] | None) -> None:
    if loaded is not None:
        loaded[1].close()
