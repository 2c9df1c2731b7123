r"""A critic meets records: prompt within the budget, generate, read the verdict, score.

``judge(chat_model, rows, spec)`` is the one path from records to judgments, under the server's
``Critic``, held-out evaluation and every recipe's evaluation:

1. each row is checked (``tasks.check_row``) and, for a ``chat`` critic, rendered with the spec's
   template and fitted to the spec's prompt budget (``critics.judging.budget``): cut in the middle
   (``Critique.prompt == "truncated"``) or refused (``"too_long"``, score None, never generated);
2. the fitted prompts are generated in one call (``spec.max_new_tokens``, ``spec.temperature``);
3. the verdict is read from the output (``tasks.read_verdict``: the texts the critic was shown, the
   whole and the cut ones, are quoted) and scored (``Task.score``; with ``soft``, the probability
   of the first choice read at the critic's own last ``\boxed{``);
4. with ``spec.samples`` k > 1, step 2 draws k judgments of each prompt in the same one call
   (``generate(n=k)``: one batch, not k calls) and step 3 reads each, then they are voted
   (``critics.judging.votes``: ``spec.vote``, or the task's default; ``meta`` ranks them with a
   meta RM, ``critics.judging.meta``).

Scalar layouts score instead: ``reward`` the conversation of a question and its response,
``polar`` and ``internlm_polar`` a response against a reference.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from critics.judging.budget import Fitted, fit_messages, fit_row
from critics.judging.chat import ChatModel
from critics.judging.spec import CriticSpec
from critics.judging.tasks import check_row, quoted_texts, read_scores, read_verdict, render, task
from critics.judging.verdicts import PointScores, Verdict, fail
from critics.judging.votes import vote, vote_method

SCALAR = Verdict(value=None, ok=True, reason="scalar score")
TOO_LONG = "too_long"


@dataclass(frozen=True)
class Critique:
    """One judgment: the critic's ``text``, its parsed ``verdict``, the ``score`` (or None) and what
    the prompt budget did to the item (``ok``, ``truncated`` or ``too_long``). A voted judgment
    (``spec.samples`` > 1) carries the sampled judgments it combines in ``samples``. ``scores``: the
    per-response scores the critic wrote beside its verdict, when its task reads them (J1's pairwise
    scores, ``tasks.read_scores``; None when it wrote none)."""

    text: str
    verdict: Verdict
    score: float | None
    prompt: str = "ok"
    samples: tuple[Critique, ...] = ()
    scores: PointScores | None = None


class CriticBase:
    """The interface ``Critic`` (in process) and ``RemoteCritic`` (a URL) share, so that eval,
    rewards, actors and recipes take either: ``critique(items)``, ``score(items)`` and ``spec``
    (with the ``tasks``, default ``task`` and ``is_scalar`` it implies)."""

    spec: CriticSpec

    def critique(
        self,
        items: Sequence[dict[str, Any]],
        timeout: float | None = None,
        *,
        samples: int | None = None,
        vote: str | None = None,
    ) -> list[Critique]:
        """One ``Critique`` per item, in order; ``samples``/``vote`` override the spec's for this call."""
        raise NotImplementedError

    def score(
        self,
        items: Sequence[dict[str, Any]],
        timeout: float | None = None,
        *,
        samples: int | None = None,
        vote: str | None = None,
    ) -> list[float | None]:
        """The score of each item (None where the critic gave none)."""
        votes = {k: v for k, v in (("samples", samples), ("vote", vote)) if v is not None}
        return [c.score for c in self.critique(items, timeout, **votes)]

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.spec.tasks)

    @property
    def task(self) -> str:
        """The default task of items that name none."""
        return self.spec.task

    @property
    def is_scalar(self) -> bool:
        """True for a scalar model (scores, no critiques)."""
        return self.spec.scalar

    def close(self) -> None:
        """Release what the critic holds."""


def conversation(row: dict[str, Any], spec: CriticSpec, images: bool) -> list[dict]:
    """The critic's prompt for a row; with ``images`` (a vision critic) the row's images go in it."""
    if not images:
        if row.get("images"):
            raise ValueError(
                f"record {row.get('id', '?')} has images, but the critic reads text only: judge it "
                "with a vision-language checkpoint and its processor"
            )
        return render(row, style=spec.style, think=spec.think)
    from critics.vlm import attach_images

    found = list(row.get("images") or [])
    return attach_images(render(row, style=spec.style, think=spec.think, images=len(found)), found)


