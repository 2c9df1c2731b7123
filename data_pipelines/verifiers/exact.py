r"""Exact-match and multiple-choice verifiers.

Both read the response's final answer first: the last ``\boxed{...}``, else the last
``Answer: ...`` line; ``exact_verifier`` falls back to the whole response, ``choice_verifier`` to a
final line that starts with a choice (``B.``, ``(B)``, ``B``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from .base import VERIFIERS, Verdict
from .math import _last_boxed

_ANSWER_LINE = re.compile(r"(?im)^[ \t*#>]*(?:final[ \t]+answer|answer)[ \t*]*[:：][ \t*]*([^\n]*)")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")


def _final_answer(response: str) -> str | None:
    """The content of the last ``\\boxed{}`` or ``Answer:`` line, whichever starts later."""
    boxed = _last_boxed(response)
    line = None
    for line in _ANSWER_LINE.finditer(response):  # noqa: B007 - the last match is the one kept
        pass
    candidates = [c for c in (boxed, line and (line.start(), line.group(1))) if c]
    return max(candidates, key=lambda c: c[0])[1].strip() if candidates else None


def normalize_text(text: str) -> str:
    """Case-fold, drop punctuation (but keep ``3.5`` and ``1,000``), collapse whitespace.

    >>> normalize_text("  The  Eiffel-Tower's height: 3.5 km! ")
    'the eiffel towers height 3.5 km'
    """
    text = unicodedata.normalize("NFKC", _TEXT_WRAPPER.sub(r"\1", text)).casefold()
    text = re.sub(r"['’`]", "", text)
    out = []
    for i, char in enumerate(text):
        if unicodedata.category(char).startswith("P"):
            between_digits = 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
            out.append(char if between_digits else " ")
        else:
            out.append(char)
    return " ".join("".join(out).split())


@VERIFIERS.register("exact")
def exact_verifier(response: str, gold: str, *, normalize: bool = True) -> Verdict:
    r"""Compare the response's final answer (or the whole response) with ``gold``.

    Args:
        response: the model's output.
        gold: the reference answer.
        normalize: compare case-, whitespace- and punctuation-insensitively (``normalize_text``);
            False compares the stripped strings exactly.

    >>> exact_verifier("  Paris. ", "paris")
    Verdict(correct=True, reason='match', extracted='Paris.')
    >>> exact_verifier("Let me think.\nAnswer: New York", "new-york").correct
    True
    >>> exact_verifier(r"It is \boxed{\text{Lyon}}", "Paris").correct
    False
    >>> exact_verifier("Paris", "paris", normalize=False).correct
    False
    >>> exact_verifier("   ", "paris")
    Verdict(correct=None, reason='empty response', extracted=None)
    """
    if not isinstance(response, str) or not response.strip():
        return Verdict(None, "empty response")
    answer = _final_answer(response) or response.strip()
    norm = normalize_text if normalize else str.strip
    if not norm(gold or ""):
        return Verdict(None, "empty gold answer", answer)
    same = norm(answer) == norm(gold)
    return Verdict(same, "match" if same else "mismatch", answer)


def _choice_pattern(choices: Sequence[str]) -> str:
    letters = "|".join(re.escape(c) for c in sorted(choices, key=len, reverse=True))
    return rf"(?<![A-Za-z0-9])\(?(?P<choice>{letters})\)?(?![A-Za-z0-9])"


@VERIFIERS.register("choice")
def choice_verifier(response: str, gold: str, *, choices: Sequence[str] = ("A", "B", "C", "D")) -> Verdict:
    r"""Read the final choice letter in ``response`` and compare it with ``gold``.

    Looks, latest first, at ``\boxed{B}``, ``Answer: (B)`` / ``the answer is B``; failing those,
    at a last line that starts with a choice (``B.``, ``(B) Paris``, ``B``). Letters are
    case-sensitive in the response (so the article "a" is not choice A), not in ``gold``.

    Args:
        response: the model's output.
        gold: the correct choice, e.g. ``"B"`` or ``"(B)"``.
        choices: the valid choices.

    >>> choice_verifier(r"The capital is Paris, so \boxed{B}", "B")
    Verdict(correct=True, reason='match', extracted='B')
    >>> choice_verifier("Answer: (C)", "B").correct
    False
    >>> choice_verifier("Reasoning...\nB. Paris", "(B)").correct
    True
    >>> choice_verifier("The answer is a mystery.", "A")
    Verdict(correct=None, reason='no choice found', extracted=None)
    """
    gold_choice = _read_gold_choice(gold, choices)
    if gold_choice is None:
        return Verdict(None, f"gold {gold!r} is not one of {', '.join(choices)}")
    if not isinstance(response, str):
        return Verdict(None, "no choice found")
    choice = _read_choice(response, choices)
    if choice is None:
        return Verdict(None, "no choice found")
    return Verdict(choice == gold_choice, "match" if choice == gold_choice else "mismatch", choice)


def _read_gold_choice(gold: str, choices: Sequence[str]) -> str | None:
    text = str(gold).strip().strip("().:").strip()
    boxed = _last_boxed(text)
    text = _TEXT_WRAPPER.sub(r"\1", boxed[1] if boxed else text).strip("() ")
    by_upper = {c.upper(): c for c in choices}
    return text if text in choices else by_upper.get(text.upper())


def _read_choice(response: str, choices: Sequence[str]) -> str | None:
    response = re.sub(r"[ \t]+", " ", response)  # single spaces keep the patterns from backtracking
    letter = _choice_pattern(choices)
    found: list[tuple[int, str]] = []
    boxed = _last_boxed(response)
    if boxed:
        content = _TEXT_WRAPPER.sub(r"\1", boxed[1])
        match = re.match(rf"\s*{letter}\s*(?:[.:)]|$)", content)
        if match:
            found.append((boxed[0], match["choice"]))
    phrase = re.compile(rf"(?i:\banswer\b(?:[ \t]+is)?|\boption\b)[ \t]*[:：]?[ \t*]*(?i:option[ \t]+)?{letter}")
    for match in phrase.finditer(response):
        found.append((match.start(), match["choice"]))
    if found:
        return max(found)[1]
    lines = [line for line in response.strip().splitlines() if line.strip()]
    if lines:
        match = re.match(rf"[ \t*]*{letter}[ \t*]*(?:[.:)]|$)", lines[-1])
        if match:
            return match["choice"]
    return None
