"""JudgeBench as an ``evaluate`` metric, wrapping :func:`~critics.eval.metrics.judge_scores.judgebench_scores`.

``first`` holds the verdict on the original order and ``second`` the verdict on the swapped
order, as the judge gave it. ``references`` holds the labels ("A>B"/"B>A") and ``groups`` the
source or category. Pass ``single_game=True``, with ``second`` all None, to score only the first
verdict (the official ``--single_game``). Load this module by path:
``evaluate.load(METRIC_PATHS["judgebench"])``.
"""

import datasets
import evaluate

from critics.eval.metrics.judge_scores import judgebench_scores

_CITATION = """@misc{judgebench2024,
  title={JudgeBench: A Benchmark for Evaluating LLM-Based Judges},
  author={Sijun Tan and Siyuan Zhuang and Kyle Montgomery and Willian Y. Tang and Alejandro Cuadron and Chenguang Wang and Raluca Ada Popa and Ion Stoica},
  year={2024},
  archivePrefix={arXiv},
  url={https://arxiv.org/abs/2410.12784}
}"""


class JudgeBench(evaluate.Metric):
    """Two-game accuracy: each pair is judged in both orders, and the votes are summed."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="JudgeBench accuracy over both response orders, overall and per group.",
            citation=_CITATION,
            inputs_description=judgebench_scores.__doc__,
            features=datasets.Features(
                {
                    # large_string, not string: evaluate rejects a None in the first row of a string column
                    "first": datasets.Value("large_string"),
                    "second": datasets.Value("large_string"),
                    "references": datasets.Value("string"),
                    "groups": datasets.Value("string"),
                }
            ),
            codebase_urls=["https://github.com/ScalerLab/JudgeBench"],
        )

    def _compute(self, first, second, references, groups, single_game: bool = False):
        if single_game and any(verdict is not None for verdict in second):
            raise ValueError("single_game=True scores only the first verdict; pass second as all None")
        return judgebench_scores(first, None if single_game else second, references, groups)
