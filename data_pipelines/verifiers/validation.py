"""What every RLAC validator shares: the ``Validation`` it answers, the interface, the registry.

``data_pipelines.verifiers.validators`` has the validators themselves (the code validator lives in
``code_validator``); import them from there, which registers all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from data_pipelines.registry import Registry

Outcome = Literal["pass", "fail", "invalid"]
OUTCOMES: tuple[str, ...] = ("pass", "fail", "invalid")
VALIDATORS: Registry[type[Validator]] = Registry("validator")
MAX_CHECK_CHARS = 2000  # a code check longer than this is refused before it is parsed


@dataclass(frozen=True)
class Validation:
    """The outcome of one check; ``reason`` says why, ``calls`` counts validator calls spent."""

    outcome: Outcome
    reason: str
    calls: int = 1

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")


class Validator:
    """The interface every validator implements; usable as a context manager."""

    def validate(self, output: str, check: str, spec: dict[str, Any]) -> Validation:
        """Decide one check about one output. Never raises on model output (``output``, ``check``);
        raises ``ValueError`` on a malformed ``spec`` (a data bug)."""
        raise NotImplementedError

    def all_checks(self, output: str, spec: dict[str, Any]) -> list[str]:
        """Every check exhaustive checking would run on ``output``."""
        raise NotImplementedError

    def validate_many(self, items: Sequence[tuple[str, str, dict[str, Any]]]) -> list[Validation]:
        """``validate`` for many ``(output, check, spec)`` triples, in input order."""
        return [self.validate(*item) for item in items]

    def close(self) -> None:
        """Release resources (sandbox workers); the default has none."""

    def __enter__(self) -> Validator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _invalid(reason: str) -> Validation:
    return Validation("invalid", reason, calls=0)
