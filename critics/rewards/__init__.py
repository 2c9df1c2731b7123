"""Reward functions with TRL's signature, one family per module; ``REWARDS`` maps YAML names to the
critic rewards, ``POLICY_REWARDS`` to rule rewards for policies (``policy_grpo``).

YAML names a reward class by its registry key (``REWARDS.get("pairwise")(accuracy_weight=0.8)``);
Python callers pass a reward itself (``verdict_reward``, ``PairwiseReward(...)``).
"""

from critics.rewards.answer import AnswerReward
from critics.rewards.base import POLICY_REWARDS, REWARDS, completion_text, reward_rows
from critics.rewards.refinement import CritiqueRLStageTwoReward, DiscriminationReward, RefCriticReward
from critics.rewards.verdict import (
    FormatReward,
    ListwiseReward,
    PairwiseReward,
    PointwiseVerdictReward,
    StepIndexReward,
    VerdictReward,
    format_reward,
    pairwise_reward,
    pointwise_verdict_reward,
    step_index_reward,
    verdict_reward,
)

__all__ = [
    "POLICY_REWARDS",
    "REWARDS",
    "completion_text",
    "reward_rows",
    "AnswerReward",
    "CritiqueRLStageTwoReward",
    "DiscriminationReward",
    "RefCriticReward",
    "FormatReward",
    "ListwiseReward",
    "PairwiseReward",
    "PointwiseVerdictReward",
    "StepIndexReward",
    "VerdictReward",
    "format_reward",
    "pairwise_reward",
    "pointwise_verdict_reward",
    "step_index_reward",
    "verdict_reward",
]
