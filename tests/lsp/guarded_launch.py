"""Run `inkling` under audit hooks that forbid the network, new processes and file writes.

    python tests/lsp/guarded_launch.py serve ...      # the server, guarded
    python tests/lsp/guarded_launch.py --self-test    # proves the guard catches each kind

Every attempt is refused (PermissionError) and reported on stderr as
"GUARD VIOLATION: ...", so a test can run a whole session and then check that
the server never tried. Writes are allowed only under $INKLING_GUARD_WRITABLE
(the server's state directory, where it keeps its acceptance counts), if set. Python's audit hooks see what Python code does; the
security test also runs this inside a network namespace (`unshare -n`), which
covers C code too, and checks afterwards that no file appeared anywhere the
process could write.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

VIOLATION = "GUARD VIOLATION"
_NAME_LOOKUPS = {
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "socket.getnameinfo",
    "urllib.Request",
    "http.client.connect",
}
_SOCKET_CALLS = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"}
_PROCESSES = {
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "pty.spawn",
}
_FILE_CHANGES = {
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.symlink",
    "os.link",
    "os.truncate",
    "os.chmod",
    "shutil.copyfile",
    "shutil.move",
    "shutil.rmtree",
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _refuse(event: str, detail: Any) -> None:
    sys.__stderr__.write(f"{VIOLATION}: {event} {detail!r}\n")
    sys.__stderr__.flush()
    raise PermissionError(f"forbidden by the test guard: {event}")


def _writes(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


_WRITABLE = os.environ.get("INKLING_GUARD_WRITABLE")


def _allowed_place(*paths: Any) -> bool:
    if not _WRITABLE:
        return False
    root = os.path.realpath(_WRITABLE)
    return all(
        isinstance(p, (str, bytes, os.PathLike))
        and os.path.commonpath([root, os.path.realpath(os.fsdecode(p))]) == root
        for p in paths
    )


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.__new__":
        if args[1] != socket.AF_UNIX:  # asyncio's own wake-up pipe is an AF_UNIX pair
            _refuse(event, args[1:])
    elif event in _SOCKET_CALLS:
        if not isinstance(args[1], (str, bytes)):  # AF_UNIX addresses are paths
            _refuse(event, args[1])
    elif event in _NAME_LOOKUPS or event in _PROCESSES:
        _refuse(event, args[:2])
    elif event in _FILE_CHANGES:
        paths = args[:2] if event in ("os.rename", "os.link", "os.symlink", "shutil.move") else args[:1]
        if not _allowed_place(*paths):
            _refuse(event, args[:2])
    elif event == "open":
        path, mode, flags = args
        # An int path wraps a descriptor that is already open (stdout, for the protocol).
        writes = not isinstance(path, int) and _writes(mode, flags) and str(path) != os.devnull
        if writes and not _allowed_place(path):
            _refuse(event, (path, mode))


def _self_test() -> int:
    attempts = [
        lambda: socket.create_connection(("127.0.0.1", 9), timeout=1),
        lambda: socket.getaddrinfo("localhost", 80),
        lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM),
        lambda: os.system("true"),
        lambda: open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "guard-self-test"), "w"),  # noqa: SIM115
    ]
    refused = 0
    for attempt in attempts:
        try:
            attempt()
        except PermissionError:
            refused += 1
    print(f"refused {refused} of {len(attempts)}", file=sys.__stderr__)
    return 0 if refused == len(attempts) else 1


sys.addaudithook(_hook)

if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(_self_test())
    from lsp_server.cli import main

    sys.exit(main(sys.argv[1:]))
