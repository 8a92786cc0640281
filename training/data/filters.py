"""Which files are worth learning from: language, and no generated, minified,
vendored, binary or benchmark files (nor, where asked, copyleft ones).

Each check returns a reason or None, so the stats report says why every
dropped file was dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from lsp_server.languages import LANGUAGES, language_for_id, language_for_path
from training.data.licenses import file_verdict

# Languages without a grammar in the server still complete line-wise; their
# extensions and the names code fences and datasets use for them.
_EXTRA_EXTENSIONS = {
    ".sh": "shell",
    ".bash": "shell",
    ".rb": "ruby",
    ".php": "php",
    ".kt": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
    ".cs": "csharp",
    ".lua": "lua",
    ".sql": "sql",
}
_ALIASES = {
    "py": "python",
    "python3": "python",
    "pycon": "",
    "js": "javascript",
    "node": "javascript",
    "ts": "typescript",
    "golang": "go",
    "rs": "rust",
    "c++": "cpp",
    "cxx": "cpp",
    "sh": "shell",
    "bash": "shell",
    "console": "",
    "shell-session": "",
}
_SHEBANG = re.compile(r"^#!.*\b(python[0-9.]*|node|bash|sh)\b")
_SHEBANG_LANGUAGE = {"node": "javascript", "bash": "shell", "sh": "shell"}

_GENERATED = re.compile(r"auto-?generated|@generated|generated (?:by|from|with)|do not edit", re.IGNORECASE)
_VENDORED_PARTS = frozenset(
    {
        "vendor",
        "vendored",
        "_vendor",
        "third_party",
        "thirdparty",
        "node_modules",
        "site-packages",
        "dist-packages",
    }
)
_BENCHMARK = re.compile(
    r"human[-_ ]?eval|\bmbpp\b|\beval[-_]?plus|codecontests|\bapps[-_]bench|bigcodebench|\bds[-_]1000\b",
    re.IGNORECASE,
)
_BENCHMARK_TEXT = (
    "def has_close_elements(numbers: List[float], threshold: float)",  # HumanEval/0
    "HumanEval/",
    "from human_eval",
    "from evalplus",
    "Mbpp/",
)


@dataclass
class FilterConfig:
    languages: list[str] = field(default_factory=lambda: [spec.id for spec in LANGUAGES])
    """Language ids to keep (the server's grammar languages by default; 'shell', 'ruby'... also work)."""
    min_chars: int = 64
    max_bytes: int = 200_000
    max_line_chars: int = 1000
    """A longer line marks minified or data files."""
    max_mean_line_chars: float = 120.0
    drop_copyleft: bool = False
    """Drop files whose own header puts them under a copyleft or other restricted license (an
    SPDX-License-Identifier line, or the GPL/LGPL/AGPL/MPL/EPL notice): `licenses.file_verdict`."""


def is_vendored(path: str) -> bool:
    """A copy of another project's code (vendor/, _vendor/, node_modules/...)."""
    return bool(set(PurePosixPath(path.split("#", 1)[0]).parts) & _VENDORED_PARTS)


def is_benchmark(name: str) -> bool:
    """A path or package named like a public benchmark (HumanEval, MBPP, EvalPlus...)."""
    return bool(_BENCHMARK.search(name))


def detect_language(path: str, text: str, declared: str = "") -> str | None:
    """A language id from a declared name, the extension, or a shebang."""
    if declared:
        name = declared.strip().lower()
        name = _ALIASES.get(name, name)
        spec = language_for_id(name)
        if spec is not None:
            return spec.id
        return name or None
    clean_path = path.split("#", 1)[0]
    spec = language_for_path(clean_path)
    if spec is not None:
        return spec.id
    extra = _EXTRA_EXTENSIONS.get(PurePosixPath(clean_path).suffix.lower())
    if extra:
        return extra
    match = _SHEBANG.match(text[:200])
    if match:
        interpreter = match.group(1)
        return _SHEBANG_LANGUAGE.get(interpreter, "python" if interpreter.startswith("python") else None)
    return None


def rejection(path: str, text: str | None, language: str | None, config: FilterConfig) -> str | None:
    """Why this file is not used (None: keep it)."""
    if text is None:
        return "binary"
    if language is None or language not in config.languages:
        return "language"
    if is_vendored(path):
        return "vendored"
    if is_benchmark(path) or any(marker in text for marker in _BENCHMARK_TEXT):
        return "benchmark"
    if config.drop_copyleft and file_verdict(text) == "restricted":
        return "license"
    if len(text.encode("utf-8", "surrogatepass")) > config.max_bytes:
        return "too large"
    if len(text.strip()) < config.min_chars:
        return "too small"
    lines = text.splitlines() or [""]
    if max(len(line) for line in lines) > config.max_line_chars:
        return "minified"
    if sum(len(line) for line in lines) / len(lines) > config.max_mean_line_chars:
        return "minified"
    if _GENERATED.search(text[:2000]):
        return "generated"
    return None
