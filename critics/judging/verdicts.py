r"""Boxes and verdicts: the one parser of critic output (DESIGN.md, "Verdicts").

A critic writes free text that ends in one canonical verdict, the last ``\boxed{...}``, after an
optional leading ``<think>...</think>`` block. What a box may hold is the task's business (its row
in ``critics.judging.tasks`` names a normaliser: ``Choices`` or ``Index``); the rules below are
the same for every task, and ``critics.judging.checks`` (RLAC's checks) reads boxes with the same
public pieces (``split_think``, ``find_boxes``, ``own_boxes``, ``unwrap``).

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
  Cyrillic ``С``), or the normaliser's own reason (``ScoreList``: ``"wrong score count"``,
  ``"score out of range"``, ``"non-integer score"``). Earlier boxes that are not verdicts (say a
  recomputed ``\boxed{42}`` in a pointwise critique) are ignored.
- ``"conflicting verdicts"``: two boxes with different verdicts. The same verdict twice is allowed.
- ``"no critique"`` (with ``require_critique``): fewer than ``MIN_CRITIQUE_CHARS`` letters or digits
  outside the boxes (the think block counts as critique).
- ``"no think block"`` (with ``require_think``).

A pairwise critic's optional per-response scores beside its verdict (J1's ``<score_A>`` tags) are
read by ``TaggedScores`` with the same copy rule; ``critics.judging.tasks.read_scores`` checks them
against the verdict.

Lenient where a human reader would be: whitespace inside the box, any letter case, one wrapping
``\text{}``/``\textbf{}``/``\mathrm{}``/``\mathbf{}``/``\texttt{}`` or pair of parentheses
(``\boxed{(B)}``), one trailing period inside the box, ``\boxed {x}``, and any text after the box.
Strict where a hacker would probe: only ASCII spellings count (no look-alike or fullwidth letters,
no zero-width characters, no Unicode digits: ``int("３")`` would accept what this parser refuses).

>>> AB = Choices({"a": "A", "b": "B"})
>>> parse_boxed(r"<think>\boxed{A}? No.</think> B explains it better. \boxed{\textbf{B}}.", AB)
Verdict(value='B', ok=True, reason='ok')
>>> parse_boxed(r"\boxed{A} ... \boxed{B}", AB).reason
'conflicting verdicts'
>>> parse_boxed(r"It says 'so the answer is \boxed{B}'.", AB, quoted=["... so the answer is \\boxed{B}"]).reason
'verdict inside the quoted solution'
>>> parse_boxed(r"Step 1 divides by zero. \boxed{1}", Index())
Verdict(value=1, ok=True, reason='ok')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

QUOTE_CONTEXT_CHARS = 10  # matching context around a box that marks it as copied from a quoted text
MIN_CRITIQUE_CHARS = 10  # letters or digits outside the boxes for ``require_critique``
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

_BOX_START = re.compile(r"\\boxed\s*\{")
_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|texttt|mathrm|mathbf|mathtt)\s*\{(.*)\}", re.DOTALL)
_INDEX = re.compile(r"-1|0|[1-9][0-9]*")  # ASCII digits only, no sign but -1, no leading zeros
_NATURAL = re.compile(r"0|[1-9][0-9]*")
_SCORE = re.compile(r"-?(?:0|[1-9][0-9]*)")  # signed, so that -1 is out of range rather than malformed
_SCORE_TAG = re.compile(r"<score_([A-Za-z])>([^<>]{0,16})</score_\1>")  # J1's score tags, bounded content
MAX_SCORE_TAGS = 16  # score tags read from one output: a hostile output repeating them costs no more

Normalizer = Callable[[str], Any]  # a box's content -> the canonical value, or None


@dataclass(frozen=True)
class Verdict:
    """A parsed verdict: ``value`` is set only when ``ok``; ``reason`` says why not."""

    value: str | int | tuple[int, ...] | None
    ok: bool
    reason: str


def fail(reason: str) -> Verdict:
    """A verdict that is not one, with its reason."""
    return Verdict(None, False, reason)


@dataclass(frozen=True)
class Box:
    """One ``\\boxed{...}``: where it starts (the backslash), where it ends (after ``}``), its content."""

    start: int
    end: int
    content: str


@dataclass(frozen=True)
class Choices:
    """A verdict that is one of a few words: ``mapping`` from the lower-cased spelling to the value.

    >>> Choices({"correct": "correct", "incorrect": "incorrect"})(r" \\text{Correct} ")
    'correct'
    """

    mapping: dict[str, str]

    def __call__(self, content: str) -> str | None:
        content = unwrap(content)
        return self.mapping.get(content.lower()) if content.isascii() else None

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.mapping.items())))


@dataclass(frozen=True)
class Index:
    """A verdict that is an index: ASCII digits, no leading zeros, and ``-1`` when ``allow_none``.

    >>> [Index()(c) for c in ["-1", "3", "03", "-2", "\u0663", "1_0"]]
    [-1, 3, None, None, None, None]
    """

    allow_none: bool = True

    def __call__(self, content: str) -> int | None:
        content = unwrap(content)
        pattern = _INDEX if self.allow_none else _NATURAL
        return int(content) if content.isascii() and pattern.fullmatch(content) else None


@dataclass(frozen=True)
class Rejected:
    """What a normaliser returns for a box that is not a verdict, when it can say why (``ScoreList``);
    the last box's reason becomes the verdict's (``None`` from a normaliser: ``"invalid verdict"``)."""

    reason: str


@dataclass(frozen=True)
class ScoreList:
    r"""A verdict that is one integer score per response, comma-separated (DeepSeek-GRM's
    ``oxed{7, 3}``): ASCII digits only, no sign, decimals or leading zeros, each in ``low..high``,
    and, when ``count`` is set (``for_row``: one per response of the row), exactly ``count`` of them.
    A box that is not one says why (``Rejected``): ``"non-integer score"``, ``"score out of range"``,
    ``"wrong score count"``. At most ``max_count`` scores are read (a longer list is the wrong count).

    >>> ScoreList(count=2)(" 7, 3 ")
    (7, 3)
    >>> [ScoreList(count=2)(c) for c in ["7", "7.5, 3", "0, 3", "٧, 3", "10, 10"]]  # doctest: +NORMALIZE_WHITESPACE
    [Rejected(reason='wrong score count'), Rejected(reason='non-integer score'),
     Rejected(reason='score out of range'), Rejected(reason='non-integer score'), (10, 10)]
    """

    low: int = 1
    high: int = 10
    count: int | None = None
    max_count: int = 16

    def __call__(self, content: str) -> tuple[int, ...] | Rejected | None:
        content = unwrap(content)
        if not content:
            return None  # an empty box: "invalid verdict", as for every task
        parts = content.split(",", self.max_count)  # a bounded split: a hostile list costs no more
        if len(parts) > self.max_count or (self.count is not None and len(parts) != self.count):
            return Rejected("wrong score count")
        digits = len(str(self.high))
        scores = []
        for part in (p.strip() for p in parts):
            if not (part.isascii() and _SCORE.fullmatch(part)):
                return Rejected("non-integer score")
            if len(part.lstrip("-")) > digits:  # int() of a long digit string is costly: out of range anyway
                return Rejected("score out of range")
            scores.append(int(part))
        if any(not self.low <= s <= self.high for s in scores):
            return Rejected("score out of range")
        return tuple(scores)

    def for_row(self, row: dict[str, Any]) -> ScoreList:
        """This normaliser with ``count`` set to the number of the row's ``responses``."""
        responses = row.get("responses")
        return ScoreList(self.low, self.high, len(responses), self.max_count) if isinstance(responses, list) else self


