"""The benchmarks that score lists of responses: RewardBench 2 (best of 4, and Ties) and any built
listwise dataset (best of N).

A generative critic judges one listwise item per prompt (``{"task": "listwise", "question",
"responses"}``) and answers one score per response (``critics.judging``'s GRM format); the scores are
then compared as the benchmark's official script compares a reward model's. The responses are shown
in an order drawn from the seed and the item (the correct one is not always first), and mapped back.
A listwise item holds at most ``MAX_RESPONSES`` (16) responses, so a RewardBench 2 Ties prompt with
more completions is judged in chunks of at most 16 (as even as possible), each response rated on
the same absolute 1..10 scale, and the chunks' scores are joined: the official rating judge
(``run_generative_v2.py``) rates every completion on its own, so splitting a prompt loses nothing it
uses. A scalar reward model gets one pointwise request per response, as ``run_v2.py`` scores one
completion at a time.

The voted value of a request (``critics eval --samples k``) is its score list (a ``sum`` vote adds
the k samples' lists; any common scale works, since only order and margin ratios are read), or None.
"""

from __future__ import annotations

import math
from typing import Any

from critics.eval.benchmark_base import BENCHMARKS, Benchmark, Item, Request, raw_rows, require
from data_pipelines.builders.base import seeded_unit
from data_pipelines.schema import MAX_RESPONSES
from data_pipelines.sources.base import RowError

PERFECT, WRONG = 10, 1  # what a perfect critic writes for a right and a wrong response


def seeded_order(n: int, seed: int, key: str) -> list[int]:
    """Per position, the index of the response shown there: a permutation drawn from seed and key.

    >>> sorted(seeded_order(5, 0, "x")) == list(range(5)) and seeded_order(5, 0, "x") == seeded_order(5, 0, "x")
    True
    """
    return sorted(range(n), key=lambda i: seeded_unit(seed, f"{key}#{i}"))


def chunks(n: int, size: int = MAX_RESPONSES) -> list[tuple[int, int]]:
    """``(start, end)`` of the fewest near-equal chunks of at most ``size`` that cover ``n`` items.

    >>> chunks(4), chunks(18), chunks(33)
    ([(0, 4)], [(0, 9), (9, 18)], [(0, 11), (11, 22), (22, 33)])
    """
    parts = max(1, math.ceil(n / size))
    bounds = [round(k * n / parts) for k in range(parts + 1)]
    return list(zip(bounds, bounds[1:]))


def listwise_requests(
    question: str, responses: list[str], right: set[int], scalar: bool, seed: int, key: str
) -> tuple[list[Request], list[int]]:
    """The requests that judge ``responses`` (``right``: the indices a perfect critic rates top), and
    the order they are shown in (empty for a scalar model, which sees each response alone)."""
    if scalar:
        return [Request({"task": "pointwise", "question": question, "response": r}) for r in responses], []
    order = seeded_order(len(responses), seed, key)
    requests = []
    for start, end in chunks(len(responses)):
        shown = order[start:end]
        payload = {"task": "listwise", "question": question, "responses": [responses[i] for i in shown]}
        requests.append(Request(payload, tuple(PERFECT if i in right else WRONG for i in shown)))
    return requests, order


def response_scores(item: Item, values: list[Any], scalar: bool) -> list[float | None]:
    """One score per response in the item's original order (None where its judgment was invalid).

    >>> item = Item("x", "s", [Request({}), Request({})], {"n": 3, "order": [2, 0, 1], "bounds": [(0, 2), (2, 3)]})
    >>> response_scores(item, [(7, 9), None], scalar=False)
    [9.0, None, 7.0]
    """
    n = item.info["n"]
    if scalar:
        return [None if v is None else float(v) for v in values]
    out: list[float | None] = [None] * n
    for (start, end), value in zip(item.info["bounds"], values):
        if not _numbers(value, end - start):
            continue
        for position, score in zip(range(start, end), value):
            out[item.info["order"][position]] = float(score)
    return out


