"""`inkling export` end to end on a tiny Gemma 3 (real llama.cpp, transformers and peft).

The real base takes minutes to export on 2 cores; the tiny model has the same
layout (metadata keys, tensor names, reserved FIM slots), so these tests
prove the mapping, the merge, the FIM metadata, quantization and verification
in seconds. The real-base round trip is a documented command (export/README.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest

from export.fim_vocab import fim_edits
from export.gguf_file import GGUFExportError, read_template, write_gguf
from export.run import ExportConfig, ExportError, ExportResult, run_export
from export.tensor_map import gguf_names, rules_for, to_gguf
from export.verify import VerifyConfig, greedy, verify
from lsp_server.llama_model import LlamaModel
from lsp_server.templates import INKLING_FIM_TOKENS, INKLING_FORMAT_KEY, INKLING_LAYOUT_KEY, detect_template
from tests.export.conftest import HELDOUT, llama_logits
from tests.requirements import require_train_extra

pytestmark = pytest.mark.slow

PROMPTS = ["def total(items):\n    return", "class Data:\n    def count(self", "for name in items:\n"]


def _open(path: Path) -> LlamaModel:
    return LlamaModel(path, n_ctx=256, n_threads=1, n_batch=64)


def test_exported_weights_compute_what_the_adapter_computes(
    exported: ExportResult, tiny_base: Path, tiny_adapter: Path
) -> None:
    """llama.cpp on the exported F32 file == transformers + peft on base and adapter, FIM tokens included."""
    import torch
    from peft import PeftModel

    from export.merge import load_base

    model = _open(exported.files["F32"])
    tokens = [
        model.bos_id,
        *model.tokenize("<|fim_suffix|>\n    return total<|fim_prefix|>def f(items):\n", special=True),
    ]
    tokens.append(model.special_token_id("<|fim_middle|>") or -1)
    model.close()
    assert tokens[1] == 7 and tokens[-1] == 8 and 6 in tokens  # the markers are single control tokens

    peft_model = PeftModel.from_pretrained(load_base(tiny_base, torch.float32), tiny_adapter).eval()
    with torch.no_grad():
        expected = peft_model(torch.tensor([tokens])).logits[0].numpy()
    actual = llama_logits(exported.files["F32"], tokens)
    assert (actual.argmax(-1) == expected.argmax(-1)).all()
    # llama.cpp keeps its KV cache in F16: close, not bit-equal. The base without the
    # adapter is the control: the export must be far nearer to base + adapter than it.
    error = np.abs(actual - expected).mean()
    assert error < 0.01 * np.abs(expected).mean()
    assert np.abs(llama_logits(tiny_base, tokens) - expected).mean() > 10 * error


def test_every_weight_maps_back_to_its_gguf_tensor(tiny_base: Path) -> None:
    """Names and Gemma's +1 norm convention: the base read by transformers, written back, is the base."""
    require_train_extra()
    from export.merge import merge_adapter

    template = read_template(tiny_base)
    merged = merge_adapter(tiny_base, None)
    names = gguf_names(template, list(merged.weights))
    rules = rules_for(template.architecture)
    assert len(names) == len(template.tensors)
    for tensor in template.tensors:
        written = to_gguf(tensor.name, merged.weights[names[tensor.name]], rules)
        np.testing.assert_allclose(written, template.dequantized(tensor.name), rtol=0, atol=1e-6)


def test_numpy_merge_equals_peft_merge(
    exported: ExportResult, tiny_base: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    """`inkling model build` merges with numpy; peft's own merge must give the same weights."""
    result = run_export(
        ExportConfig(
            base=tiny_base,
            output=tmp_path,
            adapter=tiny_adapter,
            name="peft",
            verify=False,
            threads=1,
            keep_f32=True,
            merge_with_peft=True,
        )
    )
    ours, peft = read_template(exported.files["F32"]), read_template(result.files["F32"])
    for tensor in ours.tensors:
        np.testing.assert_allclose(
            ours.dequantized(tensor.name),
            peft.dequantized(tensor.name),
            rtol=1e-6,
            atol=1e-7,
            err_msg=tensor.name,
        )


def test_untouched_weights_are_the_base_bits(exported: ExportResult, tiny_base: Path) -> None:
    base = read_template(tiny_base)
    out = read_template(exported.files["F32"])
    assert [t.name for t in out.tensors] == [t.name for t in base.tensors]
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in out.tensors)
    changed = set()
    for tensor in out.tensors:
        if not np.array_equal(out.dequantized(tensor.name), base.dequantized(tensor.name)):
            changed.add(tensor.name)
    assert all("norm" not in name for name in changed)
    assert {"token_embd.weight", "blk.0.attn_q.weight", "blk.1.ffn_down.weight"} <= changed
    # The trained token rows changed; every other embedding row is the base's.
    embedding, base_embedding = out.dequantized("token_embd.weight"), base.dequantized("token_embd.weight")
    differing_rows = np.flatnonzero((embedding != base_embedding).any(axis=1))
    assert differing_rows.tolist() == [6, 7, 8, 9]


