"""Typed settings, merged from defaults, environment, command line and client.

One table (the dataclass below) is the single source of truth: the CLI flags,
the environment variables, the client keys, the README reference and the VS
Code settings schema are all derived from it, so they cannot drift apart.
A bad value never stops the server: it becomes a warning and the default.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, get_type_hints

from lsp_server.errors import SettingsError


def _meta(
    help_text: str,
    *,
    env: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    reload: bool = False,
    choices: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "help": help_text,
        "env": env,
        "minimum": minimum,
        "maximum": maximum,
        "reload": reload,
        "choices": choices,
    }


MAX_CANDIDATES = 4
"""The most candidate lines decoded side by side from their first tokens."""
MAX_FORKS = 4
"""The most candidate lines forked off others (the engine keeps MAX_CANDIDATES + MAX_FORKS
KV sequences)."""
MAX_SUGGESTIONS = 5
"""The most completions an inline answer carries (`Settings.inline_suggestions`)."""


@dataclass(frozen=True)
class Settings:
    """Everything a user can set. Field order is the order of the reference docs."""

    model_path: str = field(
        default="",
        metadata=_meta(
            "Path to a GGUF model. Empty: $INKLING_MODEL, else the tuned default "
            "built by `inkling model build`, else Gemma 3 270M from its package.",
            env="INKLING_MODEL",
            reload=True,
        ),
    )
    context_size: int = field(
        default=4096,
        metadata=_meta("Model context window in tokens.", minimum=512, maximum=131072, reload=True),
    )
    threads: int = field(
        default=0,
        metadata=_meta(
            "CPU threads for llama.cpp; 0 means one per available core.",
            minimum=0,
            maximum=256,
            reload=True,
        ),
    )
    batch_size: int = field(
        default=128,
        metadata=_meta(
            "Prompt tokens evaluated per llama.cpp batch; also the most work a superseded request can cost.",
            minimum=8,
            maximum=4096,
            reload=True,
        ),
    )
    gpu_layers: int = field(
        default=0,
        metadata=_meta(
            "Model layers llama.cpp offloads to a GPU, for a llama.cpp built with a GPU backend "
            "(`inkling bundle --gpu cuda` or `vulkan`); 0 keeps the model on the CPU. A CPU-only build "
            "(the default) has nothing to offload to and ignores it.",
            minimum=0,
            maximum=1000,
            reload=True,
        ),
    )
    engine_url: str = field(
        default="",
        metadata=_meta(
            "Generate on an inference server instead of in this process: llama.cpp's llama-server "
            "(http://HOST:8080) or an OpenAI-compatible completion server such as vLLM "
            "(http://HOST:8000/v1). Buffers, project context, prompts and post-processing stay "
            "here; the tokenizer is read from modelPath (or the same-named model file in "
            "Inkling's cache), else asked of llama-server. Empty: the model runs in-process.",
            reload=True,
        ),
    )
    max_tokens_inline: int = field(
        default=48,
        metadata=_meta("Most tokens generated when finishing a line.", minimum=1, maximum=1024),
    )
    max_tokens_block: int = field(
        default=160,
        metadata=_meta("Most tokens generated when writing a block.", minimum=1, maximum=4096),
    )
    line_candidates: int = field(
        default=3,
        metadata=_meta(
            "On a blank line, decode this many candidate lines side by side and offer the one "
            "the model finds most likely together with the lines below it; 1: the single most "
            "likely line, token by token (faster).",
            minimum=1,
            maximum=MAX_CANDIDATES,
        ),
    )
    line_forks: int = field(
        default=0,
        metadata=_meta(
            "With several line candidates: at most this many more, each branched off a "
            "candidate where its next token was a near tie (two ways to go on, almost "
            "equally likely), and judged with the others.",
            minimum=0,
            maximum=MAX_FORKS,
        ),
    )
    line_rank_below: float = field(
        default=0.5,
        metadata=_meta(
            "With several line candidates: rank them only where the most likely first token of the "
            "line takes less than this share of the probability the candidates' first tokens have "
            "together (the model is unsure how the line starts); otherwise the greedy line alone, "
            "in the time of one line. 1: always rank.",
            minimum=0.0,
            maximum=1.0,
        ),
    )
    inline_suggestions: int = field(
        default=3,
        metadata=_meta(
            "Most distinct completions one answer carries, best first, for editors that cycle "
            "through them (VS Code, Neovim; menu clients list them). The first is the answer you "
            "get with 1. Requests made while typing carry only the alternatives a blank line's "
            "ranking decoded anyway (`lineCandidates`), at no cost; when you ask (a keybinding, "
            "cycling), the model then also writes completions that start with its next most "
            "likely first tokens, side by side. Not with `engineUrl`: the first only.",
            minimum=1,
            maximum=MAX_SUGGESTIONS,
        ),
    )
    time_budget_inline_ms: int = field(
        default=2000,
        metadata=_meta(
            "Generation time budget for a line; what is complete when it runs out is returned.",
            minimum=50,
            maximum=60000,
        ),
    )
    time_budget_block_ms: int = field(
        default=5000,
        metadata=_meta("Generation time budget for a block.", minimum=50, maximum=120000),
    )
    prefix_tokens: int = field(
        default=1024,
        metadata=_meta("Most tokens of text before the cursor put in the prompt.", minimum=32, maximum=65536),
    )
    suffix_tokens: int = field(
        default=256,
        metadata=_meta(
            "Most tokens of text after the cursor put in the prompt (FIM models).",
            minimum=0,
            maximum=65536,
        ),
    )
    fim_order: str = field(
        default="",
        metadata=_meta(
            "Prompt layout for fill-in-the-middle models trained in both orders (Inkling's own): "
            '"spm" puts the suffix first, so that typing, which changes the end of the prefix, '
            'leaves the suffix in the KV cache; "psm" puts the prefix first. Empty (best): the '
            "layout the model declares and was mostly trained in. Ignored for models without FIM tokens.",
            choices=("", "psm", "spm"),
        ),
    )
    cold_start_tokens: int = field(
        default=256,
        metadata=_meta(
            "A prompt the model has little of in its cache (just loaded, a file just opened, a jump "
            "to another function): if more than twice this many of its tokens are new, answer from "
            "this many tokens before the cursor (a block: its first statement only) and evaluate "
            "the whole prompt in the background; 0 turns this off.",
            minimum=0,
            maximum=65536,
        ),
    )
    context_tokens: int = field(
        default=384,
        metadata=_meta(
            "Tokens of project context (definitions from other files, similar code from other "
            "buffers) put in front of the code; 0 turns project context off.",
            minimum=0,
            maximum=16384,
        ),
    )
    context_definitions: bool = field(
        default=True,
        metadata=_meta("Project context: signatures of what the file imports and of names used nearby."),
    )
    context_buffers: bool = field(
        default=True,
        metadata=_meta("Project context: similar code from other open buffers and recent edits."),
    )
    context_recent: bool = field(
        default=True,
        metadata=_meta("Project context: code around places where completions were recently asked for."),
    )
    context_similar: bool = field(
        default=True,
        metadata=_meta(
            "Project context: code like the lines above the cursor from the files it imports and its folder."
        ),
    )
    context_time_limit_ms: int = field(
        default=50,
        metadata=_meta("Most time spent gathering project context for one request.", minimum=1, maximum=5000),
    )
    enable: bool = field(default=True, metadata=_meta("Turn all completions on or off."))
    languages: dict[str, bool] = field(
        default_factory=dict,
        metadata=_meta(
            'Per-language switch, by LSP language id, e.g. {"markdown": false}; '
            '"*" sets the default for languages not listed.'
        ),
    )
    max_file_bytes: int = field(
        default=2_000_000,
        metadata=_meta(
            "Files larger than this get no syntax analysis (line-wise completion only).",
            minimum=10_000,
            maximum=100_000_000,
        ),
    )
    log_buffers: bool = field(
        default=False,
        metadata=_meta(
            "Debug only: write prompts and completions to the log. Off by default "
            "so that code never reaches a log file."
        ),
    )
    record_feedback: bool = field(
        default=False,
        metadata=_meta(
            "Opt-in: keep each offered completion, the code around it (secrets and personal data "
            "scrubbed) and what became of it (accepted, rejected, partly typed) in a database in "
            "Inkling's state directory, for `inkling feedback` and `inkling train pairs --from-feedback`. "
            "The records never leave the machine."
        ),
    )
    feedback_max_mib: int = field(
        default=64,
        metadata=_meta(
            "Most space the feedback database takes; past it the oldest records are deleted.",
            minimum=1,
            maximum=65536,
        ),
    )

    def language_enabled(self, language_id: str) -> bool:
        if not self.enable:
            return False
        if language_id in self.languages:
            return self.languages[language_id]
        return self.languages.get("*", True)


@dataclass(frozen=True)
class SettingSpec:
    """One row of the settings table, as documentation and parsers see it."""

    name: str
    client_key: str
    env: str
    flag: str
    type_name: str
    default: Any
    help: str
    minimum: float | None
    maximum: float | None
    reload: bool
    choices: tuple[str, ...] = ()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _type_name(annotation: Any) -> str:
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "number"
    if annotation is str:
        return "string"
    return "object"


def setting_specs() -> list[SettingSpec]:
    hints = get_type_hints(Settings)
    specs = []
    for f in fields(Settings):
        default = f.default_factory() if f.default is MISSING else f.default  # type: ignore[operator]
        specs.append(
            SettingSpec(
                name=f.name,
                client_key=_camel(f.name),
                env=f.metadata["env"] or "INKLING_" + f.name.upper(),
                flag="--" + f.name.replace("_", "-"),
                type_name=_type_name(hints[f.name]),
                default=default,
                help=f.metadata["help"],
                minimum=f.metadata["minimum"],
                maximum=f.metadata["maximum"],
                reload=f.metadata["reload"],
                choices=f.metadata["choices"],
            )
        )
    return specs


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(spec: SettingSpec, raw: Any) -> Any:
    """Turn a raw value (JSON or an environment string) into the field's type."""
    kind = spec.type_name
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ValueError(f"expected true or false, got {raw!r}")
    if kind == "integer":
        if isinstance(raw, bool):
            raise ValueError(f"expected an integer, got {raw!r}")
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, float) and raw.is_integer():
            value = int(raw)
        elif isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw):
            value = int(raw)
        else:
            raise ValueError(f"expected an integer, got {raw!r}")
        if spec.minimum is not None and value < spec.minimum:
            raise ValueError(f"{value} is below the minimum {spec.minimum:g}")
        if spec.maximum is not None and value > spec.maximum:
            raise ValueError(f"{value} is above the maximum {spec.maximum:g}")
        return value
    if kind == "number":
        if isinstance(raw, bool):
            raise ValueError(f"expected a number, got {raw!r}")
        if isinstance(raw, int | float):
            number = float(raw)
        elif isinstance(raw, str) and re.fullmatch(r"\s*-?(\d+\.?\d*|\.\d+)\s*", raw):
            number = float(raw)
        else:
            raise ValueError(f"expected a number, got {raw!r}")
        if spec.minimum is not None and number < spec.minimum:
            raise ValueError(f"{number:g} is below the minimum {spec.minimum:g}")
        if spec.maximum is not None and number > spec.maximum:
            raise ValueError(f"{number:g} is above the maximum {spec.maximum:g}")
        return number
    if kind == "string":
        if raw is None:
            return ""
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {raw!r}")
        if "\x00" in raw:
            raise ValueError("contains a NUL character")
        if spec.choices and raw.strip().lower() not in spec.choices:
            raise ValueError(f"expected one of {', '.join(map(repr, spec.choices))}, got {raw!r}")
        return raw.strip().lower() if spec.choices else raw
    # The only object setting is a language -> bool mapping.
    if isinstance(raw, str):
        raw = _parse_language_list(raw)
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, bool) for k, v in raw.items()
    ):
        raise ValueError(f'expected an object like {{"markdown": false}}, got {raw!r}')
    return dict(raw)


