"""GRPO on CUDA: plain trl.GRPOTrainer vs our critic_rl recipe, same model, data and reward, one run.

The model is a random-init Llama shaped like Qwen2.5-0.5B (24 layers, hidden 896, 14 heads, 2 KV
heads, MLP 4864, tied embeddings) with an 8k vocabulary, built locally (nothing is downloaded).
Each step: 16 prompts x group 8 = 128 completions of up to 256 tokens (a random model rarely
stops early), bf16, transformers generation. Runs alternate (plain, ours, plain, ours) so drift
hits both. Printed per side: seconds/step, completion tokens/s, the share of the step spent in
``generate``, and the update's TFLOP/s — 6·N·T for the policy's forward and backward plus 2·N·T
for the reference model's forward when ``beta`` > 0, over the step time minus generation —
with the card's name.

    python benchmarks/gpu_grpo.py [--steps 6] [--rounds 2] [--cache static]
    python benchmarks/gpu_grpo.py --smoke     # tiny shapes, runs on a CPU (checks the script only)
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from steptimer import GenerateTimer, StepTimer

from critics.judging.tasks import add_prompts
from critics.models import ModelConfig
from critics.recipes import critic_rl
from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings
from critics.rewards.verdict import PointwiseVerdictReward
from critics.tiny import build_model, build_tokenizer

WARMUP = 1
QWEN25_05B = {"hidden_size": 896, "num_layers": 24, "num_heads": 14, "num_kv_heads": 2, "intermediate_size": 4864}
SMOKE = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128}


@dataclass
class Shape:
    prompts: int
    group: int
    completion: int
    vocab: int


def save_model(path: Path, dims: dict, vocab: int) -> int:
    """A random-init Llama with ``dims`` and a ``vocab``-token tokenizer; returns its parameter count."""
    tokenizer = build_tokenizer()
    tokenizer.add_tokens([f"<w{i}>" for i in range(vocab - len(tokenizer))])
    model = build_model(
        tokenizer,
        hidden_size=dims["hidden_size"],
        num_layers=dims["num_layers"],
        num_heads=dims["num_heads"],
        num_kv_heads=dims["num_kv_heads"],
        intermediate_size=dims["intermediate_size"],
        max_positions=2048,
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def write_records(path: Path, n: int = 512) -> None:
    """Pointwise records whose compact prompt is about 80 tokens (characters) long."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        a, b = rng.randint(100, 999), rng.randint(100, 999)
        right = rng.random() < 0.5
        rows.append(
            {
                "id": f"b{i}",
                "source": "bench",
                "task": "pointwise",
                "question": f"What is {a} + {b}?",
                "response": f"{a + b if right else a + b + 10}",
                "label": "correct" if right else "incorrect",
                "images": [],
                "gold_answer": str(a + b),
                "verifier": "source",
                "metadata": "{}",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def recipe_config(
    model: Path, records: Path, out: Path, steps: int, shape: Shape, cache: str | None, device: str
) -> critic_rl.CriticRLConfig:
    return critic_rl.CriticRLConfig(
        model=ModelConfig(name_or_path=str(model), device=device),
        data=DataSettings(train=str(records), eval_size=0, task="pointwise"),
        run=RunSettings(
            output_dir=str(out),
            max_steps=steps,
            save_steps=10_000,
            learning_rate=1e-6,
            per_device_train_batch_size=shape.prompts * shape.group,
            logging_steps=1,
        ),
        grpo=critic_rl.GRPOSettings(
            num_generations=shape.group, max_completion_length=shape.completion, cache_implementation=cache
        ),
        rewards=[PointwiseVerdictReward()],
        template=TemplateSettings(style="compact", think=False),
        eval=EvalSettings(enabled=False),
    )


def time_ours(config: critic_rl.CriticRLConfig):
    trainer, _ = critic_rl.build(config)
    return timed_train(trainer)


def time_plain(config: critic_rl.CriticRLConfig):
    """What a user writes with TRL alone for the same run (bf16 weights on CUDA, like ours)."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    cuda = config.model.device != "cpu"
    tokenizer = AutoTokenizer.from_pretrained(config.model.name_or_path)
    model = AutoModelForCausalLM.from_pretrained(
        config.model.name_or_path, dtype=torch.bfloat16 if cuda else torch.float32
    )
    dataset = add_prompts(datasets.Dataset.from_json(config.data.train), style="compact")
    grpo = config.grpo
    args = GRPOConfig(
        output_dir=config.run.output_dir + "-plain",
        max_steps=config.run.max_steps,
        per_device_train_batch_size=config.run.per_device_train_batch_size,
        learning_rate=config.run.learning_rate,
        num_generations=grpo.num_generations,
        max_completion_length=grpo.max_completion_length,
        beta=grpo.beta,
        loss_type=grpo.loss_type,
        temperature=grpo.temperature,
        cache_implementation=grpo.cache_implementation,
        use_cpu=not cuda,
        bf16=cuda,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=config.rewards, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    return timed_train(trainer)


def timed_train(trainer) -> dict[str, list[float]]:
    steps, generation = StepTimer(), GenerateTimer(trainer.model)
    trainer.add_callback(steps)
    trainer.train()
    lengths = [e["completions/mean_length"] for e in trainer.state.log_history if "completions/mean_length" in e]
    prompt = [e.get("num_tokens", 0) for e in trainer.state.log_history if "num_tokens" in e]
    del trainer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {
        "step": steps.times[WARMUP:],
        "generate": generation.times[WARMUP:],
        "length": lengths[WARMUP:],
        "num_tokens": prompt,
    }


def summarise(name: str, runs: list[dict], shape: Shape, params: int, beta: float) -> dict[str, float]:
    step = statistics.median(t for r in runs for t in r["step"])
    generate = statistics.median(t for r in runs for t in r["generate"])
    length = statistics.mean(x for r in runs for x in r["length"])
    completions = shape.prompts * shape.group
    tokens_per_step = [b - a for r in runs for a, b in zip(r["num_tokens"], r["num_tokens"][1:])]
    total_tokens = statistics.median(tokens_per_step) if tokens_per_step else completions * (length + 80)
    flops = (6 + (2 if beta > 0 else 0)) * params * total_tokens
    update = max(step - generate, 1e-9)
    row = {
        "s/step": step,
        "completion tok/s": completions * length / step,
        "generate share": generate / step,
        "update TFLOP/s": flops / update / 1e12,
        "mean completion": length,
    }
    print(
        f"  {name:<24} {row['s/step']:8.2f} s/step  {row['completion tok/s']:9,.0f} completion tok/s  "
        f"generate {row['generate share']:.0%} of the step  update {row['update TFLOP/s']:6.1f} TFLOP/s  "
        f"(mean completion {length:.0f} tokens)"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="steps per run (the first is warm-up)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", default=None, help="transformers cache_implementation, e.g. static")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on a CPU: checks the script runs")
    args = parser.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark measures a GPU (use --smoke to check it on a CPU)")
    dims, shape = (SMOKE, Shape(2, 4, 16, 256)) if args.smoke else (QWEN25_05B, Shape(16, 8, 256, 8192))
    device = "cpu" if args.smoke else "cuda"
    card = torch.cuda.get_device_name() if torch.cuda.is_available() and not args.smoke else "CPU (smoke run)"
    work = Path(tempfile.mkdtemp(prefix="gpu-grpo-"))
    params = save_model(work / "model", dims, shape.vocab)
    write_records(work / "records.jsonl")
    plain, ours = [], []
    for r in range(args.rounds):
        config = recipe_config(
            work / "model", work / "records.jsonl", work / f"run{r}", args.steps, shape, args.cache, device
        )
        plain.append(time_plain(config))
        ours.append(time_ours(config))
    shape_name = "a tiny smoke-test Llama" if args.smoke else "random-init Llama shaped like Qwen2.5-0.5B"
    print(
        f"GRPO step on {card}: {shape_name} ({params / 1e6:.1f}M parameters, "
        f"vocab {shape.vocab}), {shape.prompts} prompts x group {shape.group}, up to {shape.completion} "
        f"completion tokens, cache {args.cache or 'default'}; {args.rounds} x {args.steps} steps per side, "
        f"median after {WARMUP} warm-up step"
    )
    beta = critic_rl.GRPOSettings().beta
    a = summarise("plain trl.GRPOTrainer", plain, shape, params, beta)
    b = summarise("critics critic_rl", ours, shape, params, beta)
    print(f"  ratio (ours / plain) s/step {b['s/step'] / a['s/step']:.3f}")


if __name__ == "__main__":
    main()
