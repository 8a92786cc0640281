"""Checks an Inkling bundle and the target machine before `install.sh` changes anything.

This file is copied into every bundle and run there by the target's own
`python3`, before Inkling is installed: it uses the standard library only.

    python3 preflight.py BUNDLE           every check; problems on stderr, exit 1
    python3 preflight.py BUNDLE --get KEY one field of BUNDLE/bundle.json

Checks: every file listed in `SHA256SUMS` is there with that SHA-256, no other
file is there (pip would pick up a stray wheel), and the target has the Python
version, machine, C library and CPU instruction sets the bundle was built for.
`SHA256SUMS` proves integrity against a damaged copy; against tampering,
compare its own SHA-256 with the one `inkling bundle` printed.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

SUMS_FILE = "SHA256SUMS"
MANIFEST_FILE = "bundle.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(bundle: Path) -> dict[str, str]:
    """`sha256sum` format: '<64 hex>  <relative path>' per line."""
    sums: dict[str, str] = {}
    text = (bundle / SUMS_FILE).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        digest, _, name = line.partition("  ")
        name = name.removeprefix("*")
        parts = PurePosixPath(name).parts
        valid_digest = len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
        if not valid_digest or not name or name.startswith("/") or ".." in parts:
            raise ValueError(f"{SUMS_FILE} line {number} is not '<sha256>  <relative path>': {line[:120]!r}")
        sums[name] = digest
    return sums


def check_files(bundle: Path) -> list[str]:
    """Problems with the bundle's files, each naming the file."""
    if not (bundle / SUMS_FILE).is_file():
        return [f"{SUMS_FILE} is missing from {bundle}: this is not a complete Inkling bundle"]
    try:
        sums = read_sums(bundle)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [f"{SUMS_FILE} cannot be read: {exc}"]
    problems = []
    for name, expected in sums.items():
        path = bundle / name
        if not path.is_file():
            problems.append(f"{name}: missing (listed in {SUMS_FILE})")
        elif (actual := file_sha256(path)) != expected:
            problems.append(f"{name}: SHA-256 mismatch (expected {expected}, found {actual})")
    present = {
        path.relative_to(bundle).as_posix()
        for path in bundle.rglob("*")
        if (path.is_file() or path.is_symlink()) and "__pycache__" not in path.parts
    }
    for name in sorted(present - set(sums) - {SUMS_FILE}):
        problems.append(f"{name}: not listed in {SUMS_FILE} (remove it, or copy the bundle again)")
    return problems


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def cpu_flags(cpuinfo: str) -> set[str] | None:
    """The flags of the first processor in /proc/cpuinfo text (None: no flags line)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return None


def check_target(
    manifest: dict[str, Any],
    *,
    python: tuple[int, int],
    machine: str,
    libc: tuple[str, str],
    cpuinfo: str | None,
) -> list[str]:
    """Problems with running this bundle's wheels on this machine."""
    problems = []
    wanted_python = _version(manifest["python"])
    if python != wanted_python:
        problems.append(
            f"this bundle's wheels are for Python {manifest['python']}, this python3 is "
            f"{python[0]}.{python[1]}: run install.sh with PYTHON=/path/to/python{manifest['python']}, "
            f"or build the bundle with `inkling bundle --python {python[0]}.{python[1]}`"
        )
    if machine != manifest["machine"]:
        problems.append(f"this bundle is for {manifest['machine']} machines, this one is {machine}")
    wanted_libc = manifest.get("glibc", "")
    if wanted_libc:
        name, found = libc
        if name != "glibc":
            problems.append(
                f"the bundle's wheels need glibc {wanted_libc} or later; this system has no glibc"
            )
        elif _version(found) < _version(wanted_libc):
            problems.append(f"the bundle's wheels need glibc {wanted_libc} or later; this system has {found}")
    required = manifest.get("cpu_flags", [])
    if required and cpuinfo is not None:
        flags = cpu_flags(cpuinfo)
        lacking = [flag for flag in required if flags is not None and flag not in flags]
        if lacking:
            problems.append(
                f"this CPU lacks {', '.join(lacking)}, which the bundle's llama.cpp build "
                f"({manifest.get('cpu_baseline', '?')}) uses: build the bundle with "
                "`inkling bundle --cpu x86-64-v2` (or another baseline this CPU has)"
            )
    return problems


def _this_machine(manifest: dict[str, Any]) -> list[str]:
    try:
        cpuinfo: str | None = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        cpuinfo = None
    libc_name, libc_version = platform.libc_ver()
    return check_target(
        manifest,
        python=(sys.version_info.major, sys.version_info.minor),
        machine=platform.machine(),
        libc=(libc_name, libc_version),
        cpuinfo=cpuinfo,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--get"):
        print("usage: preflight.py BUNDLE [--get KEY]", file=sys.stderr)
        return 2
    bundle = Path(args[0]).resolve()
    if len(args) == 3:
        value = json.loads((bundle / MANIFEST_FILE).read_text(encoding="utf-8"))[args[2]]
        print(value if isinstance(value, str) else json.dumps(value))
        return 0
    problems = check_files(bundle)
    if not problems:  # the manifest is only trusted once its checksum is
        problems = _this_machine(json.loads((bundle / MANIFEST_FILE).read_text(encoding="utf-8")))
    for problem in problems:
        print(f"install.sh: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
