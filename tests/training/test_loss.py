"""The completion loss equals the full-logits loss, computed from far fewer logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.nn import functional

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


def test_completion_loss_matches_full_logits(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    torch.manual_seed(0)
    input_ids = torch.randint(10, 400, (2, 40))
    labels = torch.full_like(input_ids, -100)
    labels[0, 30:] = input_ids[0, 30:]
    labels[1, 25:33] = input_ids[1, 25:33]
    attention_mask = torch.ones_like(input_ids)

    full = model(input_ids=input_ids, attention_mask=attention_mask).logits
    expected = functional.cross_entropy(
        full[:, :-1].reshape(-1, full.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    recorder = _Recorder(model)
    loss, accuracy = completion_loss(
        recorder, {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    )
    assert torch.allclose(loss, expected, atol=1e-5)
    assert 0.0 <= accuracy.item() <= 1.0
    # Positions 24..38 hold a label's prediction in one row or the other: 15 of 40 positions.
    assert recorder.shapes == [(2, 15, 400)]
    loss.backward()
    assert model.get_input_embeddings().weight.grad is not None
