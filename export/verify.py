"""Does a quantized export still behave like the model it was made from?

Both files are loaded by llama.cpp (the runtime that serves them). Probe
prompts are cut from held-out code and built by the server's own prompt code
(the model's template: FIM when it has FIM tokens). For each probe the
reference (unquantized) model writes its greedy continuation; both models
are then fed the same prompt and continuation and their top-1 tokens are
compared at every position (teacher-forced agreement: one early
disagreement does not make the rest of the sequence count as wrong). A probe
whose every position agrees means the candidate's own greedy output is
identical.
Perplexity is measured on the same held-out code, before and after.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from lsp_server.context import build_context
from lsp_server.languages import language_for_path
from lsp_server.llama_model import LlamaModel
from lsp_server.prompt import Budget, build_prompt
from lsp_server.templates import detect_template

N_CTX = 2048
N_BATCH = 128
PROBE_BUDGET = Budget(prefix_tokens=384, suffix_tokens=128, n_ctx=N_CTX, reserve=64)
PERPLEXITY_WINDOW = 512
DECISIVE_MARGIN = 1.0
MIN_PERPLEXITY_TOKENS = 32


@dataclass(frozen=True)
class VerifyConfig:
    heldout: tuple[Path, ...]
    probes: int = 48
    new_tokens: int = 24
    perplexity_chunks: int = 8
    threads: int = 2


@dataclass
class ModelScore:
    path: str
    size_bytes: int
    perplexity: float
    seconds: float
    token_agreement: float | None = None
    """Share of continuation positions where this model's top-1 token equals the reference's."""
    sequence_agreement: float | None = None
    """Share of probes where it agrees at every position (its greedy continuation is the same)."""
    decisive_agreement: float | None = None
    """Token agreement at the positions where the reference's top-1 leads its runner-up by at
    least DECISIVE_MARGIN logits (a diagnostic: near-ties flip on any change of arithmetic)."""
    decisive_share: float | None = None
    perplexity_ratio: float | None = None
    lora: str = ""
    """The LoRA file the model applies on load (its size is in `size_bytes`)."""


@dataclass
class VerifyReport:
    reference: ModelScore
    candidates: list[ModelScore]
    probes: int
    continuation_tokens: int
    perplexity_tokens: int
    template: str
    heldout_files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def table(self) -> str:
        rows = [
            "| model | size MiB | token agreement | same continuation | agreement where decisive "
            "| perplexity |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for score in [self.reference, *self.candidates]:
            agree = "reference" if score.token_agreement is None else f"{score.token_agreement:.1%}"
            same = "" if score.sequence_agreement is None else f"{score.sequence_agreement:.1%}"
            decisive = (
                ""
                if score.decisive_agreement is None
                else f"{score.decisive_agreement:.1%} of {score.decisive_share:.0%}"
            )
            name = Path(score.path).name + (f" + {Path(score.lora).name}" if score.lora else "")
            rows.append(
                f"| {name} | {score.size_bytes / 2**20:.1f} | {agree} | {same} | {decisive} "
                f"| {score.perplexity:.3f} |"
            )
        return "\n".join(rows)


def _open(path: Path, threads: int) -> LlamaModel:
    return LlamaModel(path, n_ctx=N_CTX, n_threads=threads, n_batch=N_BATCH)


def heldout_texts(files: Sequence[Path]) -> list[tuple[str, str]]:
    texts = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            texts.append((str(path), text))
    if not texts:
        raise ValueError("verification needs at least one non-empty held-out code file")
    return texts


def probe_positions(texts: Sequence[tuple[str, str]], count: int) -> Iterator[tuple[str, str, int]]:
    """Cursor positions spread evenly over the files: the middle of a non-blank line's code."""
    lines = []
    for path, text in texts:
        start = 0
        for line in text.splitlines(keepends=True):
            code = line.strip()
            if len(code) >= 8:
                indent = len(line) - len(line.lstrip())
                lines.append((path, text, start + indent + len(code) // 2))
            start += len(line)
    if not lines:
        return
    step = max(1, len(lines) // count)
    for index in range(0, len(lines), step)[:count]:
        yield lines[index]


def build_probes(model: LlamaModel, texts: Sequence[tuple[str, str]], count: int) -> list[list[int]]:
    template = detect_template(model)
    probes = []
    for path, text, offset in probe_positions(texts, count):
        context = build_context(text, offset, language_for_path(path))
        probes.append(build_prompt(context, template, model, PROBE_BUDGET, path=Path(path).name).tokens)
    return probes


STOP = -1
"""Stands for any end-of-generation or control token in a continuation."""


def _logit_batches(
    model: LlamaModel, tokens: Sequence[int], first: int = 0
) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
    """Evaluate `tokens` from position 0; yields (position, logits) for the batches that
    reach position `first`, keeping at most one batch of 262k-wide rows in memory."""
    model.kv_clear()
    for start in range(0, len(tokens), model.n_batch):
        chunk = tokens[start : start + model.n_batch]
        skip = max(0, first - start)
        if skip >= len(chunk):
            model.decode(chunk, start)
            continue
        model.decode(chunk, start, logits_from=skip)
        yield start + skip, model.batch_logits(len(chunk) - skip)


def _as_stop(model: LlamaModel, token: int) -> int:
    return STOP if model.is_eog(token) or model.is_control(token) else token


def greedy(model: LlamaModel, prompt: Sequence[int], new_tokens: int) -> list[int]:
    """The greedy continuation; ends with STOP when the model stopped by itself."""
    for _ in _logit_batches(model, prompt, len(prompt) - 1):
        pass
    out: list[int] = []
    for _ in range(new_tokens):
        token = _as_stop(model, int(model.last_logits().argmax()))
        out.append(token)
        if token == STOP:
            break
        model.decode([token], len(prompt) + len(out) - 1)
    return out


def forced_predictions(model: LlamaModel, prompt: Sequence[int], continuation: Sequence[int]) -> list[int]:
    """The top-1 token at each continuation position, with the reference's tokens fed in."""
    return _forced(model, prompt, continuation)[0]


def _forced(
    model: LlamaModel, prompt: Sequence[int], continuation: Sequence[int]
) -> tuple[list[int], list[float]]:
    """Top-1 tokens and their lead over the runner-up (in logits) at each continuation position."""
    fed = [*prompt, *continuation[:-1]]  # STOP can only be the last token
    predicted: list[int] = []
    margins: list[float] = []
    for _, rows in _logit_batches(model, fed, len(prompt) - 1):
        top2 = np.partition(rows, -2, axis=1)[:, -2:]
        margins += (top2[:, 1] - top2[:, 0]).tolist()
        predicted += [_as_stop(model, int(row.argmax())) for row in rows]
    return predicted, margins


def perplexity_chunks(model: LlamaModel, texts: Sequence[tuple[str, str]], count: int) -> list[list[int]]:
    tokens: list[int] = []
    for _, text in texts:
        tokens += model.tokenize(text)
    bos = [model.bos_id] if model.add_bos and model.bos_id >= 0 else []
    size = PERPLEXITY_WINDOW - len(bos)
    windows = [tokens[i : i + size] for i in range(0, len(tokens), size)]
    return [bos + window for window in windows if len(window) >= MIN_PERPLEXITY_TOKENS][:count]


def perplexity(model: LlamaModel, chunks: Sequence[Sequence[int]]) -> tuple[float, int]:
    total, count = 0.0, 0
    for chunk in chunks:
        for position, rows in _logit_batches(model, chunk[:-1]):
            for offset, row in enumerate(rows):
                target = chunk[position + offset + 1]
                top = float(row.max())
                log_z = top + math.log(float(np.exp(row.astype(np.float64) - top).sum()))
                total += log_z - float(row[target])
                count += 1
    return (math.exp(total / count) if count else float("nan")), count


def verify(reference: Path, candidates: Sequence[Path], config: VerifyConfig) -> VerifyReport:
    texts = heldout_texts(config.heldout)
    started = time.perf_counter()
    model = _open(reference, config.threads)
    try:
        template = detect_template(model).family
        vocabulary = [model.token_text(t) for t in range(0, model.n_vocab, max(1, model.n_vocab // 512))]
        probes = build_probes(model, texts, config.probes)
        chunks = perplexity_chunks(model, texts, config.perplexity_chunks)
        continuations = [greedy(model, p, config.new_tokens) for p in tqdm(probes, desc="reference probes")]
        # Compared like for like: llama.cpp's batched and token-by-token evaluations differ in
        # the last bits, enough to flip near-ties, so both models are scored on the same batches.
        forced = [_forced(model, p, c) for p, c in zip(probes, continuations, strict=True)]
        expected = [predicted for predicted, _ in forced]
        decisive = [[m >= DECISIVE_MARGIN for m in margins] for _, margins in forced]
        ref_ppl, n_tokens = perplexity(model, chunks)
        ref_score = ModelScore(
            str(reference), reference.stat().st_size, ref_ppl, time.perf_counter() - started
        )
    finally:
        model.close()
    scores = []
    for path in candidates:
        started = time.perf_counter()
        model = _open(path, config.threads)
        try:
            sample = [model.token_text(t) for t in range(0, model.n_vocab, max(1, model.n_vocab // 512))]
            if sample != vocabulary:
                raise ValueError(f"{path} has another vocabulary than {reference}: they cannot be compared")
            agree = total = same = agree_decisive = total_decisive = 0
            for prompt, continuation, wanted, clear in tqdm(
                list(zip(probes, continuations, expected, decisive, strict=True)), desc=f"probes {path.name}"
            ):
                predicted = forced_predictions(model, prompt, continuation)
                hits = [p == e for p, e in zip(predicted, wanted, strict=True)]
                agree += sum(hits)
                total += len(wanted)
                same += sum(hits) == len(wanted)
                agree_decisive += sum(h for h, c in zip(hits, clear, strict=True) if c)
                total_decisive += sum(clear)
            ppl, _ = perplexity(model, chunks)
            lora = model.lora
        finally:
            model.close()
        scores.append(
            ModelScore(
                str(path),
                path.stat().st_size + (lora.stat().st_size if lora else 0),
                ppl,
                time.perf_counter() - started,
                token_agreement=agree / total if total else float("nan"),
                sequence_agreement=same / len(probes) if probes else float("nan"),
                decisive_agreement=agree_decisive / total_decisive if total_decisive else float("nan"),
                decisive_share=total_decisive / total if total else float("nan"),
                perplexity_ratio=ppl / ref_ppl if ref_ppl else None,
                lora=str(lora or ""),
            )
        )
    return VerifyReport(
        ref_score,
        scores,
        probes=len(probes),
        continuation_tokens=sum(len(c) for c in continuations),
        perplexity_tokens=n_tokens,
        template=template,
        heldout_files=[path for path, _ in texts],
    )


def write_report(report: VerifyReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
