"""A tiny Gemma 3 GGUF (random weights, a small SentencePiece-style vocabulary)
and a LoRA adapter for it, so that export is tested end to end in seconds.

The layout copies the real base: the same metadata keys, tensor names and
reserved `<unused0>`.. control tokens at ids 6-9; width 256 so that llama.cpp
uses real K-quants rather than fallbacks.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import gguf
import numpy as np

HIDDEN = 256
FFN = 512
HEADS = 2
KV_HEADS = 1
HEAD_DIM = 256  # = query_pre_attn_scalar, which transformers assumes for Gemma 3
BLOCKS = 2
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "[multimodal]"] + [f"<unused{i}>" for i in range(6)]
WORDS = [
    "def",
    "return",
    "import",
    "from",
    "class",
    "self",
    "for",
    "in",
    "if",
    "else",
    "while",
    "print",
    "None",
    "True",
    "False",
    "and",
    "or",
    "not",
    "lambda",
    "yield",
    "with",
    "as",
    "pass",
    "range",
    "len",
    "value",
    "result",
    "items",
    "name",
    "data",
    "total",
    "count",
    "append",
    "sum",
    "list",
]


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    tokens = list(SPECIALS)
    types = [gguf.TokenType.CONTROL] * len(SPECIALS)
    types[3] = gguf.TokenType.UNKNOWN
    tokens += [f"<0x{byte:02X}>" for byte in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    pieces = ["▁", "\n", "    ", "▁▁", *string.ascii_letters, *string.digits, *string.punctuation]
    pieces += [f"▁{word}" for word in WORDS] + WORDS
    pieces += ["▁=", "▁+", "▁-", "▁*", "():", "(self", "):", "▁==", "▁+=", "[0]", "()\n"]
    pieces = list(dict.fromkeys(pieces))
    tokens += pieces
    types += [gguf.TokenType.NORMAL] * len(pieces)
    scores = [0.0] * (len(SPECIALS) + 256) + [-float(i) / 10 + len(p) for i, p in enumerate(pieces)]
    return tokens, scores, [int(t) for t in types]


def write_tiny_gemma(path: Path, seed: int = 0) -> Path:
    """An F32 GGUF in the real base's format (norms stored as 1 + w, as llama.cpp expects)."""
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    writer = gguf.GGUFWriter(path, "gemma3")
    writer.add_name("tiny gemma3")
    writer.add_context_length(1024)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(BLOCKS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_key_length(HEAD_DIM)
    writer.add_value_length(HEAD_DIM)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_sliding_window(512)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_unk_token_id(3)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)

    def weight(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm(size: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(size)).astype(np.float32)

    writer.add_tensor(
        "token_embd.weight", (rng.standard_normal((len(tokens), HIDDEN)) * 0.5).astype(np.float32)
    )
    writer.add_tensor("output_norm.weight", norm(HIDDEN))
    for block in range(BLOCKS):
        prefix = f"blk.{block}."
        writer.add_tensor(prefix + "attn_norm.weight", norm(HIDDEN))
        writer.add_tensor(prefix + "attn_q.weight", weight(HEADS * HEAD_DIM, HIDDEN))
        writer.add_tensor(prefix + "attn_k.weight", weight(KV_HEADS * HEAD_DIM, HIDDEN))
        writer.add_tensor(prefix + "attn_v.weight", weight(KV_HEADS * HEAD_DIM, HIDDEN))
        writer.add_tensor(prefix + "attn_q_norm.weight", norm(HEAD_DIM))
        writer.add_tensor(prefix + "attn_k_norm.weight", norm(HEAD_DIM))
        writer.add_tensor(prefix + "attn_output.weight", weight(HIDDEN, HEADS * HEAD_DIM))
        writer.add_tensor(prefix + "post_attention_norm.weight", norm(HIDDEN))
        writer.add_tensor(prefix + "ffn_norm.weight", norm(HIDDEN))
        writer.add_tensor(prefix + "ffn_gate.weight", weight(FFN, HIDDEN))
        writer.add_tensor(prefix + "ffn_up.weight", weight(FFN, HIDDEN))
        writer.add_tensor(prefix + "ffn_down.weight", weight(HIDDEN, FFN))
        writer.add_tensor(prefix + "post_ffw_norm.weight", norm(HIDDEN))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_tiny_adapter(
    base: Path,
    directory: Path,
    fim_format: str = "spm",
    seed: int = 0,
    fim_layout: str = "prefix-last",
    *,
    rank: int = 4,
    b_std: float = 0.05,
    rows_std: float = 0.5,
) -> Path:
    """A LoRA on every projection plus trained rows for tokens 6-9, with random non-zero
    weights (an untrained LoRA is the identity and would prove nothing), saved by peft."""
    import torch
    from peft import LoraConfig, get_peft_model

    from export.adapter import METADATA_FILE, file_sha256
    from export.merge import load_base
    from lsp_server.templates import INKLING_FIM_TOKENS

    torch.manual_seed(seed)
    model = load_base(base, torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        trainable_token_indices=[6, 7, 8, 9],
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, b_std)
            elif "trainable_tokens_delta" in name:
                parameter.normal_(0.0, rows_std)
    peft_model.save_pretrained(directory)
    base_sha = file_sha256(base) if base.is_file() else file_sha256(base / "model.safetensors")
    metadata = {
        "base": {"path": str(base), "sha256": base_sha, "format": "gguf" if base.is_file() else "hf"},
        "fim_tokens": {str(6 + i): token for i, token in enumerate(INKLING_FIM_TOKENS)},
        "fim_format": fim_format,
        "fim_layout": fim_layout,
        "template": "inkling",
        "stage": "sft",
        "recipe": {"note": "random test adapter", "seed": seed},
    }
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return directory


def write_tiny_hf_gemma(directory: Path, corpus: str, seed: int = 0) -> Path:
    """A Hugging Face Gemma 3 directory with a SentencePiece tokenizer.model trained on
    `corpus` (ids 0-9 laid out like Gemma's: pad, eos, bos, unk, ..., <unused0>-<unused3>)."""
    import io

    import sentencepiece as spm
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    directory.mkdir(parents=True, exist_ok=True)
    model_proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus.splitlines()),
        model_writer=model_proto,
        vocab_size=512,
        model_type="bpe",
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        control_symbols=["<mask>", "[multimodal]"] + [f"<unused{i}>" for i in range(4)],
        byte_fallback=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        minloglevel=2,
    )
    (directory / "tokenizer.model").write_bytes(model_proto.getvalue())
    special = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}
    config_json = {"add_bos_token": True, "add_eos_token": False, **special}
    (directory / "tokenizer_config.json").write_text(json.dumps(config_json))
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=512,
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=BLOCKS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        head_dim=HEAD_DIM,
        query_pre_attn_scalar=HEAD_DIM,
        sliding_window=512,
        max_position_embeddings=1024,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    model = Gemma3ForCausalLM(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:  # Gemma initialises them to 0 (a scale of 1): make the +1 matter
                parameter.normal_(0.0, 0.1)
    model.save_pretrained(directory)
    return directory