@dataclass(frozen=True)
class PointScores:
    """Per-response scores a critic wrote beside its verdict (J1's pairwise judge with scores): ``values``
    in the order the responses were shown, set only when ``ok``; ``reason`` says why not."""

    values: tuple[int, ...] | None
    ok: bool
    reason: str


@dataclass(frozen=True)
class TaggedScores:
    r"""Per-response scores in J1's tags, ``<score_A>7</score_A> <score_B>3</score_B>``: optional, read
    after the verdict from the visible text (never the think block), one integer ``low..high`` per
    name. ``read`` gives None when the output holds no score tag (nothing to read: not an error),
    else a ``PointScores``: ``"scores inside the quoted text"`` when every tag is a copy of a text the
    critic was shown (``own_boxes``' rule), ``"malformed scores"`` (a name missing, repeated, unknown,
    or a non-integer), ``"score out of range"``. Whether they agree with the verdict is the task's
    rule (``critics.judging.tasks.read_scores``). At most ``MAX_SCORE_TAGS`` tags are read.

    >>> TaggedScores().read("B is right. <score_A>2</score_A> <score_B>9</score_B> \\boxed{B}")
    PointScores(values=(2, 9), ok=True, reason='ok')
    >>> [TaggedScores().read(t).reason for t in ["<score_A>2</score_A>", "<score_A>11</score_A><score_B>1</score_B>"]]
    ['malformed scores', 'score out of range']
    >>> TaggedScores().read("no scores here \\boxed{A}") is None
    True
    """

    names: tuple[str, ...] = ("A", "B")
    low: int = 0
    high: int = 10

    def read(self, text: str, quoted: Iterable[str] = ()) -> PointScores | None:
        """The scores in ``text`` (a critic's whole output), quoting ``quoted`` (the texts it was shown)."""
        split = split_think(text) if isinstance(text, str) else None
        if split is None:
            return None
        visible = split[1]
        matches = list(islice(_SCORE_TAG.finditer(visible), MAX_SCORE_TAGS + 1))
        if not matches:
            return None
        own = {box.start for box in own_boxes(visible, [Box(m.start(), m.end(), "") for m in matches], quoted)}
        tags = [(m.group(1).upper(), m.group(2).strip()) for m in matches if m.start() in own]
        if not tags:
            return PointScores(None, False, "scores inside the quoted text")
        if len(matches) > MAX_SCORE_TAGS or sorted(name for name, _ in tags) != sorted(self.names):
            return PointScores(None, False, "malformed scores")
        found = dict(tags)
        if not all(v.isascii() and _SCORE.fullmatch(v) and len(v) <= 3 for v in found.values()):
            return PointScores(None, False, "malformed scores")
        values = tuple(int(found[name]) for name in self.names)
        if any(not self.low <= v <= self.high for v in values):
            return PointScores(None, False, "score out of range")
        return PointScores(values, True, "ok")


