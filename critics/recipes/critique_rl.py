"""Recipe ``critique_rl``: Critique-RL's two stages (Xi et al., 2025, arXiv 2510.24320).

A critic is useful if its verdicts are right (discriminability) and its critiques help the actor
fix its answer (helpfulness). Critique-RL trains the two in turn, with GRPO:

- Stage I, discrimination: the reward is +1 for a verdict that matches the label, -1 for a wrong
  or missing one (``DiscriminationReward``); ``stage_one.max_steps`` steps, into ``stage1/``.
- Stage II, helpfulness: starting from the stage-I checkpoint, a frozen actor revises each judged
  solution given the critique, and the reward is the refinement reward plus 0.2 x discrimination
  when the verdict is right, -1 when it is wrong or missing (``CritiqueRLStageTwoReward``; values
  in {-1, 0.2, 1.2} with mode ``refine``); the KL reference is the stage-I critic, since GRPO loads
  its reference from the model's path, which is the stage-I checkpoint. Into ``stage2/``.

Defaults follow the official code: group size 4, learning rate 5e-7, temperature 0.7, KL
coefficient 0.01. Each step logs ``discrimination/accuracy``, and in stage II
``refine/refine_accuracy``, ``refine/c->c``, ``c->i``, ``i->c``, ``i->i`` and ``refine/change_rate``.
Held-out evaluation (before, after stage I, after stage II) reports discrimination accuracy and
critique-then-refine accuracy with the same actor. The records are pointwise with ``gold_answer``
(on-policy ones come from ``critics data sample``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critics.actors import ActorSettings
from critics.models import ModelConfig, precision_args
from critics.recipes import critic_rl, distributed
from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings, train_and_finish
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
from critics.rewards.refinement import CritiqueRLStageTwoReward, DiscriminationReward, RefineMode


@dataclass
class StagedRunSettings(RunSettings):
    """``RunSettings`` for a staged recipe: each stage sets its own number of steps."""

    output_dir: str = "outputs/critique_rl"
    max_steps: int = 0
    learning_rate: float = 5e-7

    def __post_init__(self) -> None:
        if self.max_steps:
            raise ValueError("max_steps is set per stage: use stage_one.max_steps and stage_two.max_steps")


@dataclass
class StageOneSettings:
    """Stage I: discrimination only. ``s``: the reward of a right verdict (a wrong or missing one gets -1)."""

    max_steps: int = 200
    s: float = 1.0


@dataclass
class StageTwoSettings:
    """Stage II: refinement plus discrimination.

    Args:
        max_steps: GRPO steps.
        mode: refinement reward: ``refine`` (1 if the revision is correct), ``delta`` or ``correct``
            (``critics.rewards.refinement``).
        discrimination_weight: the discrimination reward added when the verdict is right (0.2).
        samples: revisions per critique (the reward averages them).
        verifier: checks a revision against ``gold_answer``.
    """

    max_steps: int = 200
    mode: RefineMode = "refine"
    discrimination_weight: float = 0.2
    samples: int = 1
    verifier: str = "math"


@dataclass
class CritiqueRLConfig:
    """The ``critique_rl`` recipe (``configs/recipes/critique_rl.yaml``). ``actor`` is required."""

    actor: ActorSettings = field(kw_only=True)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataSettings = field(default_factory=DataSettings)
    run: StagedRunSettings = field(default_factory=StagedRunSettings)
    grpo: critic_rl.GRPOSettings = field(
        default_factory=lambda: critic_rl.GRPOSettings(num_generations=4, temperature=0.7, beta=0.01)
    )
    stage_one: StageOneSettings = field(default_factory=StageOneSettings)
    stage_two: StageTwoSettings = field(default_factory=StageTwoSettings)
    template: TemplateSettings = field(default_factory=TemplateSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)


def stage_config(config: CritiqueRLConfig, stage: str, model_path: str, reward: Any) -> critic_rl.CriticRLConfig:
    """The ``critic_rl`` config of one stage: its model, its folder, its steps, its reward."""
    steps = config.stage_one.max_steps if stage == "stage1" else config.stage_two.max_steps
    model = ModelConfig(**{**vars(config.model), "name_or_path": model_path})
    return critic_rl.CriticRLConfig(
        model=model,
        data=config.data,
        grpo=config.grpo,
        rewards=[reward],
        run=stage_run(config.run, Path(config.run.output_dir) / stage, steps),
        template=config.template,
        eval=config.eval,
    )


def stage_two_reward(config: CritiqueRLConfig) -> CritiqueRLStageTwoReward:
    """The stage-II reward, without its actor yet (``attach_actor`` sets it once the trainer exists)."""
    two = config.stage_two
    return CritiqueRLStageTwoReward(
        mode=two.mode, discrimination_weight=two.discrimination_weight, samples=two.samples, verifier=two.verifier
    )


def build_stage_two(config: CritiqueRLConfig, stage_one_model: str):
    """The stage-II ``GRPOTrainer`` (from the stage-I checkpoint, with the actor attached) and its data."""
    reward = stage_two_reward(config)
    trainer, data = critic_rl.build(stage_config(config, "stage2", stage_one_model, reward))
    attach_actor(reward, config.actor, trainer)
    return trainer, data


def run(config: CritiqueRLConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Stage I then stage II (each resumable), with held-out discrimination and refinement figures."""
    distributed.start(precision_args(config.model)["use_cpu"], config.run.ddp_timeout)
    out = Path(config.run.output_dir)
    one_done, one_checkpoint = stage_plan(out / "stage1", resume)
    two_done, two_checkpoint = stage_plan(out / "stage2", resume and one_done)
    if two_done:  # a finished run: nothing to train again
        return finished_result(out / "stage2")
    extra = None
    metrics: dict[str, Any] = {}
    if not one_done:
        one = stage_config(config, "stage1", config.model.name_or_path, DiscriminationReward(s=config.stage_one.s))
        trainer, data = critic_rl.build(one)
        check_refine_columns(data.train, "data.train")
        extra = _refine_eval(config, data.eval)
        result = train_and_finish(
            one,
            trainer,
            data,
            one_checkpoint,
            recipe="critique_rl",
            stage="stage I",
            stages="Critique-RL stage I (discrimination)",
            rewards=["DiscriminationReward"],
            metrics=metrics,
            progress=progress,
            extra_eval=extra,
        )
        metrics = result["metrics"]
        write_recipe_config(Path(result["final"]), "critique_rl", config)
        del trainer
    else:
        metrics = stage_metrics(out / "stage1" / "final")
    stage_one_model = next_stage_model(out / "stage1", config.model.lora.r > 0)
    trainer, data = build_stage_two(config, stage_one_model)
    extra = extra or _refine_eval(config, data.eval)
    result = train_and_finish(
        stage_config(config, "stage2", stage_one_model, trainer.reward_funcs[0]),
        trainer,
        data,
        two_checkpoint,
        recipe="critique_rl",
        stage="stage II",
        stages="Critique-RL stage I (discrimination), then stage II (refinement + 0.2 x "
        "discrimination) from the stage-I checkpoint, KL to the stage-I critic",
        rewards=["DiscriminationReward", "CritiqueRLStageTwoReward"],
        metrics=metrics,
        progress=progress,
        extra_eval=extra,
        evaluate_before=False,
    )
    write_recipe_config(Path(result["final"]), "critique_rl", config)
    return result


def _refine_eval(config: CritiqueRLConfig, held_out):
    check_refine_columns(held_out, "data.eval")
    return refine_evaluation(
        held_out, config.actor, config.eval, samples=config.stage_two.samples, verifier=config.stage_two.verifier
    )
