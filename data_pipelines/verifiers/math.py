r"""Math answers: read the final answer the way each dataset writes it, then compare with math-verify.

Extraction (``extract_final_answer``) knows the conventions of the data we build from:
``\boxed{...}`` (MATH), ``#### 18`` (GSM8K), an ``A: 18`` / ``Answer: 18`` line (GSM8K model
solutions), ``the answer is 18``; when several appear, the one that starts last wins; a bare last
number is the last resort. GSM8K calculator annotations (``<<16-3-4=9>>``) are removed first.

Comparison: two plain numbers (``1,000``, ``$18``, ``18.00``, ``18%``, ``18 dollars``) are compared
exactly as decimals, without sympy. Anything else goes through math-verify (``parse`` + ``verify``).

Timeouts. math-verify's own timeouts call ``signal.alarm`` and raise in any thread but the main
one, so they are switched off and this module enforces one deadline per call instead:

* in the main thread, ``signal.setitimer`` raises ``VerificationTimeout`` (a ``BaseException``,
  so that no ``except Exception`` inside math-verify or sympy swallows it) after ``timeout``
  seconds; a previously armed ``SIGALRM`` timer and handler are restored afterwards;
* in any other thread, the sympy work runs in a helper process owned by that thread (started
  with ``spawn`` once, then reused); the helper applies the same alarm, and if it does not answer
  within ``timeout`` plus a grace second (a long C-level computation that ignores signals), it is
  killed and replaced on the next call. Scripts that call this from threads therefore need the
  usual ``if __name__ == "__main__":`` guard;
* in a daemonic process in a non-main thread (it may not start children) there is no deadline;
  only the size guard on answers (``MAX_ANSWER_CHARS``) protects it.

A timeout gives ``Verdict(correct=None, reason="timed out ...")``.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import re
import signal
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation

from .base import VERIFIERS, Verdict

MAX_ANSWER_CHARS = 1000  # longer "answers" are degenerate output; sympy is not asked to read them
_GRACE_S = 1.0  # extra wait for a helper process before it is declared stuck and killed

_CALCULATOR = re.compile(r"<<[^<>\n]*>>")  # GSM8K: "16 - 3 - 4 = <<16-3-4=9>>9"
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_LINE = re.compile(r"(?im)^[ \t*#>]*(?:final[ \t]+answer|answer|a)[ \t*]*[:：][ \t*]*([^\n]*)")
_ANSWER_PHRASE = re.compile(r"(?i)\banswer(?:[ \t]+is|[ \t]*[:：=])[ \t*:]*([^\n]*)")
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_MATH_SPAN = re.compile(r"^(?:\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\])", re.S)
_SENTENCE_END = re.compile(r"[.;,!?][ \t]|[.!?:]?[ \t]*$|[ \t]\(|\*\*")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_NUMBER = re.compile(
    r"""^(?P<sign>[-+]?)\s*(?:\\?\$|usd\s)?\s*(?P<sign2>-?)\s*
    (?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)
    \s*(?P<pct>\\?%|\s+percent)?
    (?P<units>(?:\s+[A-Za-z][A-Za-z'’]+\.?)*)\s*[.!]?$""",
    re.X | re.I,
)


class VerificationTimeout(BaseException):
    """A verification ran past its deadline (see the module docstring for how it is enforced)."""


# ----------------------------------------------------------------------------------- extraction


def extract_final_answer(text: str, *, last_number: bool = True) -> str | None:
    r"""Return the final answer written in ``text``, cleaned of delimiters, or None.

    The strong anchor that starts last wins (``\boxed{}``, ``####``, an ``A:``/``Answer:`` line);
    without one, the last "the answer is ..." / "answer: ..." phrase; without that, the last
    number (unless ``last_number=False``).

    Args:
        text: a solution or a gold answer.
        last_number: fall back to the last number in the text when no anchor is found.

    >>> extract_final_answer("She makes 9 * 2 = $<<9*2=18>>18 every day.\nA: 18")
    '18'
    >>> extract_final_answer("9 duck eggs, so 9 * 2 = 18\n#### 18")
    '18'
    >>> extract_final_answer(r"so the answer is $\boxed{\frac{1}{2}}$.")
    '\\frac{1}{2}'
    >>> extract_final_answer("The answer is $1,000.")
    '$1,000'
    >>> extract_final_answer("16 - 3 - 4 = 9 eggs, sold at 2 each: 18")
    '18'
    >>> extract_final_answer("no numbers here") is None
    True
    """
    if not isinstance(text, str):
        return None
    text = _CALCULATOR.sub("", text)
    strong = [_last_boxed(text), _last_anchor(_HASHES, text), _last_anchor(_ANSWER_LINE, text)]
    # An inline phrase only counts without a strong anchor: "check our answer: 17*44 = 748"
    # after a \boxed{44} must not replace it.
    for candidates in (strong, [_last_anchor(_ANSWER_PHRASE, text)]):
        candidates = [c for c in candidates if c is not None]
        if candidates:
            answer = _clean(max(candidates, key=lambda c: c[0])[1])
            if answer:
                return answer
    if last_number:
        numbers = _LAST_NUMBER.findall(text)
        return numbers[-1].rstrip(",") if numbers else None
    return None


def _last_boxed(text: str) -> tuple[int, str] | None:
    """(start, content) of the last balanced ``\\boxed{...}``; only the last few are tried."""
    for match in list(_BOXED.finditer(text))[-5:][::-1]:
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return match.start(), text[match.end() : i - 1]
    return None


def _last_anchor(pattern: re.Pattern[str], text: str) -> tuple[int, str] | None:
    """(start, answer) of the last match of a textual anchor, or None."""
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - the last match is the one kept
        pass
    return (last.start(), _first_phrase(last.group(1))) if last else None


def _first_phrase(tail: str) -> str:
    """The answer at the start of the rest of a line: a ``$...$`` span, or up to the sentence end."""
    tail = " ".join(tail.split())  # single spaces keep the regexes below from backtracking
    span = _MATH_SPAN.match(tail)
    if span:
        return next(g for g in span.groups() if g is not None)
    end = _SENTENCE_END.search(tail)
    return tail[: end.start()] if end else tail


def _clean(answer: str) -> str:
    r"""Strip decorations that never change the value: ``$...$``, ``**``, spacing, a final period."""
    answer = answer.strip().strip("*").strip()
    span = _MATH_SPAN.match(answer)
    if span and span.end() == len(answer):
        answer = next(g for g in span.groups() if g is not None).strip()
    answer = answer.replace("−", "-").replace("\\!", "").replace("\\,", "").replace("\\ ", " ")
    return answer.strip().rstrip(".").strip()


def _as_number(answer: str) -> tuple[Decimal, bool] | None:
    """(value, is_percent) when ``answer`` is one plain number with optional $, %, unit words."""
    match = _NUMBER.match(" ".join(_TEXT_WRAPPER.sub(r" \1", answer).split()))
    if not match:
        return None
    try:
        value = Decimal(match["num"].replace(",", ""))
    except InvalidOperation:
        return None
    negative = (match["sign"] == "-") != (match["sign2"] == "-")
    return (-value if negative else value), bool(match["pct"])


def _numbers_equal(a: tuple[Decimal, bool], b: tuple[Decimal, bool]) -> bool:
    """Equal as numbers; a percentage also equals its fraction (18% == 0.18), as in math-verify."""
    values_a = {a[0], a[0] / 100} if a[1] else {a[0]}
    values_b = {b[0], b[0] / 100} if b[1] else {b[0]}
    return bool(values_a & values_b)


# ---------------------------------------------------------------------------------- comparison


@VERIFIERS.register("math")
def math_verifier(response: str, gold: str, *, timeout: float = 5.0) -> Verdict:
    r"""Check the final answer of ``response`` against ``gold`` (see the module docstring).

    ``gold`` may be a bare answer (``"18"``, ``"\frac{1}{2}"``) or a full solution in a dataset's
    convention (``"... #### 18"``, ``"... A: 18"``).

    Args:
        response: the model's solution.
        gold: the reference answer or solution.
        timeout: seconds allowed for the symbolic comparison of this one item.

    Returns:
        A ``Verdict``; ``correct`` is None when no answer is found, an answer cannot be parsed,
        or the comparison times out.

    >>> math_verifier("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs... $<<9*2=18>>18\nA: 18", "18")
    Verdict(correct=True, reason='match', extracted='18')
    >>> math_verifier("The answer is $1,000.00.", "#### 1000").correct
    True
    >>> math_verifier(r"Thus $x = \boxed{\dfrac{2}{4}}$", r"\frac{1}{2}").correct
    True
    >>> math_verifier("A: 17", "A: 18")
    Verdict(correct=False, reason='mismatch', extracted='17')
    >>> math_verifier("I am not sure.", "18")
    Verdict(correct=None, reason='no final answer found', extracted=None)
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    answer = extract_final_answer(response)
    if answer is None:
        return Verdict(None, "no final answer found")
    gold_answer = extract_final_answer(gold, last_number=False) if isinstance(gold, str) else None
    gold_answer = gold_answer or (_clean(gold) if isinstance(gold, str) else "")
    if not gold_answer:
        return Verdict(None, "empty gold answer", answer)
    number, gold_number = _as_number(answer), _as_number(gold_answer)
    if number is not None and gold_number is not None:
        same = _numbers_equal(number, gold_number)
        return Verdict(same, "match" if same else "mismatch", answer)
    if len(answer) > MAX_ANSWER_CHARS or len(gold_answer) > MAX_ANSWER_CHARS:
        return Verdict(None, f"answer longer than {MAX_ANSWER_CHARS} characters", answer)
    correct, reason = _compare_with_deadline(answer, gold_answer, timeout)
    return Verdict(correct, reason, answer)


def _compare_with_deadline(answer: str, gold: str, timeout: float) -> tuple[bool | None, str]:
    """Run the sympy comparison under a deadline suited to the calling thread."""
    try:
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
            return _compare_with_alarm(answer, gold, timeout)
        if multiprocessing.current_process().daemon:
            return _compare(answer, gold)  # no deadline possible: see the module docstring
        return _helper().compare(answer, gold, timeout)
    except VerificationTimeout:
        return None, f"timed out after {timeout:g}s"


def _compare_with_alarm(answer: str, gold: str, timeout: float) -> tuple[bool | None, str]:
    try:
        with _alarm(timeout):
            return _compare(answer, gold)
    except VerificationTimeout:
        return None, f"timed out after {timeout:g}s"


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Raise ``VerificationTimeout`` in the main thread after ``seconds``; restore any old timer."""

    def on_alarm(signum, frame):
        raise VerificationTimeout

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay:
            remaining = max(old_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, old_interval)


def _compare(answer: str, gold: str) -> tuple[bool | None, str]:
    """math-verify ``parse`` + ``verify`` with its own (signal-based) timeouts switched off."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    _quiet_math_verify()
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    # Wrapping in \boxed{} makes math-verify read the whole answer as one LaTeX expression.
    options = {"extraction_config": config, "fallback_mode": "no_fallback", "parsing_timeout": None}
    parsed_gold = parse(f"\\boxed{{{gold}}}", **options)
    if not parsed_gold:
        return None, "could not parse the gold answer"
    parsed = parse(f"\\boxed{{{answer}}}", **options)
    if not parsed:
        return None, "could not parse the answer"
    same = verify(parsed_gold, parsed, timeout_seconds=None)
    return same, "match" if same else "mismatch"


@functools.cache
def _quiet_math_verify() -> None:
    """Drop math-verify's "timeout is disabled" warning: this module enforces the deadline."""

    class _NoTimeoutWarning(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Timeout is disabled" not in record.getMessage()

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_NoTimeoutWarning())


# ------------------------------------------------------------------ helper process (threads)

_thread_state = threading.local()


def _helper() -> _Helper:
    helper = getattr(_thread_state, "helper", None)
    if helper is None or not helper.process.is_alive():
        helper = _thread_state.helper = _Helper()
    return helper


class _Helper:
    """One spawned process per calling thread that runs ``_compare`` under its own alarm."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_serve, args=(child_conn,), daemon=True)
        self.process.start()
        child_conn.close()
        weakref.finalize(self, _stop, self.process, self.conn)
        if not self.conn.poll(120) or self.conn.recv() != "ready":  # startup is not timed per item
            _stop(self.process, self.conn)
            raise RuntimeError("math verifier helper process did not start")

    def compare(self, answer: str, gold: str, timeout: float) -> tuple[bool | None, str]:
        self.conn.send((answer, gold, timeout))
        if self.conn.poll(timeout + _GRACE_S):
            return self.conn.recv()
        _stop(self.process, self.conn)  # stuck where signals cannot reach: kill it
        _thread_state.helper = None
        raise VerificationTimeout


def _serve(conn) -> None:
    """Helper process loop: answer ``(answer, gold, timeout)`` requests until the pipe closes."""
    import math_verify  # noqa: F401  (import before "ready" so that startup is not timed)

    conn.send("ready")
    while True:
        try:
            answer, gold, timeout = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_compare_with_alarm(answer, gold, timeout))


def _stop(process, conn) -> None:
    conn.close()
    if process.is_alive():
        process.kill()
    process.join(5)
