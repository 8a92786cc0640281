"""`inkling train pairs` on tested holes: samples judged by running tests.

The holes are a selection the execution track of `inkling eval` wrote (`--track
exec --split dev`): line and block holes in standard-library functions that
CPython's own tests run and notice. Never the test split, which stays held out
for measuring. The model the server serves (a GGUF, through llama.cpp as the
server runs it: seconds a hole where transformers on 2 cores takes tens)
samples a few middles for the prompt SFT trains on, with the LoRA file the
model file names applied as the server applies it; each is cut where the
server's stop rules would cut it (what a user would have been shown; the server
decides where a line or a block ends), judged by the server's rules
(`training.judge`) and then, unless it is the true middle or already bad, by
running the module's tests with it in place
(`lsp_server.stdlib_tests`). Every distinct failing sample makes a pair with
the hole's chosen middle: a passing sample (rejection sampling: the model's own
verified answer) or else the true one. DPO's `sft` loss term on the chosen side
then trains on the verified answers: rejection-sampled SFT and preference
optimization in one stage.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import zip_longest
from pathlib import Path
from typing import Any

from tqdm import tqdm

from training.config import ConfigError, expand_path
from training.judge import Verdict, as_served, judge
from training.pairs import PairsConfig, chosen_middle, sampling_prompt, save_pairs

LANGUAGE = "python"
SOURCE_PREFIX = "python-stdlib/"
"""Dataset paths of the standard library's files (`training.data` names sources this way)."""


def load_tested_holes(path: Path, count: int, seed: int, order: str = "spm") -> list[dict[str, Any]]:
    """Up to `count` holes of the selection at `path`, kinds taking turns in a seeded order,
    as training rows (prefix, middle, suffix and what the tests need) laid out in `order`, the
    adapter's serving order."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"pairs: cannot read tested holes {path} ({exc}); "
            "`inkling eval --track exec --split dev` writes them"
        ) from exc
    if stored.get("split") != "dev":
        raise ConfigError(f"pairs: {path} holds the {stored.get('split')!r} split; only dev holes train")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for record in stored.get("holes", []):
        by_kind.setdefault(record["kind"], []).append(record)
    shuffler = random.Random(seed)
    for records in by_kind.values():
        shuffler.shuffle(records)
    turns = [record for group in zip_longest(*by_kind.values()) for record in group if record is not None]
    rows = []
    for record in turns[:count]:
        original = Path(record["path"]).read_text(encoding="utf-8")
        start, end = record["hole_start"], record["hole_end"]
        if original[start:end] != record["expected"]:
            raise ConfigError(f"pairs: {record['path']} changed since {path} was written: choose again")
        rows.append(
            {
                "path": SOURCE_PREFIX + record["key"].split("/", 1)[1],
                "language": LANGUAGE,
                "kind": "fim",
                "hole": record["kind"],
                "order": order,
                "prefix": original[:start],
                "middle": record["expected"],
                "suffix": original[end:],
                "ends_file": False,
                "context_path": "",
                "context": "[]",
                "file": record["path"],
                "module": record["module"],
                "tests": record["tests"],
            }
        )
    return rows


class LlamaSampler:
    """Samples middles from a GGUF with llama.cpp, for prompts tokenized as training does
    (the ids are the same: the GGUF was written from the same vocabulary, checked here)."""

    def __init__(self, model_path: Path, tokenizer: Any, context: int, threads: int, seed: int) -> None:
        from llama_cpp import Llama

        from lsp_server.llama_model import LlamaModel
        from training.tokens import encode_text

        # The server applies the LoRA file a model file names on top of its quantized weights
        # (`LlamaModel.declared_lora`): without it this would sample another model.
        declared = LlamaModel(model_path, n_ctx=64, n_threads=1, n_batch=8, vocab_only=True)
        try:
            self.lora = declared.declared_lora()
        finally:
            declared.close()
        self.model = Llama(
            model_path=str(model_path),
            lora_path=str(self.lora) if self.lora else None,
            n_ctx=context,
            n_threads=threads or None,
            seed=seed,
            verbose=False,
        )
        probe = "def tokens(self, text: str) -> list[int]:\n    return self._ids[text]  # über\n"
        ours = encode_text(tokenizer, probe)
        theirs = self.model.tokenize(probe.encode("utf-8"), add_bos=False, special=False)
        if list(ours) != list(theirs):
            raise ConfigError(f"pairs: {model_path} does not tokenize as the adapter's base does")

    def sample(
        self,
        prompt: list[int],
        stop_ids: set[int],
        count: int,
        max_new: int,
        temperature: float,
        top_p: float,
    ) -> list[list[int]]:
        samples = []
        for _ in range(count):
            ids: list[int] = []
            # reset=True keeps the KV cache's common prefix: the prompt is evaluated once per hole.
            for token in self.model.generate(prompt, temp=temperature, top_p=top_p, top_k=0, reset=True):
                if token in stop_ids or len(ids) >= max_new:
                    break
                ids.append(token)
            samples.append(ids)
        return samples


def judge_with_tests(row: dict[str, Any], text: str, timeout: float) -> Verdict:
    """A served text judged by the server's rules first; then, when it is neither the truth nor
    bad, by the tests (a run past `timeout` fails: the modules' tests take at most 15 s
    unchanged)."""
    from lsp_server.stdlib_tests import run_tests

    verdict = judge(text, row["prefix"], row["middle"], row["suffix"], row["language"])
    if verdict.matches or verdict.bad:
        return verdict
    filled = row["prefix"] + text + row["suffix"]
    run = run_tests(Path(row["file"]), row["module"], row["tests"], filled, timeout=timeout)
    return Verdict(**{**verdict.__dict__, "tests_pass": run.passed})


def pairs_of_hole(row: dict[str, Any], verdicts: list[Verdict]) -> list[dict[str, Any]]:
    """One pair per distinct failing sample, all against the hole's chosen middle."""
    chosen, source = chosen_middle(row, verdicts)
    pairs, seen = [], {" ".join(chosen.split())}
    for verdict in verdicts:
        key = " ".join(verdict.text.split())
        if verdict.bad and key not in seen:
            seen.add(key)
            pairs.append(
                {
                    **row,
                    "chosen": chosen,
                    "chosen_source": source,
                    "rejected": verdict.text,
                    "rejected_reasons": ",".join(verdict.reasons),
                }
            )
    return pairs


