r"""Recipe ``critique_grpo``: a policy learns from critiques and its own refinements (Critique-GRPO).

Critique-GRPO (Zhang et al., 2025, "Critique-GRPO: Advancing LLM Reasoning with Natural Language
and Numerical Feedback", arXiv 2506.03106; code: github.com/zhangxy-2019/critique-GRPO, a verl
fork) adds natural-language feedback to GRPO. For each question q the policy samples n responses
y_1..y_n (scored by a verifier: reward R in {0, 1}); a critic writes a critique c_i of each; the
policy, shown (q, y_i, c_i), writes refinements; the kept refinements y'_j are trained as
responses to q itself, off-policy, beside the on-policy samples:

    J(theta) = 1/Z * [ sum_{i=1..n} sum_t r_{i,t}(theta) A_i  +  sum_{j=1..k} sum_t f(pi_theta(y'_{j,t} | q, y'_{j,<t})) A'_j ]

    r_{i,t} = pi_theta(y_{i,t} | q, y_{i,<t}) / pi_old(y_{i,t} | q, y_{i,<t})
    f(p)    = p / (p + gamma)                                    (policy shaping, gamma = 0.1)
    A       = R - mean(R over the mixed group {y_1..y_n, y'_1..y'_k})   (no division by the std)

with no clipping of the refinements' term (and none of the on-policy ratio in their runs: with one
update per generation, as here by default, r = 1 and clipping never acts), no KL term, and Z the
total token count (the official code divides the token sum by the maximum response length:
``loss_remove_token_mean``). The official defaults: 7 on-policy samples + 1 refinement per
question (every response critiqued and refined once, then one refinement kept per question: a
correct one if any, else the best scored), temperature 1.0, learning rate 1e-6, gamma 0.1
(``off_policy_reshape: p_div_p_0.1``), ``grpo_use_std: False``, ``loss_remove_clip: True``.
Shaping amplifies the gradient of correct refinement tokens the policy finds unlikely (f's slope
gamma / (p + gamma)^2 is largest at small p) and, with a negative advantage, penalises wrong ones.

Here the method lives in ``critics.recipes.feedback`` (also ``policy_grpo``'s ``feedback`` key) on
``trl.GRPOTrainer``; the defaults below are the paper's, mapped to TRL: ``num_generations: 7``,
``feedback.critique: all``, ``refinements: 1``, ``keep: best``, ``gamma: 0.1``,
``scale_rewards: none``, ``beta: 0``, ``loss_type: dr_grpo`` (token sum over batch x max length).
Critique sources: ``critic`` (a ``Critic`` checkpoint or a ``critics serve`` URL, read by its
spec), ``self`` (the policy critiques itself), ``indicative`` ("your answer is wrong") and
``with_gold`` (plus the reference answer), the paper's ablations. Each step logs
``feedback/on_policy_accuracy``, ``feedback/refinement_accuracy``, ``feedback/i->c``,
``feedback/c->i``, ``feedback/kept_share``, ``feedback/refinement_length`` beside TRL's
``entropy`` and ``completions/mean_length``; the reward-hacking audit (``critics.recipes.audit``)
runs as in every policy run. Data: as ``policy_grpo`` (a question and a gold answer column).

Status: unproven on real models here; ``benchmarks/critique_grpo_experiment.py`` is the tiny-model
check (its measured table is in the README).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from critics.recipes import policy_grpo
from critics.recipes.common import RunSettings
from critics.recipes.critic_rl import GRPOSettings
from critics.recipes.feedback import FeedbackSettings
from critics.recipes.policy_grpo import CriticRewardSettings, PolicyGRPOConfig


def paper_grpo() -> GRPOSettings:
    """GRPO settings as Critique-GRPO's runs: 7 on-policy samples, no std scaling, no KL, no token mean."""
    return GRPOSettings(num_generations=7, temperature=1.0, beta=0.0, loss_type="dr_grpo", scale_rewards="none")


@dataclass
class CritiqueGRPOConfig(PolicyGRPOConfig):
    """The ``critique_grpo`` recipe (``configs/recipes/critique_grpo.yaml``): ``policy_grpo``'s
    settings with ``feedback`` required and the paper's defaults; ``rewards`` (e.g. ``answer``) is
    the verifier that scores responses and refinements, a ``critic`` reward is optional."""

    run: RunSettings = field(default_factory=lambda: RunSettings(output_dir="outputs/critique_grpo"))
    grpo: GRPOSettings = field(default_factory=paper_grpo)
    critic: CriticRewardSettings | None = None
    feedback: FeedbackSettings = field(default_factory=lambda: FeedbackSettings(critique="all"))

    def __post_init__(self) -> None:
        if self.feedback is None:
            raise ValueError("feedback: critique_grpo learns from critiques; give feedback.source")
        super().__post_init__()


def build(config: CritiqueGRPOConfig):
    """``(trainer, held_out, cards)``: ``policy_grpo.build`` with the feedback hooks on."""
    return policy_grpo.build(config)


def run(config: CritiqueGRPOConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train with Critique-GRPO; held-out accuracy before and after, audit, ``final/`` and its card."""
    return policy_grpo.run(
        config,
        resume=resume,
        progress=progress,
        recipe="critique_grpo",
        stages="Critique-GRPO: GRPO on on-policy samples plus shaped off-policy refinements",
    )