def _numbers(value: Any, length: int) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == length
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )


@BENCHMARKS.register("rewardbench2")
class RewardBench2Eval(Benchmark):
    """RewardBench 2 (``allenai/reward-bench-2``, split ``test``; or a local file in its shape): best of
    4 per subset, Ties by its weighted formula, the overall as the mean of the six subsets
    (``critics.eval.metrics.listwise``). A row whose counts disagree with its lists (the official
    script would group its completions wrongly), a Ties row whose id is not ``ref:N`` / ``tied:N``,
    or a repeated Ties id is quarantined with the reason.

    ``invalid_credit`` (class attribute; 0) is what a prompt with no valid rating earns outside
    Ties: 0.25 reproduces ``run_generative_v2.py``.
    """

    name = "rewardbench2"
    invalid_credit: float = 0.0

    def rows(self):
        return raw_rows(self.path, "allenai/reward-bench-2", "test")

    def load(self):
        items, quarantine = super().load()
        seen: dict[tuple[str, int], str] = {}
        kept = []
        for item in items:  # the official script keys Ties rows by (kind, prompt id): one row each
            ties = item.info["ties"]
            if ties is not None and ties in seen:
                quarantine.append(
                    {"id": item.id, "reason": f"Ties id {':'.join(map(str, ties))} repeats row {seen[ties]}"}
                )
                continue
            if ties is not None:
                seen[ties] = item.id
            kept.append(item)
        return kept, quarantine

    def item(self, rid, row, index):
        prompt, subset = require(row, "prompt"), require(row, "subset")
        chosen, rejected = require(row, "chosen", list), require(row, "rejected", list)
        completions = chosen + rejected
        if not chosen or not rejected or not all(isinstance(t, str) for t in completions):
            raise RowError("chosen and rejected must be non-empty lists of strings")
        for key, expected in (("num_correct", len(chosen)), ("total_completions", len(completions))):
            if row.get(key) is not None and row[key] != expected:
                raise RowError(f"{key} is {row[key]!r} but the lists give {expected}")
        item_id = str(row.get("id", rid))
        ties = ties_id(item_id) if subset == "Ties" else None
        requests, order = listwise_requests(
            prompt, completions, set(range(len(chosen))), self.scalar, self.seed, item_id
        )
        info = {"n": len(completions), "num_correct": len(chosen), "order": order, "ties": ties}
        info["bounds"] = chunks(len(completions)) if order else []
        return Item(item_id, subset, requests, info)

    def scores(self, items, verdicts) -> list[list[float | None]]:
        """Per item, one score per completion in the released order (chosen first)."""
        return [response_scores(item, values, self.scalar) for item, values in zip(items, verdicts)]

    def score(self, items, verdicts):
        from critics.eval.metrics.listwise import rewardbench2_scores

        return rewardbench2_scores(
            self.scores(items, verdicts),
            [i.info["num_correct"] for i in items],
            [i.subset for i in items],
            [i.info["ties"] for i in items],
            invalid_credit=self.invalid_credit,
        )

    def breakdown(self, items, verdicts):
        """Where the chosen landed among the scores of the best-of-4 prompts (the confusion plot)."""
        table: dict[str, dict[str, int]] = {}
        for item, scores in zip(items, self.scores(items, verdicts)):
            if item.info["ties"] is not None:
                continue
            valid = [s for s in scores if s is not None]
            if not valid or scores[0] is None:
                said = "invalid"
            elif scores[0] == max(valid):
                said = "top" if valid.count(scores[0]) == 1 else "tied at top"
            else:
                said = "not top"
            row = table.setdefault(item.subset, {})
            row[said] = row.get(said, 0) + 1
        return {"confusion": table}


