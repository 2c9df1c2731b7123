r"""Rule rewards for policies: the completion's answer checked against the dataset's gold answer.

Used by ``policy_grpo`` beside (or instead of) a critic's reward, and to measure a policy's
held-out task accuracy with the same check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from critics.rewards.base import POLICY_REWARDS, completion_text


@POLICY_REWARDS.register("answer")
@dataclass(frozen=True, kw_only=True)
class AnswerReward:
    r"""1.0 if a verifier (``data_pipelines.verifiers``) accepts the completion against ``answer``.

    ``None`` for a row without a gold answer; 0.0 for a completion the verifier cannot read.

    >>> AnswerReward(verifier="exact")(None, ["The answer is \\boxed{12}", "11", "x"], answer=["12", "12", None])
    [1.0, 0.0, None]
    """

    verifier: str = "math"
    answer_column: str = "answer"
    options: dict[str, Any] = field(default_factory=dict)

    __name__: ClassVar[str] = "answer_reward"

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        from data_pipelines.verifiers import VERIFIERS

        check = VERIFIERS.get(self.verifier)
        golds = kwargs.get(self.answer_column) or [None] * len(completions)
        return [
            None if gold is None else float(check(completion_text(c), str(gold), **self.options).correct is True)
            for c, gold in zip(completions, golds)
        ]
