"""Prompts measured in tokens before generation: memory is bounded by the budget, never by the input.

A critic was trained with a context (its model's) of which ``max_new_tokens`` are for its answer;
the rest is the prompt budget (``CriticSpec.prompt_budget``). ``fit_row`` measures a record's
rendered prompt and, when it is over budget, cuts the judged texts in the middle (the longest
first, to a common length) with a visible marker, keeping their beginning and their end, the
question and the instructions; when that is not enough it cuts the question too. With
``truncate=False`` an over-long record is refused (``too_long``) instead. Before any tokenizer sees
a text, each field is cut to ``CHARS_PER_TOKEN_BOUND`` characters per budget token, so a 5 MB
field costs what the budget allows, not what the client sent.

``fit_messages`` does the same for plain chat messages (the OpenAI endpoint): the longest message
contents are cut first.

>>> counter = CharCounter(chars_per_token=1)
>>> row = {"task": "pointwise", "question": "Is it right?", "response": "a" * 200 + "b" * 200}
>>> fitted = fit_row(row, lambda r: [{"role": "user", "content": r["question"] + r["response"]}],
...                  lambda c: counter.count(c[0]["content"]), 100, counter)
>>> fitted.status, fitted.prompt_tokens <= 100, fitted.row["question"]
('truncated', True, 'Is it right?')
>>> print(fitted.row["response"])  # its beginning and its end
aaaaaaaaaaaaaaaaaaaaaa
[... cut to fit the critic's context ...]
bbbbbbbbbbbbbbbbbbbbbb
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from critics.judging.tasks import task

MARKER = "\n[... cut to fit the critic's context ...]\n"
CHARS_PER_TOKEN_BOUND = 32  # characters kept per budget token before tokenizing (tokens rarely span more)
MIN_KEEP = 8  # tokens a cut text keeps at least (its first and last few)
ROUNDS = 6
Status = Literal["ok", "truncated", "too_long"]


class TokenizerCounter:
    """Counts and cuts with a tokenizer (fast tokenizers cut on character offsets)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def cut(self, text: str, keep: int) -> str:
        """``text`` with its middle tokens replaced by ``MARKER``: ``keep`` tokens stay, half from each end."""
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=self.tokenizer.is_fast)
        ids = encoded["input_ids"]
        if len(ids) <= keep:
            return text
        head, tail = keep // 2, keep - keep // 2
        if self.tokenizer.is_fast:
            offsets = encoded["offset_mapping"]
            head_end = offsets[head - 1][1] if head else 0
            tail_start = offsets[len(ids) - tail][0] if tail else len(text)
            return text[:head_end] + MARKER + text[tail_start:]
        decode = self.tokenizer.decode
        return decode(ids[:head]) + MARKER + (decode(ids[-tail:]) if tail else "")


@dataclass(frozen=True)
class CharCounter:
    """An estimate for critics whose tokenizer is out of reach (an OpenAI-compatible endpoint)."""

    chars_per_token: int = 4

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self.chars_per_token)

    def cut(self, text: str, keep: int) -> str:
        chars = keep * self.chars_per_token
        if len(text) <= chars:
            return text
        head = chars // 2
        return text[:head] + MARKER + text[len(text) - (chars - head) :]


@dataclass
class Fitted:
    """A row (or messages) that fits its budget, or None; ``status`` says what was done."""

    row: Any
    status: Status
    prompt_tokens: int


