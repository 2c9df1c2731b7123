r"""RLAC against three baselines at the same training budget, on a toy task with multi-item outputs.

The task: add ``--items`` pairs of one-digit numbers (4 by default), one "a+b=c" line each ("7+5 3+4 ..." ->
"7+5=12\n3+4=7\n..."). A tiny generator is warm-started on a teacher with a habit: on a fifth of
the facts it writes the sum one too high (``--slip``, 70% of the time), so its greedy answer is
wrong there. A tiny critic is warm-started on a sloppier writer's outputs (any item off by one 30%
of the time, so copying the written sums does not pay), from a teacher that recomputes the items
and points at the first disagreement ("12 7 18 8 \boxed{2}"), but half the time at a random item
instead. The two teachers draw from separate random streams. Then the generator trains with GRPO
for the same number of steps (linear learning-rate decay) under four rewards:

- ``exhaustive``: 1 if every item is right (one validator call per item);
- ``random``: 1 if one random item is right (1 call);
- ``frozen``: 1 if the check the warm critic names passes (1 call; the critic never trains);
- ``rlac``: the same, with the critic trained in alternating rounds on fresh generator outputs
  (``critics.recipes.rlac``; 1 call per generator output plus 1 per critic sample).

``--explore`` scores that share of the generator's outputs in ``frozen`` and ``rlac`` by one random
check instead of the critic's (still one call). ``--critic-lr`` and ``--critic-beta`` (KL to the warm
critic) set the critic's side. Printed per arm: the generator's true correctness on 500 held-out
prompts (every item right), the critic's found-error rate (on held-out outputs with an error, the
share where its check fails), and validator calls. ``--arms`` reruns some arms and reuses the warm
starts and other arms' results already in ``--output-dir``.

One seed's standard error (500 prompts) is much smaller than the spread between GRPO runs, so
``--seeds 0,1,2,3,4,5`` runs every arm once per seed from the same warm starts and prints the mean,
the standard error across seeds and each arm's paired difference from ``random``.

    python benchmarks/rlac_experiment.py [--output-dir DIR] [--seed 0] [--rounds 4] [--steps 15] \
        [--explore 0.5 --critic-lr 5e-5 --critic-beta 0.05] [--seeds 0,1,2,3,4,5]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path


def prompt_rows(n: int, seed: int, items: int) -> list[dict]:
    from critics.recipes.rlac import synthetic_prompts

    return synthetic_prompts(n, items, seed, largest=9)


def lengths(items: int) -> tuple[int, int]:
    """Completion budgets of the generator ("a+b=cc" lines) and the critic (the sums, then the box)."""
    return 8 * items + 32, 4 * items + 32


def hard(a: int, b: int) -> bool:
    """The fifth of the facts the generator's teacher habitually gets wrong (by one)."""
    return (7 * a + 3 * b) % 5 == 0


def answer(pairs, rng: random.Random, slip: float) -> str:
    """The generator teacher's lines: on a hard fact it writes the sum one too high with probability
    ``slip`` (so greedy decoding learns the slip), on the others it is right."""
    return "\n".join(f"{a}+{b}={a + b + (1 if hard(a, b) and rng.random() < slip else 0)}" for a, b in pairs)


def critique(pairs, output: str, rng: random.Random, noise: float) -> str:
    """Recompute every item, then box the first item whose written sum disagrees (or, with
    probability ``noise``, or when none disagrees, a random item)."""
    written = [line.split("=")[-1] for line in output.splitlines()]
    sums = [str(a + b) for a, b in pairs]
    wrong = [i for i, (s, w) in enumerate(zip(sums, written)) if s != w]
    index = wrong[0] if wrong and rng.random() >= noise else rng.randrange(len(pairs))
    return " ".join(sums) + f" \\boxed{{{index}}}"


