"""`inkling train pairs`: preference pairs from the SFT model's own samples.

For held-out holes (the validation split by default, never training files),
the SFT model samples a few middles; `training.judge` sorts them with the
server's rules and, where a test command is configured for the source, by
running the tests with the sample in place. A pair is (chosen, rejected):
chosen is a sample that matches the true middle or passes the tests, else
the true middle itself; rejected is a sample judged bad. Holes without a bad
sample make no pair: there is nothing to prefer against.
"""

from __future__ import annotations

import json
import random
import shlex
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from training.config import ConfigError, expand_path
from training.judge import Verdict, judge


@dataclass
class TestsConfig:
    """Run a source's tests with a sample in place ('execution where tests exist')."""

    root: str = ""
    """The source directory (a copy is made for every run; the original is never touched)."""
    source: str = ""
    """Name prefix of that source's files in the dataset (default: the directory's name)."""
    command: str = ""
    """Run in the copy's root, e.g. `python -m pytest -x -q`; exit code 0 means pass."""
    timeout: float = 60.0
    max_runs: int = 50


@dataclass
class PairsConfig:
    adapter: str = ""
    """The SFT adapter directory."""
    dataset: str = ""
    """A `prepare` output directory."""
    output: str = ""
    base: str = ""
    """Empty: the base the adapter was trained on."""
    split: Literal["validation", "test", "train"] = "validation"
    holes: int = 120
    hole_kinds: list[str] = field(
        default_factory=lambda: ["line", "line_rest", "expression", "block", "comment_code"]
    )
    samples_per_hole: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 128
    max_length: int = 512
    tests: TestsConfig = field(default_factory=TestsConfig)
    seed: int = 7
    threads: int = 0
    tested_holes: str = ""
    """A selection `inkling eval --track exec --split dev` wrote: sample on those holes instead of
    the dataset's, through llama.cpp, and judge the samples by running their tests
    (`training.tested_pairs`); `dataset` is then not read."""
    model_path: str = ""
    """With `tested_holes`: the GGUF that samples, the adapter's model as the server runs it
    (empty: the model the server would load)."""


class _TestRunner:
    def __init__(self, config: TestsConfig) -> None:
        self.config = config
        self.root = Path(expand_path(config.root)) if config.root else None
        self.source = config.source or (self.root.name if self.root else "")
        self.runs = 0
        self.baseline: dict[str, bool] = {}

    def available(self, path: str) -> bool:
        return bool(self.root and self.config.command and path.startswith(self.source + "/"))

    def check(self, path: str, window: str, filled: str) -> bool | None:
        """True/False: the tests pass/fail with `filled` in place of `window`; None: not run."""
        if self.root is None or self.runs >= self.config.max_runs:
            return None
        relative = path[len(self.source) + 1 :]
        try:
            original = (self.root / relative).read_text(encoding="utf-8")
        except OSError:
            return None
        if original.count(window) != 1:
            return None  # scrubbed or windowed beyond recognition: cannot place the sample
        if relative not in self.baseline:
            self.baseline[relative] = self._run(relative, original)
        if not self.baseline[relative]:
            return None  # the tests fail without any change: they say nothing about the sample
        return self._run(relative, original.replace(window, filled))

    def _run(self, relative: str, text: str) -> bool:
        assert self.root is not None
        self.runs += 1
        with tempfile.TemporaryDirectory(prefix="inkling-tests-") as temp:
            copy = Path(temp) / "src"
            shutil.copytree(
                self.root, copy, ignore=shutil.ignore_patterns(".git", "__pycache__"), symlinks=True
            )
            (copy / relative).write_text(text, encoding="utf-8")
            try:
                result = subprocess.run(
                    shlex.split(self.config.command),
                    cwd=copy,
                    capture_output=True,
                    timeout=self.config.timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return False
            return result.returncode == 0


def _sample(
    model: Any, prompt: list[int], stop_ids: list[int], config: PairsConfig, max_new: int
) -> list[list[int]]:
    import torch

    device = next(model.parameters()).device
    input_ids = torch.tensor([prompt], device=device)
    with torch.no_grad():
        output = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=True,
            temperature=config.temperature,
            top_p=config.top_p,
            num_return_sequences=config.samples_per_hole,
            max_new_tokens=max_new,
            eos_token_id=stop_ids,
            pad_token_id=stop_ids[0],
        )
    samples = []
    for sequence in output[:, len(prompt) :].tolist():
        cut = next((i for i, token in enumerate(sequence) if token in stop_ids), len(sequence))
        samples.append(sequence[:cut])
    return samples


def chosen_middle(row: dict[str, Any], verdicts: list[Verdict]) -> tuple[str, str]:
    """(text, source) of a hole's chosen side: the first good sample (`sample` when it matches
    the truth, `tests` when the tests passed it), else the true middle (`truth`)."""
    good = next((v for v in verdicts if v.good), None)
    if good is None:
        return row["middle"], "truth"
    return good.text, "tests" if good.tests_pass and not good.matches else "sample"


def sampling_prompt(
    tokenizer: Any, vocab: Any, row: dict[str, Any], config: PairsConfig
) -> tuple[list[int], int] | None:
    """The hole's prompt as SFT tokenizes it and how many tokens a sample may take (twice the
    truth's and some), or None when the hole does not fit `max_length`."""
    from training.tokens import encode_example

    encoded = encode_example(tokenizer, vocab, row, config.max_length)
    if encoded is None:
        return None
    prompt, truth = encoded
    return prompt, min(config.max_new_tokens, 2 * len(truth) + 16)


