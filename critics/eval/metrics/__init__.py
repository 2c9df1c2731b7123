"""Benchmark metrics: pure functions (``scores``, ``judge_scores``, ``common``) and thin ``evaluate``
modules that wrap them.

Load a module by path, with no hub access: ``evaluate.load(METRIC_PATHS["processbench"])``.
"""

from pathlib import Path

from critics.eval.metrics.common import align_by_id, majority_vote
from critics.eval.metrics.judge_scores import (
    RMBENCH_DOMAINS,
    judgebench_category,
    judgebench_scores,
    rmbench_scores,
    style_wins,
)
from critics.eval.metrics.scores import (
    PROCESSBENCH_SUBSETS,
    REWARDBENCH_EXAMPLE_COUNTS,
    REWARDBENCH_SECTIONS,
    correct_from_scores,
    correct_from_verdicts,
    pairwise_scores,
    pointwise_scores,
    processbench_scores,
)

_HERE = Path(__file__).resolve().parent
METRIC_PATHS = {
    name: str(_HERE / f"{name}.py") for name in ("processbench", "pairwise", "judgebench", "rmbench", "pointwise")
}

__all__ = [
    "METRIC_PATHS",
    "PROCESSBENCH_SUBSETS",
    "REWARDBENCH_EXAMPLE_COUNTS",
    "REWARDBENCH_SECTIONS",
    "RMBENCH_DOMAINS",
    "align_by_id",
    "correct_from_scores",
    "correct_from_verdicts",
    "judgebench_category",
    "judgebench_scores",
    "majority_vote",
    "pairwise_scores",
    "pointwise_scores",
    "processbench_scores",
    "rmbench_scores",
    "style_wins",
]
