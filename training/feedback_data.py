"""`inkling train pairs --from-feedback [FILE|state]`: training data from recorded feedback.

The server's opt-in feedback store (`lsp_server.feedback`, `recordFeedback`)
keeps each offered completion with the code around it and its outcome. From
those records:

* SFT examples: the accepted completions (by the item's command or typed out in
  full), as FIM examples in the columns `inkling train prepare` writes, so that
  `inkling train sft` takes them as its dataset and mixes first-stage data back
  in with `replay_dataset` / `replay_share`, as the second-stage recipes do;
  optionally (`sft_from_typed`) also what users typed instead of a completion.
* Preference pairs, in the columns `inkling train dpo` reads: for a rejected or
  partly typed completion, what the user typed there instead (chosen) over what
  was offered (rejected); and an accepted completion over another completion
  offered for the same context that was not.

The records were scrubbed when they were written; they are scrubbed again here
(the scrubber may have learnt more since). Whitespace at the end of a prefix
moves into the middle, as in every training example (the server heals it).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_server.scrub import scrub
from training.config import ConfigError, expand_path

COLUMNS = (
    "path",
    "language",
    "kind",
    "hole",
    "order",
    "prefix",
    "suffix",
    "middle",
    "ends_file",
    "context_path",
    "context",
)
"""The example columns of `inkling train prepare` (training/data/prepare.py)."""
SPLITS = ("train", "validation", "test")


@dataclass
class FeedbackPairsConfig:
    source: str = "state"
    """'state': the feedback database in Inkling's state directory ($INKLING_STATE moves it);
    else a file: `inkling feedback export` JSON lines, or a feedback .sqlite3 database."""
    output: str = ""
    validation_share: float = 0.1
    """Share of the files whose records become validation examples (by a hash of the file name);
    with one file, that share of its examples (at least one, from two examples on)."""
    sft_from_typed: bool = False
    """Also SFT examples from what users typed instead of a completion (complete lines only)."""
    empty_chosen: bool = True
    """Pairs whose chosen side is empty: the user ended the line (or block) where the completion
    went on (a completion offered where nothing was wanted)."""
    order: str = ""
    """FIM order of the examples: psm | spm; empty: the order each was served in (spm for a
    prompt without FIM tokens)."""
    max_middle_chars: int = 2000
    max_pairs: int = 0
    """0: all."""
    max_sft: int = 0
    """0: all."""
    seed: int = 7

    def __post_init__(self) -> None:
        if self.order not in ("", "psm", "spm"):
            raise ConfigError(f"order must be psm, spm or empty, not {self.order!r}")
        if not 0 <= self.validation_share < 1:
            raise ConfigError("validation_share must be in [0, 1)")


def read_records(source: str) -> Iterator[dict[str, Any]]:
    """Feedback records from the state directory's database, a database file, or JSON lines."""
    from lsp_server.feedback import FeedbackStore, feedback_path

    path = feedback_path() if source in ("", "state") else Path(expand_path(source))
    if not path.is_file():
        raise ConfigError(f"no feedback at {path} (record some with --record-feedback, or export a file)")
    with path.open("rb") as handle:
        is_sqlite = handle.read(16) == b"SQLite format 3\x00"
    if is_sqlite:
        store = FeedbackStore(path)
        try:
            yield from store.records()
        finally:
            store.close()
        return
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{number}: not a JSON record ({exc})") from exc
            if not isinstance(record, dict) or "outcome" not in record or "completion" not in record:
                raise ConfigError(f"{path}:{number}: not a feedback record (no outcome or completion)")
            yield record


def _order(record: dict[str, Any], config: FeedbackPairsConfig) -> str:
    if config.order:
        return config.order
    served = record.get("prompt_order") or ""
    return served if served in ("psm", "spm") else "spm"


def _base_row(record: dict[str, Any], config: FeedbackPairsConfig) -> tuple[dict[str, Any], str]:
    """The example row around the record's place (without its middle), and the whitespace
    moved from the end of the prefix, which every middle starts with."""
    prefix = scrub(str(record.get("prefix") or ""))
    kept = prefix.rstrip(" \t")
    row = {
        "path": "feedback/" + (str(record.get("file") or "") or "buffer"),
        "language": str(record.get("language") or ""),
        "kind": "fim",
        "hole": "feedback",
        "order": _order(record, config),
        "prefix": kept,
        "suffix": scrub(str(record.get("suffix") or "")),
        "middle": "",
        "ends_file": False,
        "context_path": "",
        "context": "[]",
    }
    return row, prefix[len(kept) :]


def _typed_instead(record: dict[str, Any]) -> str | None:
    """What the user typed where a completion was rejected or partly typed, when it is all there."""
    if record.get("outcome") not in ("rejected", "partial") or not record.get("typed_complete"):
        return None
    typed = str(record.get("typed") or "")
    completion = str(record.get("completion") or "")
    if typed == completion or typed.startswith(completion):
        return None
    return typed


