"""Run CPython's own tests against a changed copy of a standard-library module, sandboxed.

The module, with the change, is put first on `sys.path` (a copy of its package,
for a module inside one) and the test module runs against it in a fresh
interpreter (`python -I`, its own temporary directory as the working and
temporary directory, a time limit, no network: see `sandbox_prefix`). Shared by
the evaluation (the exec track, bench-peer: `lsp_server.evaluation.tested_holes`)
and training (`training.tested_pairs`, whose samples are judged the same way),
which is why it lives outside the evaluation package.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TEST_TIMEOUT_S = 60.0
"""A test run that takes longer fails (a completion that loops forever, say)."""


def stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


_HARNESS = r"""
import importlib, json, os, sys, threading, unittest
shadow, module, tests, trace_out = sys.argv[1:5]
sys.path.insert(0, shadow)
target = os.path.join(shadow, *module.split("."))
target = target + ".py" if os.path.isfile(target + ".py") else os.path.join(target, "__init__.py")
executed = set()
if trace_out:
    def local(frame, event, arg):
        if event == "line":
            executed.add(frame.f_lineno)
        return local
    def outer(frame, event, arg):
        return local if frame.f_code.co_filename == target else None
    sys.settrace(outer)
    threading.settrace(outer)
imported = importlib.import_module(module)
if os.path.realpath(imported.__file__) != os.path.realpath(target):
    sys.exit(3)
suite = unittest.defaultTestLoader.loadTestsFromName(tests)
with open(os.devnull, "w") as quiet:
    result = unittest.TextTestRunner(stream=quiet, verbosity=0).run(suite)
sys.settrace(None)
if trace_out:
    with open(trace_out, "w") as out:
        json.dump(sorted(executed), out)
sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
"""
NOT_SHADOWED = 3

_LOOPBACK_UP = r"""
import fcntl, os, socket, struct, sys
try:  # a new network namespace has its loopback down: tests serve on 127.0.0.1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        flags = struct.unpack("16sH22x", fcntl.ioctl(probe, 0x8913, struct.pack("16sH22x", b"lo", 0)))[1]
        fcntl.ioctl(probe, 0x8914, struct.pack("16sH22x", b"lo", flags | 1))
except OSError:
    pass
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""
"""Run in the namespace before the harness; the harness then starts with no module imported
that this needed (`socket`, `struct`), so those can still be replaced by a copy."""

_NAMESPACES = {
    ("--net",): "network namespace",
    ("--map-root-user", "--net"): "user and network namespace",
}


@functools.cache
def sandbox_prefix() -> tuple[str, ...]:
    """The command that runs the tests without the network: `unshare --net` (as root), else
    `unshare --map-root-user --net` (where unprivileged user namespaces are allowed), else
    none, with a warning: then the tests run with the machine's network."""
    unshare = shutil.which("unshare")
    for options in _NAMESPACES if unshare else ():
        command = (str(unshare), *options)
        try:
            probe = subprocess.run(
                [*command, sys.executable, "-I", "-c", ""], capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return command
    log.warning("no network namespace can be made here (unshare): tests run with the machine's network")
    return ()


def sandbox_mode() -> str:
    """How test runs are cut off from the network, in words (recorded with results)."""
    prefix = sandbox_prefix()
    return _NAMESPACES[prefix[1:]] if prefix else "none (no network namespace permitted)"


@dataclass(frozen=True)
class TestRun:
    __test__ = False

    passed: bool
    seconds: float
    shadowed: bool = True
    executed: frozenset[int] = frozenset()


def run_tests(
    source_path: Path,
    module: str,
    tests: str,
    text: str,
    *,
    trace: bool = False,
    timeout: float = TEST_TIMEOUT_S,
) -> TestRun:
    """Run `tests` with `module` (the file `source_path`) replaced by `text`, sandboxed."""
    with tempfile.TemporaryDirectory(prefix="inkling-tested-") as scratch:
        shadow = Path(scratch) / "shadow"
        parts = module.split(".")
        if len(parts) > 1 or source_path.name == "__init__.py":
            package = stdlib() / parts[0]
            shutil.copytree(package, shadow / parts[0], ignore=shutil.ignore_patterns("__pycache__"))
            relative = source_path.relative_to(stdlib())
            (shadow / relative).write_text(text, encoding="utf-8")
        else:
            shadow.mkdir()
            (shadow / source_path.name).write_text(text, encoding="utf-8")
        work, temporary = Path(scratch) / "work", Path(scratch) / "tmp"
        work.mkdir()
        temporary.mkdir()
        trace_out = str(Path(scratch) / "executed.json") if trace else ""
        harness = ["-I", "-c", _HARNESS, str(shadow), module, tests, trace_out]
        prefix = sandbox_prefix()
        command = (
            [*prefix, sys.executable, "-I", "-c", _LOOPBACK_UP, *harness]
            if prefix
            else [sys.executable, *harness]
        )
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(temporary)}
        started = time.monotonic()
        returncode = _run_in_own_group(command, work, env, timeout)
        seconds = time.monotonic() - started
        if returncode is None:
            return TestRun(False, seconds)
        if returncode == NOT_SHADOWED:
            return TestRun(False, seconds, shadowed=False)
        executed: frozenset[int] = frozenset()
        if trace and Path(trace_out).is_file():
            executed = frozenset(json.loads(Path(trace_out).read_text()))
        return TestRun(returncode == 0, seconds, executed=executed)


def _run_in_own_group(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> int | None:
    """The exit status, or None past `timeout`. Then, or when the run ends, whatever is left
    of its process group is killed: no process a test started outlives the run. The group's
    leader is reaped only after that, so that its id cannot name another group meanwhile."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    ended = None
    while ended is None and time.monotonic() < deadline:
        ended = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if ended is None:
            time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    returncode = process.wait()
    return returncode if ended is not None else None
