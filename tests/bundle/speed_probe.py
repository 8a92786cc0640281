"""Prompt and generation speed of whichever llama.cpp build the running interpreter has.

Run it with two interpreters, alternately, to compare builds on one model:

    for round in 1 2 3; do
        .venv/bin/python tests/bundle/speed_probe.py MODEL [THREADS]   # this checkout's native build
        PREFIX/bin/python tests/bundle/speed_probe.py MODEL [THREADS]  # a bundle's portable build
    done

It loads the model the way Inkling does (`LlamaModel`: plain CPU buffers on AMX
builds, the declared LoRA applied) with THREADS threads (default 2; on a shared,
busy machine 1 thread is the steadier comparison), evaluates 512 prompt tokens in
batches of 128 and generates 64 tokens greedily, three times, and prints one
JSON line: the medians, and the build's CPU features.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from lsp_server.llama_model import LlamaModel, build_features

PROMPT_TOKENS = 512
GENERATED = 64
REPEATS = 3


def main() -> None:
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    model = LlamaModel(Path(sys.argv[1]), n_ctx=2048, n_threads=threads, n_batch=128)
    text = "import os\n" + "".join(f"value_{i} = compute({i}, 'x')\n" for i in range(400))
    tokens = model.tokenize(text, add_bos=True)[:PROMPT_TOKENS]
    prompt, generate = [], []
    for _ in range(REPEATS):
        model.kv_clear()
        started = time.perf_counter()
        for start in range(0, len(tokens), model.n_batch):
            model.decode(tokens[start : start + model.n_batch], start)
        prompt.append(len(tokens) / (time.perf_counter() - started))
        position = len(tokens)
        started = time.perf_counter()
        for _ in range(GENERATED):
            model.decode([int(model.last_logits().argmax())], position)
            position += 1
        generate.append(GENERATED / (time.perf_counter() - started))
    features, _ = build_features()
    print(
        json.dumps(
            {
                "python": sys.executable,
                "threads": threads,
                "prompt_tokens_per_s": round(statistics.median(prompt), 1),
                "generate_tokens_per_s": round(statistics.median(generate), 1),
                "features": features,
            }
        )
    )


if __name__ == "__main__":
    main()
