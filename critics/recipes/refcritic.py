"""Recipe ``refcritic``: RefCritic's long chain-of-thought critic with refinement feedback (Tang et al., 2025).

Two stages, each resumable, into ``output_dir/cold_start/`` and ``output_dir/grpo/``:

1. Cold start: SFT (the ``sft`` recipe) on long chain-of-thought critiques sampled from a teacher
   (``cold_start.critiques``: a checkpoint in process, vLLM, or any OpenAI-compatible endpoint) or
   read from a column, kept only when their verdict matches the label.
2. GRPO from the cold-start checkpoint with RefCritic's dual reward: r = 1[verdict right] +
   lambda x (share of K actor refinements, written given the critique, whose answer is correct)
   (``RefCriticReward``; ``reward.k`` and ``reward.lam``). The actor is frozen (or ``kind: self``).

The critic's prompt is the ``long_cot`` template (``critics.judging.templates``): step-by-step checking
inside ``<think>``, then a critique with suggestions the author can revise from, then the verdict.
Held-out evaluation reports discrimination accuracy and critique-then-refine accuracy. GRPO
defaults are ``critic_rl``'s (group 8, temperature 1.0, KL 0.01); set a paper's values in YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critics.actors import ActorSettings
from critics.models import ModelConfig, precision_args
from critics.recipes import critic_rl, distributed, sft
from critics.recipes.common import DataSettings, EvalSettings, TemplateSettings, train_and_finish
from critics.recipes.critique_rl import StagedRunSettings
from critics.recipes.staged import (
    attach_actor,
    check_refine_columns,
    finished_result,
    next_stage_model,
    refine_evaluation,
    stage_metrics,
    stage_plan,
    stage_run,
    write_recipe_config,
)
from critics.rewards.refinement import RefCriticReward


@dataclass
class ColdStartSettings:
    """The cold-start SFT stage: its steps, learning rate, critiques and sequence length."""

    max_steps: int = 200
    learning_rate: float = 1e-5
    critiques: sft.CritiqueSettings = field(default_factory=lambda: sft.CritiqueSettings(max_new_tokens=4096))
    max_length: int = 8192


@dataclass
class RefCriticRewardSettings:
    """RefCritic's dual reward: ``k`` refinements per critique, weighted by ``lam``; ``verifier`` checks them."""

    k: int = 4
    lam: float = 1.0
    verifier: str = "math"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")


@dataclass
class RefCriticConfig:
    """The ``refcritic`` recipe (``configs/recipes/refcritic.yaml``). ``actor`` is required."""

    actor: ActorSettings = field(kw_only=True)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataSettings = field(default_factory=DataSettings)
    run: StagedRunSettings = field(
        default_factory=lambda: StagedRunSettings(output_dir="outputs/refcritic", learning_rate=1e-6)
    )
    cold_start: ColdStartSettings = field(default_factory=ColdStartSettings)
    grpo_steps: int = 200
    grpo: critic_rl.GRPOSettings = field(default_factory=lambda: critic_rl.GRPOSettings(max_completion_length=4096))
    reward: RefCriticRewardSettings = field(default_factory=RefCriticRewardSettings)
    template: TemplateSettings = field(default_factory=lambda: TemplateSettings(style="long_cot"))
    eval: EvalSettings = field(default_factory=lambda: EvalSettings(max_new_tokens=4096))


def cold_start_config(config: RefCriticConfig) -> sft.SFTRecipeConfig:
    """The ``sft`` config of the cold start."""
    run = stage_run(config.run, Path(config.run.output_dir) / "cold_start", config.cold_start.max_steps)
    run.learning_rate = config.cold_start.learning_rate
    return sft.SFTRecipeConfig(
        model=config.model,
        data=config.data,
        run=run,
        critiques=config.cold_start.critiques,
        template=config.template,
        eval=config.eval,
        max_length=config.cold_start.max_length,
    )


def grpo_config(config: RefCriticConfig, model_path: str, reward: Any) -> critic_rl.CriticRLConfig:
    """The ``critic_rl`` config of the GRPO stage."""
    model = ModelConfig(**{**vars(config.model), "name_or_path": model_path})
    return critic_rl.CriticRLConfig(
        model=model,
        data=config.data,
        grpo=config.grpo,
        rewards=[reward],
        run=stage_run(config.run, Path(config.run.output_dir) / "grpo", config.grpo_steps),
        template=config.template,
        eval=config.eval,
    )


def build_grpo(config: RefCriticConfig, cold_start_model: str):
    """The GRPO stage's trainer (from the cold-start checkpoint, the actor attached) and its data."""
    reward = RefCriticReward(lam=config.reward.lam, samples=config.reward.k, verifier=config.reward.verifier)
    trainer, data = critic_rl.build(grpo_config(config, cold_start_model, reward))
    check_refine_columns(data.train, "data.train")
    attach_actor(reward, config.actor, trainer)
    return trainer, data


def run(config: RefCriticConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Cold-start SFT, then GRPO with the dual reward; held-out discrimination and refinement figures."""
    distributed.start(precision_args(config.model)["use_cpu"], config.run.ddp_timeout)
    out = Path(config.run.output_dir)
    cold_done, cold_checkpoint = stage_plan(out / "cold_start", resume)
    grpo_done, grpo_checkpoint = stage_plan(out / "grpo", resume and cold_done)
    if grpo_done:  # a finished run: nothing to train again
        return finished_result(out / "grpo")
    metrics: dict[str, Any] = {}
    if not cold_done:
        result = sft.run(cold_start_config(config), resume=cold_checkpoint is not None, progress=progress)
        metrics = result["metrics"]
        write_recipe_config(Path(result["final"]), "refcritic", config)
    else:
        metrics = stage_metrics(out / "cold_start" / "final")
    start = next_stage_model(out / "cold_start", config.model.lora.r > 0)
    trainer, data = build_grpo(config, start)
    check_refine_columns(data.eval, "data.eval")
    extra = refine_evaluation(
        data.eval, config.actor, config.eval, samples=config.reward.k, verifier=config.reward.verifier
    )
    if grpo_checkpoint is None and metrics.get("after SFT"):  # the cold-start critic's refinement: GRPO's baseline
        metrics["after SFT"] = {**metrics["after SFT"], **distributed.on_main(trainer, lambda: extra(trainer))}
    result = train_and_finish(
        grpo_config(config, start, trainer.reward_funcs[0]),
        trainer,
        data,
        grpo_checkpoint,
        recipe="refcritic",
        stage="GRPO",
        stages="RefCritic: cold-start SFT on verdict-filtered long-CoT critiques, then GRPO "
        "with r = 1[verdict right] + lambda x refinement accuracy",
        rewards=["RefCriticReward"],
        metrics=metrics,
        progress=progress,
        extra_eval=extra,
        evaluate_before=False,
    )
    write_recipe_config(Path(result["final"]), "refcritic", config)
    return result
