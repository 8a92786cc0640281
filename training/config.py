"""Typed configs: dataclasses filled from YAML and `--set key=value` overrides.

A recipe file may hold one section per command (`prepare:`, `sft:`, `pairs:`,
`dpo:`) or be a single command's config. Unknown keys and values of the wrong
type are errors that name the key and the keys that exist, so a typo in a
recipe never silently trains with a default.

A config may also take another library's fields as they are: a mapping field
marked with `passthrough(...)` collects the section's keys that the dataclass
lacks but the library's config has (trl's `SFTConfig` for `sft:`), so those
keys mean what the library says, checked by name and simple type.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lsp_server.errors import InklingError

T = TypeVar("T")


class ConfigError(InklingError):
    """A recipe or override that does not fit the config's fields."""


PASSTHROUGH = "inkling.passthrough"
_SIMPLE_TYPES = (bool, int, float, str)


@dataclasses.dataclass(frozen=True)
class Passthrough:
    """Where a config's pass-through keys come from."""

    fields: Callable[[], Mapping[str, Any]]
    """The library config's field names and type hints (imported when first needed)."""
    owner: str
    """The library config, for messages: "trl's SFTConfig"."""
    refused: Mapping[str, str]
    """Keys a recipe may not give, and why: fields set from the config's own keys, former names."""


def passthrough(
    fields: Callable[[], Mapping[str, Any]], owner: str, refused: Mapping[str, str]
) -> dict[str, Passthrough]:
    """`dataclasses.field` metadata for a mapping that collects `owner`'s keys from the section."""
    return {PASSTHROUGH: Passthrough(fields, owner, refused)}


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
    through = next((f for f in fields.values() if PASSTHROUGH in f.metadata), None)
    own = {name: field for name, field in fields.items() if field is not through}
    unknown = sorted(set(data) - set(own))
    values = {name: _convert(hints[name], data[name], _join(where, name)) for name in data if name in own}
    if through is not None:
        values[through.name] = _passed_through(through, {k: data[k] for k in unknown}, where)
        unknown = sorted(set(unknown) - set(values[through.name]))
    refused = through.metadata[PASSTHROUGH].refused if through is not None else {}
    if set(unknown) & set(refused):
        raise ConfigError("; ".join(f"{_join(where, k)}: {refused[k]}" for k in unknown if k in refused))
    if unknown:
        also = f", and the fields of {through.metadata[PASSTHROUGH].owner}" if through is not None else ""
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(_join(where, k) for k in unknown)}; "
            f"known keys{' of ' + where if where else ''}: {', '.join(sorted(own))}{also}"
        )
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


def _passed_through(through: dataclasses.Field[Any], given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The field's defaults, updated with the `given` keys the library has (others are left for
    the unknown-key error); values are checked against simple type hints and kept as given."""
    assert through.default_factory is not dataclasses.MISSING, "a pass-through field needs a default_factory"
    collected: dict[str, Any] = dict(through.default_factory())
    if not given:
        return collected
    library = through.metadata[PASSTHROUGH].fields()
    refused = through.metadata[PASSTHROUGH].refused
    for key, value in given.items():
        if key not in library or key in refused:
            continue
        hint = library[key]
        options = [a for a in typing.get_args(hint) if a is not type(None)] if _is_optional(hint) else [hint]
        if len(options) == 1 and options[0] in _SIMPLE_TYPES and not (value is None and _is_optional(hint)):
            _convert(options[0], value, _join(where, key))  # the check only: the library converts
        collected[key] = value
    return collected


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def to_dict(config: Any) -> dict[str, Any]:
    """The config as a recipe section: pass-through keys sit beside the config's own."""
    result: dict[str, Any] = dataclasses.asdict(config)
    for field in dataclasses.fields(config):
        if PASSTHROUGH in field.metadata:
            result.update(result.pop(field.name))
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
