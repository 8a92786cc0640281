"""The model behind the server: loaded in the background, replaced when settings change.

One state type (`ModelState`) and one progress callback; the front end turns
them into `$/progress` and status notifications. A load that a newer one
replaced (settings changed again meanwhile) is freed when it ends, never used.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable

from lsp_server.early_load import EarlyLoad
from lsp_server.engine import Engine
from lsp_server.errors import InklingError, ModelError
from lsp_server.loading import engine_config
from lsp_server.remote import RemoteGenerator
from lsp_server.settings import Settings, changed_reload_fields

log = logging.getLogger(__name__)


class ModelState(enum.Enum):
    NOT_LOADED = "not loaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class ModelSlot:
    """At most one loaded engine, and the load under way."""

    def __init__(self, early_load: EarlyLoad | None = None) -> None:
        self._early_load = early_load
        """The load `inkling serve` began before the client connected, until taken."""
        self.state = ModelState.NOT_LOADED
        self.engine: Engine | RemoteGenerator | None = None
        self.model_path = ""
        self.error: str | None = None
        self.loads = 0
        """Loads begun (and closes): tells a load's outcome from a newer one's."""
        self.engines_loaded = 0
        """Models this slot brought into memory (a second front end joining a load adds none)."""
        self._settings: Settings | None = None
        """The settings of the load under way or done."""
        self._waiters: list[Callable[[ModelSlot], None]] = []
        """Joined the load under way (`join`): told when it ends, as its own `on_done` is."""
        self._lock = threading.Lock()

    def join(self, settings: Settings, on_done: Callable[[ModelSlot], None]) -> bool:
        """When the model `settings` ask for is loaded or loading already (another front end
        of the same process asked first), wait for that load instead of loading it again:
        `on_done(self)` at once when it is ready, else when its load ends. False otherwise."""
        with self._lock:
            if (
                self._settings is None
                or self.state not in (ModelState.LOADING, ModelState.READY)
                or changed_reload_fields(self._settings, settings)
            ):
                return False
            if self.state is ModelState.LOADING:
                self._waiters.append(on_done)
                return True
        on_done(self)
        return True

    def load(
        self,
        settings: Settings,
        on_progress: Callable[[float], None],
        on_done: Callable[[ModelSlot], None],
    ) -> None:
        """Load the model `settings` ask for on a thread of its own, replacing any other;
        `on_progress(0..1)` and `on_done(self)` are called from that thread."""
        with self._lock:
            self.loads += 1
            generation = self.loads
            old, self.engine = self.engine, None
            self.state, self.error = ModelState.LOADING, None
            self._settings, self._waiters = settings, []
        if old is not None:
            threading.Thread(target=old.close, name="inkling-unload", daemon=True).start()

        def progress(value: float) -> None:
            if generation == self.loads:
                on_progress(value)

        def run() -> None:
            try:
                engine: Engine | RemoteGenerator | None = self._load(settings, progress)
                error: BaseException | None = None
            except BaseException as exc:  # reported as the load's outcome, never lost
                engine, error = None, exc
            with self._lock:
                current = generation == self.loads
                if current:
                    self.engine = engine
                    self.state = ModelState.READY if error is None else ModelState.FAILED
                    self.error = None if error is None else _message(error)
                    if engine is not None:
                        self.engines_loaded += 1
                    waiters, self._waiters = self._waiters, []
            if not current:
                if engine is not None:
                    engine.close()
                return
            on_done(self)
            for waiter in waiters:
                waiter(self)

        threading.Thread(target=run, name="inkling-load", daemon=True).start()

    def _load(self, settings: Settings, progress: Callable[[float], None]) -> Engine | RemoteGenerator:
        early, self._early_load = self._early_load, None
        if settings.engine_url:
            if early is not None:
                early.discard()
            from lsp_server.remote import open_engine

            self.model_path = settings.engine_url
            log.info("connecting to the engine at %s", settings.engine_url)
            return open_engine(settings)
        engine = early.take(settings, progress) if early is not None else None
        if engine is not None:
            self.model_path = str(engine.config.model_path)
            if not engine.ready:
                raise ModelError(engine.error or f"could not load {self.model_path}")
            return engine
        config, source = engine_config(settings)
        self.model_path = str(config.model_path)
        log.info("loading %s (%s)", config.model_path, source)
        engine = Engine(config)
        engine.load(progress).result()
        return engine

    def close(self) -> None:
        """Free the model; a load still under way is dropped when it ends."""
        with self._lock:
            self.loads += 1
            engine, self.engine = self.engine, None
            self.state = ModelState.NOT_LOADED
            self._settings, self._waiters = None, []
        early, self._early_load = self._early_load, None
        if early is not None:
            early.discard()
        if engine is not None:
            engine.close()


def _message(error: BaseException) -> str:
    return str(error) if isinstance(error, InklingError) else repr(error)
