"""The libraries whose private members training uses are pinned, checked, and fail clearly."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from training.private_members import SUPPORTED, UnsupportedLibraryError
from training.token_rows import apply_rows_sparsely


def _train_extra() -> dict[str, SpecifierSet]:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    requirements = [Requirement(line) for line in pyproject["project"]["optional-dependencies"]["train"]]
    return {requirement.name: requirement.specifier for requirement in requirements}


@pytest.mark.parametrize("library", sorted(SUPPORTED))
def test_the_range_in_messages_is_the_pinned_one_and_holds_the_installed_version(library: str) -> None:
    pinned = _train_extra()[library]
    assert pinned == SpecifierSet(SUPPORTED[library])
    assert pinned.contains(metadata.version(library))
    assert any(spec.operator == "<" for spec in pinned), f"{library} needs an upper bound"


def test_a_peft_without_the_private_helpers_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    assert apply_rows_sparsely(torch.nn.Linear(2, 2)) == 0  # the installed peft passes
    monkeypatch.delattr(TrainableTokensLayer, "_check_overlapping_tokens")
    with pytest.raises(UnsupportedLibraryError) as caught:
        apply_rows_sparsely(torch.nn.Linear(2, 2))
    message = str(caught.value)
    assert f"peft {metadata.version('peft')} is not a version" in message
    assert "TrainableTokensLayer has no _check_overlapping_tokens" in message
    assert "peft>=0.21,<0.22" in message


def test_a_peft_whose_forward_takes_other_parameters_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    def forward_adapters(self: object, x: torch.Tensor, adapter_names: list[str]) -> torch.Tensor:
        return x

    monkeypatch.setattr(TrainableTokensLayer, "forward_adapters", forward_adapters)
    with pytest.raises(UnsupportedLibraryError, match=r"takes \(self, x, adapter_names\)"):
        apply_rows_sparsely(torch.nn.Linear(2, 2))


def test_a_trl_without_prepare_dataset_is_refused_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    from trl import DPOTrainer

    from training.dpo import _trainer_class

    assert issubclass(_trainer_class(), DPOTrainer)
    monkeypatch.delattr(DPOTrainer, "_prepare_dataset")
    with pytest.raises(
        UnsupportedLibraryError, match=r"DPOTrainer has no _prepare_dataset.*trl>=1\.16,<1\.17"
    ):
        _trainer_class()