def _parse_language_list(text: str) -> dict[str, bool]:
    """Environment/CLI form: 'python,go,-markdown' (a leading '-' disables)."""
    result: dict[str, bool] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item.startswith("-"):
            result[item[1:]] = False
        else:
            result[item] = True
    return result


@dataclass
class SettingsLayer:
    """Values from one source, keyed by field name, plus what was wrong in it."""

    source: str
    values: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def layer_from_env(env: Mapping[str, str] | None = None) -> SettingsLayer:
    env = os.environ if env is None else env
    layer = SettingsLayer("environment")
    for spec in setting_specs():
        if spec.env in env:
            _put(layer, spec, env[spec.env], spec.env)
    return layer


def layer_from_cli(values: Mapping[str, Any], *, strict: bool = False) -> SettingsLayer:
    """`values` holds field names; None means the flag was not given. `strict`: a value
    that cannot be used raises SettingsError instead of becoming a warning."""
    layer = SettingsLayer("command line")
    by_name = {spec.name: spec for spec in setting_specs()}
    for name, raw in values.items():
        if raw is not None and name in by_name:
            _put(layer, by_name[name], raw, by_name[name].flag, strict=strict)
    return layer


def layer_from_client(raw: Any, source: str) -> SettingsLayer:
    """Client settings: flat `{"modelPath": ...}` or nested under `"inkling"`."""
    layer = SettingsLayer(source)
    if raw is None:
        return layer
    if not isinstance(raw, Mapping):
        layer.warnings.append(f"{source}: expected an object, got {type(raw).__name__}; ignored")
        return layer
    if isinstance(raw.get("inkling"), Mapping):
        raw = raw["inkling"]
    by_key = {spec.client_key: spec for spec in setting_specs()}
    by_key.update({spec.name: spec for spec in setting_specs()})
    for key, value in raw.items():
        spec = by_key.get(key)
        if spec is None:
            layer.warnings.append(f"{source}: unknown setting {key!r} ignored")
            continue
        _put(layer, spec, value, spec.client_key)
    return layer


