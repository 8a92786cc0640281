"""Several candidates for a whole line, decoded side by side and judged by the code below.

Asked for a whole new line, greedy decoding commits to its first token, and
a small model's first choice is often the wrong statement. Here the engine
branches after the forced text (healed indentation) into one llama.cpp
sequence per candidate, each starting with one of the most likely first
tokens and continued greedily. The line is also lost further in (a list of
terms ended one term early, `additionalProperties: {}` for `false`): with
forks, a candidate also branches where its next token is a near tie. One
batch per step advances all of them, and the unified KV cache lets them
share the prompt's cells. Each candidate is post-processed as the pipeline
would (`finalize`), then judged by its own log-probability plus that of the
lines that follow the hole, read after it: the model itself says which line
leads into the code below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from lsp_server.decoding import Branch, log_probability, next_token, other_first_tokens, tokens_on_this_line
from lsp_server.generator import INCOMPLETE, Candidate, GenerationRequest

if TYPE_CHECKING:
    from lsp_server.llama_model import LlamaModel

JUDGED_TOKENS = 32
"""Most tokens of the text after the hole that judge a candidate."""

FORK_MARGIN = 1.0
"""A candidate forks (`GenerationRequest.forks`) where the runner-up token's logit is
within this of the chosen one's: a near tie, which greedy decoding settles by a hair."""


class Cancel(Protocol):
    """What ranking needs of the engine's cancel token."""

    @property
    def cancelled(self) -> bool: ...


def sure_of_the_start(model: LlamaModel, request: GenerationRequest, logits: npt.NDArray[np.float32]) -> bool:
    """Whether the greedy line is written alone: its first token takes at least `rank_below`
    of the probability the candidates' first tokens share. The other candidates start with
    tokens the model gives little chance, they seldom win, and ranking them costs a whole
    line's time or more. Shares, not probabilities: on a blank line much of the mass goes
    to ending the line or the completion, which no candidate starts with."""
    if request.rank_below >= 1.0:
        return False
    firsts = tokens_on_this_line(model, logits, request.stop_token_ids, request.candidates)
    if not firsts:
        return False
    chosen = logits[firsts].astype(np.float64)
    weights = np.exp(chosen - chosen.max())
    return bool(weights[0] / weights.sum() >= request.rank_below)


def rank(
    model: LlamaModel,
    request: GenerationRequest,
    cancel: Cancel,
    trunk: Branch,
    logits: npt.NDArray[np.float32],
    written: Sequence[int],
    prompt_length: int,
) -> tuple[Branch, tuple[Candidate, ...]]:
    """Branch `trunk` (sequence 0, decoded up to its position) into candidates and return
    the best one and all of them; a branch whose `reason` is "cancelled" if cancelled.
    Leaves the other sequences' cells in the cache: the caller drops them."""
    firsts = tokens_on_this_line(model, logits, request.stop_token_ids, request.candidates)
    first_logprobs = [log_probability(logits, token) for token in firsts]  # `logits` is gone after a decode
    branches: list[Branch] = []
    for seq, token in enumerate(firsts):
        branch = trunk.fork(seq)
        if seq:
            model.seq_copy(0, seq)
        branch.take(model, request, token, logits)
        branches.append(branch)
    if not branches:
        trunk.reason = "eos"
        return trunk, ()
    live = [b for b in branches if b.reason is None]
    forks = request.forks
    while live:
        if cancel.cancelled:
            trunk.reason = "cancelled"
            return trunk, ()
        model.decode_each([(b.tokens[-1], b.position, b.seq) for b in live])
        forked: list[Branch] = []
        for index, branch in enumerate(live):
            branch.position += 1
            row = model.logits_ith(index)
            chosen = next_token(model, row, request, branch.text, branch.tokens, written)
            other = _near_tie(model, row, chosen) if forks and chosen is not None else None
            if other is not None:
                twin = branch.fork(len(branches))
                model.seq_copy(branch.seq, twin.seq)
                twin.take(model, request, other, row)
                branches.append(twin)
                forked.append(twin)
                forks -= 1
            branch.take(model, request, chosen, row)
        live = [b for b in live + forked if b.reason is None]
    if cancel.cancelled:
        trunk.reason = "cancelled"
        return trunk, ()
    candidates = _judge(model, request, branches, prompt_length)
    candidates = tuple(
        replace(candidate, first_logprob=first_logprobs[number])
        if number < len(first_logprobs)
        else candidate
        for number, candidate in enumerate(candidates)
    )
    usable = [i for i, c in enumerate(candidates) if c.final]
    best = max(usable, key=lambda i: (candidates[i].score, -i)) if usable else 0
    return branches[best], candidates


