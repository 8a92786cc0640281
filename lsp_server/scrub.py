"""Secrets and personal data out of code text, with a report of what went.

Shared by training data preparation (`training.data.prepare`) and the server's
opt-in feedback store (`lsp_server.feedback`), which scrubs every text it keeps
before writing it.

Secrets (keys, tokens, private keys, passwords in URLs and in assignments)
become a placeholder that names the kind; e-mail and public IP addresses
become reserved example values (example.com, the 192.0.2.0/24 and
2001:db8::/32 documentation ranges), so the code still reads like code.
Loopback, private and documentation addresses are not personal and stay, nor do
dotted quads starting below 10 (section and version numbers far more often than hosts). The
report counts kinds and files; it never repeats a removed value.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

_Replacer = Callable[[re.Match[str]], str]


def _fixed(text: str) -> _Replacer:
    return lambda _match: text


def _keep_group(group: int, placeholder: str) -> _Replacer:
    """Replace only the secret value; keep the key name and quotes around it."""

    def replace(match: re.Match[str]) -> str:
        start, end = match.span(group)
        offset = match.start()
        whole = match.group(0)
        return whole[: start - offset] + placeholder + whole[end - offset :]

    return replace


def _looks_secret(value: str) -> bool:
    """A password-like value: long, no spaces, several character classes, not a placeholder."""
    if len(value) < 8 or " " in value or value.startswith(("<", "{", "$", "%")):
        return False
    classes = sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )
    return classes >= 3


def _public_ip(match: re.Match[str]) -> str:
    text = match.group(0)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if not address.is_global:
        return text
    if address.version == 4 and int(text.split(".", 1)[0]) < 10:
        return text  # section and version numbers (8.2.4.44, 2.7.2.2) look just like these
    return "192.0.2.1" if address.version == 4 else "2001:db8::1"


def _email(match: re.Match[str]) -> str:
    domain = match.group(2).lower()
    if domain in {"example.com", "example.org", "example.net"} or domain.endswith(
        (".example", ".invalid", ".test")
    ):
        return match.group(0)
    return "user@example.com"


def _assignment(match: re.Match[str]) -> str:
    return _keep_group(3, "<PASSWORD>")(match) if _looks_secret(match.group(3)) else match.group(0)


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

PATTERNS: tuple[tuple[str, re.Pattern[str], _Replacer], ...] = (
    (
        "private_key",
        re.compile(
            r"-----BEGIN ((?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?)-----[\s\S]*?-----END \1-----",
        ),
        _fixed("<PRIVATE_KEY>"),
    ),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), _fixed("<AWS_ACCESS_KEY>")),
    (
        "github_token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b"),
        _fixed("<GITHUB_TOKEN>"),
    ),
    ("slack_token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), _fixed("<SLACK_TOKEN>")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"), _fixed("<GOOGLE_API_KEY>")),
    (
        "api_key",
        re.compile(r"\b(?:sk|rk)[-_](?:live_|test_|proj-)?[A-Za-z0-9_-]{20,}\b"),
        _fixed("<API_KEY>"),
    ),
    (
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        _fixed("<JWT>"),
    ),
    (
        "url_password",
        re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@'\"]+:)([^@\s/'\"]+)(@)"),
        _keep_group(2, "<PASSWORD>"),
    ),
    (
        "password",
        re.compile(
            r"(?i)\b([a-z_]*(?:passw(?:or)?d|secret|api_?key|access_?token|auth_?token)[a-z_]*)"
            r"(\s*[:=]\s*[\"'])([^\"'\n]+)[\"']"
        ),
        _assignment,
    ),
    ("email", re.compile(r"\b([A-Za-z0-9._%+-]+)@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})\b"), _email),
    ("ip_address", re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w.])"), _public_ip),
    (
        "ip_address",
        re.compile(r"(?<![\w:.])(?:[0-9a-fA-F]{1,4}:){2,7}(?::|[0-9a-fA-F]{1,4})(?![\w:.])"),
        _public_ip,
    ),
)


@dataclass
class ScrubReport:
    replaced: Counter[str] = field(default_factory=Counter)
    """kind -> number of values replaced."""
    files: Counter[str] = field(default_factory=Counter)
    """kind -> number of files with at least one."""
    examples: dict[str, list[str]] = field(default_factory=dict)
    """kind -> a few paths where it was found (never the values)."""

    def as_dict(self) -> dict[str, object]:
        return {
            "replaced": dict(sorted(self.replaced.items())),
            "files": dict(sorted(self.files.items())),
            "example_paths": self.examples,
        }


def scrub(text: str, path: str = "", report: ScrubReport | None = None) -> str:
    """`text` with secrets and personal data replaced; counts go into `report`."""
    found: Counter[str] = Counter()
    for kind, pattern, replacer in PATTERNS:

        def counted(match: re.Match[str], kind: str = kind, replacer: _Replacer = replacer) -> str:
            new = replacer(match)
            if new != match.group(0):
                found[kind] += 1
            return new

        text = pattern.sub(counted, text)
    if report is not None:
        for kind, count in found.items():
            report.replaced[kind] += count
            report.files[kind] += 1
            paths = report.examples.setdefault(kind, [])
            if len(paths) < 5:
                paths.append(path)
    return text