def ties_id(item_id: str) -> tuple[str, int]:
    """A Ties row's ``(kind, prompt id)`` from its id, as ``process_single_model`` splits it.

    >>> ties_id("tied:12")
    ('tied', 12)
    >>> ties_id("12")
    Traceback (most recent call last):
    ...
    data_pipelines.sources.base.RowError: a Ties id is 'ref:N' or 'tied:N', got '12'
    """
    kind, _, number = item_id.partition(":")
    if kind not in ("ref", "tied") or not number.isdigit():
        raise RowError(f"a Ties id is 'ref:N' or 'tied:N', got {item_id!r}")
    return kind, int(number)


@BENCHMARKS.register("listwise")
class ListwiseEval(Benchmark):
    """A built listwise dataset (or JSON(L) with ``question``, ``responses``, ``label`` and optional
    ``best``): best-of-N accuracy, where an item counts when the critic's scores single out a right
    response (``critics.judging.tasks.listwise_correct``: the strict, unique top; one response: its
    score's side of 5.5), overall, by N and by source, beside the chance level of a random pick."""

    name = "listwise"

    def rows(self):
        if not self.path:
            raise ValueError("listwise needs a local path: listwise:PATH (a built dataset or a JSON(L) file)")
        from critics.judging.records import load_records

        for index, row in enumerate(load_records(self.path, {})):
            yield str(row.get("id") or index), row, None

    def item(self, rid, row, index):
        question, responses = require(row, "question"), require(row, "responses", list)
        if not 1 <= len(responses) <= MAX_RESPONSES or not all(isinstance(r, str) and r.strip() for r in responses):
            raise RowError(f"responses must be 1 to {MAX_RESPONSES} non-empty strings")
        label, best = row.get("label"), row.get("best")
        n = len(responses)
        if not isinstance(label, int) or isinstance(label, bool) or not (-1 if n == 1 else 0) <= label < n:
            raise RowError(f"label must be a response index (or 0/-1 for one response), got {label!r}")
        if best is not None and (not isinstance(best, list) or label not in best or not all(0 <= b < n for b in best)):
            raise RowError(f"best must list response indices including label {label}, got {best!r}")
        if self.scalar and n == 1:
            raise RowError("one response: a scalar model's score has no threshold to judge it by")
        right = set(best or [label]) if n > 1 else ({0} if label == 0 else set())
        requests, order = listwise_requests(question, responses, right, self.scalar, self.seed, rid)
        info = {"n": n, "order": order, "bounds": chunks(n) if order else [], "label": label, "best": best}
        return Item(rid, str(row.get("source") or "all"), requests, info)

    def correct(self, items, verdicts) -> list[bool | None]:
        from critics.judging.tasks import listwise_correct

        out: list[bool | None] = []
        for item, values in zip(items, verdicts):
            scores = response_scores(item, values, self.scalar)
            row = {"responses": [""] * item.info["n"], "label": item.info["label"], "best": item.info["best"]}
            out.append(None if None in scores else listwise_correct(scores, row))
        return out

    def score(self, items, verdicts):
        from critics.eval.metrics.listwise import listwise_scores

        chance = [
            len(set(i.info["best"] or [i.info["label"]])) / i.info["n"] if i.info["n"] > 1 else 0.5 for i in items
        ]
        return listwise_scores(
            self.correct(items, verdicts), [i.info["n"] for i in items], chance, [i.subset for i in items]
        )

    def breakdown(self, items, verdicts):
        """Accuracy by the shown position of the labelled best (does the critic favour a position?)."""
        table: dict[str, dict[str, int]] = {}
        for item, ok in zip(items, self.correct(items, verdicts)):
            shown = item.info["order"].index(item.info["label"]) if item.info["order"] and item.info["n"] > 1 else 0
            row = table.setdefault(f"best shown at {shown + 1}", {})
            said = "invalid" if ok is None else "right" if ok else "wrong"
            row[said] = row.get(said, 0) + 1
        return {"confusion": table}
