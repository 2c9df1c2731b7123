"""ProcessBench as an ``evaluate`` metric, a thin wrapper of :func:`~critics.eval.metrics.scores.processbench_scores`.

Load it by path, with no hub access: ``evaluate.load(METRIC_PATHS["processbench"])``.
"""

import datasets
import evaluate

from critics.eval.metrics.scores import processbench_scores

_CITATION = """@article{zheng2024processbench,
  title={ProcessBench: Identifying Process Errors in Mathematical Reasoning},
  author={Zheng, Chujie and Zhang, Zhenru and Zhang, Beichen and Lin, Runji and Lu, Keming and Yu, Bowen and Liu, Dayiheng and Zhou, Jingren and Lin, Junyang},
  journal={arXiv preprint arXiv:2412.06559},
  year={2024}
}"""


class ProcessBench(evaluate.Metric):
    """Earliest-wrong-step accuracy: ``predictions`` and ``references`` are step indices, -1 for none."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="ProcessBench error/correct accuracy and F1, per subset and averaged.",
            citation=_CITATION,
            inputs_description=processbench_scores.__doc__,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),  # None: an invalid or missing output
                    "references": datasets.Value("int64"),
                    "subsets": datasets.Value("string"),
                }
            ),
            codebase_urls=["https://github.com/QwenLM/ProcessBench"],
        )

    def _compute(self, predictions, references, subsets):
        return processbench_scores(predictions, references, subsets)
