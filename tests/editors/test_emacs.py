"""Inkling in a real Emacs (Debian's Emacs 28 and eglot 1.9), run in batch mode.

eglot's `completion-at-point` gets Inkling's item and applies its textEdit, so
the whole completion (several lines in block mode) lands in the buffer. eglot
1.9 does not run completion commands, so its accepts are not counted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.editors.test_neovim import DEMO, RECT
from tests.requirements import require

pytestmark = [pytest.mark.model, pytest.mark.slow]

SCRIPT = Path(__file__).with_name("eglot_check.el")


def test_eglot_inserts_inklings_whole_completion(tmp_path: Path) -> None:
    require(shutil.which("emacs") is not None, "Emacs with eglot", "apt-get install emacs-nox elpa-eglot")
    text = (DEMO + RECT).replace("    sy = \n", "    sy = sum\n")
    source = tmp_path / "shapes.py"
    source.write_text(text)
    lines = text.splitlines()
    env = {
        **os.environ,
        "INKLING_PYTHON": sys.executable,
        "INKLING_FILE": str(source),
        "INKLING_LINE": str(lines.index("    sy = sum") + 1),
        "INKLING_BLOCK_LINE": str(len(lines)),
        "INKLING_RESULT": str(tmp_path / "result.json"),
        "INKLING_STATE": str(tmp_path / "state"),
    }
    # -q: no user init file, but Debian's site start-up, which puts elpa-eglot on the load path.
    done = subprocess.run(
        ["emacs", "--batch", "-q", "-l", str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads((tmp_path / "result.json").read_text())

    line = result["line"]
    assert line["newText"].startswith("sum") and len(line["newText"]) > 3, line
    assert line["buffer"].split("\n")[0] == "    sy = " + line["newText"]

    block = result["block"]
    new_lines = block["newText"].split("\n")
    assert len(new_lines) > 1, block  # the model writes one field per line here
    assert block["buffer"].split("\n")[: len(new_lines)] == [" " * 8 + new_lines[0], *new_lines[1:]]
