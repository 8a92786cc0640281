"""Several processes through accelerate's own launcher: the command Inkling builds, the stages
that refuse to run under it, and the example accelerate configurations (GPU-only, so here they
are only read with accelerate's own loader)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.cli import main
from training import launch
from training.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "training/accelerate"


def test_processes_without_a_config_use_accelerates_multi_process_launcher() -> None:
    command = launch.launch_command(["sft", "--config", "r.yaml", "--set", "max_steps=3"], processes=2)
    assert command[:2] == launch._accelerate()
    tail = command[len(launch._accelerate()) :]
    assert tail[:4] == ["--multi_gpu", "--num_processes", "2", "--num_machines"]
    assert "--main_process_port" in tail
    assert tail[-8:] == ["-m", "lsp_server.cli", "train", "sft", "--config", "r.yaml", "--set", "max_steps=3"]


def test_a_config_file_decides_and_processes_override_its_count(tmp_path: Path) -> None:
    config = launch.config_file(str(CONFIGS / "fsdp.yaml"))
    command = launch.launch_command(["dpo"], accelerate_config=config)
    assert command[2:4] == ["--config_file", config] and "--num_processes" not in command
    command = launch.launch_command(["dpo"], accelerate_config=config, processes=4)
    assert command[4:6] == ["--num_processes", "4"] and "--multi_gpu" not in command
    with pytest.raises(ConfigError, match="does not exist"):
        launch.config_file(str(tmp_path / "missing.yaml"))


def test_when_to_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "LOCAL_RANK", "RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not launch.wanted("", 0) and not launch.wanted("", 1)
    assert launch.wanted("", 2) and launch.wanted("fsdp.yaml", 0)
    assert launch.is_main_process()
    # Inside a launched process: never launch again; only rank 0 is the main process.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("RANK", "1")
    assert launch.launched() and not launch.wanted("fsdp.yaml", 2) and not launch.is_main_process()


def test_single_process_stages_refuse_to_run_under_a_launcher(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("prepare:\n  output: out\n")
    assert main(["train", "prepare", "--config", str(recipe)]) == 2
    assert "runs in one process" in capsys.readouterr().err
    assert main(["train", "run", str(recipe)]) == 2
    assert "inkling train run --processes N" in capsys.readouterr().err
    launch.refuse_single_process_stage("sft")  # the training stages are the ones that run there


@pytest.mark.parametrize("name", ["deepspeed-zero2.yaml", "fsdp.yaml"])
def test_example_accelerate_configs_load_with_accelerates_own_loader(name: str) -> None:
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    # ClusterConfig refuses keys it does not know, so this is accelerate's own check of the file.
    config = load_config_from_file(str(CONFIGS / name))
    assert config.num_machines == 1 and config.num_processes > 1 and not config.use_cpu
    if name.startswith("deepspeed"):
        assert config.distributed_type == DistributedType.DEEPSPEED
        assert config.deepspeed_config["zero_stage"] == 2
    else:
        assert config.distributed_type == DistributedType.FSDP
        assert config.fsdp_config["fsdp_version"] == 2
        assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # one whole adapter saved


def test_a_recipe_names_its_accelerate_config(tmp_path: Path) -> None:
    from training.config import build
    from training.dpo import DpoConfig
    from training.sft import SftConfig

    sft = build(SftConfig, {"accelerate_config": "training/accelerate/fsdp.yaml"}, "sft")
    dpo = build(DpoConfig, {"accelerate_config": "training/accelerate/deepspeed-zero2.yaml"}, "dpo")
    assert sft.accelerate_config.endswith("fsdp.yaml") and dpo.accelerate_config.endswith("zero2.yaml")
    assert "accelerate_config" not in sft.trainer  # Inkling's key, not trl's
