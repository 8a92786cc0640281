"""`inkling train pairs` on tested holes samples with the served GGUF through llama.cpp, on the
prompt training tokenizes: the tuned default as the server runs it (its LoRA file applied), a
real hole of the standard library."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from export.build import BuildResult
from lsp_server.engine import Engine, EngineConfig
from lsp_server.generator import GenerationRequest
from lsp_server.models import ensure_base_model
from tests.requirements import require_train_extra

require_train_extra()  # before importing training, which imports transformers

from training.adapter import is_prefix_last, read_metadata  # noqa: E402
from training.base import load_tokenizer  # noqa: E402
from training.judge import as_served  # noqa: E402
from training.tested_pairs import LlamaSampler  # noqa: E402
from training.tokens import encode_example, fim_vocab  # noqa: E402

pytestmark = [pytest.mark.model, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
COLORSYS = Path(sysconfig.get_paths()["stdlib"]) / "colorsys.py"


def test_samples_come_from_the_served_model_for_the_training_prompt(built_default: BuildResult) -> None:
    metadata = read_metadata(ROOT / "export" / "default_adapter")
    tokenizer = load_tokenizer(ensure_base_model())
    vocab = fim_vocab(tokenizer, metadata.get("fim_format", "psm"), prefix_last=is_prefix_last(metadata))
    text = COLORSYS.read_text(encoding="utf-8")
    start = text.index("        return v, v, v\n") + 8  # hsv_to_rgb, under `if s == 0.0:`
    end = text.index("\n", start)
    row = {
        "kind": "fim",
        "order": "spm",
        "language": "python",
        "prefix": text[:start],
        "middle": text[start:end],
        "suffix": text[end:],
        "context": "[]",
        "context_path": "",
    }
    encoded = encode_example(tokenizer, vocab, row, 512)
    assert encoded is not None
    prompt, _ = encoded
    sampler = LlamaSampler(built_default.path, tokenizer, context=640, threads=2, seed=7)
    stops = {vocab.stop_id, vocab.eos_id or vocab.stop_id}
    samples = sampler.sample(prompt, stops, count=3, max_new=24, temperature=0.8, top_p=0.95)
    assert len(samples) == 3
    assert all(len(ids) <= 24 and not stops & set(ids) for ids in samples)
    served = [as_served(tokenizer.decode(ids), row["prefix"], row["suffix"], "python") for ids in samples]
    assert all("\n" not in answer for answer in served)  # a line hole: cut at the line's end
    # A prompt the model reads right: a return statement (wrong ids would give anything).
    assert sum(answer.startswith("return ") for answer in served) >= 2, served
    # The model the server runs, its declared LoRA included: greedy, both write the same tokens.
    assert sampler.lora == built_default.lora is not None
    (greedy,) = sampler.sample(prompt, stops, count=1, max_new=8, temperature=0.0, top_p=1.0)
    engine = Engine(EngineConfig(built_default.path, n_ctx=1024, n_threads=2, n_batch=64))
    try:
        engine.load().result()
        request = GenerationRequest(prompt=prompt, max_tokens=8, time_budget_s=60)
        served_greedy = list(engine.submit(request).result().token_ids)
    finally:
        engine.close()
    assert greedy and greedy == served_greedy[: len(greedy)], (greedy, served_greedy)
