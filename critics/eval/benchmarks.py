"""The benchmarks ``critics eval`` runs: each reads its public format and turns items into critic requests.

A benchmark item becomes one or more ``Request``s: the record a critic judges (``payload``, the
fields of a pointwise, pairwise or step record) and the verdict a perfect critic gives
(``expected``, never sent; the oracle tests read it). A scalar reward model gets pointwise
requests (one per response) and its scores are compared. Scoring goes through
``critics.eval.metrics``, which follows each benchmark's official script.

| name | format | requests per item |
|---|---|---|
| ``processbench`` | ``problem``, ``steps``, ``label`` (first wrong step, -1) | 1 step record |
| ``rewardbench``, ``llmbar``, ``hh_rlhf``, ``ultrafeedback``, ``pairwise`` | prompt, chosen, rejected, subset | 1 pairwise (the chosen answer at A for every other item) |
| ``vl_rewardbench`` | ``image_path``, ``query``, ``response`` x2, ``human_ranking`` | 1 pairwise record with its images |
| ``judgebench`` | ``question``, ``response_A``, ``response_B``, ``label`` in {A>B, B>A} | 2: the original order and swapped |
| ``rmbench`` | ``prompt``, ``chosen[3]``, ``rejected[3]``, ``domain`` | 9: each chosen style against each rejected style |
| ``pointwise`` | ``question``, ``response``, ``label`` (or ``is_correct``) | 1 pointwise record |
| ``refine`` | pointwise records with ``gold_answer``; an actor revises from each critique | 1 pointwise record |
| ``bestofn`` | ``question``, ``gold_answer``, ``solutions`` (N) | N pointwise records |

Paths: ``NAME`` reads the hub copy, ``NAME:PATH`` a local file or folder (``critics eval --bench``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from data_pipelines.registry import Registry
from data_pipelines.sources import SOURCES
from data_pipelines.sources.base import RowError, is_local, read_hub, read_local

BENCHMARKS: Registry[type] = Registry("benchmark")


@dataclass
class Request:
    """One critic call: the record it judges, and the verdict a perfect critic gives."""

    payload: dict[str, Any]
    expected: Any = None


@dataclass
class Item:
    """One benchmark item: its id, subset, requests and what scoring needs (``info``)."""

    id: str
    subset: str
    requests: list[Request]
    info: dict[str, Any] = field(default_factory=dict)


class Benchmark:
    """Base: ``load`` reads items (and quarantines bad rows), ``score`` turns verdicts into metrics."""

    name: ClassVar[str] = ""
    scalar_ok: ClassVar[bool] = True  # a scalar reward model can be evaluated on it
    needs_actor: ClassVar[bool] = False  # scoring asks an actor to refine (``critiques`` and ``actor`` set first)

    def __init__(self, path: str | None = None, limit: int | None = None, scalar: bool = False):
        if scalar and not self.scalar_ok:
            raise ValueError(f"{self.name} needs a generative critic (verdicts), not a scalar reward model")
        self.path, self.limit, self.scalar = path, limit, scalar
        self.critiques: list[list[str]] = []  # per item, per request: the critique text (``needs_actor``)
        self.actor: Any = None

    def load(self) -> tuple[list[Item], list[dict[str, Any]]]:
        """``(items, quarantine)``: every row becomes an item or a quarantine entry with its reason."""
        items, quarantine = [], []
        for rid, data, error in self.rows():
            if self.limit is not None and len(items) >= self.limit:
                break
            if error is not None:
                quarantine.append({"id": rid, "reason": error})
                continue
            try:
                items.append(self.item(rid, data, len(items)))
            except RowError as exc:
                quarantine.append({"id": rid, "reason": str(exc)})
        return items, quarantine

    def rows(self) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
        """``(id, row, error)`` from the benchmark's source."""
        raise NotImplementedError

    def item(self, rid: str, row: dict[str, Any], index: int) -> Item:
        raise NotImplementedError

    def score(self, items: list[Item], verdicts: list[list[Any]]) -> dict[str, Any]:
        """Metrics from one (voted) verdict or score per request of each item."""
        raise NotImplementedError

    def breakdown(self, items: list[Item], verdicts: list[list[Any]]) -> dict[str, Any]:
        """What the plots show: a confusion table, and accuracy by the better answer's position."""
        return {}


def _source_rows(name: str, path: str | None, **options) -> Iterator[tuple[str, dict | None, str | None]]:
    source = SOURCES.get(name)(path=path or "", **options)
    for row in source.rows():
        yield row.id, row.data, row.error


def _raw_rows(path: str | None, hub: str, split: str) -> Iterator[tuple[str, dict | None, str | None]]:
    location = path or hub
    records = read_local(Path(location)) if is_local(location) else read_hub(location, None, split)
    for rid, raw, error, _ in records:
        yield rid, raw, error


