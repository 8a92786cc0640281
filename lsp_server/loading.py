"""Which engine the settings ask for, and loading it for a command run in a terminal.

The server loads through `early_load` and reports `$/progress`; the terminal
commands (`complete`, `doctor`, `eval`) load here, with a bar on stderr
(stdout is theirs).
"""

from __future__ import annotations

import sys

from lsp_server.engine import Engine, EngineConfig
from lsp_server.models import resolve_model
from lsp_server.settings import Settings, effective_threads


def engine_config(settings: Settings) -> tuple[EngineConfig, str]:
    """The engine `settings` ask for, and where its model file came from (resolving the
    file may raise ModelError)."""
    resolved = resolve_model(settings.model_path)
    config = EngineConfig(
        model_path=resolved.path,
        n_ctx=settings.context_size,
        n_threads=effective_threads(settings),
        n_batch=settings.batch_size,
        n_gpu_layers=settings.gpu_layers,
    )
    return config, resolved.source


def load_engine(settings: Settings, *, quiet: bool = False) -> Engine:
    """The loaded engine; `quiet`: without the progress bar."""
    from tqdm import tqdm

    config, _ = engine_config(settings)
    engine = Engine(config)
    with tqdm(
        total=100,
        desc=f"loading {config.model_path.name}",
        unit="%",
        disable=quiet,
        file=sys.stderr,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}",
    ) as bar:

        def progress(value: float) -> None:
            bar.update(int(value * 100) - bar.n)

        engine.load(progress).result()
    return engine
