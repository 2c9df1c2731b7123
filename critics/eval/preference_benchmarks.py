"""The benchmarks that compare answers: RewardBench's shape (and LLMBar, HH-RLHF, UltraFeedback),
VL-RewardBench, JudgeBench and RM-Bench. A scalar reward model gets one pointwise request per
answer and its scores are compared, as each benchmark's official script compares them.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from critics.eval.benchmark_base import BENCHMARKS, Benchmark, Item, Request, raw_rows, require, source_rows
from data_pipelines.sources.base import RowError

# RM-Bench's domains, as its files name them (data/chat_filtered.json ... safety-response_filtered.json)
RMBENCH_FILE_DOMAINS = ("chat", "code", "math", "safety-refuse", "safety-response")


class PairwiseEval(Benchmark):
    """Pairwise preference in RewardBench's shape; the chosen answer sits at A for every other item."""

    source: ClassVar[str] = "rewardbench"

    def rows(self):
        return source_rows(self.source, self.path)

    def item(self, rid, row, index):
        chosen_at = "A" if index % 2 == 0 else "B"
        a, b = (row["chosen"], row["rejected"]) if chosen_at == "A" else (row["rejected"], row["chosen"])
        if self.scalar:
            requests = [
                Request({"task": "pointwise", "question": row["question"], "response": r})
                for r in (row["chosen"], row["rejected"])
            ]
        else:
            requests = [
                Request({"task": "pairwise", "question": row["question"], "response_a": a, "response_b": b}, chosen_at)
            ]
        return Item(rid, row.get("subset") or self.name, requests, {"chosen_at": chosen_at})

    def correct(self, items, verdicts) -> list[bool | None]:
        """Per item: did the critic prefer the chosen answer (None: no valid verdict or score)?"""
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
            said = (
                ("invalid" if v[0] is None or v[1] is None else "higher" if ok else "not higher")
                if self.scalar
                else ("invalid" if v[0] is None else str(v[0]))
            )
            row = table.setdefault(f"better is {item.info['chosen_at']}", {})
            row[said] = row.get(said, 0) + 1
        return {"confusion": table, "position": position_accuracy(by_position)}


def position_accuracy(by_position: dict[str, list[float]]) -> dict[str, tuple[float, int]]:
    """``{position: (accuracy, n)}``; ``nan`` for a position no item had."""
    return {k: (sum(x) / len(x) if x else float("nan"), len(x)) for k, x in by_position.items()}


for _name, _source in (
    ("rewardbench", "rewardbench"),
    ("llmbar", "llmbar"),
    ("hh_rlhf", "hh_rlhf"),
    ("ultrafeedback", "ultrafeedback"),
    ("pairwise", "rewardbench"),
):
    BENCHMARKS.register(_name)(
        type(
            f"{_name.title().replace('_', '')}Eval",
            (PairwiseEval,),
            {"name": _name, "source": _source, "__doc__": f"Pairwise preference read by the ``{_source}`` source."},
        )
    )


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
    """JudgeBench: each pair judged in both orders; +1/-1 per verdict, correct if the sum is positive.

    A scalar reward model plays one game, as the official reward-model judges do (ScalerLab/JudgeBench
    ``utils/judges.py``: ``'A>B' if score1 > score2 else 'B>A'``): equal scores count as "B>A".
    """

    name = "judgebench"

    def rows(self):
        return raw_rows(self.path, "ScalerLab/JudgeBench", "gpt")

    def item(self, rid, row, index):
        label = require(row, "label")
        if label not in ("A>B", "B>A"):
            raise RowError(f"label must be 'A>B' or 'B>A', got {label!r}")
        question, a, b = require(row, "question"), require(row, "response_A"), require(row, "response_B")
        better, swapped_better = label[0], "B" if label[0] == "A" else "A"
        if self.scalar:
            requests = [Request({"task": "pointwise", "question": question, "response": r}) for r in (a, b)]
        else:
            requests = [
                Request({"task": "pairwise", "question": question, "response_a": a, "response_b": b}, better),
                Request({"task": "pairwise", "question": question, "response_a": b, "response_b": a}, swapped_better),
            ]
        from critics.eval.metrics import judgebench_category

        source = str(row.get("source") or "judgebench")
        return Item(
            str(row.get("pair_id") or rid),
            judgebench_category(source) if row.get("source") else source,
            requests,
            {"label": label, "chosen_at": better},
        )

    def decisions(self, verdicts) -> tuple[list[str | None], list[str | None] | None]:
        """The decisions of the original and the swapped game (None for a scalar model's one game)."""

        def decision(v):
            return None if v is None else "A>B" if v == "A" else "B>A"

        if self.scalar:  # strict >, as the official reward-model judges: a tie is "B>A"
            return [None if a is None or b is None else "A>B" if a > b else "B>A" for a, b in verdicts], None
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
        return {"position": position_accuracy(by_position)}