def _put(layer: SettingsLayer, spec: SettingSpec, raw: Any, label: str, *, strict: bool = False) -> None:
    try:
        layer.values[spec.name] = _coerce(spec, raw)
    except ValueError as exc:
        if strict:
            raise SettingsError(f"setting {label}: {exc}") from None
        layer.warnings.append(f"{layer.source}: setting {label}: {exc}; using {spec.default!r} instead")


def merge(layers: Iterable[SettingsLayer], base: Settings | None = None) -> Settings:
    """Later layers win, field by field."""
    values: dict[str, Any] = {}
    for layer in layers:
        values.update(layer.values)
    return replace(base or Settings(), **values)


def changed_reload_fields(old: Settings, new: Settings) -> list[str]:
    """Names of changed settings that need the model to be loaded again."""
    return [
        spec.name
        for spec in setting_specs()
        if spec.reload and getattr(old, spec.name) != getattr(new, spec.name)
    ]


def effective_threads(settings: Settings) -> int:
    if settings.threads > 0:
        return settings.threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def reference_markdown() -> str:
    """The configuration reference table in the README (a test keeps them equal)."""
    rows = [
        "| client key | flag | environment | default | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in setting_specs():
        shown = "0 (all cores)" if spec.name == "threads" else json.dumps(spec.default)
        reload_note = " Changing it reloads the model." if spec.reload else ""
        rows.append(
            f"| `{spec.client_key}` | `{spec.flag}` | `{spec.env}` | `{shown}` | {spec.help}{reload_note} |"
        )
    return "\n".join(rows)
