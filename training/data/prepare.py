"""`inkling train prepare`: sources -> filtered, deduplicated, scrubbed files ->
split by file -> FIM / comment-to-code / next-token examples -> a `datasets`
DatasetDict on disk, with a stats report (stats.json) and the file list of
each split (files.json).
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lsp_server.corpora import held_out
from lsp_server.scrub import ScrubReport, scrub
from training.config import ConfigError, expand_path, to_dict
from training.data.context import RepositoryContext
from training.data.dedup import DedupConfig, duplicates
from training.data.examples import ExampleConfig, examples_for_file
from training.data.filters import FilterConfig, detect_language, rejection
from training.data.sources import (
    SourceConfig,
    SourceFile,
    iter_source,
    source_details,
    source_name,
    source_root,
)
from training.data.split import Exclusions, split_of

SPLITS = ("train", "validation", "test")


@dataclass
class PrepareConfig:
    sources: list[SourceConfig] = field(default_factory=list)
    output: str = ""
    """Directory for dataset/, stats.json and files.json."""
    filters: FilterConfig = field(default_factory=FilterConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    scrub: bool = True
    validation_share: float = 0.05
    test_share: float = 0.05
    split_salt: str = ""
    """Changing it reshuffles the split; keep it fixed across runs that are compared."""
    exclude: list[str] = field(default_factory=list)
    """Paths or globs kept out of every split (benchmarks, the evaluation's test files)."""
    exclude_lists: list[str] = field(default_factory=list)
    """Files with one path or glob a line, for the same purpose."""
    exclude_evaluation_test: bool = True
    """Leave out the files `inkling eval` holds out for testing (`lsp_server.corpora.held_out`): any
    file with the content of one of them, and, for a source named like its corpus (e.g. `python-stdlib`),
    every file whose path is a test key (other versions of those files too)."""
    examples: ExampleConfig = field(default_factory=ExampleConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.validation_share < 1 or not 0 <= self.test_share < 1:
            raise ConfigError("validation_share and test_share must be in [0, 1)")
        if self.validation_share + self.test_share >= 1:
            raise ConfigError("validation_share + test_share must leave room for training")


@dataclass
class _File:
    path: str
    text: str
    language: str
    origin: str


def _percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p10": pick(0.1), "p50": pick(0.5), "p90": pick(0.9), "mean": round(statistics.fmean(values), 1)}


def _dataset(datasets: Any, rows: list[dict[str, Any]], columns: tuple[str, ...], features: Any) -> Any:
    # An empty split still needs its columns (from_list([]) would have none).
    return datasets.Dataset.from_dict(
        {name: [row[name] for row in rows] for name in columns}, features=features
    )


def _contexts(
    files: list[_File], splits: Mapping[str, str], config: ExampleConfig, progress: bool
) -> dict[str, RepositoryContext]:
    """Project context per split: training examples see training files only, the others
    every kept file (as a user's whole repository would be)."""
    if config.context_share <= 0 and config.holes.get("crossfile", 0) <= 0:
        return {}
    with tqdm(total=2, desc="indexing sources for project context", disable=not progress) as bar:
        train = RepositoryContext(
            ((f.path, f.text) for f in files if splits[f.path] == "train"), config.context_tokens
        )
        bar.update()
        every = RepositoryContext(((f.path, f.text) for f in files), config.context_tokens)
        bar.update()
    return {"train": train, "validation": every, "test": every}


def _drop_reason(
    item: SourceFile,
    language: str | None,
    config: PrepareConfig,
    exclusions: Exclusions,
    evaluation_test: Callable[[str, str | None], bool] | None,
) -> str | None:
    """Why a file from a source is not used (None: it is)."""
    inner = item.path.split("/", 1)[-1]
    if exclusions.matches(item.path, inner, item.location, item.path.split("#", 1)[0]):
        return "excluded"
    if evaluation_test is not None and evaluation_test(item.path.split("#", 1)[0], item.text):
        return "evaluation test"
    return rejection(item.path, item.text, language, config.filters)


def _read(
    source: SourceConfig,
    config: PrepareConfig,
    exclusions: Exclusions,
    evaluation_test: Callable[[str, str | None], bool] | None,
    progress: bool,
) -> tuple[list[_File], Counter[str]]:
    """A source's files worth keeping, and how many were dropped for each reason."""
    kept: list[_File] = []
    rejected: Counter[str] = Counter()
    for item in tqdm(iter_source(source), desc=f"reading {source_name(source)}", disable=not progress):
        language = detect_language(item.path, item.text or "", item.declared_language)
        reason = _drop_reason(item, language, config, exclusions, evaluation_test)
        if reason is not None or item.text is None or language is None:
            rejected[reason or "binary"] += 1
            continue
        kept.append(_File(item.path, item.text, language, item.origin))
    return kept, rejected


def _with_files_kept(details: dict[str, Any], name: str, kept: list[_File]) -> dict[str, Any]:
    """Per distribution of a site-packages source (paths `<name>/<dist>/...`), its files kept."""
    taken = details.get("distributions", {}).get("taken", {})
    counts = Counter(f.path.removeprefix(name + "/").split("/", 1)[0] for f in kept)
    for distribution, entry in taken.items():
        entry["files_kept"] = counts[distribution]
    return details


def prepare(config: PrepareConfig, progress: bool = True) -> dict[str, Any]:
    """Run the whole preparation; returns the stats it also writes to stats.json."""
    import datasets

    if not config.sources:
        raise ConfigError("prepare: no sources given (sources: [{path: ...}])")
    if not config.output:
        raise ConfigError("prepare: no output directory given (output: ...)")
    output = Path(expand_path(config.output))
    started = time.monotonic()
    exclusions = Exclusions(config.exclude)
    extra = Exclusions.from_files(config.exclude_lists)
    exclusions.exact |= extra.exact
    exclusions.globs += extra.globs

    evaluation_test = held_out().holds if config.exclude_evaluation_test else None
    stats: dict[str, Any] = {"sources": {}, "dropped": Counter()}
    stats["evaluation_test_files"] = (
        "excluded" if evaluation_test else "not excluded (exclude_evaluation_test: false)"
    )
    files: list[_File] = []
    for source in config.sources:
        name = source_name(source)
        if source.optional and not source_root(source.path).exists():
            stats["sources"][name] = {"files_seen": 0, "files_kept": 0, "missing": source.path}
            continue
        kept, rejected = _read(source, config, exclusions, evaluation_test, progress)
        files += kept
        stats["dropped"].update(rejected)
        stats["sources"][name] = {
            "files_seen": len(kept) + rejected.total(),
            "files_kept": len(kept),
            "dropped": dict(sorted(rejected.items())),
            **_with_files_kept(source_details(source), name, kept),
        }

    dropped = duplicates(((f.path, f.text) for f in files), config.dedup)
    stats["dedup"] = dict(Counter(kind for kind, _ in dropped.values()))
    files = [f for f in files if f.path not in dropped]

    report = ScrubReport()
    if config.scrub:
        for kept_file in tqdm(files, desc="scrubbing", disable=not progress):
            kept_file.text = scrub(kept_file.text, kept_file.path, report)
    stats["scrub"] = report.as_dict()

    rows: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    split_files: dict[str, list[str]] = {split: [] for split in SPLITS}
    split_chars: Counter[str] = Counter()
    source_examples: Counter[str] = Counter()
    splits = {
        f.path: split_of(
            f.path.split("#", 1)[0], config.validation_share, config.test_share, config.split_salt
        )
        for f in files
    }
    contexts = _contexts(files, splits, config.examples, progress)
    try:
        for kept_file in tqdm(files, desc="making examples", disable=not progress):
            path, text = kept_file.path, kept_file.text
            split = splits[path]
            split_files[split].append(path)
            split_chars[split] += len(text)
            examples = examples_for_file(path, text, kept_file.language, config.examples, contexts.get(split))
            made = [example.as_row() for example in examples]
            rows[split].extend(made)
            if split == "train":
                source_examples[kept_file.origin] += len(made)
    finally:
        for context in set(contexts.values()):
            context.close()

    columns = (
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
    features = datasets.Features(
        {name: datasets.Value("bool" if name == "ends_file" else "string") for name in columns}
    )
    dataset = datasets.DatasetDict(
        {split: _dataset(datasets, rows[split], columns, features) for split in SPLITS}
    )
    output.mkdir(parents=True, exist_ok=True)
    # One shard per split: datasets cannot load back an empty split saved in zero shards.
    dataset.save_to_disk(str(output / "dataset"), num_shards=dict.fromkeys(SPLITS, 1))

    stats["dropped"] = dict(sorted(stats["dropped"].items()))
    stats["splits"] = {
        split: {"files": len(split_files[split]), "chars": split_chars[split], "examples": len(rows[split])}
        for split in SPLITS
    }
    train = rows["train"]
    stats["examples"] = {
        "kind": dict(Counter(r["kind"] for r in train)),
        "hole": dict(Counter(r["hole"] or "-" for r in train)),
        "order": dict(Counter(r["order"] for r in train)),
        "language": dict(Counter(r["language"] for r in train).most_common()),
        "source": dict(source_examples.most_common()),
        "middle_chars": _percentiles([len(r["middle"]) for r in train]),
        "prefix_chars": _percentiles([len(r["prefix"]) for r in train]),
        "with_project_context": sum(r["context"] != "[]" for r in train),
    }
    stats["seconds"] = round(time.monotonic() - started, 1)
    stats["config"] = to_dict(config)
    (output / "stats.json").write_text(json.dumps(stats, indent=2, default=str) + "\n", encoding="utf-8")
    (output / "files.json").write_text(json.dumps(split_files, indent=1) + "\n", encoding="utf-8")
    return stats


def _distributions_line(report: dict[str, Any]) -> str:
    left_out = report["left_out"]
    reasons = ", ".join(
        f"{reason} {count} ({', '.join(n for n, e in left_out.items() if e['reason'] == reason)})"
        for reason, count in report["left_out_by_reason"].items()
    )
    return f"distributions: {len(report['taken'])} read; left out: {reasons or 'none'}"


def format_stats(stats: dict[str, Any]) -> str:
    lines = [f"prepared in {stats['seconds']} s"]
    for name, counts in stats["sources"].items():
        if "missing" in counts:
            lines.append(f"  source {name}: {counts['missing']} is not on this machine (optional), skipped")
            continue
        lines.append(f"  source {name}: {counts['files_seen']} files seen, {counts['files_kept']} kept")
        if "distributions" in counts:
            lines.append("    " + _distributions_line(counts["distributions"]))
    if stats["dropped"]:
        lines.append("  dropped: " + ", ".join(f"{k} {v}" for k, v in stats["dropped"].items()))
    lines.append("  duplicates: " + (", ".join(f"{k} {v}" for k, v in stats["dedup"].items()) or "none"))
    replaced = stats["scrub"]["replaced"]
    lines.append("  scrubbed: " + (", ".join(f"{k} {v}" for k, v in replaced.items()) or "nothing"))
    for split, counts in stats["splits"].items():
        lines.append(
            f"  {split}: {counts['files']} files, {counts['chars']} chars, {counts['examples']} examples"
        )
    for key in ("kind", "hole", "order", "language"):
        lines.append(f"  train {key}: " + ", ".join(f"{k} {v}" for k, v in stats["examples"][key].items()))
    return "\n".join(lines)
