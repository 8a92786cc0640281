"""Several processes: `inkling train sft|dpo` under accelerate's own launcher.

Inkling has no distributed layer of its own. trl's trainers (transformers'
Trainer) train data-parallel when the command runs under `accelerate launch`
(or torchrun): DDP over gloo on CPUs, DDP over NCCL, DeepSpeed or FSDP on
GPUs, whatever the accelerate configuration says. This module only

* tells whether this process is one of several (the launcher's environment:
  `WORLD_SIZE`, `RANK`, `LOCAL_RANK`), so that prepare and pairs refuse to
  run there and only the main process prints;
* builds the `accelerate launch` command for `--processes N` and a recipe's
  `accelerate_config:` and runs it: the same `inkling train` command again,
  under the launcher, printed first so that it can be reused as it is.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from training.config import ConfigError, expand_path

DISTRIBUTED_STAGES = ("sft", "dpo")
"""The stages that train, and so run on several processes; prepare and pairs run in one."""


def world_size() -> int:
    """How many processes the launcher started (1 when none did)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """Whether this process was started by `accelerate launch` or torchrun."""
    return "LOCAL_RANK" in os.environ or world_size() > 1


def is_main_process() -> bool:
    """The process that prints, writes files and saves the adapter (rank 0)."""
    return int(os.environ.get("RANK", "0")) == 0


def refuse_single_process_stage(command: str) -> None:
    """prepare and pairs write one output from one process: under a launcher every process would
    (and `run` launches its sft and dpo stages itself)."""
    if command not in DISTRIBUTED_STAGES and world_size() > 1:
        raise ConfigError(
            f"`inkling train {command}` runs in one process, not under accelerate launch "
            f"({world_size()} processes here): launch `inkling train sft` or `dpo` alone, or let "
            "`inkling train run --processes N` launch them"
        )


def config_file(path: str) -> str:
    """A recipe's `accelerate_config`, as an absolute path (relative ones are to the current directory,
    like every path in a recipe)."""
    if not path:
        return ""
    file = Path(expand_path(path))
    if not file.is_file():
        raise ConfigError(f"accelerate_config {path} does not exist")
    return str(file.resolve())


def launch_command(stage_argv: Sequence[str], accelerate_config: str = "", processes: int = 0) -> list[str]:
    """`accelerate launch ... -m lsp_server.cli train STAGE_ARGV...`.

    With a configuration file the file decides (DeepSpeed, FSDP, mixed precision, how many
    processes; `processes` overrides the count). Without one, `processes` data-parallel processes on
    this machine through accelerate's multi-process launcher (torch's elastic launcher): DDP on the
    GPUs, or on CPUs over gloo (transformers' Trainer picks gloo when it trains on the CPU, so the
    `--multi_gpu` flag names the launcher, not the device).
    """
    command = _accelerate()
    if accelerate_config:
        command += ["--config_file", accelerate_config]
        if processes:
            command += ["--num_processes", str(processes)]
    else:
        command += ["--multi_gpu", "--num_processes", str(processes), "--num_machines", "1"]
        # Precision is the recipe's (`precision`, trl's bf16); a free port lets two runs share a machine.
        command += ["--mixed_precision", "no", "--dynamo_backend", "no"]
        command += ["--main_process_port", str(_free_port())]
    return [*command, "-m", "lsp_server.cli", "train", *stage_argv]


def wanted(accelerate_config: str, processes: int) -> bool:
    """Whether a stage should be launched on several processes rather than run here."""
    return not launched() and (bool(accelerate_config) or processes > 1)


def run_launched(command: Sequence[str]) -> int:
    """Print the command, run it, return its exit status."""
    print(f"inkling train: {shlex.join(command)}", file=sys.stderr, flush=True)
    return subprocess.run(list(command), check=False).returncode


def _accelerate() -> list[str]:
    """The `accelerate` command of this environment (the one that has Inkling installed)."""
    script = Path(sys.executable).parent / "accelerate"
    if script.is_file():
        return [str(script), "launch"]
    return [sys.executable, "-m", "accelerate.commands.launch"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
