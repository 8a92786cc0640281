import pytest

from lsp_server.cli import main
from lsp_server.errors import SettingsError
from lsp_server.settings import (
    Settings,
    changed_reload_fields,
    layer_from_cli,
    layer_from_client,
    layer_from_env,
    merge,
    setting_specs,
)


def test_defaults_and_table_agree() -> None:
    defaults = Settings()
    for spec in setting_specs():
        assert getattr(defaults, spec.name) == spec.default
        assert spec.env.startswith("INKLING_")
        assert spec.flag.startswith("--")


def test_environment_values_are_typed() -> None:
    layer = layer_from_env({"INKLING_MODEL": "/m.gguf", "INKLING_THREADS": "3", "INKLING_ENABLE": "no"})
    settings = merge([layer])
    assert settings.model_path == "/m.gguf"
    assert settings.threads == 3
    assert settings.enable is False
    assert layer.warnings == []


def test_number_settings_take_numbers_from_every_source() -> None:
    assert merge([layer_from_env({"INKLING_LINE_RANK_BELOW": "0.5"})]).line_rank_below == 0.5
    assert merge([layer_from_client({"lineRankBelow": 1}, "client")]).line_rank_below == 1.0
    layer = layer_from_client({"lineRankBelow": "half"}, "client")
    assert merge([layer]).line_rank_below == Settings().line_rank_below
    assert "lineRankBelow" in "\n".join(layer.warnings)
    above = layer_from_client({"lineRankBelow": 1.5}, "client")
    assert merge([above]).line_rank_below == Settings().line_rank_below and above.warnings


def test_bad_values_become_warnings_and_defaults() -> None:
    layer = layer_from_client(
        {"contextSize": "huge", "threads": -1, "maxTokensInline": True, "nonsense": 1}, "client"
    )
    settings = merge([layer])
    assert settings == Settings()
    joined = "\n".join(layer.warnings)
    assert "contextSize" in joined and "threads" in joined and "maxTokensInline" in joined
    assert "unknown setting 'nonsense'" in joined


def test_a_one_shot_command_stops_on_a_flag_it_cannot_use(capsys: pytest.CaptureFixture[str]) -> None:
    """The server carries on with the default; `complete`, `eval`, `bench`, `doctor` must not
    run (and label their figures) with a value other than the one typed."""
    assert layer_from_cli({"line_candidates": "6"}).warnings  # the server's way: a warning
    with pytest.raises(SettingsError, match="--line-candidates: 6 is above the maximum"):
        layer_from_cli({"line_candidates": "6"}, strict=True)
    assert merge([layer_from_cli({"line_candidates": "4"}, strict=True)]).line_candidates == 4

    assert main(["complete", "--line-candidates", "6", "no-such-file.py:1:1"]) == 2
    assert "setting --line-candidates" in capsys.readouterr().err


def test_client_settings_nested_or_flat_and_precedence() -> None:
    env = layer_from_env({"INKLING_CONTEXT_SIZE": "2048", "INKLING_MAX_TOKENS_BLOCK": "99"})
    cli = layer_from_cli({"context_size": "1024", "threads": None})
    client = layer_from_client({"inkling": {"contextSize": 8192}}, "initializationOptions")
    settings = merge([env, cli, client])
    assert settings.context_size == 8192  # the client wins
    assert settings.max_tokens_block == 99  # untouched by later layers
    assert merge([env, cli]).context_size == 1024  # the command line beats the environment


def test_language_switches() -> None:
    settings = merge([layer_from_client({"languages": {"markdown": False, "*": True}}, "c")])
    assert settings.language_enabled("python")
    assert not settings.language_enabled("markdown")
    only_python = merge([layer_from_env({"INKLING_LANGUAGES": "-*,python"})])
    assert only_python.language_enabled("python")
    assert not only_python.language_enabled("go")
    assert not merge([layer_from_client({"enable": False}, "c")]).language_enabled("python")


def test_reload_fields() -> None:
    old = Settings()
    assert changed_reload_fields(old, merge([layer_from_client({"maxTokensInline": 5}, "c")])) == []
    assert changed_reload_fields(old, merge([layer_from_client({"modelPath": "/x.gguf"}, "c")])) == [
        "model_path"
    ]


def test_non_object_client_settings() -> None:
    layer = layer_from_client(["not", "an", "object"], "initializationOptions")
    assert layer.values == {} and "expected an object" in layer.warnings[0]


def test_a_setting_with_choices_takes_only_those() -> None:
    good = layer_from_env({"INKLING_FIM_ORDER": " PSM "})
    assert merge([good]).fim_order == "psm" and good.warnings == []
    bad = layer_from_client({"fimOrder": "middle-first"}, "client")
    assert merge([bad]).fim_order == ""
    assert "fimOrder" in bad.warnings[0] and "'psm'" in bad.warnings[0]
