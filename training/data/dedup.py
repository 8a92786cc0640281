"""Exact and near-duplicate removal across all sources.

Exact: the same text up to trailing whitespace. Near: MinHash over word
5-grams with datasketch's LSH index (Jaccard >= threshold), the method the
big code datasets use. The first file in path order of each group is kept, so
a rerun keeps the same files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

_WORD = re.compile(r"\w+")


@dataclass
class DedupConfig:
    near: bool = True
    threshold: float = 0.85
    num_perm: int = 128
    shingle: int = 5


def exact_key(text: str) -> str:
    normalized = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return hashlib.sha256(normalized.encode("utf-8", "surrogatepass")).hexdigest()


def duplicates(items: Iterable[tuple[str, str]], config: DedupConfig) -> dict[str, tuple[str, str]]:
    """path -> ('exact' | 'near', kept path) for every file to drop."""
    from datasketch import MinHash, MinHashLSH

    dropped: dict[str, tuple[str, str]] = {}
    seen: dict[str, str] = {}
    kept: list[tuple[str, str]] = []
    for path, text in sorted(items):
        key = exact_key(text)
        if key in seen:
            dropped[path] = ("exact", seen[key])
            continue
        seen[key] = path
        kept.append((path, text))
    if not config.near:
        return dropped
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    for path, text in kept:
        words = _WORD.findall(text)
        shingles = {
            " ".join(words[i : i + config.shingle]).encode()
            for i in range(max(1, len(words) - config.shingle + 1))
        }
        signature = MinHash(num_perm=config.num_perm, seed=1)
        signature.update_batch(list(shingles))
        match = lsh.query(signature)
        if match:
            dropped[path] = ("near", min(match))
            continue
        lsh.insert(path, signature)
    return dropped
