"""The loop closed: `inkling model build` writes the tuned model, and `inkling serve`
(the real server over stdio) picks it up by itself and prompts it in Inkling's FIM format."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from export.build import build_default_model
from lsp_server.lsp_client import InklingClient
from lsp_server.models import TUNED_MODEL_NAME

pytestmark = pytest.mark.slow


async def test_server_prefers_the_built_tuned_model(
    tiny_base: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    cache = tmp_path / "cache"
    built = build_default_model(adapter_dir=adapter, base=tiny_base, target_dir=cache / "models", record=True)
    assert built.path == cache / "models" / TUNED_MODEL_NAME

    env = {k: v for k, v in os.environ.items() if k != "INKLING_MODEL"} | {"INKLING_CACHE": str(cache)}
    client = InklingClient(env=env)
    await client.start()
    try:
        status = await client.wait_ready(timeout=120)
        assert status["state"] == "ready", status
        assert status["model"] == str(built.path)
        assert built.lora is not None and status["lora"] == str(built.lora)  # its LoRA, applied on load
        assert status["template"].startswith("inkling"), status
        client.open("file:///tmp/demo.py", "python", "def area(width, height):\n    return \n")
        await client.inline("file:///tmp/demo.py", 1, 11)  # answered (a random model may say anything)
        assert (await client.status())["state"] == "ready"
    finally:
        assert await client.stop() == 0
    record = json.loads((adapter / "build.json").read_text())
    assert record["output_sha256"] == built.sha256
