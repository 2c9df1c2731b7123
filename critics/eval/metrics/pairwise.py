"""Pairwise preference (RewardBench's shape) as an ``evaluate`` metric, wrapping
:func:`~critics.eval.metrics.scores.pairwise_scores`.

``correct`` holds one value per pair: True if the chosen response won, False if not, None if the
output was invalid. Build it with ``correct_from_scores`` or ``correct_from_verdicts``. The
keyword ``invalid_credit`` passes through to ``pairwise_scores``. Load this module by path:
``evaluate.load(METRIC_PATHS["pairwise"])``.
"""

import datasets
import evaluate

from critics.eval.metrics.scores import pairwise_scores

_CITATION = """@misc{lambert2024rewardbench,
  title={RewardBench: Evaluating Reward Models for Language Modeling},
  author={Nathan Lambert and Valentina Pyatkin and Jacob Morrison and LJ Miranda and Bill Yuchen Lin and Khyathi Chandu and Nouha Dziri and Sachin Kumar and Tom Zick and Yejin Choi and Noah A. Smith and Hannaneh Hajishirzi},
  year={2024},
  eprint={2403.13787},
  archivePrefix={arXiv}
}"""


class Pairwise(evaluate.Metric):
    """Per-subset accuracy, RewardBench section scores and their mean."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Pairwise preference accuracy per subset, with RewardBench's section scores.",
            citation=_CITATION,
            inputs_description=pairwise_scores.__doc__,
            features=datasets.Features(
                {
                    "correct": datasets.Value("bool"),  # None: an invalid output
                    "subsets": datasets.Value("string"),
                }
            ),
            codebase_urls=["https://github.com/allenai/reward-bench"],
        )

    def _compute(self, correct, subsets, invalid_credit: float = 0.0):
        return pairwise_scores(correct, subsets, invalid_credit=invalid_credit)
