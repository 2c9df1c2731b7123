"""Seconds per step of our critic_rl recipe (pairwise) vs a plain trl.GRPOTrainer, one run.

Same tiny model, same pairwise records and prompts, same reward object, same GRPO settings;
the only difference is what the recipe adds around TRL (config, data loading, atomic
checkpoints). Runs alternate (ours, plain, ours, plain, ...) so drift hits both; the figure is
the median step time after a warm-up. Goal: ratio <= 1.05. ``--vocab real`` builds the tiny model over
DeepSeek-V3/V4's 129k-token vocabulary (the ``bench`` extra) instead of characters, so the logits and
the tied ``lm_head`` weigh as in a real critic; ``--vocab both`` measures the two one after the other.

    python benchmarks/recipe_overhead.py [--steps 30] [--rounds 2] [--vocab char|real|both]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
from pathlib import Path

import torch
from steptimer import StepTimer
from transformers import AutoTokenizer

from critics.judging.tasks import add_prompts
from critics.models import ModelConfig
from critics.recipes import critic_rl
from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings
from critics.rewards.verdict import PairwiseReward
from critics.tiny import save_tiny_checkpoint

WARMUP = 3


def write_records(path: Path, n: int = 256) -> None:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        a, b = rng.randint(0, 50), rng.randint(0, 50)
        good, bad = f"{a}+{b}={a + b}", f"{a}+{b}={a + b + rng.choice([-2, -1, 1, 2])}"
        swapped = rng.random() < 0.5
        rows.append(
            {
                "id": f"p{i}",
                "source": "bench",
                "task": "pairwise",
                "question": f"{a}+{b}?",
                "response_a": bad if swapped else good,
                "response_b": good if swapped else bad,
                "label": "B" if swapped else "A",
                "swapped": swapped,
                "images": [],
                "gold_answer": None,
                "verifier": "source",
                "metadata": "{}",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def recipe_config(model: Path, records: Path, out: Path, steps: int) -> critic_rl.CriticRLConfig:
    return critic_rl.CriticRLConfig(
        model=ModelConfig(name_or_path=str(model), device="cpu"),
        data=DataSettings(train=str(records), eval_size=0, task="pairwise"),
        run=RunSettings(
            output_dir=str(out),
            max_steps=steps,
            save_steps=10_000,
            learning_rate=1e-5,
            per_device_train_batch_size=16,
            logging_steps=1,
        ),
        grpo=critic_rl.GRPOSettings(num_generations=8, max_completion_length=16),
        rewards=[PairwiseReward()],
        template=TemplateSettings(style="compact"),
        eval=EvalSettings(enabled=False),
    )


def time_ours(config: critic_rl.CriticRLConfig) -> list[float]:
    trainer, _ = critic_rl.build(config)
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    return timer.times[WARMUP:]


def time_plain(config: critic_rl.CriticRLConfig) -> list[float]:
    """What a user writes with TRL alone for the same run."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(config.model.name_or_path)
    model = AutoModelForCausalLM.from_pretrained(config.model.name_or_path)
    dataset = add_prompts(datasets.Dataset.from_json(config.data.train), style="compact")
    args = GRPOConfig(
        output_dir=config.run.output_dir + "-plain",
        max_steps=config.run.max_steps,
        per_device_train_batch_size=16,
        learning_rate=1e-5,
        num_generations=8,
        max_completion_length=16,
        gradient_checkpointing=False,  # TRL's default is True; the recipe trains without it
        beta=0.01,
        loss_type="grpo",
        temperature=1.0,
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=[PairwiseReward()], args=args, train_dataset=dataset, processing_class=tokenizer
    )
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    return timer.times[WARMUP:]


def measure(vocab: str, work: Path, args: argparse.Namespace) -> None:
    """Both sides on a tiny model over ``vocab``; prints the medians and the ratio."""
    model = save_tiny_checkpoint(work / f"tiny-{vocab}", vocab=vocab)
    size = len(AutoTokenizer.from_pretrained(model))
    ours, plain = [], []
    for r in range(args.rounds):
        ours += time_ours(recipe_config(model, work / "records.jsonl", work / f"ours-{vocab}{r}", args.steps))
        plain += time_plain(recipe_config(model, work / "records.jsonl", work / f"plain-{vocab}{r}", args.steps))
    ours_s, plain_s = statistics.median(ours), statistics.median(plain)
    print(
        f"critic_rl (pairwise) vs plain trl.GRPOTrainer, tiny model on CPU, {vocab} vocabulary of {size:,} tokens, "
        f"{args.rounds} x {args.steps} steps each, median after {WARMUP} warm-up steps"
    )
    print(f"  plain trl.GRPOTrainer  {plain_s:.4f} s/step")
    print(f"  critics critic_rl      {ours_s:.4f} s/step")
    print(f"  ratio (ours / plain)   {ours_s / plain_s:.3f}  (goal <= 1.05)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--vocab", choices=["char", "real", "both"], default="char")
    args = parser.parse_args()
    if args.steps <= WARMUP:
        raise SystemExit(f"--steps must exceed the {WARMUP} warm-up steps")
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="recipe-overhead-"))
    write_records(work / "records.jsonl")
    for vocab in ["char", "real"] if args.vocab == "both" else [args.vocab]:
        measure(vocab, work, args)


if __name__ == "__main__":
    main()
