"""Name -> object registries for the things YAML names (sources, builders, verifiers, rewards).

A registry rejects name collisions at registration and answers an unknown name with the nearest
valid ones, so a typo in a config fails loudly instead of silently picking something else.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def closest(name: str, options: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` options that look like ``name``, best first.

    >>> closest("lable_from", ["label_from", "seed", "labels"])
    ['label_from']
    """
    return difflib.get_close_matches(name, list(options), n=n, cutoff=0.6)


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """A short hint naming the nearest valid option, or listing the valid ones.

    >>> did_you_mean("gsm8", ["gsm8k", "math500"])
    " (did you mean 'gsm8k'?)"
    """
    options = sorted(options)
    near = closest(name, options, n=1)
    if near:
        return f" (did you mean '{near[0]}'?)"
    return f" (valid: {', '.join(options)})" if options else ""


class Registry(Generic[T]):
    """A named collection that refuses duplicates and suggests near matches.

    >>> colors = Registry("color")
    >>> @colors.register("red")
    ... class Red: ...
    >>> colors.get("red").__name__
    'Red'
    >>> colors.get("rde")
    Traceback (most recent call last):
    ...
    KeyError: "unknown color 'rde' (did you mean 'red'?)"
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that adds an object under ``name``; a second object with that name is an error."""

        def add(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is already registered to {self._items[name]!r}")
            self._items[name] = obj
            try:
                obj.registry_name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return add

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise ``KeyError`` naming the nearest one."""
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._items)}")
        return self._items[name]

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def as_plain(obj: object) -> object:
    """A dataclass tree -> plain dicts and lists; registered classes gain their ``name`` key.

    The inverse of what YAML gives the config loader, used for fingerprints and cards. Objects
    that are neither (a reward function passed from Python) become ``"<its name>"``.

    >>> as_plain({"rewards": [len], "lr": 1e-6})
    {'rewards': ['<len>'], 'lr': 1e-06}
    """
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, object] = {}
        name = getattr(type(obj), "registry_name", None)
        if name:
            out["name"] = name
        for f in dataclasses.fields(obj):
            if f.init:
                out[f.name] = as_plain(getattr(obj, f.name))
        return out
    if isinstance(obj, (list, tuple)):
        return [as_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: as_plain(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    # anything else a Python caller passed (a reward function, a client): its name, so the
    # config still serialises; such a config records what ran but cannot be reloaded from YAML
    return f"<{getattr(obj, '__name__', type(obj).__name__)}>"
