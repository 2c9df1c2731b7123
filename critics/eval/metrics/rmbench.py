"""RM-Bench as an ``evaluate`` metric, wrapping :func:`~critics.eval.metrics.judge_scores.rmbench_scores`.

``wins`` holds one 3x3 matrix per item: rows are the chosen responses and columns the rejected
ones, in the order concise, detailed, markdown. A cell is True where the chosen response won
(``style_wins`` builds the matrices from reward scores). ``domains`` holds the dataset domain of
each item. Load this module by path: ``evaluate.load(METRIC_PATHS["rmbench"])``.
"""

import datasets
import evaluate

from critics.eval.metrics.judge_scores import rmbench_scores

_CITATION = """@article{liu2024rm,
  title={RM-Bench: Benchmarking Reward Models of Language Models with Subtlety and Style},
  author={Liu, Yantao and Yao, Zijun and Min, Rui and Cao, Yixin and Hou, Lei and Li, Juanzi},
  journal={arXiv preprint arXiv:2410.16184},
  year={2024}
}"""


class RMBench(evaluate.Metric):
    """Hard / Normal / Easy accuracy per domain, and their averages over domains."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="RM-Bench style-matrix accuracy (hard, normal, easy) per domain and overall.",
            citation=_CITATION,
            inputs_description=rmbench_scores.__doc__,
            features=datasets.Features(
                {
                    "wins": datasets.Sequence(datasets.Sequence(datasets.Value("bool"))),  # None: invalid
                    "domains": datasets.Value("string"),
                }
            ),
            codebase_urls=["https://github.com/THU-KEG/RM-Bench"],
        )

    def _compute(self, wins, domains):
        return rmbench_scores(wins, domains)