def fit(chat_model: ChatModel, row: dict[str, Any], spec: CriticSpec) -> Fitted:
    """``row`` fitted to the spec's prompt budget (as it is when no budget is known)."""
    budget = spec.prompt_budget
    if spec.layout == "reward":
        messages = reward_conversation(row)
        if budget is None:
            return Fitted(messages, "ok", 0)
        return fit_messages(
            messages,
            lambda m: chat_model.measure(m, generation_prompt=False),
            budget,
            chat_model.counter(),
            spec.truncate,
        )
    if budget is None:
        return Fitted(row, "ok", 0)
    images = chat_model.supports_images
    return fit_row(
        row, lambda r: conversation(r, spec, images), chat_model.measure, budget, chat_model.counter(), spec.truncate
    )


def reward_conversation(row: dict[str, Any]) -> list[dict[str, str]]:
    """What a scalar reward model scores for a pointwise item: the question, then the response."""
    return [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": row["response"]}]


def judge(
    chat_model: ChatModel,
    rows: Sequence[dict[str, Any]],
    spec: CriticSpec,
    *,
    soft: bool = False,
    meta: Any = None,
) -> list[Critique]:
    """Judge ``rows`` (records with a ``task``) as ``spec`` says; one ``Critique`` per row, in order.
    ``meta`` (an object with ``scores(rows, critiques) -> list[float]``, ``critics.judging.meta.MetaRM``)
    ranks the samples for ``vote: meta``."""
    rows = list(rows)
    for row in rows:
        check_row(row, "default" if spec.layout == "reward" else spec.style)
    methods = [vote_method(spec.vote, row["task"]) for row in rows] if spec.samples > 1 else []
    if "meta" in methods and meta is None:
        raise ValueError("vote 'meta' ranks the samples with a meta RM: give one (critics serve --meta-rm PATH)")
    if soft and spec.samples > 1:
        raise ValueError("soft scores read one judgment's probabilities; with samples > 1 the votes score instead")
    if spec.layout in ("polar", "internlm_polar"):
        scores = chat_model.reference_scores(rows, spec.layout, spec.budgets) if rows else []
        return [Critique("", SCALAR, s) for s in scores]
    fitted = [fit(chat_model, row, spec) for row in rows]
    live = [i for i, f in enumerate(fitted) if f.row is not None]
    out = [Critique("", fail(TOO_LONG), None, TOO_LONG) for _ in rows]
    if not live:
        return out
    if spec.layout == "reward":
        for i, s in zip(live, chat_model.scalar_scores([fitted[i].row for i in live])):
            out[i] = Critique("", SCALAR, s, fitted[i].status)
        return out
    conversations = [conversation(fitted[i].row, spec, chat_model.supports_images) for i in live]
    budget = {"think_budget": spec.think_budget} if spec.think_budget is not None else {}
    if budget and not chat_model.supports_think_budget:
        raise ValueError(f"spec.think_budget: the {chat_model.name} backend cannot force a thinking budget")
    k = spec.samples
    samples = {"n": k} if k > 1 else {}  # one call: each prompt encoded once, its k samples side by side
    texts = chat_model.generate(
        conversations, max_new_tokens=spec.max_new_tokens, temperature=spec.temperature, **budget, **samples
    )
    sampled = [_read(texts[j * k : (j + 1) * k], rows[i], fitted[i]) for j, i in enumerate(live)]
    for j, i in enumerate(live):
        out[i] = sampled[j][0]
    if k > 1:
        out = _voted(rows, live, sampled, methods, spec, meta)
    if soft:
        out = _soft(chat_model, conversations, live, out, rows)
    return out


def _read(texts: list[str], row: dict[str, Any], fitted: Fitted) -> list[Critique]:
    """One row's judgments: each text's verdict (quoting what was shown) and score."""
    quoting = _quoting(row, fitted.row)
    verdicts = [read_verdict(text, quoting) for text in texts]
    return [
        Critique(t, v, task(row["task"]).score(v, row), fitted.status, scores=read_scores(t, quoting, v))
        for t, v in zip(texts, verdicts)
    ]


def _voted(
    rows: list[dict[str, Any]],
    live: list[int],
    sampled: list[list[Critique]],
    methods: list[str],
    spec: CriticSpec,
    meta: Any,
) -> list[Critique]:
    """The live rows' samples voted (the meta RM scoring every sample of the ``meta`` rows at once)."""
    out = [Critique("", fail(TOO_LONG), None, TOO_LONG) for _ in rows]
    ranked = [j for j, i in enumerate(live) if methods[i] == "meta"]
    flat = [(rows[live[j]], c) for j in ranked for c in sampled[j]]
    meta_scores = iter(meta.scores([r for r, _ in flat], [c for _, c in flat]) if flat else [])
    for j, i in enumerate(live):
        trust = [next(meta_scores) for _ in sampled[j]] if methods[i] == "meta" else None
        out[i] = vote(sampled[j], rows[i], methods[i], meta_scores=trust, keep=spec.meta_keep)
    return out


def _quoting(original: dict[str, Any], shown: dict[str, Any]) -> dict[str, Any]:
    """The row whose texts the verdict parser treats as quoted: the original, and what was shown
    when it was cut (a box copied across the cut marker is still a copy)."""
    if shown is original:
        return original
    extra = [t for t in quoted_texts(shown) if t not in quoted_texts(original)]
    question = "\n".join(t for t in [original.get("question") or "", *extra] if t)
    return {**original, "question": question}


def _soft(
    chat_model: ChatModel,
    conversations: list[list[dict]],
    live: list[int],
    out: list[Critique],
    rows: list[dict[str, Any]],
) -> list[Critique]:
    """P(first choice) at the critic's own last ``\\boxed{``, for valid verdicts of tasks with two choices."""
    picked = [(k, i) for k, i in enumerate(live) if out[i].verdict.ok and task(rows[i]["task"]).choices]
    if not picked:
        return out
    prefixes = []
    for _, i in picked:
        text = out[i].text
        head = text[: text.rindex("\\boxed") + len("\\boxed")]
        prefixes.append(head + text[len(head) :].split("{", 1)[0] + "{")
    logprobs = chat_model.choice_logprobs(
        [conversations[k] for k, _ in picked], prefixes, [task(rows[i]["task"]).choices for _, i in picked]
    )
    out = list(out)
    for (_, i), (first, second) in zip(picked, logprobs):
        out[i] = dataclasses.replace(out[i], score=1.0 / (1.0 + math.exp(second - first)))
    return out


def in_both_orders(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows, then each again with its responses swapped (rows of tasks judged in one order stay once)."""
    rows = list(rows)
    return rows + [task(r["task"]).swap(r) for r in rows if task(r["task"]).both_orders]


def mean_of_orders(rows: Sequence[dict[str, Any]], scores: Sequence[float | None]) -> list[float | None]:
    """Fold ``in_both_orders``' scores back to one per row: the preference for the first response,
    averaged over its score in the first order and one minus its score in the second (the valid ones;
    None when neither is). Position bias cancels.

    >>> rows = [{"task": "pairwise"}, {"task": "pointwise"}]
    >>> mean_of_orders(rows, [1.0, 0.0, 0.0])  # pairwise A wins in both orders
    [1.0, 0.0]
    >>> mean_of_orders(rows, [1.0, 1.0, 1.0])  # A wins, then A again (now the other response): no preference
    [0.5, 1.0]
    >>> mean_of_orders(rows, [1.0, 1.0, None])  # one order without a verdict: the other's
    [1.0, 1.0]
    """
    rows, scores = list(rows), list(scores)
    first, swapped = scores[: len(rows)], iter(scores[len(rows) :])
    out = []
    for row, a in zip(rows, first):
        if not task(row["task"]).both_orders:
            out.append(a)
            continue
        b = next(swapped)
        valid = [v for v in (a, None if b is None else 1.0 - b) if v is not None]
        out.append(sum(valid) / len(valid) if valid else None)
    return out


def fitted_prompt(
    chat_model: ChatModel, row: dict[str, Any], spec: CriticSpec, images: bool = False
) -> tuple[list[dict] | None, str]:
    """A training prompt for ``row`` within the spec's budget: ``(messages or None, status)``.
    With ``images`` the messages hold one image placeholder per image path (TRL fills them)."""
    count = len(row.get("images") or []) if images else None

    def show(r: dict[str, Any]) -> list[dict]:
        return render(r, style=spec.style, think=spec.think, images=count)

    budget = spec.prompt_budget
    if budget is None:
        return show(row), "ok"
    fitted = fit_row(row, show, chat_model.measure, budget, chat_model.counter(), spec.truncate)
    return (None if fitted.row is None else show(fitted.row)), fitted.status


def prompt_dataset(dataset, chat_model: ChatModel, spec: CriticSpec, images: bool = False):
    """``(dataset with a prompt column for TRL, {"truncated": n, "too_long": m})``: every row rendered
    with its task's template and fitted to the budget; rows refused as too long are dropped."""
    import hashlib
    import json

    counts = {"truncated": 0, "too_long": 0}

    def one(row: dict[str, Any]) -> dict[str, Any]:
        messages, status = fitted_prompt(chat_model, row, spec, images)
        return {"prompt": messages or [], "prompt_status": status}

    # the function closes over the model: name the result's fingerprint rather than hashing it
    key = hashlib.sha256((dataset._fingerprint + json.dumps(spec.to_dict(), sort_keys=True) + str(images)).encode())
    out = dataset.map(one, desc=f"rendering {spec.style} critic prompts", new_fingerprint=key.hexdigest()[:16])
    for status in out["prompt_status"]:
        if status in counts:
            counts[status] += 1
    if counts["too_long"]:
        out = out.filter(lambda row: row["prompt_status"] != "too_long", desc="dropping over-long prompts")
    return out.remove_columns("prompt_status"), counts
