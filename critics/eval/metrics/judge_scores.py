"""JudgeBench and RM-Bench: judgments scored over both answer orders and over a style matrix, the
way their official scripts score them (see ``critics.eval.metrics.scores`` for the conventions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from critics.eval.metrics.common import NAN, check_lengths, check_outcome, group_names, group_rows, mean

RMBENCH_DOMAINS = ("chat", "math", "code", "safety")


_JUDGEBENCH_DECISIONS = {"A>B": "A>B", "A": "A>B", "B>A": "B>A", "B": "B>A", "A=B": "A=B"}


_FLIP = {"A>B": "B>A", "B>A": "A>B", "A=B": "A=B"}


_JUDGEBENCH_CATEGORIES = {
    "mmlu-pro": "knowledge",
    "livebench-reasoning": "reasoning",
    "livebench-math": "math",
    "livecodebench": "coding",
}


def judgebench_scores(
    first: Sequence[str | None],
    second: Sequence[str | None] | None,
    labels: Sequence[str],
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """JudgeBench: each pair is judged twice, in the original order and with A and B swapped.

    Follows ScalerLab/JudgeBench ``utils/metrics.py`` ``compute_final_metrics``. The swapped
    trial's verdict is flipped back to the original order. Each trial then scores +1 if it
    agrees with the label, -1 if it gives the opposite verdict, and 0 if it is a tie
    (``"A=B"``) or invalid (``None``). The pair is correct if the sum is > 0. So two
    inconsistent verdicts (A>B, then A>B again after the swap) cancel out and the pair is not
    correct. The same holds for one verdict against the label and one invalid or tied. With
    ``second=None`` (the official ``--single_game`` mode for reward models), a pair is correct
    if the first verdict equals the label.

    Args:
        first: Verdict per pair on the original order: "A>B"/"B>A"/"A=B" ("A"/"B" also accepted), or None.
        second: Verdict per pair on the swapped order, as the judge gave it (not yet flipped), or
            ``None`` for single-game scoring.
        labels: "A>B" or "B>A" per pair (the dataset's ``label``).
        groups: Source or category per pair (see :func:`judgebench_category`).

    Returns:
        ``accuracy``, ``n``, ``groups`` (accuracy per group), and ``inconsistent``: the share of
        pairs whose two verdicts differ after flipping, the official ``n_inconsistent``, where
        two invalid verdicts count as agreeing. It is ``nan`` for a single game.

    >>> scores = judgebench_scores(["A>B", "A>B", "A>B", None], ["B>A", "A>B", None, "B"], ["A>B"] * 4)
    >>> scores["accuracy"], scores["inconsistent"]
    (0.75, 0.75)
    """
    groups = group_names(groups, check_lengths(first=first, second=second, labels=labels, groups=groups))
    for label in labels:
        if _JUDGEBENCH_DECISIONS.get(label) not in ("A>B", "B>A"):
            raise ValueError(f"labels: expected 'A>B' or 'B>A' ('A'/'B' accepted), got {label!r}")
    labels = [_JUDGEBENCH_DECISIONS[label] for label in labels]
    first = [_judgebench_decision(d, "first") for d in first]
    if second is None:
        votes = [1 if d == label else 0 for d, label in zip(first, labels)]
        inconsistent = NAN
    else:
        flipped = [None if d is None else _FLIP[_judgebench_decision(d, "second")] for d in second]
        votes = [_judgebench_vote(a, b, label) for a, b, label in zip(first, flipped, labels)]
        inconsistent = mean([float(a != b) for a, b in zip(first, flipped)])
    correct = [float(v > 0) for v in votes]
    per_group = {name: mean([correct[i] for i in rows]) for name, rows in group_rows(groups).items()}
    return {"accuracy": mean(correct), "n": len(correct), "groups": per_group, "inconsistent": inconsistent}


def judgebench_category(source: str) -> str:
    """The paper's category (knowledge, reasoning, math, coding) of a JudgeBench ``source`` field.

    JudgeBench's code has no such mapping. This one follows the paper's tables: MMLU-Pro is
    knowledge, LiveBench reasoning and math are reasoning and math, LiveCodeBench is coding.

    >>> judgebench_category("mmlu-pro-computer science"), judgebench_category("livecodebench")
    ('knowledge', 'coding')
    """
    for prefix, category in _JUDGEBENCH_CATEGORIES.items():
        if source.startswith(prefix):
            return category
    raise ValueError(f"unknown JudgeBench source {source!r}; expected one starting with {list(_JUDGEBENCH_CATEGORIES)}")


def style_wins(
    chosen_scores: Sequence[float | None], rejected_scores: Sequence[float | None]
) -> list[list[bool | None]]:
    """RM-Bench's 3x3 comparison of one item: ``wins[i][j]`` is chosen[i] > rejected[j] (strict).

    The styles are ordered [concise, detailed plain, detailed markdown], as in the dataset. A
    missing score makes the comparisons it is part of ``None``.

    >>> style_wins([3.0, 2.0, 1.0], [2.0, None, 0.0])
    [[True, None, True], [False, None, True], [False, None, True]]
    """
    if len(chosen_scores) != 3 or len(rejected_scores) != 3:
        raise ValueError(
            f"RM-Bench items have 3 chosen and 3 rejected responses, "
            f"got {len(chosen_scores)} and {len(rejected_scores)} scores"
        )
    return [[None if c is None or r is None else c > r for r in rejected_scores] for c in chosen_scores]


def rmbench_scores(wins: Sequence[Sequence[Sequence[bool | None]]], domains: Sequence[str]) -> dict[str, Any]:
    """RM-Bench: per item, how often the chosen responses beat the rejected ones, by style.

    Follows ``compute_accuracy`` in THU-KEG/RM-Bench ``scripts/utils.py`` (its README, and the
    copy vendored in xiusic/Rubric-RM ``evaluation/RM-Bench/scripts/utils.py``).
    ``acc_matrix[i][j]`` is the share of items where chosen response i beat rejected response j.
    Hard is the mean of the upper-right triangle (i < j: a plainer chosen response against a
    fancier rejected one), Normal the diagonal, and Easy the lower-left triangle. A tie or an
    invalid comparison (``None``) is not a win. Over several domains (``total_dataset.json``),
    ``split_dataset_by_domain`` groups items by ``domain.startswith``, so ``safety-refuse`` and
    ``safety-response`` pool into one ``safety`` domain; a domain's score is the mean of its
    Hard, Normal and Easy (equal to the mean of its 9 cells); Hard, Normal and Easy overall are
    means over domains, and ``overall`` = (Chat + Code + Math + Safety) / 4. When a domain is
    missing, the means are over the domains present.

    Args:
        wins: Per item a 3x3 matrix (see :func:`style_wins`), rows chosen, columns rejected.
        domains: Dataset domain per item: chat, math, code, safety-refuse or safety-response.

    Returns:
        ``domains``: per domain ``hard``, ``normal``, ``easy``, ``score`` and ``n``; and overall
        ``hard``, ``normal``, ``easy``, ``overall`` and ``n``.

    >>> always = [[True] * 3] * 3
    >>> plain_loses = [[True, False, False], [True, True, False], [True, True, True]]
    >>> rmbench_scores([always, plain_loses], ["chat", "chat"])["domains"]["chat"]["hard"]
    0.5
    """
    check_lengths(wins=wins, domains=domains)
    domain_of = [_rmbench_domain(d) for d in domains]
    per_domain = {name: _rmbench_block([wins[i] for i in rows]) for name, rows in group_rows(domain_of).items()}
    summary = {level: mean([block[level] for block in per_domain.values()]) for level in ("hard", "normal", "easy")}
    return {
        "domains": per_domain,
        **summary,
        "overall": mean([block["score"] for block in per_domain.values()]),
        "n": len(wins),
    }


def _judgebench_decision(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if value not in _JUDGEBENCH_DECISIONS:
        raise ValueError(f"{name}: unknown JudgeBench verdict {value!r}; expected one of {list(_JUDGEBENCH_DECISIONS)}")
    return _JUDGEBENCH_DECISIONS[value]


def _judgebench_vote(first: str | None, flipped_second: str | None, label: str) -> int:
    return sum(1 if d == label else -1 if d == _FLIP[label] else 0 for d in (first, flipped_second))


def _rmbench_domain(domain: str) -> str:
    name = domain.split("-")[0]  # safety-refuse and safety-response are both safety
    if name not in RMBENCH_DOMAINS:
        raise ValueError(
            f"unknown RM-Bench domain {domain!r}; expected one of {list(RMBENCH_DOMAINS)} "
            "(or safety-refuse / safety-response)"
        )
    return name


def _rmbench_block(matrices: list[Sequence[Sequence[bool | None]]]) -> dict[str, Any]:
    cells: dict[tuple[int, int], list[float]] = {(i, j): [] for i in range(3) for j in range(3)}
    for matrix in matrices:
        if len(matrix) != 3 or any(len(row) != 3 for row in matrix):
            raise ValueError("each RM-Bench item needs a 3x3 matrix of wins (rows chosen, columns rejected)")
        for i in range(3):
            for j in range(3):
                cells[i, j].append(float(matrix[i][j] is not None and check_outcome(matrix[i][j], "wins")))
    acc = {cell: mean(values) for cell, values in cells.items()}
    return {
        "hard": mean([acc[i, j] for i, j in acc if i < j]),
        "normal": mean([acc[i, j] for i, j in acc if i == j]),
        "easy": mean([acc[i, j] for i, j in acc if i > j]),
        "score": mean(list(acc.values())),
        "n": len(matrices),
    }