def fit_row(
    row: dict[str, Any],
    render: Callable[[dict], list[dict]],
    measure: Callable[[list[dict]], int],
    budget: int,
    counter,
    truncate: bool = True,
) -> Fitted:
    """Fit one record to ``budget`` prompt tokens (module docstring).

    Args:
        row: a record of a task with a template.
        render: ``row -> conversation`` (the critic's prompt).
        measure: ``conversation -> prompt tokens`` (images included).
        budget: the prompt budget in tokens.
        counter: ``TokenizerCounter`` or ``CharCounter``: counts and cuts one text.
        truncate: cut an over-long row (else it is ``too_long``).
    """
    spec = task(row.get("task"))
    pieces = [(name, None) for name in spec.judged if name not in spec.lists]
    pieces += [(name, i) for name in spec.lists for i in range(len(row.get(name) or []))]
    pieces += [(name, None) for name in spec.fields if name == "question"]
    limit = budget * CHARS_PER_TOKEN_BOUND
    original = {piece: _get(row, piece) for piece in pieces if isinstance(_get(row, piece), str)}
    precut = {piece: text for piece, text in original.items() if len(text) > limit}
    if precut and not truncate:
        return Fitted(None, "too_long", budget + 1)
    texts = {
        piece: CharCounter(CHARS_PER_TOKEN_BOUND).cut(text, budget) if piece in precut else text
        for piece, text in original.items()
    }
    current = _with(row, texts)
    n = measure(render(current))
    if n <= budget:
        return Fitted(current, "truncated" if precut else "ok", n)
    if not truncate:
        return Fitted(None, "too_long", n)
    lengths = {piece: counter.count(text) for piece, text in texts.items()}
    keep: dict[Any, int] = {}
    marker = counter.count(MARKER)
    for _ in range(ROUNDS):
        candidates = [
            p for p in texts if p[0] != "question"
        ]  # the question goes only when cutting the rest is not enough
        remove = n - budget + marker * len(candidates) + 1
        if sum(max(0, keep.get(p, lengths[p]) - MIN_KEEP) for p in candidates) < remove:
            candidates = list(texts)
            remove = n - budget + marker * len(candidates) + 1
        level = _water_level([keep.get(p, lengths[p]) for p in candidates], remove)
        keep.update({p: level for p in candidates if keep.get(p, lengths[p]) > level})
        current = _with(row, {p: counter.cut(t, keep[p]) if p in keep else t for p, t in texts.items()})
        n = measure(render(current))
        if n <= budget:
            return Fitted(current, "truncated", n)
    return Fitted(None, "too_long", n)


def fit_messages(
    messages: list[dict[str, Any]], measure: Callable[[list[dict]], int], budget: int, counter, truncate: bool = True
) -> Fitted:
    """Fit chat messages to ``budget``: the longest string contents are cut in the middle first."""
    limit = budget * CHARS_PER_TOKEN_BOUND
    texts = {i: m["content"] for i, m in enumerate(messages) if isinstance(m.get("content"), str)}
    precut = {i for i, text in texts.items() if len(text) > limit}
    if precut and not truncate:
        return Fitted(None, "too_long", budget + 1)
    texts = {i: CharCounter(CHARS_PER_TOKEN_BOUND).cut(t, budget) if i in precut else t for i, t in texts.items()}

    def build(contents: dict[int, str]) -> list[dict[str, Any]]:
        return [{**m, "content": contents[i]} if i in contents else m for i, m in enumerate(messages)]

    current = build(texts)
    n = measure(current)
    if n <= budget:
        return Fitted(current, "truncated" if precut else "ok", n)
    if not truncate:
        return Fitted(None, "too_long", n)
    lengths, keep, marker = {i: counter.count(t) for i, t in texts.items()}, {}, counter.count(MARKER)
    for _ in range(ROUNDS):
        level = _water_level([keep.get(i, lengths[i]) for i in texts], n - budget + marker * len(texts) + 1)
        keep.update({i: level for i in texts if keep.get(i, lengths[i]) > level})
        current = build({i: counter.cut(t, keep[i]) if i in keep else t for i, t in texts.items()})
        n = measure(current)
        if n <= budget:
            return Fitted(current, "truncated", n)
    return Fitted(None, "too_long", n)


def _water_level(lengths: list[int], remove: int) -> int:
    """The largest length ``h >= MIN_KEEP`` such that cutting every text longer than ``h`` down to
    ``h`` removes at least ``remove`` tokens (``MIN_KEEP`` when even that is not enough).

    >>> _water_level([100, 50, 10], 60)
    45
    """
    low, high = MIN_KEEP, max(lengths, default=MIN_KEEP)
    if sum(max(0, n - low) for n in lengths) < remove:
        return MIN_KEEP
    while low < high:  # the removal shrinks as h grows: find the last h that still removes enough
        mid = (low + high + 1) // 2
        if sum(max(0, n - mid) for n in lengths) >= remove:
            low = mid
        else:
            high = mid - 1
    return low


def _get(row: dict[str, Any], piece: tuple[str, int | None]) -> Any:
    name, index = piece
    value = row.get(name)
    return value[index] if index is not None and isinstance(value, list) else value


def _with(row: dict[str, Any], texts: dict[tuple[str, int | None], str]) -> dict[str, Any]:
    out = dict(row)
    for (name, index), text in texts.items():
        if index is None:
            out[name] = text
        else:
            out[name] = list(out[name]) if out[name] is row.get(name) else out[name]
            out[name][index] = text
    return out
