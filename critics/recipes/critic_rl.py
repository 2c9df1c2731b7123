"""Recipe ``critic_rl``: a generative critic trained with GRPO on verifiable verdicts.

Pointwise, pairwise and step-level records all work; the reward parses the critic's verdict and
compares it with the record's label. The defaults reproduce LLaVA-Critic-R1's published setup
for pairwise critics (arXiv 2509.00676: group size 8, temperature 1.0, learning rate 1e-6, KL
coefficient 0.01, reward 0.9 accuracy + 0.1 format, think-then-box prompt); the YAML files in
``configs/recipes/`` set the values other papers state for their tasks.

A vision-language checkpoint (its config has ``vision_config``) is loaded with its processor;
records with ``images`` (paths) then show the critic one image per path before the prompt text,
as in LLaVA-Critic-R1. ``model.freeze_vision`` keeps the vision tower's weights fixed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from critics.judging.chat import LocalChatModel
from critics.judging.generation import load_model
from critics.judging.judge import prompt_dataset
from critics.models import ModelConfig, lora_config, precision_args
from critics.recipes.common import (
    AtomicCheckpoints,
    BudgetLog,
    DataSettings,
    EvalSettings,
    RunSettings,
    TemplateSettings,
    critic_spec,
    load_data,
    record_tasks,
    resume_point,
    set_threads_for_cpu,
    train_and_finish,
)
from critics.rewards import REWARDS
from critics.rewards.verdict import VerdictReward


@dataclass
class GRPOSettings:
    """GRPO knobs (TRL's names). Defaults: LLaVA-Critic-R1."""

    num_generations: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.01
    epsilon: float = 0.2
    num_iterations: int = 1
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo"] = "grpo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    max_completion_length: int = 1024
    mask_truncated_completions: bool = False
    generation_batch_size: int | None = None
    cache_implementation: str | None = None
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    log_completions: bool = False


@dataclass
class CriticRLConfig:
    """The ``critic_rl`` recipe (``configs/recipes/critic_rl_*.yaml``).

    ``rewards`` name registry rewards (``critics/rewards``) with their options; ``reward_weights``
    (one per reward) weights their sum, as in TRL. A reward's ``max_completion_tokens`` left unset
    is set to ``grpo.max_completion_length`` so truncated critiques earn nothing.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataSettings = field(default_factory=DataSettings)
    run: RunSettings = field(default_factory=lambda: RunSettings(output_dir="outputs/critic_rl"))
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    rewards: list[Any] = field(default_factory=lambda: [VerdictReward()], metadata={"registry": REWARDS})
    reward_weights: list[float] | None = None
    template: TemplateSettings = field(default_factory=lambda: TemplateSettings(think=True))
    eval: EvalSettings = field(default_factory=EvalSettings)

    def __post_init__(self) -> None:
        if not self.rewards:
            raise ValueError("rewards: give at least one reward")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(f"reward_weights has {len(self.reward_weights)} entries for {len(self.rewards)} rewards")


def reward_functions(config: CriticRLConfig) -> list[Any]:
    """The configured rewards, with unset truncation limits tied to the completion length."""
    out = []
    for reward in config.rewards:
        names = {f.name for f in dataclasses.fields(reward)} if dataclasses.is_dataclass(reward) else set()
        if "max_completion_tokens" in names and reward.max_completion_tokens is None:
            reward = dataclasses.replace(reward, max_completion_tokens=config.grpo.max_completion_length)
        out.append(reward)
    return out


def grpo_args(config: CriticRLConfig):
    """The ``trl.GRPOConfig`` for this recipe on this machine."""
    from trl import GRPOConfig

    return GRPOConfig(
        **config.run.trainer_args(),
        **precision_args(config.model),
        **dataclasses.asdict(config.grpo),
        reward_weights=config.reward_weights,
    )


def build(config: CriticRLConfig):
    """A ready ``trl.GRPOTrainer`` (with atomic checkpoints) plus the data it was built from."""
    from trl import GRPOTrainer

    from critics.vlm import has_images, load_images, vision_tower, vlm_lora_config

    class CriticGRPOTrainer(AtomicCheckpoints, GRPOTrainer):
        """GRPOTrainer whose checkpoints are written atomically, and which takes batches that mix records
        with and without images."""

        def _generate(self, prompts):
            # TRL 1.16 returns None as the image list of a prompt without images, which the processor then
            # rejects when other prompts of the batch have images; an empty list is what it accepts.
            *head, images, tool_images = super()._generate(prompts)
            if images is not None:
                images = [found or [] for found in images]
            return (*head, images, tool_images)

    set_threads_for_cpu(precision_args(config.model)["use_cpu"])
    data = load_data(config.data, config.run.seed)
    lm = load_model(config.model, freeze_vision=config.model.freeze_vision)
    if not lm.vision and has_images(data.train):
        raise ValueError(
            f"{config.model.name_or_path} is a text-only model, but the records carry images: "
            "give a vision-language checkpoint"
        )
    spec = critic_spec(
        config.template, record_tasks(data.train, config.data.task), config.grpo.max_completion_length, lm
    )
    train, counts = prompt_dataset(data.train, LocalChatModel(lm), spec, images=lm.vision)
    if lm.vision:  # the processor renders the images; TRL reads them from the ``images`` column
        train = load_images(train) if has_images(train) else train
        peft_config = vlm_lora_config(config.model, vision_tower(lm.model)[0])
    else:
        peft_config = lora_config(config.model)
    trainer = CriticGRPOTrainer(
        model=lm.model,
        reward_funcs=reward_functions(config),
        args=grpo_args(config),
        train_dataset=train,
        processing_class=lm.processing_class,
        peft_config=peft_config,
    )
    trainer.critic_spec, trainer.critic_loaded = spec, lm
    trainer.add_callback(BudgetLog(counts))
    return trainer, data


def run(config: CriticRLConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train, evaluate before and after, and write the final checkpoint with its card."""
    checkpoint = resume_point(config.run.output_dir, resume)
    trainer, data = build(config)
    return train_and_finish(
        config,
        trainer,
        data,
        checkpoint,
        recipe="critic_rl",
        stage="GRPO",
        stages="GRPO on verifiable verdicts",
        rewards=[type(r).__name__ for r in config.rewards],
        metrics={},
        progress=progress,
    )
