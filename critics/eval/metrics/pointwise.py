"""Pointwise critique (CriticBench's convention) as an ``evaluate`` metric, wrapping
:func:`~critics.eval.metrics.scores.pointwise_scores`.

``predictions`` holds "correct", "incorrect" or None (an invalid output). ``references`` holds
the labels and ``groups`` the dataset or question type. The keyword ``invalid`` passes through
to ``pointwise_scores``. Load this module by path: ``evaluate.load(METRIC_PATHS["pointwise"])``.
"""

import datasets
import evaluate

from critics.eval.metrics.scores import pointwise_scores

_CITATION = """@article{lin2024criticbench,
  title={CriticBench: Benchmarking LLMs for Critique-Correct Reasoning},
  author={Lin, Zicheng and Gou, Zhibin and Liang, Tian and Luo, Ruilin and Liu, Haowei and Yang, Yujiu},
  journal={arXiv preprint arXiv:2402.14809},
  year={2024}
}"""


class Pointwise(evaluate.Metric):
    """Verdict accuracy, and F1 with "incorrect" as the positive class."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Pointwise critique accuracy, per-label accuracy and F1 on 'incorrect'.",
            citation=_CITATION,
            inputs_description=pointwise_scores.__doc__,
            features=datasets.Features(
                {
                    # large_string, not string: evaluate rejects a None in the first row of a string column
                    "predictions": datasets.Value("large_string"),
                    "references": datasets.Value("string"),
                    "groups": datasets.Value("string"),
                }
            ),
            codebase_urls=["https://github.com/CriticBench/CriticBench"],
        )

    def _compute(self, predictions, references, groups, invalid: str = "wrong"):
        return pointwise_scores(predictions, references, groups, invalid=invalid)