def _require(row: dict[str, Any], name: str, kind: type | tuple = str) -> Any:
    value = row.get(name)
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise RowError(f"field '{name}' is missing or not {getattr(kind, '__name__', kind)}")
    return value


@BENCHMARKS.register("processbench")
class ProcessBenchEval(Benchmark):
    """ProcessBench: the index of the earliest wrong step, exact match; F1 of error/correct accuracy."""

    name = "processbench"
    scalar_ok = False

    def rows(self):
        if self.path:
            return _source_rows("processbench", self.path)
        return (r for split in ("gsm8k", "math", "olympiadbench", "omnimath")
                for r in _source_rows("processbench", None, split=split))

    def item(self, rid, row, index):
        payload = {"task": "step", "question": row["question"], "steps": row["steps"]}
        return Item(rid, row["extra"].get("subset") or "all", [Request(payload, row["label"])], {"label": row["label"]})

    def score(self, items, verdicts):
        from critics.eval.metrics import processbench_scores

        return processbench_scores([v[0] for v in verdicts], [i.info["label"] for i in items], [i.subset for i in items])

    def breakdown(self, items, verdicts):
        table: dict[str, dict[str, int]] = {}
        for item, (v,) in zip(items, verdicts):
            truth = "all correct (-1)" if item.info["label"] == -1 else "has an error"
            said = "invalid" if v is None else "-1" if v == -1 else "right step" if v == item.info["label"] else \
                "wrong step"
            table.setdefault(truth, {}).setdefault(said, 0)
            table[truth][said] += 1
        return {"confusion": table}


class PairwiseEval(Benchmark):
    """Pairwise preference in RewardBench's shape; the chosen answer sits at A for every other item."""

    source: ClassVar[str] = "rewardbench"

    def rows(self):
        return _source_rows(self.source, self.path)

    def item(self, rid, row, index):
        chosen_at = "A" if index % 2 == 0 else "B"
        a, b = (row["chosen"], row["rejected"]) if chosen_at == "A" else (row["rejected"], row["chosen"])
        if self.scalar:
            requests = [Request({"task": "pointwise", "question": row["question"], "response": r})
                        for r in (row["chosen"], row["rejected"])]
        else:
            requests = [Request({"task": "pairwise", "question": row["question"], "response_a": a, "response_b": b},
                                chosen_at)]
        return Item(rid, row.get("subset") or self.name, requests, {"chosen_at": chosen_at})

    def correct(self, items, verdicts) -> list[bool | None]:
        from critics.eval.metrics import correct_from_scores, correct_from_verdicts

        if self.scalar:
            return correct_from_scores([v[0] for v in verdicts], [v[1] for v in verdicts])
        return correct_from_verdicts([v[0] for v in verdicts], [i.info["chosen_at"] for i in items])

    def score(self, items, verdicts):
        from critics.eval.metrics import pairwise_scores

        return pairwise_scores(self.correct(items, verdicts), [i.subset for i in items])

    def breakdown(self, items, verdicts):
        correct = self.correct(items, verdicts)
        by_position: dict[str, list[float]] = {"A": [], "B": []}
        table: dict[str, dict[str, int]] = {}
        for item, ok, v in zip(items, correct, verdicts):
            by_position[item.info["chosen_at"]].append(float(bool(ok)))
            said = ("invalid" if v[0] is None or v[1] is None else "higher" if ok else "not higher") if self.scalar \
                else ("invalid" if v[0] is None else str(v[0]))
            row = table.setdefault(f"better is {item.info['chosen_at']}", {})
            row[said] = row.get(said, 0) + 1
        return {"confusion": table, "position": {k: (sum(x) / len(x) if x else float("nan"), len(x))
                                                 for k, x in by_position.items()}}


for _name, _source in (("rewardbench", "rewardbench"), ("llmbar", "llmbar"), ("hh_rlhf", "hh_rlhf"),
                       ("ultrafeedback", "ultrafeedback"), ("pairwise", "rewardbench")):
    BENCHMARKS.register(_name)(type(f"{_name.title().replace('_', '')}Eval", (PairwiseEval,),
                                    {"name": _name, "source": _source,
                                     "__doc__": f"Pairwise preference read by the ``{_source}`` source."}))


@BENCHMARKS.register("vl_rewardbench")
class VLRewardBenchEval(PairwiseEval):
    """VL-RewardBench's format (``image_path``, ``query``, ``response`` x2, ``human_ranking``): the
    pairwise judgment with the item's images; overall accuracy and the macro average over its
    groups (``query_source``), plus position bias."""

    name = "vl_rewardbench"
    source: ClassVar[str] = "vl_rewardbench"
    scalar_ok = False

    def item(self, rid, row, index):
        item = super().item(rid, row, index)
        item.requests[0].payload["images"] = list(row.get("images") or [])
        return item

    def score(self, items, verdicts):
        metrics = super().score(items, verdicts)
        groups = [v for v in metrics["subsets"].values() if v == v]
        metrics["macro_accuracy"] = sum(groups) / len(groups) if groups else float("nan")
        return metrics


