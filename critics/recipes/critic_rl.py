"""Recipe ``critic_rl``: a generative critic trained with GRPO on verifiable verdicts.

Pointwise, pairwise and step-level records all work; the reward parses the critic's verdict and
compares it with the record's label. The defaults reproduce LLaVA-Critic-R1's published setup
for pairwise critics (arXiv 2509.00676: group size 8, temperature 1.0, learning rate 1e-6, KL
coefficient 0.01, reward 0.9 accuracy + 0.1 format, think-then-box prompt); the YAML files in
``configs/recipes/`` set the values other papers state for their tasks.

A vision-language checkpoint (its config has ``vision_config``) is loaded with its processor;
records with ``images`` (paths) then show the critic one image per path before the prompt text,
as in LLaVA-Critic-R1. ``model.freeze_vision`` keeps the vision tower's weights fixed.

J1 (arXiv 2505.10320): ``both_orders: true`` puts every pairwise record into the training set in
both orders (responses swapped, label flipped) and samples the two orders of a pair into the same
generation batch (``PairedRepeatSampler``), so that ``PairwiseReward(position_consistency=True)``
pays a verdict only when it is right in both orders. Held-out evaluation of pairwise records then
also reports the position bias: the share of valid verdicts that pick A, over both orders (0.5 is
unbiased), and the share of pairs judged right in both orders.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from critics.judging.chat import LocalChatModel
from critics.judging.generation import load_model
from critics.judging.judge import in_both_orders, judge, prompt_dataset
from critics.judging.tasks import task
from critics.models import ModelConfig, lora_config, precision_args
from critics.recipes import distributed
from critics.recipes.common import (
    AtomicCheckpoints,
    BudgetLog,
    DataSettings,
    EvalSettings,
    RunSettings,
    TemplateSettings,
    critic_spec,
    load_data,
    loaded,
    record_tasks,
    resume_point,
    set_threads_for_cpu,
    train_and_finish,
)
from critics.rewards import REWARDS
from critics.rewards.verdict import VerdictReward


@dataclass
class GRPOSettings:
    """GRPO knobs (TRL's names, passed to ``trl.GRPOConfig`` unchanged). Defaults: LLaVA-Critic-R1.

    ``use_vllm`` generates with vLLM (a GPU extra): ``vllm_mode: colocate`` runs it inside each
    training process (``vllm_gpu_memory_utilization`` of the card), ``server`` calls a
    ``trl vllm-serve`` started beside training (``vllm_server_base_url``, default localhost:8000).

    On a GPU without vLLM, transformers generation is fastest with ``cache_implementation: static``
    and ``compile_generation: true`` (the decoding step compiled once; TRL 1.16 turns compiling off
    in the generation config it builds, and ``tune`` turns it back on), ``pad_to_multiple_of`` (few
    distinct prompt shapes, so few recompiles) and a ``generation_batch_size`` of 128 or more,
    decoupled from the update batch (``benchmarks/gpu_grpo.py``).
    """

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
    compile_generation: bool = False
    pad_to_multiple_of: int | None = None
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_server_base_url: str | None = None
    vllm_gpu_memory_utilization: float = 0.3
    log_completions: bool = False

    def __post_init__(self) -> None:
        if self.compile_generation and self.cache_implementation != "static":
            raise ValueError(
                "grpo.compile_generation compiles the decoding step of a static KV cache: set "
                f"grpo.cache_implementation: static (got {self.cache_implementation!r})"
            )

    def tune(self, trainer) -> None:
        """What ``trl.GRPOConfig`` cannot say, set on a built ``GRPOTrainer``: compiling the decoding step."""
        if self.compile_generation and getattr(trainer, "generation_config", None) is not None:
            trainer.generation_config.disable_compile = False

    def trl_args(self) -> dict[str, Any]:
        """These settings as ``trl.GRPOConfig`` keyword arguments; ``use_vllm`` without vLLM is an error."""
        import importlib.util

        if self.use_vllm and importlib.util.find_spec("vllm") is None:
            raise ImportError(
                "grpo.use_vllm needs vLLM, which is not installed: pip install 'critic-suite[gpu]' "
                "(CUDA only), or set grpo.use_vllm: false"
            )
        args = dataclasses.asdict(self)
        del args["compile_generation"]  # not TRL's: ``tune`` applies it to the built trainer
        return args


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
    both_orders: bool = False

    def __post_init__(self) -> None:
        if not self.rewards:
            raise ValueError("rewards: give at least one reward")
        if any(getattr(r, "position_consistency", False) for r in self.rewards) and not self.both_orders:
            raise ValueError("a reward with position_consistency needs both_orders: true (both orders in one batch)")
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
        **config.grpo.trl_args(),
        reward_weights=config.reward_weights,
    )


def with_both_orders(dataset):
    """Each record twice: as it is (``order`` 0) and with its responses swapped and its label flipped
    (``order`` 1), both with the same ``pair_id``; ``ValueError`` for a record judged in one order."""
    for name in set(dataset["task"]) if "task" in dataset.column_names else {None}:
        if not _two_orders(name):
            raise ValueError(f"both_orders needs records of a two-choice task judged in both orders, found {name!r}")

    def double(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        out = []
        for index, row in zip(indices, rows):
            rule, pair = task(row["task"]), str(index)
            flipped = dict(zip(rule.labels, reversed(rule.labels)))
            label = row.get("label")
            swapped = {**rule.swap(row), "label": None if label is None else flipped[rule.label(label)]}
            out += [{**row, "pair_id": pair, "order": 0}, {**swapped, "pair_id": pair, "order": 1}]
        return {key: [r[key] for r in out] for key in out[0]} if out else {**batch, "pair_id": [], "order": []}

    return dataset.map(double, batched=True, with_indices=True, desc="adding the other order of each pair")


def _two_orders(name: Any) -> bool:
    """Whether records of task ``name`` are judged in both orders with one of two labels (pairwise)."""
    rule = task(name) if name is not None else None
    return rule is not None and rule.both_orders and rule.labels is not None and len(rule.labels) == 2


def paired_sampler(sampler, pair_ids: list[str]):
    """TRL's ``RepeatSampler``, shuffling whole pairs: the two orders of a pair land in one generation batch."""
    from trl.trainer.utils import RepeatSampler

    class PairedRepeatSampler(RepeatSampler):
        def __iter__(self):
            import torch

            groups: dict[str, list[int]] = {}
            for i, pair in enumerate(pair_ids):
                groups.setdefault(pair, []).append(i)
            pairs = [g for g in groups.values() if len(g) == 2]  # a pair cut by the prompt budget is dropped
            order = torch.randperm(len(pairs), generator=self.generator).tolist() if self.shuffle else range(len(pairs))
            flat = [i for p in order for i in pairs[p]]
            for start in range(0, len(flat) - self.batch_size + 1, self.batch_size):
                for _ in range(self.repeat_count):
                    for index in flat[start : start + self.batch_size]:
                        yield from [index] * self.mini_repeat_count

    if sampler.batch_size % 2:
        raise ValueError(
            f"both_orders: a generation batch holds {sampler.batch_size} prompts; make it even "
            "(per_device_train_batch_size * steps_per_generation / num_generations)"
        )
    out = PairedRepeatSampler(
        sampler.data_source, sampler.mini_repeat_count, sampler.batch_size, sampler.repeat_count, sampler.shuffle
    )
    out.seed, out.generator = sampler.seed, getattr(sampler, "generator", None)
    return out


def position_bias(lm, rows: list[dict[str, Any]], spec, batch_size: int = 64) -> dict[str, float]:
    """Labelled held-out rows of two-choice tasks judged in both orders (pairwise): ``position_bias``
    (share of valid verdicts picking the first position, A), ``consistent_accuracy`` (share of pairs
    right in both orders) and ``order_agreement`` (share whose two verdicts name the same response)."""
    rows = [r for r in rows if _two_orders(r.get("task")) and r.get("label") is not None]
    if not rows:
        return {}
    critiques = judge(LocalChatModel(lm, batch_size=batch_size), in_both_orders(rows), spec)
    first, second = critiques[: len(rows)], critiques[len(rows) :]
    picks = right = agree = valid = 0
    for row, a, b in zip(rows, first, second):
        rule = task(row["task"])
        flipped, label = dict(zip(rule.labels, reversed(rule.labels))), rule.label(row["label"])
        for c in (a, b):
            valid += c.verdict.ok
            picks += c.verdict.ok and c.verdict.value == rule.labels[0]
        ok = a.verdict.ok and b.verdict.ok
        right += ok and a.verdict.value == label and b.verdict.value == flipped[label]
        agree += ok and a.verdict.value == flipped[b.verdict.value]
    return {
        "position_bias": picks / valid if valid else float("nan"),
        "consistent_accuracy": right / len(rows),
        "order_agreement": agree / len(rows),
    }


def build(config: CriticRLConfig):
    """A ready ``trl.GRPOTrainer`` (with atomic checkpoints) plus the data it was built from."""
    from trl import GRPOTrainer

    from critics.vlm import has_images, load_images, vision_tower, vlm_lora_config

    class CriticGRPOTrainer(AtomicCheckpoints, GRPOTrainer):
        """GRPOTrainer whose checkpoints are written atomically, and which takes batches that mix records
        with and without images (and, with ``both_orders``, samples each pair's two orders together)."""

        pair_ids: list[str] | None = None

        def _get_train_sampler(self, dataset=None):
            sampler = super()._get_train_sampler(dataset)
            return sampler if self.pair_ids is None else paired_sampler(sampler, self.pair_ids)

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
    with distributed.main_first():  # the main process fills the datasets cache, the others read it
        train, counts = prompt_dataset(
            with_both_orders(data.train) if config.both_orders else data.train,
            LocalChatModel(lm),
            spec,
            images=lm.vision,
        )
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
    config.grpo.tune(trainer)
    trainer.critic_spec, trainer.critic_loaded = spec, lm
    trainer.pair_ids = list(train["pair_id"]) if config.both_orders else None
    trainer.add_callback(BudgetLog(counts))
    return trainer, data


def run(config: CriticRLConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train, evaluate before and after, and write the final checkpoint with its card."""
    distributed.start(precision_args(config.model)["use_cpu"], config.run.ddp_timeout)
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
        extra_eval=lambda trainer: pairwise_orders(trainer, data.eval, config.eval),
    )


def pairwise_orders(trainer, rows, settings: EvalSettings) -> dict[str, float]:
    """``position_bias`` of the trainer's critic on the held-out pairwise rows (none: nothing)."""
    if rows is None or len(rows) == 0 or not any(_two_orders(t) for t in trainer.critic_spec.tasks):
        return {}
    spec = dataclasses.replace(
        trainer.critic_spec, max_new_tokens=settings.max_new_tokens or trainer.critic_spec.max_new_tokens
    )
    return position_bias(loaded(trainer), list(rows), spec, settings.batch_size)
