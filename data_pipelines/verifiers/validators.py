r"""RLAC validators: verify the ONE check a critic proposes about a generator's output.

A validator answers ``validate(output, check, spec) -> Validation`` with an ``Outcome``: "pass"
(the output survives the check: the generator wins), "fail" (the critic found a real flaw), or
"invalid" (the check cannot be decided: it is malformed, not about this output, or outside what
the spec covers). Invalid never counts as a pass; ``critics.judging.checks.resolve_check`` decides
what replaces it. ``all_checks(output, spec)`` lists every check exhaustive checking would run:
it is the cost baseline and the pool the random-check fallback draws from.

| key | check | spec keys | all_checks |
|---|---|---|---|
| ``code`` | call arguments: ``[1, 2], 3`` | ``reference_solution``, ``entry_point``, ``tests`` | the tests' inputs |
| ``factual`` | one claim line of the output | ``facts`` (one claim per string) | every claim line |
| ``synthetic_sums`` | an item index: ``"2"`` | ``items``: ``[[a, b], ...]`` | every index |

``Validation.calls`` is 1 when the validator evaluated the check, 0 when it rejected the check's
form before evaluating anything (malformed, out of range, not one of the output's lines).

>>> SyntheticSumsValidator().validate("1+2=3\n2+2=5", "1", {"items": [[1, 2], [2, 2]]})
Validation(outcome='fail', reason='wrong sum: 2+2=4', calls=1)
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from typing import Any

from data_pipelines.schema import AdversarialRecord

from .exact import normalize_text
from .validation import OUTCOMES, VALIDATORS, Outcome, Validation, Validator, _invalid

__all__ = [
    "OUTCOMES",
    "VALIDATORS",
    "CodeValidator",
    "FactualValidator",
    "Outcome",
    "SyntheticSumsValidator",
    "Validation",
    "Validator",
    "normalize_claim",
    "parse_call_args",
    "synthetic_factual_task",
]

# ----------------------------------------------------------------------------- synthetic sums
_INDEX = re.compile(r"0|[1-9][0-9]*")  # ASCII digits, no sign, no leading zeros
_SUM_LINE = re.compile(r"\s*(-?[0-9]+)\s*\+\s*(-?[0-9]+)\s*=\s*(-?[0-9]+)\s*")


@VALIDATORS.register("synthetic_sums")
class SyntheticSumsValidator(Validator):
    r"""The toy task: the output's i-th non-blank line must read ``a+b=c`` for item i, with c = a + b.

    >>> v, spec = SyntheticSumsValidator(), {"items": [[1, 2], [3, 4]]}
    >>> v.validate("1+2=3\n3 + 4 = 7", "1", spec)
    Validation(outcome='pass', reason='correct', calls=1)
    >>> v.validate("1+2=3", "1", spec).reason
    'line 1 is missing'
    >>> v.validate("1+2=3", "2", spec)
    Validation(outcome='invalid', reason='index 2 is out of range (2 items)', calls=0)
    >>> v.all_checks("", spec)
    ['0', '1']
    """

    def validate(self, output: str, check: str, spec: dict[str, Any]) -> Validation:
        items = _sum_items(spec)
        if not isinstance(check, str) or not _INDEX.fullmatch(check.strip()):
            return _invalid("the check is not an item index")
        index = int(check.strip())
        if index >= len(items):
            return _invalid(f"index {index} is out of range ({len(items)} items)")
        lines = [line for line in output.splitlines() if line.strip()] if isinstance(output, str) else []
        if index >= len(lines):
            return Validation("fail", f"line {index} is missing")
        match = _SUM_LINE.fullmatch(lines[index])
        if not match:
            return Validation("fail", f"line {index} is not 'a+b=c'")
        a, b, c = map(int, match.groups())
        want_a, want_b = items[index]
        if (a, b) != (want_a, want_b):
            return Validation("fail", f"line {index} is about {a}+{b}, not {want_a}+{want_b}")
        if c != a + b:
            return Validation("fail", f"wrong sum: {a}+{b}={a + b}")
        return Validation("pass", "correct")

    def all_checks(self, output: str, spec: dict[str, Any]) -> list[str]:
        return [str(i) for i in range(len(_sum_items(spec)))]


def _sum_items(spec: dict[str, Any]) -> list[tuple[int, int]]:
    items = spec.get("items")
    if not isinstance(items, list) or not all(
        isinstance(item, (list, tuple)) and len(item) == 2 and all(type(x) is int for x in item) for item in items
    ):
        raise ValueError(f"synthetic_sums spec needs items: a list of [a, b] integer pairs, got {items!r}")
    return [tuple(item) for item in items]


# ----------------------------------------------------------------------------------- factual
_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022]|[0-9]+[.)])\s+")


def normalize_claim(text: str) -> str:
    """A claim line as the factual validator compares it: list marker dropped; each ``|`` field
    case-folded, punctuation dropped, whitespace collapsed (``exact.normalize_text``).

    >>> normalize_claim("- Zorvan |  Color | Red.")
    'zorvan | color | red'
    """
    return " | ".join(normalize_text(part) for part in _LIST_MARKER.sub("", text).split("|"))


def _triple(text: str) -> tuple[str, str, str] | None:
    parts = normalize_claim(text).split(" | ")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


@VALIDATORS.register("factual")
class FactualValidator(Validator):
    r"""Claims, one per output line, checked against ``spec["facts"]`` (``"subject | relation | value"``).

    The check must be one of the output's lines (after ``normalize_claim``), else it is invalid.
    A line that is not a ``subject | relation | value`` claim fails: the generator broke the format.
    A claim passes if a fact states it, fails if facts give the same subject and relation only
    other values, and is invalid if no fact covers its subject and relation.

    >>> v, spec = FactualValidator(), {"facts": ["Zorvan | color | red", "Zorvan | home | Lake Ulm"]}
    >>> out = "Zorvan | color | red\nZorvan | home | Mount Kel\nZorvan | food | figs"
    >>> [v.validate(out, line, spec).outcome for line in v.all_checks(out, spec)]
    ['pass', 'fail', 'invalid']
    >>> v.validate(out, "Zorvan | color | blue", spec).reason
    "not one of the output's claims"
    """

    def validate(self, output: str, check: str, spec: dict[str, Any]) -> Validation:
        facts = _fact_index(tuple(_facts(spec)))
        if not isinstance(check, str) or not check.strip() or "\n" in check.strip():
            return _invalid("the check is not one claim line")
        if normalize_claim(check) not in {normalize_claim(line) for line in self.all_checks(output, spec)}:
            return _invalid("not one of the output's claims")
        claim = _triple(check)
        if claim is None:
            return Validation("fail", "not a 'subject | relation | value' claim")
        values = facts.get(claim[:2])
        if values is None:
            return Validation("invalid", "no fact covers this subject and relation")
        if claim[2] in values:
            return Validation("pass", "supported")
        return Validation("fail", f"contradicted: the facts say {' or '.join(sorted(values))}")

    def all_checks(self, output: str, spec: dict[str, Any]) -> list[str]:
        if not isinstance(output, str):
            return []
        seen: dict[str, str] = {}
        for line in output.splitlines():
            if line.strip():
                seen.setdefault(normalize_claim(line), line.strip())
        return list(seen.values())


def _facts(spec: dict[str, Any]) -> list[str]:
    facts = spec.get("facts")
    if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
        raise ValueError(f"factual spec needs facts: a list of 'subject | relation | value' strings, got {facts!r}")
    return facts


@lru_cache(maxsize=1024)
def _fact_index(facts: tuple[str, ...]) -> dict[tuple[str, str], frozenset[str]]:
    index: dict[tuple[str, str], set[str]] = {}
    for fact in facts:
        triple = _triple(fact)
        if triple is None:
            raise ValueError(f"fact {fact!r} is not 'subject | relation | value'")
        index.setdefault(triple[:2], set()).add(triple[2])
    return {key: frozenset(values) for key, values in index.items()}


_SYLLABLES = ("ka", "lo", "mi", "ren", "tas", "vo", "zel", "dor", "fin", "gu", "hal", "pe")
RELATIONS: dict[str, tuple[str, ...]] = {
    "color": ("red", "blue", "green", "amber", "violet", "grey"),
    "home": ("Lake Ulm", "Mount Kel", "Port Asa", "the Dry Vale", "Old Brin", "Fenmark"),
    "food": ("figs", "barley", "smoked eel", "plums", "lentils", "honey"),
    "pet": ("a heron", "a goat", "a lynx", "a tortoise", "a crow", "a ferret"),
    "job": ("miller", "scribe", "ferryman", "potter", "beekeeper", "smith"),
}


def synthetic_factual_task(n: int, seed: int, claims: int = 3) -> list[AdversarialRecord]:
    """``n`` records about invented people, each with one value per relation in ``RELATIONS``.

    Each prompt asks for ``claims`` claims about one subject, one per line, as
    ``subject | relation | value``; ``facts`` holds that subject's facts (the factual validator's
    spec). Names are invented so a model can only know them from training on this task.

    >>> records = synthetic_factual_task(2, seed=0)
    >>> records[0].facts[0].split(" | ")[1], len(records[0].facts), records[0].verifier
    ('color', 5, 'factual')
    >>> FactualValidator().validate(records[0].facts[1], records[0].facts[1], records[0].to_row()).outcome
    'pass'
    """
    if not 1 <= claims <= len(RELATIONS):
        raise ValueError(f"claims must be in 1..{len(RELATIONS)}, got {claims}")
    names = ["".join(parts).capitalize() for parts in _syllable_triples()]
    if n > len(names):
        raise ValueError(f"at most {len(names)} subjects, asked for {n}")
    rng = random.Random(seed)
    records = []
    for i, name in enumerate(rng.sample(names, n)):
        facts = [f"{name} | {relation} | {rng.choice(values)}" for relation, values in RELATIONS.items()]
        question = (
            f"Write {claims} facts about {name}, one per line, each as 'subject | relation | value'. "
            f"Relations: {', '.join(RELATIONS)}."
        )
        records.append(
            AdversarialRecord(
                id=f"synthetic_factual:{seed}:{i}",
                source="synthetic_factual",
                question=question,
                facts=facts,
                verifier="factual",
                metadata=json.dumps({"subject": name, "claims": claims}),
            )
        )
    return records


def _syllable_triples() -> list[tuple[str, str, str]]:
    return [(a, b, c) for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES if len({a, b, c}) == 3]


from .code_validator import CodeValidator, parse_call_args  # noqa: E402  (registers "code")
