"""YAML -> typed dataclasses, strictly.

A config is one dataclass, the single home of every default; YAML only sets values. Unknown keys,
duplicate keys and wrong types are errors that name the key (as a dotted path) and suggest the
nearest valid one. Nothing is ever changed behind the user's back.

A field whose value is chosen by name from a registry (a source, a builder) declares it with
``field(metadata={"registry": REGISTRY})``: YAML then gives ``{name: <key>, ...options}`` and the
options are checked against the chosen dataclass.

>>> from dataclasses import dataclass
>>> @dataclass
... class Train:
...     lr: float = 1e-6
...     steps: int = 10
>>> from_dict(Train, {"lr": 2e-6})
Train(lr=2e-06, steps=10)
>>> from_dict(Train, {"step": 3})
Traceback (most recent call last):
...
critics.config.ConfigError: unknown key 'step' (did you mean 'steps'?)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from data_pipelines.registry import did_you_mean

T = TypeVar("T")


class ConfigError(ValueError):
    """A config problem; the message names the offending key."""


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys (PyYAML keeps the last one without a word)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise ConfigError(
                f"duplicate key '{key}' at line {key_node.start_mark.line + 1} (first defined at line {seen[key] + 1})"
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, rejecting duplicate keys.

    Raises:
        ConfigError: the file is not a mapping, or has a duplicate key.
    """
    text = Path(path).read_text(encoding="utf-8")
    data = yaml.load(text, Loader=_StrictLoader) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a nested mapping, in place.

    >>> apply_overrides({"builder": {"seed": 0}}, ["builder.seed=3", "num_proc=2"])
    {'builder': {'seed': 3}, 'num_proc': 2}
    """
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' is not of the form key.path=value")
        parts = key.strip().split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{item}': '{'.'.join(parts[: i + 1])}' is not a section")
            node = child
        node[parts[-1]] = yaml.load(value, Loader=_StrictLoader)
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Load ``cls`` from a YAML file plus ``key=value`` overrides; errors name the key."""
    data = load_yaml(path) if path else {}
    apply_overrides(data, overrides or [])
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None


def from_dict(cls: type[T], data: Any, prefix: str = "", base: T | None = None) -> T:
    """Build dataclass ``cls`` from a mapping, checking every key and type.

    A nested section whose field default is a dataclass instance (``default_factory``) starts from
    that instance, so a recipe's own defaults for a shared settings class survive a YAML file that
    sets only some of its keys (``critique_rl``'s ``grpo`` keeps group size 4 when YAML sets only
    ``grpo.max_completion_length``); ``base`` carries that instance down.
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"'{prefix or cls.__name__}' should be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"unknown key '{path}'{did_you_mean(str(key), fields)}")
        registry = fields[key].metadata.get("registry")
        if registry is not None:
            values[key] = _from_registry(registry, value, path)
        elif isinstance(value, dict) and _is_dataclass_instance(default := _default(fields[key])):
            values[key] = from_dict(type(default), value, prefix=f"{path}.", base=default)
        else:
            values[key] = _coerce(hints[key], value, path)
    if base is not None:
        values = {**{name: getattr(base, name) for name in fields}, **values}
    missing = [
        name
        for name, f in fields.items()
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing required key '{prefix}{missing[0]}'")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {exc}") from None


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _from_registry(registry: Any, value: Any, path: str) -> Any:
    """``{name: key, ...options}`` -> an instance of the registered dataclass (lists map item-wise)."""
    if isinstance(value, list):
        return [_from_registry(registry, item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        raise ConfigError(f"'{path}' needs a 'name' (one of: {', '.join(registry.names())})")
    options = dict(value)
    name = options.pop("name")
    try:
        chosen = registry.get(name)
    except KeyError as exc:
        raise ConfigError(f"'{path}.name': {exc.args[0]}") from None
    if not (isinstance(chosen, type) and dataclasses.is_dataclass(chosen)):  # a plain function
        if options:
            raise ConfigError(f"'{path}': '{name}' takes no options (got {', '.join(map(str, options))})")
        return chosen
    return from_dict(chosen, options, prefix=f"{path}.")


def _coerce(hint: Any, value: Any, path: str) -> Any:
    """Check ``value`` against a type hint; ints widen to floats, nothing else is converted."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"'{path}' has the wrong type: {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"'{path}' must be one of {list(args)}, got {value!r}{did_you_mean(str(value), map(str, args))}"
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"'{path}' should be a list, got {type(value).__name__}")
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{path}' should be a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, prefix=f"{path}.")
    return _coerce_scalar(hint, value, path)


def _coerce_scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"'{path}' should be int, got bool")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"'{path}' should be {hint.__name__}, got {type(value).__name__} ({value!r})")
    return value
