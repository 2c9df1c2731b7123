"""What every verifier shares: the ``Verdict`` it returns and the registry YAML names it by.

A verifier is a plain function ``verifier(response: str, gold: str, **options) -> Verdict``. It
never raises on model output: a response it cannot read gives ``Verdict(correct=None, ...)`` with
the reason, so the build can quarantine the row instead of guessing a label.
"""

from __future__ import annotations

from dataclasses import dataclass

from data_pipelines.registry import Registry

VERIFIERS: Registry = Registry("verifier")


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one response against its gold answer.

    Attributes:
        correct: True or False, or None when the verifier could not decide (no answer found,
            unparseable answer, timeout); ``reason`` then says why.
        reason: a short human-readable explanation, kept with quarantined rows.
        extracted: the answer the verifier read from the response, if any.

    >>> Verdict(True, "match", "18")
    Verdict(correct=True, reason='match', extracted='18')
    """

    correct: bool | None
    reason: str
    extracted: str | None = None
