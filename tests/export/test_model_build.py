"""`inkling model build` on the tiny model: record, verify, refuse, and what the server then loads."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from export.adapter import file_sha256
from export.build import BUILD_FILE, DEFAULT_ADAPTER_DIR, BuildError, build_default_model
from export.gguf_file import read_template
from export.imatrix import IMATRIX_FILE, Imatrix, write_imatrix
from lsp_server.models import TUNED_MODEL_NAME, resolve_model

pytestmark = pytest.mark.slow


@pytest.fixture
def adapter(tiny_adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the tiny adapter to build from, and a cache of this test's own."""
    copy = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, copy)
    monkeypatch.setenv("INKLING_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("INKLING_MODEL", raising=False)
    return copy


def _without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The setup command builds in the server's environment: no torch, transformers or peft."""
    for heavy in ("torch", "transformers", "peft"):
        monkeypatch.setitem(sys.modules, heavy, None)


def test_build_records_a_stable_hash_then_verifies_it(
    tiny_base: Path, adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_torch(monkeypatch)

    recorded = build_default_model(adapter_dir=adapter, base=tiny_base, record=True, threads=1)
    record = json.loads((adapter / BUILD_FILE).read_text())
    installed = tmp_path / "cache" / "models" / TUNED_MODEL_NAME
    assert recorded.path == installed and record["output_sha256"] == file_sha256(installed)
    assert record["base_sha256"] == file_sha256(tiny_base)
    assert recorded.lora == installed.with_name("inkling-gemma3-270m-fim.lora.gguf")
    assert record["lora_sha256"] == file_sha256(recorded.lora) and record["lora_size"] > 0
    assert resolve_model().path == installed  # the server now prefers it

    installed.unlink()
    checked = build_default_model(adapter_dir=adapter, base=tiny_base, threads=1)
    assert not checked.recorded and checked.sha256 == record["output_sha256"] and installed.is_file()

    installed.unlink()
    (adapter / BUILD_FILE).write_text(json.dumps({**record, "output_sha256": "0" * 64}))
    with pytest.raises(BuildError, match="nothing was installed"):
        build_default_model(adapter_dir=adapter, base=tiny_base, threads=1)
    assert not installed.exists()
    # A record made when the LoRA was merged (no lora_sha256) does not match a build that keeps it apart.
    (adapter / BUILD_FILE).write_text(
        json.dumps({k: v for k, v in record.items() if not k.startswith("lora")})
    )
    with pytest.raises(BuildError, match=r"LoRA .* merged"):
        build_default_model(adapter_dir=adapter, base=tiny_base, threads=1)
    assert not list((tmp_path / "cache" / "models").glob("inkling-build-*"))  # no scratch left behind


def test_a_shipped_importance_matrix_is_read_and_recorded(
    tiny_base: Path, adapter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read without torch and recorded. It leaves the bytes as they are: with the LoRA applied
    on load, every block weight is the base's own, and the embedding (Q8_0) takes no matrix
    (that the quantizer follows one: tests/export/test_imatrix.py)."""
    plain = build_default_model(adapter_dir=adapter, base=tiny_base, record=True, threads=1).sha256
    assert json.loads((adapter / BUILD_FILE).read_text())["imatrix_sha256"] == ""
    # Made up, but shaped like a measured one: one positive entry per block weight column.
    rng = np.random.default_rng(0)
    widths = {t.name: int(t.shape[0]) for t in read_template(tiny_base).tensors if t.name.startswith("blk.")}
    sums = {
        name: rng.uniform(0.01, 100.0, width) for name, width in widths.items() if name.endswith(".weight")
    }
    write_imatrix(Imatrix(sums, dict.fromkeys(sums, 1), ["made up"], 1, 1), adapter / IMATRIX_FILE)
    _without_torch(monkeypatch)  # read, not measured

    weighted = build_default_model(adapter_dir=adapter, base=tiny_base, record=True, threads=1)
    record = json.loads((adapter / BUILD_FILE).read_text())
    assert record["imatrix_sha256"] == file_sha256(adapter / IMATRIX_FILE)
    assert weighted.sha256 == record["output_sha256"] == plain


def test_build_without_a_trained_adapter_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lsp_server.cli import main

    assert main(["model", "build", "--adapter", str(tmp_path)]) == 1
    assert "no trained default adapter" in capsys.readouterr().err
    assert main(["model", "build", "--adapter", str(tmp_path), "--if-available"]) == 0
    assert "serves the base" in capsys.readouterr().out


def test_the_shipped_adapter_directory_is_complete_or_absent() -> None:
    """Either no adapter yet (build fails clearly) or every file build needs, hash included."""
    if not (DEFAULT_ADAPTER_DIR / "inkling_adapter.json").exists():
        with pytest.raises(BuildError, match="no trained default adapter"):
            build_default_model()
        return
    for name in ("adapter_config.json", "adapter_model.safetensors", BUILD_FILE):
        assert (DEFAULT_ADAPTER_DIR / name).is_file(), name
    assert len(json.loads((DEFAULT_ADAPTER_DIR / BUILD_FILE).read_text())["output_sha256"]) == 64
