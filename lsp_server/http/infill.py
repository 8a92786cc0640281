"""`POST /infill` in llama.cpp server's shape, as llama.vim and llama.vscode send it.

The text around the cursor is `input_prefix + prompt | input_suffix` (the
clients put the cursor line's start in `prompt`); `input_extra` chunks are the
project context. Sampling fields (`temperature`, `top_k`, `samplers`...) are
accepted and left alone: Inkling decodes greedily. `id_slot` and
`cache_prompt` are accepted too: each client keeps its own place in Inkling's
caches whatever its slot. `n_predict: 0` only evaluates the prompt (the
clients' cache warm-up). `response_fields` picks fields as llama.cpp does
("timings/prompt_n" is returned under that very key).
"""

from __future__ import annotations

from typing import Any

from lsp_server.http.errors import HttpError
from lsp_server.http.front import Answer, Ask, context_files, number, stop_strings
from lsp_server.pipeline import Status


def ask_from_infill(body: dict[str, Any], client: str) -> Ask:
    prefix, suffix, middle = (
        body.get("input_prefix", ""),
        body.get("input_suffix", ""),
        body.get("prompt", ""),
    )
    for key, value in (("input_prefix", prefix), ("input_suffix", suffix), ("prompt", middle)):
        if not isinstance(value, str):
            raise HttpError(400, f"{key} must be a string", param=key)
    filename = body.get("filename", "")
    return Ask(
        prefix=prefix + middle,
        suffix=suffix,
        client=client,
        filename=filename if isinstance(filename, str) else "",
        extra=context_files(body.get("input_extra", body.get("extra_context"))),
        max_tokens=_n_predict(body),
        time_budget_ms=number(body, "t_max_predict_ms"),
        stop=stop_strings(body.get("stop")),
        model=body.get("model") if isinstance(body.get("model"), str) else None,
    )


def _n_predict(body: dict[str, Any]) -> int | None:
    value = number(body, "n_predict")
    return None if value is None or value < 0 else value


def infill_response(answer: Answer, model: str) -> dict[str, Any]:
    completion = answer.completion
    generation = completion.generation
    prompt_n = generation.evaluated_tokens if generation else 0
    prompt_ms = generation.prompt_ms if generation else 0.0
    predicted_n = generation.generated_tokens if generation else 0
    predicted_ms = generation.generate_ms if generation else 0.0
    return {
        "index": 0,
        "content": answer.text,
        "tokens": [],
        "id_slot": 0,
        "stop": True,
        "model": model,
        "tokens_predicted": predicted_n,
        "tokens_evaluated": generation.prompt_tokens if generation else 0,
        "tokens_cached": generation.reused_tokens if generation else 0,
        "has_new_line": "\n" in answer.text,
        "truncated": completion.truncated,
        "stop_type": _stop_type(answer),
        "stopping_word": answer.stopping_word,
        "timings": {
            "prompt_n": prompt_n,
            "prompt_ms": prompt_ms,
            "prompt_per_token_ms": prompt_ms / prompt_n if prompt_n else 0.0,
            "prompt_per_second": prompt_n * 1000 / prompt_ms if prompt_ms else 0.0,
            "predicted_n": predicted_n,
            "predicted_ms": predicted_ms,
            "predicted_per_token_ms": predicted_ms / predicted_n if predicted_n else 0.0,
            "predicted_per_second": predicted_n * 1000 / predicted_ms if predicted_ms else 0.0,
        },
        "inkling": {
            "mode": completion.mode.value,
            "status": completion.status.value,
            "reason": completion.reason,
        },
    }


def _stop_type(answer: Answer) -> str:
    """llama.cpp's words: "eos" (ended by itself), "word" (a client's stop string),
    "limit" (n_predict or the time budget), "none" (not generated)."""
    if answer.stopping_word:
        return "word"
    generation = answer.completion.generation
    if answer.completion.status in (Status.CANCELLED, Status.SKIPPED) or generation is None:
        return "none" if answer.completion.status is not Status.CACHED else "eos"
    return "limit" if generation.finish_reason in ("length", "budget", "context") else "eos"


def pick_fields(response: dict[str, Any], fields: Any) -> dict[str, Any]:
    """llama.cpp's `response_fields`: only these, a "a/b" path under the key "a/b"."""
    if not isinstance(fields, list) or not fields:
        return response
    picked: dict[str, Any] = {}
    for path in fields:
        if not isinstance(path, str):
            continue
        value: Any = response
        for part in path.split("/"):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            picked[path] = value
    return picked
