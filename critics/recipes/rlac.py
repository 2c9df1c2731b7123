"""Recipe ``rlac``: an adversarial critic trained together with the generator (RLAC, 2025).

For each generated output the critic proposes the ONE check most likely to fail (a test input, a
claim, an item index); an external validator (``data_pipelines.verifiers.validators``) runs it.
The generator is rewarded when the check passes, the critic when it fails. A driver owns two
``trl.GRPOTrainer``s and alternates rounds of ``steps_per_round`` steps (the critic's may be fewer,
``critic_steps_per_round``, to spend fewer validator calls on it):

1. generator round: its reward asks the *current* critic (batched, no gradients) for a check on
   each completion and validates it;
2. audit: a sample of generator outputs is validated exhaustively, so the log shows the
   validator pass rate next to true correctness and flags a divergence (the generator exploiting
   the critic);
3. critic round: on fresh outputs of the current generator, one output per GRPO group (the
   group's prompt holds the output), so the group baseline compares critiques of the same output.

What ``train()`` resets between calls is handled here: each round gets a fresh draw of prompts
(seeded by the round), one optimizer and one learning-rate schedule per side span all rounds
(passed to the trainers, so Adam's moments carry over), logs are collected per round, and
``steps_per_round`` must be a multiple of ``steps_per_generation x num_iterations`` so no round
trains on generations left over from the last one. An invalid or missing check never counts as
a pass: it is replaced by one random check (an extra validator call) or scored ``None``.
Validator calls are counted per round against what exhaustive checking would have cost.
"""

from __future__ import annotations

import dataclasses
import json
import random
import resource
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from critics.judging.generation import LoadedModel, load_model
from critics.judging.spec import CriticSpec
from critics.models import ModelConfig, precision_args
from critics.recipes.common import set_threads_for_cpu
from critics.recipes.critic_rl import GRPOSettings
from critics.recipes.rlac_rewards import Checker, CriticReward, GeneratorReward, audit, critic_prompt, generate
from data_pipelines.files import check_writable, recover_all, staged_folder, writing


@dataclass
class RLACSide:
    """One of the two trainers: its model, GRPO knobs, learning rate and batch size."""

    model: ModelConfig = field(default_factory=ModelConfig)
    grpo: GRPOSettings = field(
        default_factory=lambda: GRPOSettings(num_generations=8, beta=0.0, max_completion_length=256)
    )
    learning_rate: float = 1e-6
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1


@dataclass
class RLACData:
    """The prompts: a JSON(L) of ``{"prompt": str, "spec": {...}}`` rows, adversarial records
    (``critics data build configs/data/humaneval_adversarial.yaml``), or the synthetic task
    (``synthetic_items`` items per prompt, ``synthetic_size`` prompts; validator ``synthetic_sums``)."""

    train: str = ""
    synthetic_items: int = 4
    synthetic_size: int = 4000
    prompts_per_round: int = 0  # 0: steps_per_round x the batch's distinct prompts


@dataclass
class RLACConfig:
    """The ``rlac`` recipe (``configs/recipes/rlac_*.yaml``)."""

    generator: RLACSide = field(default_factory=RLACSide)
    critic: RLACSide = field(default_factory=RLACSide)
    validator: str = "synthetic_sums"
    data: RLACData = field(default_factory=RLACData)
    rounds: int = 3
    steps_per_round: int = 10
    critic_steps_per_round: int = 0  # 0: steps_per_round; fewer spends fewer validator calls on the critic
    fallback: Literal["random", "none"] = "random"
    critic_invalid_reward: float = 0.0
    critic_temperature: float = 0.0  # how the frozen critic writes checks inside the generator's reward
    explore: float = 0.0  # share of generator outputs scored by one random check instead of the critic's
    train_critic: bool = True  # False: the critic stays as loaded (the "frozen critic" baseline)
    audit_size: int = 64
    divergence_gap: float = 0.2
    output_dir: str = "outputs/rlac"
    lr_scheduler_type: str = "constant"
    warmup_steps: int = 0
    logging_steps: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("generator", "critic"):
            side: RLACSide = getattr(self, name)
            generate_every = (
                side.grpo.generation_batch_size or side.per_device_train_batch_size * side.gradient_accumulation_steps
            ) // side.per_device_train_batch_size
            every = generate_every * side.grpo.num_iterations
            steps = self.critic_steps if name == "critic" else self.steps_per_round
            if (steps * side.gradient_accumulation_steps) % every:
                key = (
                    "critic_steps_per_round" if name == "critic" and self.critic_steps_per_round else "steps_per_round"
                )
                raise ValueError(
                    f"{key} ({steps}) x {name}.gradient_accumulation_steps must be "
                    f"a multiple of steps_per_generation x num_iterations ({every}), or a round would "
                    "train on generations left over from the previous one"
                )
        if self.rounds < 1 or self.steps_per_round < 1 or self.critic_steps_per_round < 0:
            raise ValueError("rounds and steps_per_round must be at least 1, critic_steps_per_round at least 0")
        if not 0.0 <= self.explore <= 1.0:
            raise ValueError(f"explore must lie in [0, 1] (a share of generator outputs), got {self.explore}")

    @property
    def critic_steps(self) -> int:
        """The critic's steps per round."""
        return self.critic_steps_per_round or self.steps_per_round