def choose_pair(row: dict[str, Any], verdicts: list[Verdict]) -> tuple[str, str, str, list[str]] | None:
    """(chosen, chosen source, rejected, rejected reasons), or None when no sample is bad."""
    rejected = next((v for v in verdicts if v.bad), None)
    if rejected is None:
        return None
    chosen, source = chosen_middle(row, verdicts)
    return chosen, source, rejected.text, rejected.reasons


def make_pairs(config: PairsConfig) -> dict[str, Any]:
    import datasets
    import torch
    from peft import PeftModel

    from training.adapter import check_same_base, is_prefix_last, read_metadata
    from training.base import base_info, load_model, load_tokenizer, resolve_base
    from training.sft import dataset_dir
    from training.tokens import encode_text, fim_vocab

    if config.tested_holes:
        from training.tested_pairs import make_tested_pairs

        if not (config.adapter and config.output):
            raise ConfigError("pairs: adapter and output are required")
        return make_tested_pairs(config)
    if not (config.adapter and config.dataset and config.output):
        raise ConfigError("pairs: adapter, dataset and output are required")
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.monotonic()
    adapter = Path(expand_path(config.adapter))
    metadata = read_metadata(adapter)
    base_path = resolve_base(config.base or metadata["base"]["path"])
    info = base_info(base_path)
    check_same_base(metadata, info, str(adapter))
    tokenizer = load_tokenizer(base_path)
    vocab = fim_vocab(tokenizer, metadata.get("fim_format", "psm"), prefix_last=is_prefix_last(metadata))
    stop_ids = sorted({vocab.stop_id, *(i for i in (vocab.eos_id,) if i is not None)})

    rows = datasets.load_from_disk(str(dataset_dir(config.dataset)))[config.split]
    wanted = set(config.hole_kinds)
    candidates = [
        i
        for i, (kind, hole) in enumerate(zip(rows["kind"], rows["hole"], strict=True))
        if kind != "next_token" and (hole in wanted or kind in wanted)
    ]
    random.Random(config.seed).shuffle(candidates)
    if not candidates:
        raise ConfigError(f"pairs: the {config.split} split has no holes of kinds {sorted(wanted)}")

    # Merged for sampling: the unmerged token rows would be re-merged at every generated token.
    model = PeftModel.from_pretrained(load_model(base_path, "none"), str(adapter)).merge_and_unload()
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
    torch.manual_seed(config.seed)
    tests = _TestRunner(config.tests)
    pairs: list[dict[str, Any]] = []
    verdict_counts: Counter[str] = Counter()
    chosen_sources: Counter[str] = Counter()
    holes = 0
    for index in tqdm(candidates[: config.holes], desc="sampling holes"):
        row = rows[index]
        sampling = sampling_prompt(tokenizer, vocab, row, config)
        if sampling is None:
            continue
        prompt, max_new = sampling
        holes += 1
        verdicts = []
        for ids in _sample(model, prompt, stop_ids, config, max_new):
            text = tokenizer.decode(ids, skip_special_tokens=False)
            verdict = judge(text, row["prefix"], row["middle"], row["suffix"], row["language"])
            if not verdict.bad and not verdict.matches and tests.available(row["path"]):
                window = row["prefix"] + row["middle"] + row["suffix"]
                filled = row["prefix"] + text + row["suffix"]
                outcome = tests.check(row["path"], window, filled)
                if outcome is not None:
                    verdict = Verdict(**{**verdict.__dict__, "tests_pass": outcome})
            verdicts.append(verdict)
            verdict_counts["good" if verdict.good else "bad" if verdict.bad else "unknown"] += 1
            for reason in verdict.reasons:
                verdict_counts[reason] += 1
        pair = choose_pair(row, verdicts)
        if pair is None:
            continue
        chosen, source, rejected, reasons = pair
        if encode_text(tokenizer, chosen) == encode_text(tokenizer, rejected):
            continue
        chosen_sources[source] += 1
        pairs.append(
            {
                **row,
                "chosen": chosen,
                "chosen_source": source,
                "rejected": rejected,
                "rejected_reasons": ",".join(reasons),
            }
        )

    seconds = time.monotonic() - started
    report = {
        "adapter": str(adapter),
        "split": config.split,
        "holes": holes,
        "samples": holes * config.samples_per_hole,
        "verdicts": dict(verdict_counts),
        "pairs": len(pairs),
        "chosen_from": dict(chosen_sources),
        "test_runs": tests.runs,
        "seconds": round(seconds, 1),
        "seconds_per_hole": round(seconds / max(1, holes), 2),
    }
    return save_pairs(config.output, pairs, report, f"{holes} holes (no sample was judged bad)")


def save_pairs(
    output: str, pairs: list[dict[str, Any]], report: dict[str, Any], made_from: str
) -> dict[str, Any]:
    """`<output>/pairs` (the dataset DPO reads) and `pairs_report.json`; with no pair, the
    report is still written and the run fails, saying what the pairs were to be made from."""
    import datasets

    directory = Path(expand_path(output))
    directory.mkdir(parents=True, exist_ok=True)
    if pairs:
        datasets.Dataset.from_list(pairs).save_to_disk(str(directory / "pairs"))
    (directory / "pairs_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not pairs:
        raise ConfigError(f"pairs: no pair could be made from {made_from}")
    return report