@BENCHMARKS.register("judgebench")
class JudgeBenchEval(Benchmark):
    """JudgeBench: each pair judged in both orders; +1/-1 per verdict, correct if the sum is positive."""

    name = "judgebench"

    def rows(self):
        return _raw_rows(self.path, "ScalerLab/JudgeBench", "gpt")

    def item(self, rid, row, index):
        label = _require(row, "label")
        if label not in ("A>B", "B>A"):
            raise RowError(f"label must be 'A>B' or 'B>A', got {label!r}")
        question, a, b = _require(row, "question"), _require(row, "response_A"), _require(row, "response_B")
        better, swapped_better = label[0], "B" if label[0] == "A" else "A"
        if self.scalar:
            requests = [Request({"task": "pointwise", "question": question, "response": r}) for r in (a, b)]
        else:
            requests = [Request({"task": "pairwise", "question": question, "response_a": a, "response_b": b}, better),
                        Request({"task": "pairwise", "question": question, "response_a": b, "response_b": a},
                                swapped_better)]
        from critics.eval.metrics import judgebench_category

        source = str(row.get("source") or "judgebench")
        return Item(str(row.get("pair_id") or rid), judgebench_category(source) if row.get("source") else source,
                    requests, {"label": label, "chosen_at": better})

    def decisions(self, verdicts) -> tuple[list[str | None], list[str | None] | None]:
        def decision(v):
            return None if v is None else "A>B" if v == "A" else "B>A"

        if self.scalar:
            return [None if a is None or b is None else "A>B" if a > b else "B>A" if b > a else "A=B"
                    for a, b in verdicts], None
        return [decision(v[0]) for v in verdicts], [decision(v[1]) for v in verdicts]

    def score(self, items, verdicts):
        from critics.eval.metrics import judgebench_scores

        first, second = self.decisions(verdicts)
        return judgebench_scores(first, second, [i.info["label"] for i in items], [i.subset for i in items])

    def breakdown(self, items, verdicts):
        first, _ = self.decisions(verdicts)  # the original order: the better answer's position is the label's
        by_position: dict[str, list[float]] = {"A": [], "B": []}
        for item, d in zip(items, first):
            by_position[item.info["chosen_at"]].append(float(d == item.info["label"]))
        return {"position": {k: (sum(x) / len(x) if x else float("nan"), len(x)) for k, x in by_position.items()}}


@BENCHMARKS.register("rmbench")
class RMBenchEval(Benchmark):
    """RM-Bench: 3 chosen x 3 rejected styles; Hard/Normal/Easy from the 3x3 win matrix."""

    name = "rmbench"

    def rows(self):
        return _raw_rows(self.path, "THU-KEG/RM-Bench", "train")

    def item(self, rid, row, index):
        prompt, domain = _require(row, "prompt"), _require(row, "domain")
        chosen, rejected = _require(row, "chosen", list), _require(row, "rejected", list)
        if len(chosen) != 3 or len(rejected) != 3 or not all(isinstance(t, str) for t in chosen + rejected):
            raise RowError("chosen and rejected must each be a list of 3 strings")
        if self.scalar:
            requests = [Request({"task": "pointwise", "question": prompt, "response": r}) for r in chosen + rejected]
        else:
            requests = []
            for i in range(3):
                for j in range(3):
                    at = "A" if (i + j + index) % 2 == 0 else "B"
                    a, b = (chosen[i], rejected[j]) if at == "A" else (rejected[j], chosen[i])
                    requests.append(Request({"task": "pairwise", "question": prompt, "response_a": a,
                                             "response_b": b}, at))
        return Item(str(row.get("id", rid)), domain, requests, {"domain": domain})

    def wins(self, items, verdicts):
        from critics.eval.metrics import style_wins

        if self.scalar:
            return [style_wins(v[:3], v[3:]) for v in verdicts]
        return [[[None if v[3 * i + j] is None else v[3 * i + j] == item.requests[3 * i + j].expected
                  for j in range(3)] for i in range(3)] for item, v in zip(items, verdicts)]

    def score(self, items, verdicts):
        from critics.eval.metrics import rmbench_scores

        return rmbench_scores(self.wins(items, verdicts), [i.info["domain"] for i in items])