# -- prompts ---------------------------------------------------------------------------------


def synthetic_prompts(n: int, items: int, seed: int, largest: int = 99) -> list[dict[str, Any]]:
    """The toy multi-item task: add ``items`` pairs of numbers up to ``largest``, one ``a+b=c`` line each.

    >>> synthetic_prompts(1, 2, 0)[0]["prompt"]
    '49+97 53+5'
    """
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        pairs = [[rng.randint(0, largest), rng.randint(0, largest)] for _ in range(items)]
        rows.append({"prompt": " ".join(f"{a}+{b}" for a, b in pairs), "spec": {"items": pairs}})
    return rows


def load_prompts(config: RLACConfig) -> list[dict[str, Any]]:
    """Every prompt the rounds draw from."""
    if not config.data.train:
        if config.validator != "synthetic_sums":
            raise ValueError(
                "data.train is empty: give prompts with validator specs (only synthetic_sums generates its own)"
            )
        return synthetic_prompts(config.data.synthetic_size, config.data.synthetic_items, config.seed)
    from critics.judging.records import load_records

    rows = []
    for i, row in enumerate(load_records(config.data.train, {})):
        spec = row.get("spec")
        spec = json.loads(spec) if isinstance(spec, str) else spec
        if spec is None and row.get("task") == "adversarial":  # a built record: its validator spec is its columns
            spec = {k: row.get(k) for k in ("tests", "reference_solution", "entry_point", "facts") if row.get(k)}
        prompt = row.get("prompt") or row.get("question")
        if not isinstance(prompt, str) or not isinstance(spec, dict):
            raise ValueError(f"data.train row {i}: needs a 'prompt' (or 'question') string and a 'spec' object")
        rows.append({"prompt": prompt, "spec": spec})
    return rows


def round_rows(pool: list[dict[str, Any]], n: int, round_index: int, seed: int) -> list[dict[str, Any]]:
    """A fresh draw of ``n`` prompts for one round (seeded by the round, so rounds differ)."""
    rng = random.Random(seed * 1000 + round_index)
    return [pool[i] for i in rng.sample(range(len(pool)), min(n, len(pool)))]


# -- the driver ------------------------------------------------------------------------------


def _trainer(side: RLACSide, config: RLACConfig, name: str, reward, dataset, model, tokenizer, steps: int):
    """A GRPOTrainer of ``steps`` per round whose optimizer and schedule span all rounds (created here,
    passed in)."""
    import torch
    from transformers import get_scheduler
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=str(Path(config.output_dir) / name),
        max_steps=steps,
        per_device_train_batch_size=side.per_device_train_batch_size,
        gradient_accumulation_steps=side.gradient_accumulation_steps,
        learning_rate=side.learning_rate,
        logging_steps=config.logging_steps,
        save_strategy="no",
        report_to=[],
        seed=config.seed,
        disable_tqdm=True,
        **precision_args(side.model),
        **side.grpo.trl_args(),
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=side.learning_rate)
    schedule = get_scheduler(
        config.lr_scheduler_type,
        optimizer,
        num_warmup_steps=config.warmup_steps,
        num_training_steps=config.rounds * steps,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        optimizers=(optimizer, schedule),
    )
    side.grpo.tune(trainer)
    return trainer


def _unwrap(trainer) -> None:
    """Peel accelerate's wrappers off the optimizer and schedule before the next ``train()`` wraps them again."""
    while type(trainer.optimizer).__name__ == "AcceleratedOptimizer":
        trainer.optimizer = trainer.optimizer.optimizer
    while type(trainer.lr_scheduler).__name__ == "AcceleratedScheduler":
        trainer.lr_scheduler = trainer.lr_scheduler.scheduler


