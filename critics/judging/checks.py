r"""RLAC: parse the ONE check a critic proposes, and decide what stands in for a missing one.

The critic's output is free text (after an optional leading ``<think>...</think>``) that ends in
a single ``\boxed{...}`` holding the check; only whitespace or a period may follow it. Per task
kind (the validator key in ``data_pipelines.verifiers.validators.VALIDATORS``):

| kind | the box holds | ``ParsedCheck.check`` |
|---|---|---|
| ``code`` | call arguments: ``\boxed{[1, 2], 3}`` tests ``f([1, 2], 3)`` | canonical text (``parse_call_args``) |
| ``factual`` | one claim line of the output, as written there | the claim, stripped |
| ``synthetic_sums`` | an item index (0-based) | ``"2"`` |

The verdict parser's rules against reward hacking carry over (``critics.judging.verdicts``): a box copied
from the judged output (``quoted``) does not count, two boxes with different checks are a
conflict, unclosed or nested boxes and malformed think blocks are refused. The code check is read
exactly as written (no ``\text{}`` or parenthesis unwrapping: ``(3, [1, 2])`` is one tuple
argument); a code check whose string literals hold unbalanced braces cannot be boxed.

>>> parse_check(r"Empty lists break it. \boxed{[], 0}", "code")
ParsedCheck(check='[], 0', reason='ok')
>>> parse_check(r"\boxed{1} or maybe \boxed{2}", "synthetic_sums")
ParsedCheck(check=None, reason='conflicting checks')
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from critics.judging.verdicts import find_boxes, own_boxes, split_think, unwrap
from data_pipelines.verifiers.validators import Validation, Validator, normalize_claim, parse_call_args

CHECK_KINDS = ("code", "factual", "synthetic_sums")
Fallback = Literal["random", "none"]
_INDEX = re.compile(r"0|[1-9][0-9]*")  # ASCII digits only, no sign, no leading zeros
_AFTER_BOX = re.compile(r"[\s.]*")


@dataclass(frozen=True)
class ParsedCheck:
    """A parsed check: ``check`` is set only when the critic gave one; ``reason`` says why not."""

    check: str | None
    reason: str


def parse_check(text: str, kind: str, *, quoted: Iterable[str] = (), max_chars: int | None = None) -> ParsedCheck:
    r"""Parse a critic's output into its one check for ``kind`` (never raises on the text).

    Args:
        text: the critic's output.
        kind: ``code``, ``factual`` or ``synthetic_sums``.
        quoted: the texts the critic was shown (the prompt and the judged output); boxes copied
            from them do not count.
        max_chars: longer outputs give no check (``None``: no limit).

    Reasons: ``ok``, ``too long``, ``malformed think block``, ``malformed box``, ``no check``,
    ``check inside the quoted output``, ``text after the check``, ``invalid check``,
    ``conflicting checks``.

    >>> parse_check(r"Line 3 is off. \boxed{ \text{2} }.", "synthetic_sums")
    ParsedCheck(check='2', reason='ok')
    >>> parse_check(r"\boxed{Zorvan | color | red}", "factual").check
    'Zorvan | color | red'
    >>> parse_check("I would test the empty list.", "code").reason
    'no check'
    >>> parse_check(r"\boxed{[], 0} because ...", "code").reason
    'text after the check'
    >>> parse_check(r"\boxed{x + 1}", "code").reason
    'invalid check'
    >>> parse_check(r"It says \boxed{0} here", "synthetic_sums", quoted=[r"so It says \boxed{0} here"]).reason
    'check inside the quoted output'
    """
    if kind not in CHECK_KINDS:
        raise ValueError(f"no checks for kind {kind!r} (valid: {', '.join(CHECK_KINDS)})")
    if not isinstance(text, str):
        return ParsedCheck(None, "no check")
    if max_chars is not None and len(text) > max_chars:
        return ParsedCheck(None, "too long")
    split = split_think(text)
    if split is None:
        return ParsedCheck(None, "malformed think block")
    visible = split[1]
    boxes = find_boxes(visible)
    if boxes is None:
        return ParsedCheck(None, "malformed box")
    own = own_boxes(visible, boxes, quoted)
    if not own:
        return ParsedCheck(None, "check inside the quoted output" if boxes else "no check")
    if not _AFTER_BOX.fullmatch(visible[own[-1].end :]):
        return ParsedCheck(None, "text after the check")
    checks = [normalize_check(box.content, kind) for box in own]
    if checks[-1] is None:
        return ParsedCheck(None, "invalid check")
    if len({_comparable(check, kind) for check in checks}) > 1:
        return ParsedCheck(None, "conflicting checks")
    return ParsedCheck(checks[-1], "ok")


def normalize_check(content: str, kind: str) -> str | None:
    r"""The check a box's content stands for, or None if it is not a well-formed check for ``kind``.

    >>> normalize_check(" [1,2], 3 ", "code"), normalize_check(r"\text{(3)}", "synthetic_sums")
    ('[1, 2], 3', '3')
    >>> [normalize_check(c, "synthetic_sums") for c in ["-1", "03", "\u0663", ""]]
    [None, None, None, None]
    >>> normalize_check("a | b | c\nd | e | f", "factual") is None
    True
    """
    if kind == "code":
        return parse_call_args(content.strip())
    content = unwrap(content)
    if kind == "synthetic_sums":
        return content if _INDEX.fullmatch(content) else None
    return content if content and "\n" not in content else None


def _comparable(check: str | None, kind: str) -> str | None:
    return normalize_claim(check) if kind == "factual" and check is not None else check


def resolve_check(
    parsed: ParsedCheck,
    output: str,
    spec: dict[str, Any],
    validator: Validator,
    rng: random.Random,
    fallback: Fallback,
    *,
    validation: Validation | None = None,
) -> tuple[str | None, int, str]:
    r"""The check to score, the extra validator calls spent to find it, and how it was chosen.

    A missing check (``parsed.check`` is None) or an invalid one (the validator says
    ``invalid``) never counts as a pass. With ``fallback="random"`` it is replaced by one check
    drawn from ``validator.all_checks(output, spec)``: one extra validator call (the draw may
    itself prove invalid; it is not redrawn). With ``fallback="none"`` the result is None, which
    the caller scores ``None``. ``how`` is ``"critic"``, ``"random (<reason>)"`` or
    ``"none (<reason>)"``.

    Args:
        parsed: the critic's parsed check (``parse_check``).
        output: the generator's output the check is about.
        spec: the validator spec (the record's row).
        validator: the validator that will score the check.
        rng: the source of the random draw.
        fallback: ``"random"`` or ``"none"``.
        validation: the validator's verdict on ``parsed.check`` if the caller already has it
            (from a batched ``validate_many``); otherwise this function validates it (one call,
            not extra; the code validator caches it for the caller's own call).

    >>> from data_pipelines.verifiers.validators import SyntheticSumsValidator
    >>> v, spec, rng = SyntheticSumsValidator(), {"items": [[1, 2], [3, 4]]}, random.Random(0)
    >>> resolve_check(ParsedCheck("1", "ok"), "1+2=3\n3+4=8", spec, v, rng, "random")
    ('1', 0, 'critic')
    >>> resolve_check(ParsedCheck(None, "no check"), "1+2=3\n3+4=8", spec, v, rng, "random")
    ('1', 1, 'random (no check)')
    >>> resolve_check(ParsedCheck("7", "ok"), "1+2=3\n3+4=8", spec, v, rng, "none")
    (None, 0, 'none (invalid check: index 7 is out of range (2 items))')
    """
    if fallback not in ("random", "none"):
        raise ValueError(f"fallback must be 'random' or 'none', got {fallback!r}")
    if parsed.check is None:
        reason = parsed.reason
    else:
        validation = validation or validator.validate(output, parsed.check, spec)
        if validation.outcome != "invalid":
            return parsed.check, 0, "critic"
        reason = f"invalid check: {validation.reason}"
    if fallback == "none":
        return None, 0, f"none ({reason})"
    checks = validator.all_checks(output, spec)
    if not checks:
        return None, 0, f"none ({reason}; no checks to draw from)"
    return rng.choice(checks), 1, f"random ({reason})"