def warm_start(base: Path, examples: list[dict], out: Path, steps: int, seed: int) -> Path:
    if (out / "final" / "config.json").exists():  # reused from an earlier run in the same folder
        return out / "final"
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer, model = AutoTokenizer.from_pretrained(base), AutoModelForCausalLM.from_pretrained(base)
    args = SFTConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=32,
        learning_rate=3e-3,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        logging_steps=100,
        max_length=256,
        seed=seed,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=datasets.Dataset.from_list(examples), processing_class=tokenizer
    )
    trainer.train()
    trainer.save_model(str(out / "final"))
    tokenizer.save_pretrained(str(out / "final"))
    return out / "final"


def evaluate(generator: str, critic: str, held_out: list[dict], items: int) -> dict[str, float]:
    """True correctness of greedy outputs, and the critic's found-error rate on the wrong ones."""
    from critics.judging.checks import parse_check
    from critics.judging.generation import load_model
    from critics.models import ModelConfig
    from critics.recipes.rlac import critic_prompt, generate
    from data_pipelines.verifiers.validators import VALIDATORS

    validator = VALIDATORS.get("synthetic_sums")()
    g = load_model(ModelConfig(name_or_path=generator, device="cpu"), kind="causal")
    c = load_model(ModelConfig(name_or_path=critic, device="cpu"), kind="causal")
    gen_length, critic_length = lengths(items)
    outputs = generate(g, [[{"role": "user", "content": r["prompt"]}] for r in held_out], gen_length, 0.0)
    correct = [
        all(validator.validate(o, k, r["spec"]).outcome == "pass" for k in validator.all_checks(o, r["spec"]))
        for o, r in zip(outputs, held_out)
    ]
    wrong = [(o, r) for o, r, ok in zip(outputs, held_out, correct) if not ok]
    critiques = generate(c, [critic_prompt(r["prompt"], o, "synthetic_sums") for o, r in wrong], critic_length, 0.0)
    found = 0
    for (o, r), text in zip(wrong, critiques):
        check = parse_check(text, "synthetic_sums", quoted=[o]).check
        found += check is not None and validator.validate(o, check, r["spec"]).outcome == "fail"
    n = len(held_out)
    accuracy = sum(correct) / n
    return {
        "true_correctness": accuracy,
        "stderr": math.sqrt(accuracy * (1 - accuracy) / n),
        "found_error_rate": found / len(wrong) if wrong else float("nan"),
        "wrong_outputs": len(wrong),
    }


class RuleReward:
    """The baselines' generator reward: every item (``exhaustive``) or one random item (``random``)."""

    def __init__(self, kind: str, seed: int):
        from data_pipelines.verifiers.validators import VALIDATORS

        self.kind, self.rng, self.calls = kind, random.Random(seed), 0
        self.validator = VALIDATORS.get("synthetic_sums")()
        self.__name__ = f"{kind}_check"

    def __call__(self, prompts, completions, spec, **kwargs):
        from critics.rewards.base import completion_text

        out = []
        for completion, raw in zip(completions, spec):
            text, s = completion_text(completion), json.loads(raw)
            checks = self.validator.all_checks(text, s)
            picked = checks if self.kind == "exhaustive" else [self.rng.choice(checks)]
            self.calls += len(picked)
            out.append(float(all(self.validator.validate(text, k, s).outcome == "pass" for k in picked)))
        return out