@BENCHMARKS.register("pointwise")
class PointwiseEval(Benchmark):
    """Labelled solutions (a built pointwise dataset, or JSON(L) with ``question``, ``response`` and
    ``label`` or ``is_correct``): accuracy, per-label accuracy, F1 with "incorrect" positive."""

    name = "pointwise"
    scalar_ok = False

    def rows(self):
        if not self.path:
            raise ValueError("pointwise needs a local path: pointwise:PATH (a built dataset or a JSON(L) file)")
        from critics.judging.records import load_records

        for index, row in enumerate(load_records(self.path, {})):
            yield str(row.get("id") or index), row, None

    def item(self, rid, row, index):
        label = row.get("label")
        if label is None and isinstance(row.get("is_correct"), bool):
            label = "correct" if row["is_correct"] else "incorrect"
        if label not in ("correct", "incorrect"):
            raise RowError(f"label must be 'correct' or 'incorrect' (or is_correct a bool), got {label!r}")
        payload = {"task": "pointwise", "question": _require(row, "question"), "response": _require(row, "response")}
        return Item(rid, str(row.get("source") or "all"), [Request(payload, label)], {"label": label})

    def score(self, items, verdicts):
        from critics.eval.metrics import pointwise_scores

        return pointwise_scores([v[0] for v in verdicts], [i.info["label"] for i in items], [i.subset for i in items])

    def breakdown(self, items, verdicts):
        table: dict[str, dict[str, int]] = {}
        for item, (v,) in zip(items, verdicts):
            row = table.setdefault(item.info["label"], {})
            row[str(v) if v is not None else "invalid"] = row.get(str(v) if v is not None else "invalid", 0) + 1
        return {"confusion": table}


@BENCHMARKS.register("refine")
class RefineEval(PointwiseEval):
    """Critique-then-refine (Critique-RL): the critic critiques each labelled solution, a frozen actor
    (``--actor``) revises it from the critique, the verifier checks the revision against ``gold_answer``."""

    name = "refine"
    needs_actor: ClassVar[bool] = True

    def item(self, rid, row, index):
        item = super().item(rid, row, index)
        item.info.update(question=row["question"], response=row["response"],
                         gold_answer=_require(row, "gold_answer", (str, int, float)),
                         verifier=row.get("verifier") if row.get("verifier") not in (None, "source") else "math")
        return item

    def score(self, items, verdicts):
        from critics.eval.refine import critique_then_refine

        rows = [{**i.info, "gold_answer": str(i.info["gold_answer"])} for i in items]
        verifier = rows[0]["verifier"] if rows else "math"
        result = critique_then_refine(rows, [texts[0] or "" for texts in self.critiques], self.actor, verifier=verifier)
        return {**result, **{k: v for k, v in super().score(items, verdicts).items() if k == "label_accuracy"}}


@BENCHMARKS.register("bestofn")
class BestOfNEval(Benchmark):
    """Majority voting over N solutions per question, critic-filtered against unfiltered (RefCritic):
    rows with ``question``, ``gold_answer`` and ``solutions`` (a list)."""

    name = "bestofn"
    scalar_ok = False

    def rows(self):
        if not self.path:
            raise ValueError("bestofn needs a local path: bestofn:PATH (JSON(L) with question, gold_answer, solutions)")
        return _raw_rows(self.path, "", "test")

    def item(self, rid, row, index):
        from data_pipelines.verifiers import VERIFIERS

        question, gold = _require(row, "question"), str(_require(row, "gold_answer", (str, int, float)))
        solutions = _require(row, "solutions", list)
        if not solutions or not all(isinstance(t, str) for t in solutions):
            raise RowError("solutions must be a non-empty list of strings")
        check = VERIFIERS.get(row.get("verifier") or "math")
        expected = ["correct" if check(t, gold).correct else "incorrect" for t in solutions]
        requests = [Request({"task": "pointwise", "question": question, "response": t}, e)
                    for t, e in zip(solutions, expected)]
        return Item(str(row.get("id", rid)), "all", requests, {"gold_answer": gold, "solutions": solutions})

    def score(self, items, verdicts):
        from critics.eval.refine import filtered_majority_vote

        n = max(len(i.requests) for i in items)
        ks = sorted({k for k in (1, 2, 4, 8, 16, 32, 64, n) if k <= n})
        questions = [{"gold_answer": i.info["gold_answer"], "solutions": i.info["solutions"],
                      "verdicts": [v == "correct" for v in vs]} for i, vs in zip(items, verdicts)]
        votes = filtered_majority_vote(questions, ks)
        return {"filtered": votes[n]["filtered"], "unfiltered": votes[n]["unfiltered"], "by_n": votes, "n": len(items)}


def parse_bench(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME:PATH`` -> ``(name, path)``; the name is checked against the registry.

    >>> parse_bench("llmbar:../shared/data/llmbar")
    ('llmbar', '../shared/data/llmbar')
    >>> parse_bench("processbenh")
    Traceback (most recent call last):
    ...
    KeyError: "unknown benchmark 'processbenh' (did you mean 'processbench'?)"
    """
    name, _, path = spec.partition(":")
    BENCHMARKS.get(name)
    return name, path or None
