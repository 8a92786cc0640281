"""`inkling train` goes offline before any command imports the libraries that would reach the hub."""

from __future__ import annotations

import os
import subprocess
import sys

_PROBE = """
import os, sys
import training.sft
seen = {}
def fake_train(config):
    seen["offline"] = os.environ.get("HF_HUB_OFFLINE")
    return {}
training.sft.train_sft = fake_train
from training.cli import _execute
_execute("sft", None)
print(seen["offline"], "peft" in sys.modules)
"""


def test_train_commands_run_offline() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    command = [sys.executable, "-c", _PROBE]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # Offline when the command starts, and nothing heavy imported before that.
    assert done.stdout.split()[-2:] == ["1", "False"]  # (before it: the fake report)