def train_baseline(
    kind: str, generator: Path, pool, out: Path, steps: int, seed: int, lr: float, max_length: int
) -> tuple[str, int]:
    """GRPO on the generator alone with a rule reward; returns the final checkpoint and validator calls."""
    from trl import GRPOConfig, GRPOTrainer

    from critics.recipes.rlac import generator_dataset

    reward = RuleReward(kind, seed)
    args = GRPOConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=32,
        learning_rate=lr,
        num_generations=8,
        temperature=1.0,
        beta=0.0,
        max_completion_length=max_length,
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        logging_steps=5,
        seed=seed,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=str(generator), reward_funcs=[reward], args=args, train_dataset=generator_dataset(pool[: steps * 4])
    )
    trainer.train()
    trainer.save_model(str(out / "final"))
    trainer.processing_class.save_pretrained(str(out / "final"))
    return str(out / "final"), reward.calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", default="outputs/rlac_experiment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=15, help="generator (and critic) steps per round")
    parser.add_argument("--items", type=int, default=4, help="sums per output")
    parser.add_argument(
        "--slip", type=float, default=0.7, help="how often the generator's teacher slips on a hard fact"
    )
    parser.add_argument("--sft-steps", type=int, default=600, help="warm-start steps of each model")
    parser.add_argument("--generator-lr", type=float, default=2e-4)
    parser.add_argument("--critic-lr", type=float, default=2e-4)
    parser.add_argument(
        "--arms",
        default="exhaustive,random,frozen,rlac",
        help="arms to (re)run; warm starts and earlier arms' results in --output-dir are reused",
    )
    parser.add_argument("--critic-steps", type=int, default=0, help="critic steps per round (0: --steps)")
    parser.add_argument(
        "--explore",
        type=float,
        default=0.0,
        help="share of the RLAC generator's outputs scored by a random check instead of the critic's",
    )
    parser.add_argument(
        "--seeds",
        default="",
        help="comma-separated seeds: every arm once per seed, then the "
        "mean and spread (warm starts from --seed, shared)",
    )
    parser.add_argument("--critic-beta", type=float, default=0.0, help="the critic's KL penalty to its warm start")
    args = parser.parse_args()
    started = time.monotonic()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    from critics.recipes import rlac
    from critics.recipes.common import set_threads_for_cpu
    from critics.tiny import save_tiny_checkpoint

    set_threads_for_cpu(True)
    rng, critic_rng = random.Random(args.seed), random.Random(args.seed + 100)  # the two teachers draw apart
    teach = prompt_rows(6000, args.seed + 1, args.items)
    gen_examples, crit_examples = [], []
    for row in teach:
        output = answer(row["spec"]["items"], rng, slip=args.slip)
        gen_examples.append(
            {
                "prompt": [{"role": "user", "content": row["prompt"]}],
                "completion": [{"role": "assistant", "content": output}],
            }
        )
        # the critic learns from a sloppier writer (any item off by one 30% of the time), so copying the
        # written sums instead of adding does not pay; it still points at a random item half the time
        seen = "\n".join(
            f"{a}+{b}={a + b + (critic_rng.choice([-1, 1]) if critic_rng.random() < 0.3 else 0)}"
            for a, b in row["spec"]["items"]
        )
        crit_examples.append(
            {
                "prompt": rlac.critic_prompt(row["prompt"], seen, "synthetic_sums"),
                "completion": [
                    {"role": "assistant", "content": critique(row["spec"]["items"], seen, critic_rng, noise=0.5)}
                ],
            }
        )
    generator = warm_start(
        save_tiny_checkpoint(out / "gen-base", seed=args.seed + 2),
        gen_examples,
        out / "gen-sft",
        args.sft_steps,
        args.seed,
    )
    critic = warm_start(
        save_tiny_checkpoint(out / "crit-base", seed=args.seed + 3),
        crit_examples,
        out / "crit-sft",
        args.sft_steps,
        args.seed,
    )
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    by_seed = {
        seed: run_arms(args, seed, out if len(seeds) == 1 else out / f"seed-{seed}", generator, critic)
        for seed in seeds
    }
    if len(seeds) > 1:
        summarise(by_seed)
    print(f"whole run {(time.monotonic() - started) / 60:.1f} min")


