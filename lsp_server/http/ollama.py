"""`POST /api/generate` and `GET /api/tags` in Ollama's shape, where Continue's
autocomplete and other Ollama clients point.

`prompt` is the text before the cursor and `suffix` the text after it;
`options.num_predict` and `options.stop` limit the answer. Ollama streams by
default (`stream` absent means true): newline-delimited JSON objects, the
last with `done: true` and the counts. `raw` is accepted and left alone:
Inkling always writes its own prompt. Durations are in nanoseconds.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator
from typing import Any

from lsp_server.http.errors import HttpError
from lsp_server.http.front import Answer, Ask, stop_strings

_NS_PER_MS = 1_000_000


def ask_from_ollama(body: dict[str, Any], client: str) -> Ask:
    prompt, suffix = body.get("prompt", ""), body.get("suffix") or ""
    if not isinstance(prompt, str) or not isinstance(suffix, str):
        raise HttpError(400, "prompt and suffix must be strings", param="prompt")
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise HttpError(400, "options must be an object", param="options")
    predict = options.get("num_predict")
    if predict is not None and (isinstance(predict, bool) or not isinstance(predict, int)):
        raise HttpError(400, "options.num_predict must be a number", param="options.num_predict")
    model = body.get("model")
    return Ask(
        prefix=prompt,
        suffix=suffix,
        client=client,
        max_tokens=predict if isinstance(predict, int) and predict > 0 else None,
        stop=stop_strings(options.get("stop"), "options.stop"),
        model=model if isinstance(model, str) else None,
    )


def final_object(answer: Answer, model: str, total_ms: float) -> dict[str, Any]:
    generation = answer.completion.generation
    done_reason = "stop"
    if generation is not None and generation.finish_reason in ("length", "budget", "context"):
        done_reason = "length"
    return {
        "model": model,
        "created_at": _now(),
        "response": "",
        "done": True,
        "done_reason": done_reason,
        "total_duration": int(total_ms * _NS_PER_MS),
        "load_duration": 0,
        "prompt_eval_count": generation.evaluated_tokens if generation else 0,
        "prompt_eval_duration": int((generation.prompt_ms if generation else 0) * _NS_PER_MS),
        "eval_count": generation.generated_tokens if generation else 0,
        "eval_duration": int((generation.generate_ms if generation else 0) * _NS_PER_MS),
    }


def generate_response(answer: Answer, model: str, total_ms: float) -> dict[str, Any]:
    return {**final_object(answer, model, total_ms), "response": answer.text}


async def generate_stream(answer: Answer, model: str, total_ms: float) -> AsyncIterator[bytes]:
    """The text in one chunk (post-processing needs the whole of it first), then the end."""
    if answer.text:
        chunk = {"model": model, "created_at": _now(), "response": answer.text, "done": False}
        yield (json.dumps(chunk) + "\n").encode()
    yield (json.dumps(final_object(answer, model, total_ms)) + "\n").encode()


def tags_response(sizes: dict[str, int]) -> dict[str, Any]:
    """The models offered (name -> file size), as `ollama list` shows them (with a tag)."""
    return {
        "models": [
            {"name": f"{name}:latest", "model": f"{name}:latest", "size": size, "details": {}}
            for name, size in sizes.items()
        ]
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
