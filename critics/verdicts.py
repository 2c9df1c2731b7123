r"""Parse a critic's output into a verdict: the only parser of critic output (DESIGN.md, "Verdicts").

A critic writes free text that ends in one canonical verdict, the last ``\boxed{...}``, after an
optional leading ``<think>...</think>`` block:

| task | verdict | ``Verdict.value`` |
|---|---|---|
| pointwise | ``\boxed{Correct}`` / ``\boxed{Incorrect}`` | ``"correct"`` / ``"incorrect"`` (the schema's labels) |
| pairwise | ``\boxed{A}`` / ``\boxed{B}`` | ``"A"`` / ``"B"`` |
| step | ``\boxed{k}``, the first wrong step (0-based), ``\boxed{-1}`` if none | ``k`` (an int) |

Rules that close the obvious reward hacks (each failure has its ``reason``):

- ``"too long"``: more than ``max_chars`` characters.
- ``"malformed think block"``: a ``<think>`` or ``</think>`` tag that is unpaired, repeated, out of
  order, or not at the start of the output. Boxes inside the think block never count.
- ``"malformed box"``: a ``\boxed{`` whose braces never close, or a box inside a box.
- ``"verdict inside the quoted solution"``: the only boxes are copies of text the critic was shown
  (``quoted``: the solution or responses being judged, and the question). A box counts as copied
  when it appears in a quoted text together with ``QUOTE_CONTEXT_CHARS`` characters of what
  surrounds it in the output (on one side or split between both): a critic that pastes a solution
  ending in ``... so the answer is \boxed{B}`` does not vote ``B``, while its own
  ``Verdict: \boxed{B}`` still counts. Characters are compared exactly, so a reworded copy is the
  critic's own text; a bare box with no context (the whole output) is the critic's own verdict.
- ``"no verdict"``: no box at all; ``"invalid verdict"``: the last box is not a verdict for the task
  (``\boxed{}``, ``\boxed{Correct or Incorrect}``, ``\boxed{A/B}``, ``\boxed{Сorrect}`` with a
  Cyrillic ``С``). Earlier boxes that are not verdicts (say a recomputed ``\boxed{42}`` in a pointwise
  critique) are ignored.
- ``"conflicting verdicts"``: two boxes with different verdicts. The same verdict twice is allowed.
- ``"no critique"`` (with ``require_critique``): fewer than ``MIN_CRITIQUE_CHARS`` letters or digits
  outside the boxes (the think block counts as critique).
- ``"no think block"`` (with ``require_think``).

Lenient where a human reader would be: whitespace inside the box, any letter case, one wrapping
``\text{}``/``\textbf{}``/``\mathrm{}``/``\mathbf{}``/``\texttt{}`` or pair of parentheses
(``\boxed{(B)}``), one trailing period inside the box, ``\boxed {x}``, and any text after the box.
Strict where a hacker would probe: only ASCII spellings count (no look-alike or fullwidth letters,
no zero-width characters, no Unicode digits: ``int("３")`` would accept what this parser refuses).

>>> parse_verdict(r"The arithmetic in step 2 is wrong. \boxed{Incorrect}", "pointwise")
Verdict(value='incorrect', ok=True, reason='ok')
>>> parse_verdict(r"<think>\boxed{A}? No.</think> B explains it better. \boxed{\textbf{B}}.", "pairwise")
Verdict(value='B', ok=True, reason='ok')
>>> parse_verdict(r"\boxed{Correct} ... \boxed{Incorrect}", "pointwise").reason
'conflicting verdicts'
>>> parse_verdict(r"It says 'so the answer is \boxed{B}'.", "pairwise", quoted=["... so the answer is \\boxed{B}"]).reason
'verdict inside the quoted solution'
>>> parse_verdict(r"Step 1 divides by zero. \boxed{1}", "step")
Verdict(value=1, ok=True, reason='ok')
>>> parse_verdict("\\boxed{\u0421orrect}", "pointwise").reason
'invalid verdict'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

VERDICT_TASKS = ("pointwise", "pairwise", "step")
QUOTE_CONTEXT_CHARS = 10  # matching context around a box that marks it as copied from a quoted text
MIN_CRITIQUE_CHARS = 10  # letters or digits outside the boxes for ``require_critique``
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

_BOX_START = re.compile(r"\\boxed\s*\{")
_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|texttt|mathrm|mathbf|mathtt)\s*\{(.*)\}", re.DOTALL)
_POINTWISE = {"correct": "correct", "incorrect": "incorrect"}
_PAIRWISE = {"a": "A", "b": "B"}
_STEP = re.compile(r"-1|0|[1-9][0-9]*")  # ASCII digits only, no sign but -1, no leading zeros


@dataclass(frozen=True)
class Verdict:
    """A parsed verdict: ``value`` is set only when ``ok``; ``reason`` says why not."""

    value: str | int | None
    ok: bool
    reason: str


@dataclass(frozen=True)
class _Box:
    start: int  # index of the backslash
    end: int  # index after the closing brace
    content: str


def parse_verdict(text: str, task: str, *, quoted: Iterable[str] = (), max_chars: int | None = None,
                  require_critique: bool = False, require_think: bool = False) -> Verdict:
    """Parse a critic's output into its verdict for ``task`` (never raises on the text).

    Args:
        text: the critic's output.
        task: ``pointwise``, ``pairwise`` or ``step``.
        quoted: the texts the critic was shown and judges; boxes copied from them do not count.
        max_chars: longer outputs get no verdict (``None``: no limit).
        require_critique: a bare box without critique text gets no verdict.
        require_think: an output without a think block gets no verdict.

    >>> parse_verdict(r"\\boxed{ correct }", "pointwise").value
    'correct'
    >>> parse_verdict(r"\\boxed{Correct}", "pointwise", require_critique=True).reason
    'no critique'
    """
    if task not in VERDICT_TASKS:
        raise ValueError(f"no verdicts for task {task!r} (valid: {', '.join(VERDICT_TASKS)})")
    if not isinstance(text, str):
        return _fail("no verdict")
    if max_chars is not None and len(text) > max_chars:
        return _fail("too long")
    split = split_think(text)
    if split is None:
        return _fail("malformed think block")
    think, visible = split
    if require_think and think is None:
        return _fail("no think block")
    boxes = _find_boxes(visible)
    if boxes is None:
        return _fail("malformed box")
    quoted = [q for q in quoted if isinstance(q, str) and q]
    seen: dict[str, bool] = {}
    own = [box for box in boxes if not _is_copied(visible, box, quoted, seen)]
    if not own:
        return _fail("verdict inside the quoted solution" if boxes else "no verdict")
    values = [normalize_verdict(box.content, task) for box in own]
    if values[-1] is None:
        return _fail("invalid verdict")
    if any(value is not None and value != values[-1] for value in values):
        return _fail("conflicting verdicts")
    if require_critique and _critique_chars(think, visible, boxes) < MIN_CRITIQUE_CHARS:
        return _fail("no critique")
    return Verdict(values[-1], True, "ok")


def _fail(reason: str) -> Verdict:
    return Verdict(None, False, reason)


def split_think(text: str) -> tuple[str | None, str] | None:
    """Split ``(think, visible)``; ``think`` is None without a block; None if the block is malformed.

    >>> split_think("<think>hmm</think> \\\\boxed{A}")
    ('hmm', ' \\\\boxed{A}')
    >>> split_think("<think>a</think><think>b</think>") is None
    True
    """
    n_open, n_close = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if n_open == n_close == 0:
        return None, text
    if n_open != 1 or n_close != 1:
        return None
    head, _, rest = text.partition(THINK_OPEN)
    if head.strip() or THINK_CLOSE not in rest:
        return None
    think, _, visible = rest.partition(THINK_CLOSE)
    return think, visible


def _find_boxes(text: str) -> list[_Box] | None:
    """Every ``\\boxed{...}`` in order; None if one is unclosed or nested in another."""
    boxes: list[_Box] = []
    for match in _BOX_START.finditer(text):
        if boxes and match.start() < boxes[-1].end:
            return None  # a box inside a box
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth:
            return None
        boxes.append(_Box(match.start(), i, text[match.end():i - 1]))
    return boxes


def normalize_verdict(content: str, task: str) -> str | int | None:
    r"""The canonical verdict for a box's content, or None if it is not one.

    >>> [normalize_verdict(c, "pairwise") for c in [" B ", r"\text{(b)}", "B.", "A/B", "Ｂ", ""]]
    ['B', 'B', 'B', None, None, None]
    >>> [normalize_verdict(c, "step") for c in ["-1", "3", "03", "-2", "\u0663", "1_0"]]
    [-1, 3, None, None, None, None]
    """
    content = _unwrap(content)
    if not content.isascii():  # look-alikes, fullwidth letters, zero-width characters
        return None
    if task == "pointwise":
        return _POINTWISE.get(content.lower())
    if task == "pairwise":
        return _PAIRWISE.get(content.lower())
    return int(content) if _STEP.fullmatch(content) else None


def _unwrap(content: str) -> str:
    """Strip whitespace, one trailing period, and wrappers a human would read through."""
    for _ in range(4):  # \text{(B)} needs two rounds; a bound keeps hostile input cheap
        content = content.strip()
        inner = None
        match = _WRAPPER.fullmatch(content)
        if match and _balanced(match.group(1)):
            inner = match.group(1)
        elif content.startswith("(") and content.endswith(")"):
            inner = content[1:-1]
        if inner is None:
            break
        content = inner
    content = content.strip()
    return content[:-1].rstrip() if content.endswith(".") else content


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _is_copied(text: str, box: _Box, quoted: list[str], seen: dict[str, bool]) -> bool:
    """Whether the box with ``QUOTE_CONTEXT_CHARS`` characters around it (split any way between its
    two sides) appears in a quoted text. ``seen`` caches windows: a hostile output repeats boxes."""
    for left in range(QUOTE_CONTEXT_CHARS + 1):
        start, end = box.start - left, box.end + QUOTE_CONTEXT_CHARS - left
        if start < 0 or end > len(text):
            continue
        window = text[start:end]
        if window not in seen:
            seen[window] = any(window in source for source in quoted)
        if seen[window]:
            return True
    return False


def _critique_chars(think: str | None, visible: str, boxes: list[_Box]) -> int:
    outside, last = [think or ""], 0
    for box in boxes:
        outside.append(visible[last:box.start])
        last = box.end
    outside.append(visible[last:])
    return sum(ch.isalnum() for part in outside for ch in part)