def generator_dataset(rows: list[dict[str, Any]]):
    import datasets

    return datasets.Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "prompt_text": r["prompt"],
                "spec": json.dumps(r["spec"]),
            }
            for r in rows
        ]
    )


def critic_dataset(rows: list[dict[str, Any]], outputs: list[str], validator: str):
    import datasets

    return datasets.Dataset.from_list(
        [
            {"prompt": critic_prompt(r["prompt"], o, validator), "output": o, "spec": json.dumps(r["spec"])}
            for r, o in zip(rows, outputs)
        ]
    )


ROUND = "round-{}"


def latest_round(out: Path) -> int | None:
    """The last round whose checkpoint is complete (written atomically), or None."""
    done = [int(p.name.split("-")[1]) for p in out.glob("round-*") if (p / "state.json").is_file()]
    return max(done) if done else None


def save_round(
    out: Path, r: int, gen, crit, checker: Checker, log: list[dict[str, Any]], spec: CriticSpec | None = None
) -> Path:
    """Both models, optimizers and schedules, the checker's counters and the log (and the critic's
    spec beside its weights): staged, then swapped in (``data_pipelines.files``)."""
    import shutil

    import torch

    final = out / ROUND.format(r)
    with writing(out, "output_dir"):
        with staged_folder(final) as staging:
            for name, trainer in (("generator", gen), ("critic", crit)):
                _unwrap(trainer)
                trainer.model.save_pretrained(str(staging / name))
                trainer.processing_class.save_pretrained(str(staging / name))
                torch.save(
                    {"optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.lr_scheduler.state_dict()},
                    staging / name / "optimizer.pt",
                )
            if spec is not None:
                spec.save(staging / "critic")
            (staging / "state.json").write_text(
                json.dumps(
                    {"round": r, "counters": checker.counters(), "rng": repr(checker.rng.getstate()), "log": log},
                    default=str,
                )
            )
        for old in out.glob("round-*"):  # keep the newest complete round only
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def _restore(trainer, folder: Path) -> None:
    import torch

    states = torch.load(folder / "optimizer.pt", weights_only=False)
    _unwrap(trainer)
    trainer.optimizer.load_state_dict(states["optimizer"])
    trainer.lr_scheduler.load_state_dict(states["scheduler"])


def run(config: RLACConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Alternate generator and critic rounds; returns the per-round log (also ``rounds.json``).

    Each finished round is checkpointed to ``output_dir/round-N`` (both models, optimizers,
    schedules, counters, log); ``resume`` continues after the newest one.
    """
    import ast

    set_threads_for_cpu(precision_args(config.generator.model)["use_cpu"])
    out = check_writable(config.output_dir, "output_dir")  # before either model loads
    recover_all(out)  # a round swap a crash interrupted
    last = latest_round(out)
    if last is not None and not resume:
        raise FileExistsError(
            f"{out} already holds {ROUND.format(last)}: pass --resume to continue that run, "
            "or choose another output_dir"
        )
    if resume and last is None:
        raise FileNotFoundError(f"--resume: no complete round in {out}")
    saved = out / ROUND.format(last) if last is not None else None
    pool = load_prompts(config)
    generator = _load(config.generator.model, saved / "generator" if saved else None)
    critic = _load(config.critic.model, saved / "critic" if saved else None)
    spec = CriticSpec(
        tasks=["adversarial"],
        max_new_tokens=config.critic.grpo.max_completion_length,
        temperature=config.critic_temperature,
        validator=config.validator,
        context_tokens=critic.context_tokens,
    )
    checker = Checker(config.validator, config.fallback, config.seed)
    auditor = Checker(config.validator, config.fallback, config.seed + 1)  # audits are not part of the budget
    per_round = config.data.prompts_per_round or config.steps_per_round * max(
        1, config.generator.per_device_train_batch_size // config.generator.grpo.num_generations
    )
    critic_rows = config.critic_steps * max(
        1, config.critic.per_device_train_batch_size // config.critic.grpo.num_generations
    )
    first = round_rows(pool, per_round, 0, config.seed)
    generator_reward = GeneratorReward(
        checker,
        critic,
        max_new_tokens=config.critic.grpo.max_completion_length,
        temperature=config.critic_temperature,
        explore=config.explore,
        seed=config.seed,
    )
    gen = _trainer(
        config.generator,
        config,
        "generator",
        generator_reward,
        generator_dataset(first),
        generator.model,
        generator.tokenizer,
        config.steps_per_round,
    )
    crit = _trainer(
        config.critic,
        config,
        "critic",
        CriticReward(checker, config.critic_invalid_reward),
        critic_dataset(first, [r["prompt"] for r in first], config.validator),
        critic.model,
        critic.tokenizer,
        config.critic_steps,
    )
    log: list[dict[str, Any]] = []
    if saved:
        state = json.loads((saved / "state.json").read_text())
        log = state["log"]
        checker.calls, checker.exhaustive = state["counters"]["validator_calls"], state["counters"]["exhaustive_calls"]
        checker.invalid, checker.fallbacks = state["counters"]["invalid_checks"], state["counters"]["fallback_checks"]
        checker.rng.setstate(ast.literal_eval(state["rng"]))
        _restore(gen, saved / "generator")
        _restore(crit, saved / "critic")
    for r in range(0 if last is None else last + 1, config.rounds):
        entry: dict[str, Any] = {"round": r}
        rows = round_rows(pool, per_round, r, config.seed)
        entry["prompts"] = [row["prompt"] for row in rows[:3]]
        before, explored = checker.counters(), generator_reward.explored
        _unwrap(gen)
        gen.train_dataset = generator_dataset(rows)
        gen.train()
        entry["generator_log"] = [e for e in gen.state.log_history if "reward" in e]
        entry["generator_lr"] = gen.lr_scheduler.get_last_lr()[0]
        sample = round_rows(pool, config.audit_size, 10_000 + r, config.seed)
        outputs = generate(
            generator,
            [[{"role": "user", "content": s["prompt"]}] for s in sample],
            config.generator.grpo.max_completion_length,
            0.0,
        )
        critiques = generate(
            critic,
            [critic_prompt(s["prompt"], o, config.validator) for s, o in zip(sample, outputs)],
            config.critic.grpo.max_completion_length,
            0.0,
        )
        entry["audit"] = audit(auditor, sample, outputs, critiques)
        entry["audit"]["divergence"] = (
            entry["audit"]["validator_pass_rate"] - entry["audit"]["true_correctness"] > config.divergence_gap
        )
        generator_calls = checker.calls
        if config.train_critic:
            seen = rows[: max(critic_rows, 1)]  # as many fresh outputs as the critic's steps use
            fresh = generate(
                generator,
                [[{"role": "user", "content": row["prompt"]}] for row in seen],
                config.generator.grpo.max_completion_length,
                config.generator.grpo.temperature,
            )
            _unwrap(crit)
            crit.train_dataset = critic_dataset(seen, fresh, config.validator)
            crit.train()
        entry["critic_log"] = [e for e in crit.state.log_history if "reward" in e] if config.train_critic else []
        entry["critic_lr"] = crit.lr_scheduler.get_last_lr()[0]
        now = checker.counters()
        entry["accounting"] = {k: now[k] - before[k] for k in now}
        entry["accounting"]["critic_calls"] = checker.calls - generator_calls  # spent training the critic
        entry["accounting"]["explored_checks"] = generator_reward.explored - explored  # random, not the critic's
        entry["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        log.append(entry)
        with writing(out, "output_dir"):
            (out / "rounds.json").write_text(json.dumps(log, indent=2, default=str))
        final = save_round(out, r, gen, crit, checker, log, spec)
        print(
            f"round {r}: generator reward {_mean(entry['generator_log'], 'reward'):.3f}, critic reward "
            f"{_mean(entry['critic_log'], 'reward'):.3f}, audit {entry['audit']}, validator calls "
            f"{entry['accounting']['validator_calls']} (exhaustive: {entry['accounting']['exhaustive_calls']})"
        )
    final = out / ROUND.format(config.rounds - 1)
    return {
        "final": str(final),
        "rounds": log,
        "generator": gen,
        "critic": crit,
        "metrics": {f"round {e['round']}": {**e["audit"], **e["accounting"]} for e in log},
    }


def _load(model: ModelConfig, saved: Path | None) -> LoadedModel:
    """One side's model: as configured, or from the last complete round."""
    return load_model(dataclasses.replace(model, name_or_path=str(saved)) if saved else model, kind="causal")


def _mean(entries: list[dict[str, Any]], key: str) -> float:
    values = [e[key] for e in entries if isinstance(e.get(key), (int, float))]
    return sum(values) / len(values) if values else float("nan")
