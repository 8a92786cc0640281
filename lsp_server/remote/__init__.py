"""Generation on an inference server (`engineUrl`): llama.cpp's server or an OpenAI-compatible one.

`open_engine(settings)` finds out what answers at the URL (llama-server answers
`/props`; a URL ending in `/v1`, or a server answering `/v1/models` only, is taken
as OpenAI-compatible), picks the tokenizer (`vocab.py`) and returns a generator
(`generators.py`) that the pipeline uses like the in-process engine.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lsp_server.errors import ModelError
from lsp_server.remote.client import Endpoint, EngineClient, EngineError, EngineRejectedError
from lsp_server.remote.generators import (
    LLAMA_CPP,
    OPENAI,
    EngineInfo,
    LlamaServerGenerator,
    OpenAIGenerator,
    RemoteGenerator,
)
from lsp_server.remote.vocab import ServerVocabulary, local_model_for

log = logging.getLogger(__name__)

__all__ = ["EngineError", "EngineInfo", "RemoteGenerator", "detect", "open_engine"]

PROBE_TIMEOUT_S = 5.0


def detect(url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[EngineClient, EngineInfo]:
    """Which kind of server answers at `url`, and what it serves (raises EngineError)."""
    endpoint = Endpoint.parse(url)
    if not endpoint.path.endswith("/v1"):
        client = EngineClient(endpoint)
        try:
            props = client.get_json("/props", timeout=timeout)
        except EngineRejectedError:
            props = None  # not llama.cpp: try the OpenAI shape below
        if isinstance(props, dict) and "default_generation_settings" in props:
            return client, _llama_cpp_info(client, endpoint, props, timeout)
        endpoint = endpoint.with_path(endpoint.path + "/v1")
    client = EngineClient(endpoint)
    try:
        models = client.get_json("/models", timeout=timeout)
    except EngineRejectedError as exc:
        raise EngineError(
            f"{url} is neither llama.cpp's server (no /props) nor OpenAI-compatible ({exc})"
        ) from None
    data = models.get("data") if isinstance(models, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise EngineError(f"the engine at {endpoint.url}/models lists no model")
    first = data[0]
    n_ctx = int(first.get("max_model_len") or (first.get("meta") or {}).get("n_ctx_train") or 0)
    meta = first.get("meta") or {}
    return client, EngineInfo(
        kind=OPENAI,
        url=endpoint.url,
        model=str(first.get("id") or ""),
        n_ctx=n_ctx,
        n_vocab=int(meta.get("n_vocab") or 0),
    )


def _llama_cpp_info(
    client: EngineClient, endpoint: Endpoint, props: dict[str, Any], timeout: float
) -> EngineInfo:
    settings = props.get("default_generation_settings") or {}
    n_vocab = 0
    try:
        models = client.get_json("/v1/models", timeout=timeout)
        data = models.get("data") if isinstance(models, dict) else None
        if isinstance(data, list) and data and isinstance(data[0], dict):
            n_vocab = int((data[0].get("meta") or {}).get("n_vocab") or 0)
    except EngineError:
        pass  # only used to check a local tokenizer against the server's
    model_path = str(props.get("model_path") or "")
    return EngineInfo(
        kind=LLAMA_CPP,
        url=endpoint.url,
        model=Path(str(props.get("model_alias") or model_path or "unknown")).name,
        n_ctx=int(settings.get("n_ctx") or 0),
        slots=int(props.get("total_slots") or 0),
        model_path=model_path,
        n_vocab=n_vocab,
        build=str(props.get("build_info") or ""),
    )


def open_engine(settings: Any, read_timeout_s: float | None = None) -> RemoteGenerator:
    """The remote generator `settings.engine_url` names, with its tokenizer (raises ModelError
    with a message for the user when the server cannot be used)."""
    try:
        Endpoint.parse(settings.engine_url)
    except EngineError as exc:
        raise ModelError(str(exc)) from None
    connected = True
    try:
        client, info = detect(settings.engine_url)
    except EngineError as exc:
        if not settings.model_path or isinstance(exc, EngineRejectedError):
            raise ModelError(f"cannot use engineUrl: {exc}") from None
        # The tokenizer is here: start now, connect when the engine answers (`_connect`).
        endpoint = Endpoint.parse(settings.engine_url)
        client = EngineClient(endpoint)
        kind = OPENAI if endpoint.path.endswith("/v1") else LLAMA_CPP
        info = EngineInfo(kind=kind, url=endpoint.url, model="", n_ctx=0)
        connected = False
        log.warning("%s; connecting when it answers", exc)
    client.read_timeout_s = read_timeout_s or max(
        30.0, 3 * max(settings.time_budget_inline_ms, settings.time_budget_block_ms) / 1000
    )
    n_ctx = info.n_ctx or settings.context_size
    vocab, source = _vocabulary(settings, client, info, n_ctx)
    generator_class = LlamaServerGenerator if info.kind == LLAMA_CPP else OpenAIGenerator
    generator = generator_class(client, vocab, info, source)
    generator.connected = connected
    log.info("generation on the %s", generator.describe())
    return generator


def _vocabulary(settings: Any, client: EngineClient, info: EngineInfo, n_ctx: int) -> tuple[Any, str]:
    from lsp_server.llama_model import LlamaModel
    from lsp_server.models import check_model_file

    path: Path | None = None
    if settings.model_path:
        path = check_model_file(Path(settings.model_path).expanduser())
    elif info.model_path:
        path = local_model_for(info.model_path)
    if path is not None:
        vocab = LlamaModel(path, n_ctx=n_ctx, n_threads=1, n_batch=settings.batch_size, vocab_only=True)
        if info.n_vocab and info.n_vocab != vocab.n_vocab:
            vocab.close()
            raise ModelError(
                f"the tokenizer of {path} ({vocab.n_vocab} tokens) is not the engine's "
                f"({info.n_vocab} tokens at {info.url}): set modelPath to the file the engine serves"
            )
        return vocab, f"local {path}"
    if info.kind != LLAMA_CPP:
        raise ModelError(
            f"the OpenAI-compatible engine at {info.url} serves {info.model!r}: Inkling builds its "
            "prompts with that model's tokenizer, so set modelPath to a GGUF file of the same model "
            "(only its vocabulary is read)"
        )
    try:
        return ServerVocabulary(client, n_ctx, _props(client)), "the server's /tokenize"
    except EngineError as exc:
        raise ModelError(f"cannot use engineUrl: {exc}") from None


def _props(client: EngineClient) -> dict[str, Any]:
    props = client.get_json("/props", timeout=PROBE_TIMEOUT_S)
    return props if isinstance(props, dict) else {}