def build(records: Iterable[dict[str, Any]], config: FeedbackPairsConfig) -> dict[str, Any]:
    """SFT rows per split, pair rows, and counts."""
    sft: list[tuple[str, dict[str, Any]]] = []
    pairs: list[dict[str, Any]] = []
    seen_sft: set[tuple[str, str, str]] = set()
    seen_pairs: set[tuple[str, str, str, str]] = set()
    outcomes: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    by_context: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any], str]]] = {}

    def add_sft(row: dict[str, Any], middle: str, file: str) -> None:
        key = (row["prefix"], row["suffix"], middle)
        if key in seen_sft:
            skipped["duplicate example"] += 1
            return
        seen_sft.add(key)
        sft.append((file, {**row, "middle": middle}))

    def add_pair(row: dict[str, Any], chosen: str, rejected: str, source: str, reason: str) -> None:
        if chosen == rejected:
            return
        if not chosen.strip() and not config.empty_chosen:
            skipped["empty chosen"] += 1
            return
        key = (row["prefix"], row["suffix"], chosen, rejected)
        if key in seen_pairs:
            skipped["duplicate pair"] += 1
            return
        seen_pairs.add(key)
        pairs.append(
            {
                **row,
                "middle": chosen,
                "chosen": chosen,
                "chosen_source": source,
                "rejected": rejected,
                "rejected_reasons": reason,
            }
        )

    for record in records:
        outcome = str(record.get("outcome") or "")
        outcomes[outcome] += 1
        completion = scrub(str(record.get("completion") or ""))
        if not completion or len(completion) > config.max_middle_chars:
            skipped["empty or long completion"] += 1
            continue
        row, moved = _base_row(record, config)
        file = row["path"]
        by_context.setdefault((row["prefix"], row["suffix"]), []).append((record, row, moved + completion))
        if outcome == "accepted":
            add_sft(row, moved + completion, file)
            continue
        typed = _typed_instead(record)
        if typed is None:
            skipped[f"{outcome}: nothing typed instead"] += 1
            continue
        typed = scrub(typed)
        if len(typed) > config.max_middle_chars:
            skipped["long typed text"] += 1
            continue
        add_pair(row, moved + typed, moved + completion, "typed", f"{outcome}:{record.get('reason', '')}")
        if config.sft_from_typed and typed:
            add_sft(row, moved + typed, file)
    for offers in by_context.values():
        accepted = [middle for record, _, middle in offers if record.get("outcome") == "accepted"]
        for record, row, middle in offers:
            if record.get("outcome") != "accepted":
                for chosen in dict.fromkeys(accepted):
                    add_pair(row, chosen, middle, "accepted", f"{record.get('outcome')}:same context")

    rng = random.Random(config.seed)
    rng.shuffle(pairs)
    rng.shuffle(sft)
    available = {"pairs": len(pairs), "sft_examples": len(sft)}
    if config.max_pairs:
        pairs = pairs[: config.max_pairs]
    if config.max_sft:
        sft = sft[: config.max_sft]
    files = sorted({file for file, _ in sft})
    held = set()
    if len(files) >= 2 and config.validation_share > 0:
        held = {f for f in files if _share(f, config.seed) < config.validation_share}
        if len(held) == len(files):
            held.discard(files[0])
    splits: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for file, row in sft:
        splits["validation" if file in held else "train"].append(row)
    if not splits["validation"] and len(splits["train"]) >= 2 and config.validation_share > 0:
        # One file only: a share of its rows (trl refuses an empty validation set).
        count = max(1, int(len(splits["train"]) * config.validation_share))
        splits["validation"] = splits["train"][-count:]
        splits["train"] = splits["train"][:-count]
    return {
        "splits": splits,
        "pairs": pairs,
        "outcomes": dict(outcomes),
        "skipped": dict(skipped),
        "chosen_from": dict(Counter(p["chosen_source"] for p in pairs)),
        "available": available,
    }


def _share(file: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{file}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def make_feedback_data(config: FeedbackPairsConfig) -> dict[str, Any]:
    """Write <output>/dataset (SFT examples), <output>/pairs (preference pairs) and
    <output>/pairs_report.json; returns the report."""
    import datasets

    if not config.output:
        raise ConfigError("pairs --from-feedback: output is required (--set output=DIR)")
    started = time.monotonic()
    built = build(read_records(config.source), config)
    output = Path(expand_path(config.output))
    output.mkdir(parents=True, exist_ok=True)
    features = datasets.Features(
        {name: datasets.Value("bool" if name == "ends_file" else "string") for name in COLUMNS}
    )
    dataset = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                {name: [row[name] for row in rows] for name in COLUMNS}, features=features
            )
            for split, rows in built["splits"].items()
        }
    )
    # One shard per split: datasets cannot load back an empty split saved in zero shards.
    dataset.save_to_disk(str(output / "dataset"), num_shards=dict.fromkeys(SPLITS, 1))
    if built["pairs"]:
        datasets.Dataset.from_list(built["pairs"]).save_to_disk(str(output / "pairs"))
    report = {
        "source": config.source,
        "records": sum(built["outcomes"].values()),
        "outcomes": built["outcomes"],
        "sft_examples": {split: len(rows) for split, rows in built["splits"].items()},
        "pairs": len(built["pairs"]),
        "chosen_from": built["chosen_from"],
        "available_before_caps": built["available"],
        "skipped": built["skipped"],
        "seconds": round(time.monotonic() - started, 1),
    }
    (output / "pairs_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not built["pairs"] and not any(built["splits"].values()):
        raise ConfigError(f"pairs --from-feedback: nothing to train on in {report['records']} records")
    return report
