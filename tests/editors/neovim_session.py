"""A real Neovim in a real terminal (tmux), typed into with real keys, watched over RPC (pynvim)."""

from __future__ import annotations

import contextlib
import re
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pynvim

T = TypeVar("T")


def neovim_version(binary: str) -> str:
    first = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"NVIM v(\d+\.\d+\.\d+)", first)
    assert match, first
    return match.group(1)


class NeovimInTmux:
    """`nvim` under a private tmux server; keys go through the terminal as a user's would."""

    def __init__(self, binary: str, init: Path, file: Path, env: dict[str, str], workdir: Path) -> None:
        self.socket_name = f"inkling-test-{uuid.uuid4().hex[:8]}"
        self.listen = workdir / "nvim.sock"
        command = " ".join(
            [
                "env",
                *(shlex.quote(f"{key}={value}") for key, value in env.items()),
                shlex.quote(binary),
                "-u",
                shlex.quote(str(init)),
                "-i",
                "NONE",
                "--listen",
                shlex.quote(str(self.listen)),
                shlex.quote(str(file)),
            ]
        )
        self._tmux("new-session", "-d", "-x", "100", "-y", "30", "-s", "nvim", command)
        self.nvim = self.wait_for(self._attach, timeout=20, what="Neovim's RPC socket")

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket_name, *args], capture_output=True, text=True, check=True
        ).stdout

    def _attach(self) -> pynvim.Nvim | None:
        if not self.listen.exists():
            return None
        return pynvim.attach("socket", path=str(self.listen))

    def keys(self, *keys: str) -> None:
        """Type through the terminal (tmux key names: 'Tab', 'Escape', 'M-\\\\', or literal text)."""
        for key in keys:
            self._tmux("send-keys", "-t", "nvim", key)

    def literal(self, text: str) -> None:
        self._tmux("send-keys", "-t", "nvim", "-l", text)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "nvim")

    def lua(self, code: str, *args: Any) -> Any:
        return self.nvim.exec_lua(code, *args)

    @staticmethod
    def wait_for(probe: Callable[[], T | None], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = probe()
            except (OSError, pynvim.NvimError) as exc:
                last_error, value = exc, None
            if value is not None and value is not False:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # it quits before answering
            self.nvim.command("qall!")
        subprocess.run(["tmux", "-L", self.socket_name, "kill-server"], capture_output=True, check=False)