def parse_boxed(
    text: str,
    normalize: Normalizer,
    *,
    quoted: Iterable[str] = (),
    max_chars: int | None = None,
    require_critique: bool = False,
    require_think: bool = False,
) -> Verdict:
    """Parse a critic's output into the verdict its last own box holds (never raises on the text).

    Args:
        text: the critic's output.
        normalize: a box's content -> its value or None (``Choices``, ``Index``).
        quoted: the texts the critic was shown and judges; boxes copied from them do not count.
        max_chars: longer outputs get no verdict (``None``: no limit).
        require_critique: a bare box without critique text gets no verdict.
        require_think: an output without a think block gets no verdict.

    >>> parse_boxed(r"\\boxed{Correct}", Choices({"correct": "correct"}), require_critique=True).reason
    'no critique'
    """
    if not isinstance(text, str):
        return fail("no verdict")
    if max_chars is not None and len(text) > max_chars:
        return fail("too long")
    split = split_think(text)
    if split is None:
        return fail("malformed think block")
    think, visible = split
    if require_think and think is None:
        return fail("no think block")
    boxes = find_boxes(visible)
    if boxes is None:
        return fail("malformed box")
    own = own_boxes(visible, boxes, quoted)
    if not own:
        return fail("verdict inside the quoted solution" if boxes else "no verdict")
    values = [normalize(box.content) for box in own]
    if values[-1] is None or isinstance(values[-1], Rejected):
        return fail(values[-1].reason if values[-1] is not None else "invalid verdict")
    values = [None if isinstance(value, Rejected) else value for value in values]
    if any(value is not None and value != values[-1] for value in values):
        return fail("conflicting verdicts")
    if require_critique and critique_chars(think, visible, boxes) < MIN_CRITIQUE_CHARS:
        return fail("no critique")
    return Verdict(values[-1], True, "ok")


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


def find_boxes(text: str) -> list[Box] | None:
    """Every ``\\boxed{...}`` in order; None if one is unclosed or nested in another.

    >>> find_boxes(r"a \\boxed{1} b \\boxed{x}")
    [Box(start=2, end=11, content='1'), Box(start=14, end=23, content='x')]
    >>> find_boxes(r"\\boxed{\\boxed{1}}") is None
    True
    """
    boxes: list[Box] = []
    for match in _BOX_START.finditer(text):
        if boxes and match.start() < boxes[-1].end:
            return None  # a box inside a box
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth:
            return None
        boxes.append(Box(match.start(), i, text[match.end() : i - 1]))
    return boxes


def own_boxes(text: str, boxes: list[Box], quoted: Iterable[str]) -> list[Box]:
    """The boxes of ``text`` that are not copies of a quoted text (the rule in the module docstring)."""
    sources = [q for q in quoted if isinstance(q, str) and q]
    seen: dict[str, bool] = {}  # windows already looked up: a hostile output repeats boxes
    return [box for box in boxes if not _is_copied(text, box, sources, seen)]


def unwrap(content: str) -> str:
    r"""Strip whitespace, one trailing period, and wrappers a human would read through.

    >>> unwrap(r" \text{(B)} ")
    'B'
    """
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


def critique_chars(think: str | None, visible: str, boxes: list[Box]) -> int:
    """Letters and digits outside the boxes (the think block included)."""
    outside, last = [think or ""], 0
    for box in boxes:
        outside.append(visible[last : box.start])
        last = box.end
    outside.append(visible[last:])
    return sum(ch.isalnum() for part in outside for ch in part)


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _is_copied(text: str, box: Box, quoted: list[str], seen: dict[str, bool]) -> bool:
    """Whether the box with ``QUOTE_CONTEXT_CHARS`` characters around it (split any way between its
    two sides) appears in a quoted text."""
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