def branch_alternatives(
    model: LlamaModel,
    request: GenerationRequest,
    cancel: Cancel,
    trunk: Branch,
    logits: npt.NDArray[np.float32],
    written: Sequence[int],
    sequences: int,
) -> tuple[Branch, tuple[Candidate, ...]]:
    """Branch `trunk` (sequence 0, decoded up to where the rule chooses) into the rule's own
    token, the answer, and up to `request.alternatives` others (`other_first_tokens`), each
    continued by the rule. The answer is decoded alone first, as greedy decoding writes it:
    a batch's arithmetic differs in the last bits and can settle a near tie the other way
    (it did on 1 of 40 held-out holes), and the answer must be the one a request made while
    typing gets. The alternatives follow side by side, at most `sequences` at a time (one:
    in turn); where the output layer dominates (a 262k vocabulary on a CPU) this costs
    about what decoding all of them in one batch would. Returns the answer's branch and
    every candidate, the answer's first, unjudged (`score` is the log-probability of what
    each wrote); a branch whose `reason` is "cancelled" if cancelled. Leaves their cells in
    the cache: the caller drops them."""
    chosen = next_token(model, logits, request, trunk.text, trunk.tokens, written)
    firsts = [chosen, *other_first_tokens(model, logits, request, trunk.text, chosen, request.alternatives)]
    first_logprobs = [0.0 if token is None else log_probability(logits, token) for token in firsts]
    branches: list[Branch] = []
    for token in firsts:  # all before any decode: `logits` is gone after one
        branch = trunk.fork(0)
        branch.score_tokens = True
        branch.take(model, request, token, logits)
        branches.append(branch)
    sequences = max(1, sequences)
    groups = [branches[:1]] + [branches[i : i + sequences] for i in range(1, len(branches), sequences)]
    for number, group in enumerate(groups):
        if number:
            _back_to_trunk(model, trunk.position, sequences)
        for seq, branch in enumerate(group):
            branch.seq = seq
            if seq:
                model.seq_copy(0, seq)
        if not _decode_side_by_side(model, request, cancel, group, written):
            trunk.reason = "cancelled"
            return trunk, ()
    candidates = tuple(
        _unjudged(request, branch, first_logprob, offered=number == 0 or branch.reason != "budget")
        for number, (branch, first_logprob) in enumerate(zip(branches, first_logprobs, strict=True))
    )
    return branches[0], candidates


def _back_to_trunk(model: LlamaModel, trunk_end: int, sequences: int) -> None:
    """Drop what the last group of branches decoded: sequence 0 keeps the trunk only."""
    model.kv_remove(trunk_end, -1, 0)
    for seq in range(1, sequences):
        model.kv_remove(0, -1, seq)


def _decode_side_by_side(
    model: LlamaModel, request: GenerationRequest, cancel: Cancel, group: list[Branch], written: Sequence[int]
) -> bool:
    """Advance every branch of `group` by the rule, one batch a step, until all have ended;
    False if cancelled."""
    live = [b for b in group if b.reason is None]
    while live:
        if cancel.cancelled:
            return False
        model.decode_each([(b.tokens[-1], b.position, b.seq) for b in live])
        for index, branch in enumerate(live):
            branch.position += 1
            row = model.logits_ith(index)
            branch.take(
                model, request, next_token(model, row, request, branch.text, branch.tokens, written), row
            )
        live = [b for b in live if b.reason is None]
    return not cancel.cancelled


