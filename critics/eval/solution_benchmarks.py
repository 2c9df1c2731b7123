"""The benchmarks that judge one solution: ProcessBench (the first wrong step), labelled pointwise
solutions, critique-then-refine with an actor, and critic-filtered majority voting over N solutions.
All need a generative critic (a verdict per solution).
"""

from __future__ import annotations

from typing import ClassVar

from critics.eval.benchmark_base import BENCHMARKS, Benchmark, Item, Request, raw_rows, require, source_rows
from data_pipelines.sources.base import RowError


@BENCHMARKS.register("processbench")
class ProcessBenchEval(Benchmark):
    """ProcessBench: the index of the earliest wrong step, exact match; F1 of error/correct accuracy.

    The subset is the file's name locally (``gsm8k.json``, ``math.json``) and the split on the hub.
    """

    name = "processbench"
    scalar_ok = False

    def rows(self):
        if self.path:
            return source_rows("processbench", self.path)
        return (
            r
            for split in ("gsm8k", "math", "olympiadbench", "omnimath")
            for r in source_rows("processbench", None, split=split)
        )

    def item(self, rid, row, index):
        payload = {"task": "step", "question": row["question"], "steps": row["steps"]}
        return Item(rid, row["extra"].get("subset") or "all", [Request(payload, row["label"])], {"label": row["label"]})

    def score(self, items, verdicts):
        from critics.eval.metrics import processbench_scores

        return processbench_scores(
            [v[0] for v in verdicts], [i.info["label"] for i in items], [i.subset for i in items]
        )

    def breakdown(self, items, verdicts):
        table: dict[str, dict[str, int]] = {}
        for item, (v,) in zip(items, verdicts):
            truth = "all correct (-1)" if item.info["label"] == -1 else "has an error"
            said = (
                "invalid"
                if v is None
                else "-1"
                if v == -1
                else "right step"
                if v == item.info["label"]
                else "wrong step"
            )
            table.setdefault(truth, {}).setdefault(said, 0)
            table[truth][said] += 1
        return {"confusion": table}


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
        payload = {"task": "pointwise", "question": require(row, "question"), "response": require(row, "response")}
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
        item.info.update(
            question=row["question"],
            response=row["response"],
            gold_answer=require(row, "gold_answer", (str, int, float)),
            verifier=row.get("verifier") if row.get("verifier") not in (None, "source") else "math",
        )
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
        return raw_rows(self.path, "", "test")

    def item(self, rid, row, index):
        from data_pipelines.verifiers import VERIFIERS

        question, gold = require(row, "question"), str(require(row, "gold_answer", (str, int, float)))
        solutions = require(row, "solutions", list)
        if not solutions or not all(isinstance(t, str) for t in solutions):
            raise RowError("solutions must be a non-empty list of strings")
        check = VERIFIERS.get(row.get("verifier") or "math")
        expected = ["correct" if check(t, gold).correct else "incorrect" for t in solutions]
        requests = [
            Request({"task": "pointwise", "question": question, "response": t}, e) for t, e in zip(solutions, expected)
        ]
        return Item(str(row.get("id", rid)), "all", requests, {"gold_answer": gold, "solutions": solutions})

    def score(self, items, verdicts):
        from critics.eval.refine import filtered_majority_vote

        n = max(len(i.requests) for i in items)
        ks = sorted({k for k in (1, 2, 4, 8, 16, 32, 64, n) if k <= n})
        questions = [
            {
                "gold_answer": i.info["gold_answer"],
                "solutions": i.info["solutions"],
                "verdicts": [v == "correct" for v in vs],
            }
            for i, vs in zip(items, verdicts)
        ]
        votes = filtered_majority_vote(questions, ks)
        return {"filtered": votes[n]["filtered"], "unfiltered": votes[n]["unfiltered"], "by_n": votes, "n": len(items)}