@BENCHMARKS.register("rmbench")
class RMBenchEval(Benchmark):
    """RM-Bench: 3 chosen x 3 rejected styles; Hard/Normal/Easy from the 3x3 win matrix.

    Reads the released files (``chat_filtered.json``, ``code_filtered.json``, ``math_filtered.json``,
    ``safety-refuse_filtered.json``, ``safety-response_filtered.json``: rows without a ``domain``,
    which the file name gives) and the combined ``total_dataset.json`` or hub copy, whose rows name it.
    The repository's ``data`` folder holds both, the same items twice: give one of them.
    """

    name = "rmbench"

    def rows(self):
        folder = Path(self.path) if self.path else None
        if (
            folder is not None
            and (folder / "total_dataset.json").is_file()
            and any((folder / f"{d}_filtered.json").is_file() for d in RMBENCH_FILE_DOMAINS)
        ):
            raise ValueError(
                f"{folder} holds total_dataset.json and the per-domain *_filtered.json files, the same "
                f"items twice: give {folder / 'total_dataset.json'}, or a folder without it"
            )
        return raw_rows(self.path, "THU-KEG/RM-Bench", "train")

    def item(self, rid, row, index):
        prompt, domain = require(row, "prompt"), rmbench_domain(row, rid)
        chosen, rejected = require(row, "chosen", list), require(row, "rejected", list)
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
                    requests.append(
                        Request({"task": "pairwise", "question": prompt, "response_a": a, "response_b": b}, at)
                    )
        return Item(str(row.get("id", rid)), domain, requests, {"domain": domain})

    def wins(self, items, verdicts):
        """Per item, the 3x3 matrix: did chosen style i beat rejected style j (None: invalid)?"""
        from critics.eval.metrics import style_wins

        if self.scalar:
            return [style_wins(v[:3], v[3:]) for v in verdicts]
        return [
            [
                [None if v[3 * i + j] is None else v[3 * i + j] == item.requests[3 * i + j].expected for j in range(3)]
                for i in range(3)
            ]
            for item, v in zip(items, verdicts)
        ]

    def score(self, items, verdicts):
        from critics.eval.metrics import rmbench_scores

        return rmbench_scores(self.wins(items, verdicts), [i.info["domain"] for i in items])


def rmbench_domain(row: dict, rid: str) -> str:
    """An RM-Bench row's domain: its ``domain`` field, else the name of its file (``raw_rows`` ids
    are ``file-stem/index``). A field that disagrees with its file's name is an error.

    >>> rmbench_domain({}, "safety-refuse_filtered/7"), rmbench_domain({"domain": "code"}, "total_dataset/0")
    ('safety-refuse', 'code')
    >>> rmbench_domain({}, "total_dataset/0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_pipelines.sources.base.RowError: no 'domain' field, and the file name 'total_dataset' names no ...
    """
    stem = rid.split("/")[0]
    named = stem.removesuffix("_filtered")
    from_file = named if named in RMBENCH_FILE_DOMAINS else None
    given = row.get("domain")
    if given is None:
        if from_file is None:
            raise RowError(
                f"no 'domain' field, and the file name '{stem}' names no RM-Bench domain "
                f"({', '.join(RMBENCH_FILE_DOMAINS)}, optionally with _filtered)"
            )
        return from_file
    if given not in RMBENCH_FILE_DOMAINS:
        raise RowError(f"unknown domain {given!r}; expected one of {', '.join(RMBENCH_FILE_DOMAINS)}")
    if from_file is not None and given != from_file:
        raise RowError(f"domain {given!r} disagrees with the file name '{stem}'")
    return given