def test_fim_tokens_and_metadata_reach_llama_cpp(exported: ExportResult, tiny_base: Path) -> None:
    model = LlamaModel(exported.files["Q4_K_M"], n_ctx=256, n_threads=1, n_batch=8, vocab_only=True)
    try:
        assert model.fim_token_ids() == {"pre": 6, "suf": 7, "mid": 8, "sep": 9}
        for token_id, text in enumerate(INKLING_FIM_TOKENS, start=6):
            assert model.special_token_id(text) == token_id
            assert model.is_control(token_id)
        assert model.is_eog(9)  # <|file_sep|> ends a generation
        template = detect_template(model)
        assert (template.family, template.order, template.prefix_last) == ("inkling", "spm", True)
        assert model.metadata(INKLING_FORMAT_KEY) == "spm"
        assert model.metadata(INKLING_LAYOUT_KEY) == "prefix-last"
        assert model.metadata("inkling.adapter.sha256") == exported.card["adapter"]["sha256"]
        assert model.metadata("general.name") == "tiny-fim"
    finally:
        model.close()
    # Everything else of the base's metadata is carried over unchanged.
    base, out = read_template(tiny_base), read_template(exported.files["Q4_K_M"])
    edited = {
        "general.name",
        "general.file_type",
        INKLING_FORMAT_KEY,
        INKLING_LAYOUT_KEY,
        "tokenizer.ggml.tokens",
    }
    edited |= {"tokenizer.ggml.token_type", "inkling.adapter.sha256", "inkling.base.sha256"}
    for key, value in base.metadata.items():
        if key not in edited and not key.startswith("tokenizer.ggml.fim_"):
            assert out.metadata[key] == value, key
    assert out.token_list()[10:] == base.token_list()[10:]


def test_quantized_files_keep_the_base_layout_and_agree(exported: ExportResult, tiny_base: Path) -> None:
    base, q4 = read_template(tiny_base), read_template(exported.files["Q4_K_M"])
    assert [t.tensor_type for t in q4.tensors] == [t.tensor_type for t in base.tensors]
    assert exported.files["Q4_K_M"].stat().st_size <= tiny_base.stat().st_size + 4096
    report = json.loads((exported.files["F32"].parent / "verify.json").read_text())
    assert report["probes"] == 6 and report["continuation_tokens"] > 0
    assert report["template"] == "inkling"
    for score in report["candidates"]:
        assert 0.0 <= score["token_agreement"] <= 1.0
        assert score["perplexity"] > 0
    assert [Path(s["path"]).name for s in report["candidates"]] == [
        "tiny-fim-q4_k_m.gguf",
        "tiny-fim-q8_0.gguf",
    ]


def test_a_model_agrees_fully_with_itself(exported: ExportResult) -> None:
    """The instrument's zero: llama.cpp's batched and token-by-token passes differ in the last
    bits, so the reference is scored on the same batches as the candidate."""
    path = exported.files["Q4_K_M"]
    report = verify(path, [path], VerifyConfig(HELDOUT, probes=6, perplexity_chunks=1, threads=1))
    assert report.candidates[0].token_agreement == 1.0
    assert report.candidates[0].sequence_agreement == 1.0
    assert report.candidates[0].perplexity == report.reference.perplexity