def make_tested_pairs(config: PairsConfig) -> dict[str, Any]:
    from lsp_server.models import resolve_model
    from training.adapter import is_prefix_last, read_metadata
    from training.base import load_tokenizer, resolve_base
    from training.tokens import fim_vocab

    started = time.monotonic()
    adapter = Path(expand_path(config.adapter))
    metadata = read_metadata(adapter)
    tokenizer = load_tokenizer(resolve_base(config.base or metadata["base"]["path"]))
    fim_format = metadata.get("fim_format", "psm")
    vocab = fim_vocab(tokenizer, fim_format, prefix_last=is_prefix_last(metadata))
    stop_ids = {vocab.stop_id, *(i for i in (vocab.eos_id,) if i is not None)}
    model_path = resolve_model(expand_path(config.model_path) if config.model_path else "").path
    rows = load_tested_holes(Path(expand_path(config.tested_holes)), config.holes, config.seed, fim_format)
    sampler = LlamaSampler(
        model_path, tokenizer, config.max_length + config.max_new_tokens, config.threads, config.seed
    )

    pairs: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    chosen_from: Counter[str] = Counter()
    holes = passing_holes = 0
    judges = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    for row in tqdm(rows, desc="sampling tested holes", unit="hole"):
        sampling = sampling_prompt(tokenizer, vocab, row, config)
        if sampling is None:
            continue
        prompt, max_new = sampling
        holes += 1
        # Each sample as the server would show it (cut by its stop rules); the same text twice
        # runs the tests once, and a hole's texts are tested side by side (one core each).
        samples = sampler.sample(
            prompt, stop_ids, config.samples_per_hole, max_new, config.temperature, config.top_p
        )
        texts = [tokenizer.decode(ids, skip_special_tokens=False) for ids in samples]
        served = [as_served(text, row["prefix"], row["suffix"], LANGUAGE) for text in texts]
        distinct = list(dict.fromkeys(served))
        verdict_of = partial(judge_with_tests, row, timeout=config.tests.timeout)
        judged = dict(zip(distinct, judges.map(verdict_of, distinct), strict=True))
        counts["test_runs"] += sum(verdict.tests_pass is not None for verdict in judged.values())
        verdicts = [judged[text] for text in served]
        for verdict in verdicts:
            counts["good" if verdict.good else "bad" if verdict.bad else "unknown"] += 1
            counts.update(verdict.reasons)
            counts["tests_pass"] += verdict.tests_pass is True
        passing_holes += any(v.good for v in verdicts)
        made = pairs_of_hole(row, verdicts)
        chosen_from.update(pair["chosen_source"] for pair in made)
        pairs.extend(made)

    judges.shutdown()
    seconds = time.monotonic() - started
    report = {
        "adapter": str(adapter),
        "sampled_with": str(model_path),
        "tested_holes": config.tested_holes,
        "holes": holes,
        "holes_by_kind": dict(Counter(row["hole"] for row in rows)),
        "samples": holes * config.samples_per_hole,
        "holes_with_a_passing_sample": passing_holes,
        "verdicts": dict(counts),
        "pairs": len(pairs),
        "chosen_from": dict(chosen_from),
        "seconds": round(seconds, 1),
        "seconds_per_hole": round(seconds / max(1, holes), 2),
    }
    return save_pairs(config.output, pairs, report, f"{holes} tested holes (no sample failed)")