def _unjudged(
    request: GenerationRequest, branch: Branch, first_logprob: float, *, offered: bool
) -> Candidate:
    """A branch as a candidate; not `offered`: nothing to insert (an alternative the time
    budget cut short, which would show the user half a line)."""
    reason = branch.reason or "eos"
    final = branch.text
    if request.finalize is not None:
        final = request.finalize(branch.text, reason not in INCOMPLETE) or ""
    final = final if offered else ""
    return Candidate(branch.text, final, branch.logprob, 0.0, reason, len(branch.tokens), 0, first_logprob)


def _near_tie(model: LlamaModel, logits: npt.NDArray[np.float32], chosen: int) -> int | None:
    """The runner-up to `chosen` (the most likely token) if it is a near tie and a real
    alternative: not the same text split otherwise (one piece the start of the other)."""
    top = np.argpartition(logits, -2)[-2:]
    other = int(top[0]) if int(top[1]) == chosen else int(top[1])
    if other == chosen or logits[chosen] - logits[other] > FORK_MARGIN:
        return None
    mine, theirs = model.token_piece(chosen), model.token_piece(other)
    if mine.startswith(theirs) or theirs.startswith(mine):
        return None
    return other


def _judge(
    model: LlamaModel, request: GenerationRequest, branches: list[Branch], prompt_length: int
) -> tuple[Candidate, ...]:
    """Each candidate's score for the text after the hole, all candidates in shared batches."""
    finals: list[str] = []
    items: list[tuple[int, int, int]] = []
    wanted: list[tuple[int, int, int]] = []  # (item index, branch, token it predicts)
    for number, branch in enumerate(branches):
        assert branch.reason is not None
        final = branch.text
        if request.finalize is not None:
            final = request.finalize(branch.text, branch.reason not in INCOMPLETE) or ""
        finals.append(final)
        if not final or not request.judged_text:
            continue
        own = model.tokenize(final)
        both = model.tokenize(final + request.judged_text)
        after = both[len(own) :] if both[: len(own)] == own else model.tokenize(request.judged_text)
        after = after[:JUDGED_TOKENS]
        if not own or not after:
            continue
        decoded = branch.tokens[: branch.position - prompt_length]  # their cells are in the cache
        keep = min(_common_prefix(own, decoded), len(own) - 1)
        model.kv_remove(prompt_length + keep, -1, branch.seq)
        evaluate = [*own[keep:], *after[:-1]]
        first_judging = len(own) - 1 - keep  # the item after which the text after the hole starts
        for offset, token in enumerate(evaluate):
            if offset >= first_judging:
                wanted.append((len(items), number, after[offset - first_judging]))
            items.append((token, prompt_length + keep + offset, branch.seq))
    judged = [0.0] * len(branches)
    judged_tokens = [0] * len(branches)
    for _, number, _ in wanted:
        judged_tokens[number] += 1
    wanted_by_item = {item: (number, token) for item, number, token in wanted}
    for start, end in _batches(len(items), sorted(wanted_by_item), model.n_batch):
        outputs = [i - start for i in range(start, end) if i in wanted_by_item]
        model.decode_each(items[start:end], outputs=outputs or [end - start - 1])
        for i in outputs:
            number, token = wanted_by_item[start + i]
            judged[number] += log_probability(model.logits_ith(i), token)
    return tuple(
        Candidate(
            branch.text,
            final,
            branch.logprob,
            judged[number],
            branch.reason or "eos",
            len(branch.tokens),
            judged_tokens[number],
        )
        for number, (branch, final) in enumerate(zip(branches, finals, strict=True))
    )


OUTPUTS_PER_BATCH = 16
"""llama.cpp sizes its logits buffer for the most outputs a batch asked for, and keeps it:
at 262k entries a row, 16 rows are 16 MiB where a whole batch of 128 would be 128 MiB."""


def _batches(count: int, outputs: Sequence[int], size: int) -> list[tuple[int, int]]:
    """[start, end) runs of `count` items, at most `size` items and OUTPUTS_PER_BATCH of the
    (sorted) `outputs` each."""
    runs: list[tuple[int, int]] = []
    start = 0
    while start < count:
        end = min(count, start + size)
        inside = [i for i in outputs if start <= i < end]
        if len(inside) > OUTPUTS_PER_BATCH:
            end = inside[OUTPUTS_PER_BATCH]  # the first output that does not fit
        runs.append((start, end))
        start = end
    return runs


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count
