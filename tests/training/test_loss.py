"""The completion loss equals the full-logits loss, computed from far fewer logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.nn import functional

from training import base
from training.sft import completion_loss


class _Recorder:
    """Wraps a model and records the logits shape of every call."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, **kwargs: Any) -> Any:
        output = self.model(**kwargs)
        self.shapes.append(tuple(output.logits.shape))
        return output


def _inputs(input_ids: torch.Tensor, labelled: list[tuple[int, int, int]]) -> dict[str, torch.Tensor]:
    """A batch whose labels are the inputs at (row, start, end) and -100 elsewhere."""
    labels = torch.full_like(input_ids, -100)
    for row, start, end in labelled:
        labels[row, start:end] = input_ids[row, start:end]
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


def test_completion_loss_matches_full_logits(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    torch.manual_seed(0)
    inputs = _inputs(torch.randint(10, 400, (2, 40)), [(0, 30, 40), (1, 25, 33)])

    full = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    expected = functional.cross_entropy(
        full[:, :-1].reshape(-1, full.size(-1)), inputs["labels"][:, 1:].reshape(-1), ignore_index=-100
    )
    recorder = _Recorder(model)
    loss, accuracy = completion_loss(recorder, inputs)
    assert torch.allclose(loss, expected, atol=1e-5)
    assert 0.0 <= accuracy.item() <= 1.0
    # Positions 24..38 hold a label's prediction in one row or the other: 15 of 40 positions.
    assert recorder.shapes == [(2, 15, 400)]
    loss.backward()
    assert model.get_input_embeddings().weight.grad is not None


def test_bf16_autocast_keeps_the_loss_and_float32_gradients(tiny_model: Path) -> None:
    """What `precision: bf16` does on CPU: the matmuls in bf16, the weights and their gradients float32."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    torch.manual_seed(0)
    inputs = _inputs(torch.randint(10, 400, (1, 64)), [(0, 40, 64)])
    exact, _ = completion_loss(model, inputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, _ = completion_loss(model, inputs)
    assert mixed.item() != exact.item()  # it did compute in bf16
    assert abs(mixed.item() - exact.item()) < 0.02 * exact.item()
    mixed.backward()
    weight = model.get_input_embeddings().weight
    assert weight.dtype == torch.float32 and weight.grad is not None and weight.grad.dtype == torch.float32


def test_precision_setting(monkeypatch: Any) -> None:
    assert base.use_bf16("bf16") and not base.use_bf16("fp32")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for hardware in (True, False):
        monkeypatch.setattr(base, "cpu_has_bf16", lambda answer=hardware: answer)
        assert base.use_bf16("auto") is hardware


def _model_with_token_rows(tiny_model: Path, sparse: bool) -> Any:
    """The tiny Gemma with LoRA and trained rows for tokens 4-7 that differ from the base's."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from training.token_rows import apply_rows_sparsely

    torch.manual_seed(0)
    lora = LoraConfig(r=4, trainable_token_indices=[4, 5, 6, 7], task_type="CAUSAL_LM")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model)), lora)
    for name, parameter in model.named_parameters():
        if "trainable_tokens_delta" in name:
            parameter.data += torch.randn_like(parameter) * 0.5
    if sparse:
        assert apply_rows_sparsely(model) == 2  # the embedding and the tied output layer
    return model


_ROWS_INPUTS = torch.tensor([[4, 40, 41, 5, 42, 6, 43, 44, 7, 45]])


def test_sparse_token_rows_match_peft(tiny_model: Path) -> None:
    """Trained FIM rows applied sparsely: peft's outputs and gradients, without the full-matrix copies."""

    def model_and_loss(sparse: bool) -> tuple[Any, Any]:
        model = _model_with_token_rows(tiny_model, sparse)
        loss, _ = completion_loss(model, _inputs(_ROWS_INPUTS, [(0, 6, 10)]))
        loss.backward()
        return model, loss

    peft_model, peft_loss = model_and_loss(sparse=False)
    sparse_model, sparse_loss = model_and_loss(sparse=True)
    assert torch.allclose(sparse_loss, peft_loss, atol=1e-5)
    grads = {n: p.grad for n, p in peft_model.named_parameters() if p.requires_grad}
    for name, parameter in sparse_model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and torch.allclose(parameter.grad, grads[name], atol=1e-5), name
    assert any("trainable_tokens_delta" in name for name in grads)


def test_sparse_output_layer_under_autocast_casts_its_weight_once(tiny_model: Path) -> None:
    """bf16 autocast: the frozen output layer's logits are autocast's own, computed from one bf16
    copy of its weight that is made again only when the weight changes."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    from training.token_rows import _frozen_output

    def run(model: Any) -> Any:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = completion_loss(model, _inputs(_ROWS_INPUTS, [(0, 6, 10)]))
        loss.backward()
        return loss

    peft_loss = run(_model_with_token_rows(tiny_model, sparse=False))
    model = _model_with_token_rows(tiny_model, sparse=True)
    # bf16 rounds peft's merged matrix and the separate rows differently: bf16's tolerance.
    assert torch.allclose(run(model), peft_loss, rtol=1e-2)

    (output,) = [
        m
        for m in model.modules()
        if isinstance(m, TrainableTokensLayer) and isinstance(m.base_layer, torch.nn.Linear)
    ]
    hidden = torch.randn(1, 3, output.base_layer.in_features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(_frozen_output(output, output.base_layer, hidden), output.base_layer(hidden))
    copy = output._low_precision_weight[1]
    assert copy.dtype == torch.bfloat16 and output.base_layer.weight.dtype == torch.float32
    run(model)
    assert output._low_precision_weight[1] is copy  # reused, not cast again
    with torch.no_grad():
        output.base_layer.weight.mul_(2.0)
    run(model)
    assert torch.equal(output._low_precision_weight[1], output.base_layer.weight.detach().to(torch.bfloat16))
