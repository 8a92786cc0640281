"""Which files are worth learning from: language, and no generated, minified,
vendored, binary or benchmark files.

Each check returns a reason or None, so the stats report says why every
dropped file was dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from lsp_server.languages import LANGUAGES, language_for_id, language_for_path

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
_BENCHMARK = re.compile(r"human[-_ ]?eval|\bmbpp\b|codecontests|\bapps[-_]bench", re.IGNORECASE)
_BENCHMARK_TEXT = (
    "def has_close_elements(numbers: List[float], threshold: float)",  # HumanEval/0
    "HumanEval/",
    "from human_eval",
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
    parts = set(PurePosixPath(path.split("#", 1)[0]).parts)
    if parts & _VENDORED_PARTS:
        return "vendored"
    if _BENCHMARK.search(path) or any(marker in text for marker in _BENCHMARK_TEXT):
        return "benchmark"
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
