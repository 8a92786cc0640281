"""Typed configs: dataclasses filled from YAML and `--set key=value` overrides.

A recipe file may hold one section per command (`prepare:`, `sft:`, `pairs:`,
`dpo:`) or be a single command's config. Unknown keys and values of the wrong
type are errors that name the key and the keys that exist, so a typo in a
recipe never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lsp_server.errors import InklingError

T = TypeVar("T")


class ConfigError(InklingError):
    """A recipe or override that does not fit the config's fields."""


def load_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe as a mapping. `extends: other.yaml` (relative to this file) starts from that
    recipe: mappings merge key by key, other values replace, `key: null` removes the key and
    `key+: [...]` adds to the end of its list, so a later stage states only how it differs
    and shares the sources list."""
    file = Path(path).expanduser()
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping, not {type(data).__name__}")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"config {path}: extends must name a file")
    chain = (*_seen, file.resolve())
    parent_file = (file.parent / parent).resolve()
    if parent_file in chain:
        raise ConfigError(f"config {path}: extends {parent} goes round in a circle")
    return _merged(load_yaml(parent_file, chain), data)


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in over.items():
        if key.endswith("+"):
            name = key[:-1]
            if not isinstance(value, list) or not isinstance(result.get(name, []), list):
                raise ConfigError(f"{key} adds a list to a list; {name} or its addition is not one")
            result[name] = [*result.get(name, []), *value]
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = value
    return result


def section(data: Mapping[str, Any], name: str, sections: Sequence[str]) -> dict[str, Any]:
    """The `name:` section of a recipe, or the whole file if it has no sections."""
    if any(key in data for key in sections):
        value = data.get(name) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"section {name!r} must be a mapping")
        return dict(value)
    return dict(data)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """`a.b=value` pairs; the value is read as YAML (`3`, `true`, `[a, b]`, `null`)."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {override!r} is not of the form key=value")
        target = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {override!r}: {part!r} is not a section")
            target = child
        try:
            target[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {override!r}: the value is not valid YAML") from exc
    return data


def build(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """A `cls` instance from a mapping, checking every key and type."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'} must be a mapping, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(_join(where, k) for k in unknown)}; "
            f"known keys{' of ' + where if where else ''}: {', '.join(sorted(fields))}"
        )
    values = {name: _convert(hints[name], value, _join(where, name)) for name, value in data.items()}
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


def to_dict(config: Any) -> dict[str, Any]:
    result: dict[str, Any] = dataclasses.asdict(config)
    return result


def expand_path(path: str) -> str:
    """`~` and `$VARS` in config paths, so one recipe works for every user."""
    return os.path.expanduser(os.path.expandvars(path)) if path else path


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (list, Sequence, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        converted = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_type, value_type = args or (Any, Any)
        return {
            _convert(key_type, k, where): _convert(value_type, v, f"{where}.{k}") for k, v in value.items()
        }
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return build(hint, value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: unsupported field type {hint!r}")
