"""The models one HTTP server offers: named, loaded on first use, unloaded when memory
runs short (least recently used first).

The default model (the settings' `modelPath`, or Inkling's own resolution) is
always there, under its file name and under `inkling`; `--http-model
NAME=PATH` adds others. Each loaded model has a completion service of its
own (engine, scheduler, caches); a request names the model it wants.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from lsp_server.errors import InklingError
from lsp_server.model_slot import ModelSlot, ModelState
from lsp_server.models import resolve_model
from lsp_server.service import CompletionService
from lsp_server.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "inkling"


class UnknownModelError(InklingError):
    """A request named a model this server does not offer."""


def parse_models(pairs: Iterable[str]) -> dict[str, str]:
    """`NAME=PATH` pairs (from `--http-model`)."""
    models: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise InklingError(f"--http-model {pair!r}: expected NAME=PATH")
        if not Path(path).expanduser().is_file():
            raise InklingError(f"--http-model {name}: no model file at {path}")
        models[name.strip()] = str(Path(path).expanduser())
    return models


class ModelRegistry:
    def __init__(
        self,
        settings: Settings,
        extra: dict[str, str],
        *,
        memory_limit_bytes: int = 0,
        shared: CompletionService | None = None,
    ) -> None:
        """`shared`: the default model's service, owned by another front end of the process
        (the LSP session beside HTTP): used as it is, never unloaded or stopped here."""
        self.settings = settings
        default_path = str(resolve_model(settings.model_path).path)
        self.default_name = Path(default_path).name.removesuffix(".gguf")
        self.paths = {self.default_name: default_path, **extra}
        self.memory_limit_bytes = memory_limit_bytes
        self._loaded: OrderedDict[str, CompletionService] = OrderedDict()
        self._pinned = frozenset() if shared is None else frozenset({self.default_name})
        if shared is not None:
            self._loaded[self.default_name] = shared
        self._unloaded_loads = 0
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self.paths)

    def canonical(self, requested: str | None) -> str:
        """The registered name a request means (none, `inkling`, a file name, a `:latest` tag)."""
        if not requested or requested in (DEFAULT_ALIAS, f"{DEFAULT_ALIAS}:latest"):
            return self.default_name
        name = requested.removesuffix(":latest").removesuffix(".gguf")
        if name in self.paths:
            return name
        offered = ", ".join(self.names())
        raise UnknownModelError(f"model '{requested}' not found (this server offers {offered})")

    def service(self, name: str) -> CompletionService:
        """The service of model `name`, its load begun if it was not loaded; others are
        unloaded, least recently used first, while the loaded ones would exceed the limit."""
        with self._lock:
            service = self._loaded.get(name)
            if service is not None:
                self._loaded.move_to_end(name)
                return service
            for evicted in self._make_room(name):
                log.info("unloading %s to make room for %s", evicted, name)
                unloaded = self._loaded.pop(evicted)
                self._unloaded_loads += unloaded.slot.engines_loaded
                unloaded.stop()
            path = self.paths[name]
            service = CompletionService(dataclasses.replace(self.settings, model_path=path))
            self._loaded[name] = service
        log.info("loading model %s (%s)", name, path)
        service.load_model(lambda _: None, lambda slot: _report(name, slot))
        return service

    def _make_room(self, name: str) -> list[str]:
        if self.memory_limit_bytes <= 0:
            return []
        sizes = {loaded: model_bytes(self.paths[loaded]) for loaded in self._loaded}
        total = sum(sizes.values()) + model_bytes(self.paths[name])
        evicted = []
        for loaded in self._loaded:  # least recently used first
            if total <= self.memory_limit_bytes:
                break
            if loaded in self._pinned:
                continue
            evicted.append(loaded)
            total -= sizes[loaded]
        return evicted

    def sizes(self) -> dict[str, int]:
        """Every offered model's file size, by name."""
        return {name: model_bytes(path) for name, path in self.paths.items()}

    def loaded(self) -> list[tuple[str, CompletionService]]:
        with self._lock:
            return list(self._loaded.items())

    def model_loads(self) -> int:
        """Models brought into memory since the server started (one a load, unloaded or not)."""
        with self._lock:
            return self._unloaded_loads + sum(s.slot.engines_loaded for s in self._loaded.values())

    def stop(self) -> None:
        """Free every model this registry loaded (a shared service is its owner's to stop)."""
        with self._lock:
            services = [service for name, service in self._loaded.items() if name not in self._pinned]
            self._loaded = OrderedDict()
        for service in services:
            service.stop()


def model_bytes(path: str) -> int:
    """What a model takes in memory, roughly: its file (llama.cpp maps it whole)."""
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def _report(name: str, slot: ModelSlot) -> None:
    if slot.state is ModelState.READY:
        log.info("model %s ready: %s", name, slot.model_path)
    else:
        log.error("could not load model %s: %s", name, slot.error)
