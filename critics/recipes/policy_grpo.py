"""Recipe ``policy_grpo``: train a policy with ``trl.GRPOTrainer`` where the reward is a critic.

The critic is served (``critic.url``: ``critics serve``, called through
``critics.serving.reward_function``) or loaded in process (``critic.checkpoint``); rule rewards
(``rewards``, e.g. ``answer``) can stand beside it, weighted. Items the critic cannot score count
as ``None`` (left out of the reward sum by TRL) and are logged each step as
``critic/failed_items`` and ``critic/invalid_verdicts``, so a critic outage is visible, not a
silent zero. Held-out task accuracy (the ``answer`` check) is measured before and after.

With ``feedback`` set, critiques also feed the policy as text (``critics.recipes.feedback``, the
method of ``critique_grpo``): the policy refines its responses from them and the refinements join
the GRPO groups, shaped. Every run is audited for reward hacking (``critics.recipes.audit``): on
held-out probes, the critic's reward against the verifier's accuracy, with a divergence flag.

Data: JSONL (or a saved ``datasets`` folder) with a question column (the prompt, sent as a user
message) and a gold answer column (for evaluation and the ``answer`` rule reward).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from critics.judging.generation import load_model
from critics.judging.records import load_records
from critics.models import ModelConfig, lora_config, precision_args
from critics.recipes import distributed
from critics.recipes.audit import AuditSettings, RewardAudit, card_text, trainer_reward
from critics.recipes.common import (
    AtomicCheckpoints,
    RunSettings,
    config_hash,
    held_out_overlap,
    loaded,
    resume_point,
    save_final,
    set_threads_for_cpu,
    show_progress,
    write_run_files,
)
from critics.recipes.critic_rl import GRPOSettings
from critics.recipes.feedback import FeedbackHooks, FeedbackSettings, check_trainer, verify
from critics.rewards.base import POLICY_REWARDS
from data_pipelines.files import writing


@dataclass
class CriticRewardSettings:
    """The critic whose scores reward the policy (``critics.serving``); set ``url`` or ``checkpoint``.

    The critic's spec says how it judges; ``task``, ``style``, ``think``, ``max_new_tokens`` and
    ``both_orders`` left empty keep the spec's, set they override it (a served critic's only
    ``task`` and ``both_orders``: the rest is the server's). ``response_format`` is what the critic
    sees as the response (``reward_function``'s option). A ``pairwise`` or ``reference`` critic
    compares each completion with the dataset's ``reference_column``.
    """

    url: str = ""
    checkpoint: str = ""
    task: str | None = None
    style: Literal["default", "compact", "long_cot"] | None = None
    think: bool | None = None
    max_new_tokens: int | None = None
    both_orders: bool | None = None
    soft: bool = False
    timeout: float = 60.0
    api_key: str = ""
    weight: float = 1.0
    reference_column: str = "reference"
    response_format: str = "{completion}"


@dataclass
class PolicyDataSettings:
    """Prompts (and gold answers) for the policy."""

    train: str = ""
    eval: str = ""
    eval_size: int = 200
    question_column: str = "question"
    answer_column: str = "answer"
    limit: int = 0


@dataclass
class PolicyEvalSettings:
    """Held-out task accuracy: greedy answers checked by a verifier against the gold answers."""

    enabled: bool = True
    max_new_tokens: int = 256
    batch_size: int = 64
    verifier: str = "math"
    verifier_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PolicyGRPOConfig:
    """The ``policy_grpo`` recipe (``configs/recipes/policy_grpo.yaml``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: PolicyDataSettings = field(default_factory=PolicyDataSettings)
    run: RunSettings = field(default_factory=lambda: RunSettings(output_dir="outputs/policy_grpo"))
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    critic: CriticRewardSettings | None = field(default_factory=CriticRewardSettings)
    rewards: list[Any] = field(default_factory=list, metadata={"registry": POLICY_REWARDS})
    reward_weights: list[float] | None = None
    eval: PolicyEvalSettings = field(default_factory=PolicyEvalSettings)
    feedback: FeedbackSettings | None = None
    audit: AuditSettings = field(default_factory=AuditSettings)

    def __post_init__(self) -> None:
        has_critic = self.critic is not None and bool(self.critic.url or self.critic.checkpoint)
        if self.critic is not None and self.critic.url and self.critic.checkpoint:
            raise ValueError("critic: set url or checkpoint, not both")
        if not has_critic and not self.rewards:
            raise ValueError("critic: set critic.url or critic.checkpoint, or give rule rewards in 'rewards'")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(f"reward_weights has {len(self.reward_weights)} entries for {len(self.rewards)} rewards")


def critic_reward(settings: CriticRewardSettings):
    """The TRL reward callable for the configured critic (async, so TRL overlaps it with others)."""
    from critics.serving import open_critic, reward_function

    options = dict(
        task=settings.task,
        both_orders=settings.both_orders,
        timeout=settings.timeout,
        reference_column=settings.reference_column,
        response_format=settings.response_format,
    )
    if settings.url:
        overrides = [k for k in ("style", "think", "max_new_tokens") if getattr(settings, k) is not None]
        if overrides or settings.soft:
            raise ValueError(
                f"critic.{', critic.'.join(overrides or ['soft'])}: a served critic judges by its own "
                "spec; set them where it is served"
            )
        return reward_function(settings.url, asynchronous=True, api_key=settings.api_key or None, **options)
    critic = open_critic(
        settings.checkpoint,
        soft=settings.soft,
        style=settings.style,
        think=settings.think,
        max_new_tokens=settings.max_new_tokens,
    )
    return reward_function(critic, asynchronous=True, **options)


def load_prompts(settings: PolicyDataSettings, seed: int):
    """``(train, held_out, cards)``: datasets with a conversational ``prompt`` column."""
    cards: dict[str, str] = {}
    column = settings.question_column

    def with_prompt(dataset):
        if column not in dataset.column_names:
            raise ValueError(
                f"data.question_column '{column}' is not a column (found: {', '.join(dataset.column_names)})"
            )
        return dataset.map(lambda row: {"prompt": [{"role": "user", "content": row[column]}]})

    train = with_prompt(load_records(settings.train, cards))
    if settings.eval:
        held_out = with_prompt(load_records(settings.eval, cards))
    elif settings.eval_size:
        split = train.train_test_split(test_size=settings.eval_size, seed=seed)
        train, held_out = split["train"], split["test"]
    else:
        held_out = train.select([])
    if settings.limit:
        train = train.select(range(min(settings.limit, len(train))))
    return train, held_out, cards


def build(config: PolicyGRPOConfig):
    """``(trainer, held_out, cards)``: a ready ``trl.GRPOTrainer`` with the critic (and rule) rewards."""
    from trl import GRPOConfig, GRPOTrainer

    class PolicyGRPOTrainer(AtomicCheckpoints, GRPOTrainer):
        """GRPOTrainer whose checkpoints are written atomically."""

    class FeedbackGRPOTrainer(AtomicCheckpoints, FeedbackHooks, GRPOTrainer):
        """GRPOTrainer that also learns from critiques (``critics.recipes.feedback``)."""

    set_threads_for_cpu(precision_args(config.model)["use_cpu"])
    with distributed.main_first():  # the main process reads (and caches) the prompts first
        train, held_out, cards = load_prompts(config.data, config.run.seed)
    rewards, weights = list(config.rewards), list(config.reward_weights or [1.0] * len(config.rewards))
    if config.critic is not None and (config.critic.url or config.critic.checkpoint):
        rewards.append(critic_reward(config.critic))
        weights.append(config.critic.weight)
    args = GRPOConfig(
        **config.run.trainer_args(),
        **precision_args(config.model),
        **config.grpo.trl_args(),
        reward_weights=weights,
    )
    lm = load_model(config.model, kind="causal")
    trainer_class = PolicyGRPOTrainer if config.feedback is None else FeedbackGRPOTrainer
    trainer = trainer_class(
        model=lm.model,
        reward_funcs=rewards,
        args=args,
        train_dataset=train,
        processing_class=lm.tokenizer,
        peft_config=lora_config(config.model),
    )
    config.grpo.tune(trainer)
    trainer.critic_loaded = lm  # the policy, for its held-out answers
    if config.feedback is not None:
        attach_feedback(trainer, config.feedback, config.data.answer_column)
    if config.audit.enabled and len(held_out) and config.data.answer_column in held_out.column_names:
        trainer.add_callback(audit_callback(trainer, held_out, config))
    return trainer, held_out, cards


def attach_feedback(trainer, settings: FeedbackSettings, answer_column: str) -> None:
    """Give a ``FeedbackHooks`` trainer its settings, answer column and (``source: critic``) critic."""
    from critics.serving import open_critic
    from critics.serving.remote import is_url

    check_trainer(trainer)
    trainer.feedback, trainer.answer_column = settings, answer_column
    if settings.source == "critic":
        remote = {"api_key": settings.api_key or None, "timeout": settings.timeout}
        trainer.feedback_critic = open_critic(settings.critic, **(remote if is_url(settings.critic) else {}))


def audit_callback(trainer, held_out, config) -> RewardAudit:
    """The reward-hacking audit over the first ``audit.probes`` held-out rows."""
    from critics.judging.generation import generate

    settings, column = config.audit, config.data.answer_column
    probes = [dict(r) for r in held_out.select(range(min(settings.probes, len(held_out))))]
    checker = dataclasses.replace(
        FeedbackSettings(), verifier=config.eval.verifier, verifier_options=config.eval.verifier_options
    )

    def answer(prompts):
        was_training = trainer.model.training
        texts = generate(
            loaded(trainer),
            prompts,
            max_new_tokens=settings.max_new_tokens,
            batch_size=config.eval.batch_size,
            progress=False,
        )
        trainer.model.train(was_training)
        return texts

    return RewardAudit(
        settings,
        probes,
        answer,
        trainer_reward(trainer),
        lambda texts, rows: verify(checker, texts, [r.get(column) for r in rows]),
        once=lambda compute: distributed.on_main(trainer, compute),  # like the held-out accuracy
    )


def task_accuracy(trainer, dataset, config: PolicyGRPOConfig, progress: bool = True) -> dict[str, float] | None:
    """Greedy answers to held-out prompts checked against the gold answers, with a standard error."""
    if not config.eval.enabled or dataset is None or len(dataset) == 0:
        return None
    from critics.judging.generation import generate
    from critics.rewards.answer import AnswerReward

    texts = generate(
        loaded(trainer),
        dataset["prompt"],
        max_new_tokens=config.eval.max_new_tokens,
        batch_size=config.eval.batch_size,
        progress=progress,
    )
    check = AnswerReward(verifier=config.eval.verifier, answer_column="answer", options=config.eval.verifier_options)
    scores = [s for s in check(None, texts, answer=dataset[config.data.answer_column]) if s is not None]
    if not scores:
        return None
    accuracy = sum(scores) / len(scores)
    return {"accuracy": accuracy, "stderr": math.sqrt(accuracy * (1 - accuracy) / len(scores)), "n": len(scores)}


def run(
    config: PolicyGRPOConfig,
    resume: bool = False,
    progress: bool = True,
    recipe: str = "policy_grpo",
    stages: str = "GRPO with a critic as reward",
) -> dict[str, Any]:
    """Train the policy, measure held-out task accuracy before and after, write ``final/``."""
    from critics.cards import write_model_card

    distributed.start(precision_args(config.model)["use_cpu"], config.run.ddp_timeout)
    checkpoint = resume_point(config.run.output_dir, resume)
    trainer, held_out, cards = build(config)
    metrics: dict[str, Any] = {}
    if checkpoint is None:  # held-out accuracy: once, on the main process
        metrics["before"] = distributed.on_main(trainer, lambda: task_accuracy(trainer, held_out, config, progress))
    show_progress(trainer, progress)
    trainer.train(resume_from_checkpoint=checkpoint)
    metrics["after GRPO"] = distributed.on_main(trainer, lambda: task_accuracy(trainer, held_out, config, progress))
    critic = next((r for r in trainer.reward_funcs if hasattr(r, "failed")), None)
    if critic is not None:
        metrics["critic"] = {
            "failed_items": critic.failed,
            "invalid_verdicts": critic.invalid,
            "too_long": critic.too_long,
        }
    audit = next((c for c in trainer.callback_handler.callbacks if isinstance(c, RewardAudit)), None)
    metrics["audit"] = audit.summary() if audit is not None else None
    metrics["held_out_overlap"] = held_out_overlap(trainer.train_dataset, held_out, config.data.question_column)
    final = save_final(trainer, config.run.output_dir)
    if not trainer.args.should_save:  # the main process writes the run files and the card
        return {"final": str(final), "metrics": metrics}
    names = [getattr(r, "__name__", type(r).__name__) for r in trainer.reward_funcs]
    with writing(config.run.output_dir, "run.output_dir"):
        write_run_files(final, config, metrics, trainer.state.log_history)
        write_model_card(
            final,
            base_model=config.model.name_or_path,
            recipe=recipe,
            task="policy",
            stages=stages
            if config.feedback is None
            else f"{stages}, with critiques as feedback ({config.feedback.source})",
            config_hash=config_hash(config),
            rewards=names,
            steps=trainer.state.global_step,
            template="chat (question as the user message)",
            verdict_format="n/a (a policy)",
            metrics={k: v for k, v in metrics.items() if isinstance(v, dict) and "accuracy" in v},
            sources=[config.data.train],
            cards=cards,
            overlap=metrics["held_out_overlap"],
            extra_limitations="A policy trained against a critic inherits the critic's blind spots: "
            "compare task accuracy (a rule check) with the critic's reward.\n\n" + card_text(metrics["audit"]),
        )
    return {"final": str(final), "metrics": metrics}