def run_arms(args, seed: int, out: Path, generator: Path, critic: Path) -> dict[str, dict]:
    """Every arm from the same warm starts, with ``seed``'s held-out prompts, prompt pool and sampling."""
    from critics.models import ModelConfig
    from critics.recipes import rlac
    from critics.recipes.critic_rl import GRPOSettings

    out.mkdir(parents=True, exist_ok=True)
    items = args.items
    gen_length, critic_length = lengths(items)
    held_out = prompt_rows(500, seed + 4, items)
    arms = args.arms.split(",")
    saved = out / "results.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    results["warm start"] = {**evaluate(str(generator), str(critic), held_out, items), "validator_calls": 0}
    print(f"warm start: {results['warm start']}", flush=True)
    steps = args.rounds * args.steps
    pool = prompt_rows(20000, seed + 5, items)
    for kind in [a for a in ("exhaustive", "random") if a in arms]:
        final, calls = train_baseline(kind, generator, pool, out / kind, steps, seed, args.generator_lr, gen_length)
        results[kind] = {**evaluate(final, str(critic), held_out, items), "validator_calls": calls}
        print(f"{kind}: {results[kind]}", flush=True)
    grpo = dict(num_generations=8, temperature=1.0)
    for kind, train_critic in [(a, a == "rlac") for a in ("frozen", "rlac") if a in arms]:
        config = rlac.RLACConfig(
            generator=rlac.RLACSide(
                model=ModelConfig(name_or_path=str(generator), device="cpu"),
                grpo=GRPOSettings(**grpo, beta=0.0, max_completion_length=gen_length),
                learning_rate=args.generator_lr,
                per_device_train_batch_size=32,
            ),
            critic=rlac.RLACSide(
                model=ModelConfig(name_or_path=str(critic), device="cpu"),
                grpo=GRPOSettings(**grpo, beta=args.critic_beta, max_completion_length=critic_length),
                learning_rate=args.critic_lr,
                per_device_train_batch_size=32,
            ),
            train_critic=train_critic,
            validator="synthetic_sums",
            data=rlac.RLACData(train=str(_write(out / "pool.jsonl", pool))),
            rounds=args.rounds,
            steps_per_round=args.steps,
            critic_steps_per_round=args.critic_steps,
            explore=args.explore,
            audit_size=64,
            output_dir=str(out / kind),
            seed=seed,
            lr_scheduler_type="linear",
        )  # the baselines' schedule (GRPOConfig's default)
        result = rlac.run(config)
        last = Path(result["final"])
        calls = sum(e["accounting"]["validator_calls"] for e in result["rounds"])
        results[kind] = {
            **evaluate(str(last / "generator"), str(last / "critic"), held_out, items),
            "validator_calls": calls,
            "of_which_critic_training": sum(e["accounting"].get("critic_calls", 0) for e in result["rounds"]),
            "audit": [e["audit"] for e in result["rounds"]],
        }
        print(f"{kind}: {results[kind]}", flush=True)
    saved.write_text(json.dumps(results, indent=2))
    print(f"\nseed {seed}\n| arm | true correctness | found-error rate | validator calls |\n|---|---:|---:|---:|")
    for kind, r in results.items():
        print(
            f"| {kind} | {r['true_correctness']:.3f} ± {r['stderr']:.3f} | {r['found_error_rate']:.3f} | "
            f"{r['validator_calls']} |"
        )
    return results


def summarise(by_seed: dict[int, dict[str, dict]]) -> None:
    """Mean and spread over seeds per arm, and each arm's difference from ``random`` seed by seed: one
    seed's 500-prompt standard error is far smaller than the spread between GRPO runs."""
    import statistics

    def spread(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        return f"{statistics.mean(values):.3f} ± {sd / math.sqrt(len(values)):.3f}"

    arms = [a for a in next(iter(by_seed.values())) if all(a in r for r in by_seed.values())]
    print(
        f"\nover {len(by_seed)} seeds (mean ± SE of the mean across seeds)\n"
        "| arm | true correctness | minus random (paired) | found-error rate | validator calls |\n|---|---:|---:|---:|---:|"
    )
    for arm in arms:
        rows = [r[arm] for r in by_seed.values()]
        paired = (
            spread([r[arm]["true_correctness"] - r["random"]["true_correctness"] for r in by_seed.values()])
            if "random" in arms and arm != "random"
            else ""
        )
        found = [x["found_error_rate"] for x in rows if not math.isnan(x["found_error_rate"])]
        print(
            f"| {arm} | {spread([x['true_correctness'] for x in rows])} | {paired} | "
            f"{spread(found) if found else 'nan'} | {statistics.mean(x['validator_calls'] for x in rows):.0f} |"
        )


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


if __name__ == "__main__":
    main()
