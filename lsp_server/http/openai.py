"""`POST /v1/completions` and `GET /v1/models` in OpenAI's shape (Continue, Tabby's
clients, the `openai` package, notebooks).

`prompt` is the text before the cursor and `suffix` the text after it; `n`
asks for several distinct completions, best first: the answer `n` = 1 gives,
then alternatives decoded after it from the next most likely first tokens (or
a blank line's ranked candidates), never more than there are distinct ones
(the in-process engine only: a remote engine gives the first); `stream` sends the
answer as server-sent events; `user` names the client whose newer request
supersedes its older one. `temperature` is accepted and left alone: Inkling
decodes greedily.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from lsp_server.http.errors import HttpError
from lsp_server.http.front import Answer, Ask, number, stop_strings


def ask_from_openai(body: dict[str, Any], client: str, choices: int = 1) -> Ask:
    prompt = body.get("prompt", "")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise HttpError(400, "prompt must be a string (one prompt per request)", param="prompt")
    suffix = body.get("suffix") or ""
    if not isinstance(suffix, str):
        raise HttpError(400, "suffix must be a string", param="suffix")
    max_tokens = number(body, "max_tokens")
    if max_tokens is not None and max_tokens < 1:
        raise HttpError(400, "max_tokens must be at least 1", param="max_tokens")
    user = body.get("user")
    return Ask(
        prefix=prompt,
        suffix=suffix,
        client=f"{client}/{user}" if isinstance(user, str) and user else client,
        max_tokens=max_tokens,
        stop=stop_strings(body.get("stop")),
        model=body.get("model") if isinstance(body.get("model"), str) else None,
        choices=choices,
    )


def choices_wanted(body: dict[str, Any]) -> int:
    wanted = number(body, "n", 1) or 1
    if not 1 <= wanted <= 8:
        raise HttpError(400, "n must be between 1 and 8", param="n")
    return wanted


def texts(answer: Answer, wanted: int) -> list[str]:
    """The answer first, then its alternatives that differ from it (at most `wanted`)."""
    found = [answer.text]
    for text in answer.alternatives:
        if len(found) < wanted and text and text not in found:
            found.append(text)
    return found


def completion_response(answer: Answer, wanted: int, model: str) -> dict[str, Any]:
    generation = answer.completion.generation
    prompt_tokens = generation.prompt_tokens if generation else 0
    completion_tokens = generation.generated_tokens if generation else 0
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"text": text, "index": index, "logprobs": None, "finish_reason": _finish_reason(answer)}
            for index, text in enumerate(texts(answer, wanted))
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _finish_reason(answer: Answer) -> str:
    generation = answer.completion.generation
    if generation is not None and generation.finish_reason in ("length", "budget", "context"):
        return "length"
    return "stop"


async def stream_events(response: dict[str, Any]) -> AsyncIterator[bytes]:
    """The whole answer as server-sent events: each choice's text, then its finish
    reason, then `[DONE]` (post-processing needs the whole text before any is sent)."""
    for choice in response["choices"]:
        head = {key: response[key] for key in ("id", "object", "created", "model")}
        first = {**choice, "finish_reason": None}
        yield _event({**head, "choices": [first]})
        yield _event({**head, "choices": [{**choice, "text": ""}]})
    yield b"data: [DONE]\n\n"


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def models_response(names: list[str], created: float) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": int(created), "owned_by": "inkling"} for name in names
        ],
    }