def test_modelfile_and_model_card(exported: ExportResult) -> None:
    out = exported.files["F32"].parent
    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./tiny-fim-q4_k_m.gguf" in modelfile
    assert "<|fim_prefix|><|fim_suffix|>{{ .Suffix }}<|fim_middle|>{{ .Prompt }}" in modelfile
    assert 'PARAMETER stop "<|file_sep|>"' in modelfile
    card = json.loads((out / "model_card.json").read_text())
    from export.adapter import file_sha256

    for item in card["files"]:
        assert file_sha256(out / item["file"]) == item["sha256"]
    assert card["template"]["family"] == "inkling"
    assert card["adapter"]["recipe"] == {"note": "random test adapter", "seed": 0}
    markdown = (out / "MODEL_CARD.md").read_text()
    assert "tiny-fim-q4_k_m.gguf" in markdown and "token agreement" in markdown


def test_round_trip_without_an_adapter_keeps_the_base_output(tiny_base: Path, tmp_path: Path) -> None:
    result = run_export(
        ExportConfig(base=tiny_base, output=tmp_path, name="again", verify=False, threads=1, keep_f32=True)
    )
    base = read_template(tiny_base)
    f32 = read_template(result.files["F32"])
    for tensor in base.tensors:
        assert np.array_equal(f32.dequantized(tensor.name), base.dequantized(tensor.name))
    q4 = read_template(result.files["Q4_K_M"])
    for ours, theirs in zip(q4.tensors, base.tensors, strict=True):
        assert ours.tensor_type == theirs.tensor_type and np.array_equal(ours.data, theirs.data), ours.name
    outputs = []
    for path in (tiny_base, result.files["Q4_K_M"]):
        model = _open(path)
        try:
            outputs.append([greedy(model, model.tokenize(p, add_bos=True), 12) for p in PROMPTS])
        finally:
            model.close()
    assert outputs[0] == outputs[1]
    assert len({tuple(o) for o in outputs[0]}) > 1  # the prompts do lead somewhere different


def test_an_adapter_for_another_base_is_refused(tiny_adapter: Path, tiny_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.gguf"
    shutil.copy(tiny_dir / "source-f32.gguf", other)
    with pytest.raises(ExportError, match="trained on"):
        run_export(ExportConfig(base=other, output=tmp_path / "out", adapter=tiny_adapter, verify=False))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_fim_slots_must_be_free(tiny_base: Path) -> None:
    template = read_template(tiny_base)
    with pytest.raises(GGUFExportError, match="not a free slot"):
        fim_edits(
            template,
            {2: "<|fim_prefix|>", 7: "<|fim_suffix|>", 8: "<|fim_middle|>", 9: "<|file_sep|>"},
            "psm",
        )
    with pytest.raises(GGUFExportError, match="FIM format"):
        fim_edits(template, dict(enumerate(INKLING_FIM_TOKENS, start=6)), "pms")


def test_export_command(tiny_base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lsp_server.cli import main

    code = main(
        [
            "export",
            "--base",
            str(tiny_base),
            "--output",
            str(tmp_path),
            "--name",
            "cli",
            "--quant",
            "q8_0",
            "--heldout",
            str(HELDOUT[0]),
            "--probes",
            "3",
            "--perplexity-chunks",
            "1",
            "--threads",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert (tmp_path / "cli-q8_0.gguf").is_file() and not (tmp_path / "cli-f32.gguf").exists()
    assert "token agreement" in out and "Q8_0:" in out
    assert main(["export", "--adapter", str(tmp_path / "missing"), "--output", str(tmp_path)]) == 1
    assert "not a directory" in capsys.readouterr().err
    assert main(["export", "--base", str(tmp_path / "none.gguf"), "--output", str(tmp_path / "x")]) == 1
    assert "neither a GGUF file" in capsys.readouterr().err
    assert main(["export", "--base", str(tiny_base), "--output", str(tmp_path / "x"), "--quant", "Q3"]) == 1
    assert "unknown quantization" in capsys.readouterr().err


def test_models_with_other_vocabularies_are_not_compared(exported: ExportResult, tmp_path: Path) -> None:
    from export.gguf_file import Edits, MetadataValue

    template = read_template(exported.files["Q8_0"])  # a file without a LoRA to carry along
    tokens = template.token_list()
    tokens[300] = b"renamed"
    array, string = gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING
    edits = Edits(set={"tokenizer.ggml.tokens": MetadataValue(array, tokens, string)})
    other = write_gguf(template, tmp_path / "other.gguf", None, edits)
    with pytest.raises(ValueError, match="another vocabulary"):
        verify(
            exported.files["Q8_0"], [other], VerifyConfig(HELDOUT, probes=2, perplexity_chunks=1, threads=1)
        )
