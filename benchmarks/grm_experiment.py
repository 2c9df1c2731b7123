"""DeepSeek-GRM on a task a tiny model can learn: which of N = 2..4 claims "a+b=c" is true?

Seeded and CPU-only (about 10 minutes on 2 cores). Each item asks one single-digit sum and lists
N claims of it, one true and the others 1 or 2 off (or 3 above). A scripted teacher writes compact
GRM judgments ("3+4=7 1:7/8!2 2:7/7=9 \\boxed{2, 9}": the sum, then per response the sum beside
the claim, "=" or "!" and its score, then the scores in the box) and slips by one on the sum in 40%
of them, which flips the scores. Each step is a copy or a one-digit fact next to what it needs (as
``critics.demo``'s critiques): with the claims listed first and compared only in the box
("3+4=7 1:8 2:7 \\boxed{2, 9}"), the tiny critic had to compare numbers far apart, learned the
copies but never the comparison, and stayed at chance (0.35 held-out for 0.36 by chance). The ``grm``
recipe then trains a tiny character-level critic from scratch: rejective fine-tuning on the
teacher's samples (right ones kept, "too easy" items dropped), then rule-based GRPO (+1 / -1 and
format). Reported on held-out items (new lists of claims; the 100 single-digit sums themselves all
occur in training):

1. best-of-N accuracy (greedy) of the base model, after RFT and after GRPO, with standard errors,
   and the differences base -> final and RFT -> GRPO (unpaired SE);
2. on the trained GRM, sampled at temperature 1: one sample (k = 1, averaged over the 8 samples of
   each item), ``sum`` voting over k = 8, and ``meta`` voting (the 4 of 8 samples a meta RM trained
   by the ``meta_rm`` recipe on the GRM's own training-set judgments trusts most, summed); each gain
   with the paired standard error of the per-item difference. The named peer is k = 1.

Run: ``python benchmarks/grm_experiment.py [--out DIR] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import statistics
import sys
import time
from pathlib import Path

from critics.judging.chat import ChatModel

CLAIM = re.compile(r"^(\d+): (\d+)\+(\d+)=(\d+)$")


def make_item(rng: random.Random, index: int) -> dict:
    """One listwise item: N = 2..4 claims of one single-digit sum, exactly one true."""
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    s, n = a + b, rng.randint(2, 4)
    wrong = rng.sample([c for c in (s - 2, s - 1, s + 1, s + 2, s + 3) if c >= 0], n - 1)
    claims = [s, *wrong]
    rng.shuffle(claims)
    return {
        "id": f"sum{index}",
        "task": "listwise",
        "question": f"{a}+{b}?",
        "responses": [f"{a}+{b}={c}" for c in claims],
        "label": claims.index(s),
        "best": None,
        "scores": None,
    }


def judgment(a: int, b: int, claims: list[int], total: int) -> str:
    """A compact GRM judgment with ``total`` as the computed sum: per claim the sum beside it, "=" or
    "!" and the score (9 for a claim that equals the sum, else 2), then the scores in the box.

    >>> judgment(3, 4, [8, 7], 7)
    '3+4=7 1:7/8!2 2:7/7=9 \\\\boxed{2, 9}'
    """
    scores = ["9" if c == total else "2" for c in claims]
    compared = " ".join(
        f"{i}:{total}/{c}{'=' if c == total else '!'}{score}" for i, (c, score) in enumerate(zip(claims, scores), 1)
    )
    return f"{a}+{b}={total} {compared} \\boxed{{{', '.join(scores)}}}"


class SlippingTeacher(ChatModel):
    """Writes compact GRM judgments of the prompts it is given, slipping by one on the sum at ``slip`` rate."""

    name = "slipping teacher"

    def __init__(self, slip: float, seed: int):
        self.slip, self.rng = slip, random.Random(seed)

    def generate(self, conversations, *, max_new_tokens, temperature, n=1):
        out = []
        for conversation in conversations:
            lines = conversation[-1]["content"].splitlines()
            found = [CLAIM.match(line) for line in lines]
            claims = [int(m.group(4)) for m in found if m]
            a, b = int(found[0].group(2)), int(found[0].group(3))
            for _ in range(n):
                total = a + b + (self.rng.choice((-1, 1)) if self.rng.random() < self.slip else 0)
                out.append(judgment(a, b, claims, total))
        return out


def write_items(path: Path, n: int, seed: int, start: int = 0) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(json.dumps(make_item(rng, start + i)) + "\n" for i in range(n)))
    return path


def mean_se(values: list[float]) -> tuple[float, float]:
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan)


def voting(final: str, meta_path: str, rows: list[dict], k: int, keep: int, seed: int) -> dict[str, list[float]]:
    """Per held-out item: k=1 accuracy (mean over the k samples), ``sum`` at k, ``meta`` at k (keep)."""
    import torch

    from critics.judging.chat import LocalChatModel
    from critics.judging.judge import judge
    from critics.judging.meta import MetaRM
    from critics.judging.spec import load_spec
    from critics.judging.tasks import verdict_correct
    from critics.judging.votes import vote

    torch.manual_seed(seed)
    chat = LocalChatModel(final, device="cpu")
    spec = load_spec(None, final).overridden("experiment", samples=k, temperature=1.0, vote="sum")
    voted = judge(chat, rows, spec)
    meta = MetaRM.from_pretrained(meta_path, device="cpu")
    flat_rows = [r for r, c in zip(rows, voted) for _ in c.samples]
    meta_scores = meta.scores(flat_rows, [s for c in voted for s in c.samples])
    out: dict[str, list[float]] = {"k=1": [], f"sum k={k}": [], f"meta k={k}": []}
    trust = iter(meta_scores)
    for row, critique in zip(rows, voted):
        samples = list(critique.samples)  # none for a prompt over budget: wrong at every k
        out["k=1"].append(statistics.fmean(verdict_correct(s.verdict, row) for s in samples) if samples else 0.0)
        out[f"sum k={k}"].append(float(verdict_correct(critique.verdict, row)))
        trusted = vote(samples, row, "meta", [next(trust) for _ in samples], keep=keep) if samples else critique
        out[f"meta k={k}"].append(float(verdict_correct(trusted.verdict, row)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/grm_experiment")
    parser.add_argument("--quick", action="store_true", help="a smoke run (minutes less, numbers meaningless)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from critics.models import ModelConfig
    from critics.recipes import critic_rl, grm, meta_rm
    from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings
    from critics.tiny import save_tiny_checkpoint

    torch.set_num_threads(1)
    quick = args.quick
    n_train, n_eval = (120, 40) if quick else (1200, 800)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train = write_items(out / "train.jsonl", n_train, args.seed)
    held = write_items(out / "held_out.jsonl", n_eval, args.seed + 1, start=n_train)
    base = save_tiny_checkpoint(out / "base", seed=args.seed)
    config = grm.GRMConfig(
        model=ModelConfig(name_or_path=str(base), device="cpu"),
        data=DataSettings(train=str(train), eval=str(held), task="listwise"),
        run=RunSettings(
            output_dir=str(out / "grm"),
            per_device_train_batch_size=16,
            learning_rate=3e-3,
            lr_scheduler_type="cosine",
            warmup_steps=0.05,
            logging_steps=20,
            save_steps=10_000,
            seed=args.seed,
        ),
        rft=grm.RFTSettings(
            sampler=grm.JudgmentSampler(kind="self", samples=4), max_steps=20 if quick else 1200, max_length=256
        ),
        rl=grm.RLSettings(max_steps=4 if quick else 100, learning_rate=2e-5, batch_size=64, format_weight=0.1),
        grpo=critic_rl.GRPOSettings(num_generations=8, temperature=1.0, beta=0.0, max_completion_length=80),
        template=TemplateSettings(style="compact"),
        eval=EvalSettings(max_new_tokens=80, batch_size=64),
        meta_samples=4 if quick else 8,
    )
    result = grm.run(config, progress=False, teacher=SlippingTeacher(slip=0.4, seed=args.seed))
    t_grm = time.time() - t0
    meta_config = meta_rm.MetaRMConfig(
        model=ModelConfig(name_or_path=str(base), device="cpu"),
        data=meta_rm.MetaRMData(judgments=result["judgments"], stage="final", eval_items=20 if quick else 100),
        run=RunSettings(
            output_dir=str(out / "meta_rm"),
            max_steps=20 if quick else 300,
            per_device_train_batch_size=32,
            learning_rate=1e-3,
            lr_scheduler_type="cosine",
            logging_steps=50,
            save_steps=10_000,
            seed=args.seed,
        ),
    )
    meta = meta_rm.run(meta_config, progress=False)
    rows = [json.loads(line) for line in held.read_text().splitlines()]
    per_item = voting(result["final"], meta["final"], rows, k=8, keep=4, seed=args.seed)
    metrics = result["metrics"]
    table = ["| held-out best-of-N accuracy | value ± SE |", "|---|---|"]
    for name, key in (("base model (greedy)", "before"), ("after RFT", "after RFT"), ("after GRPO", "after GRPO")):
        found = metrics.get(key) or {}
        if found:
            table.append(f"| {name} | {found['accuracy']:.3f} ± {found['stderr']:.3f} |")
    final = "after GRPO" if metrics.get("after GRPO") else "after RFT"
    for name, (a, b) in (("base -> final", ("before", final)), ("RFT -> GRPO", ("after RFT", "after GRPO"))):
        if metrics.get(a) and metrics.get(b) and a != b:
            diff = metrics[b]["accuracy"] - metrics[a]["accuracy"]
            se = math.hypot(metrics[a]["stderr"], metrics[b]["stderr"])
            table.append(f"| gain {name} | {diff:+.3f} ± {se:.3f} (unpaired) |")
    k1 = per_item["k=1"]
    for name, values in per_item.items():
        m, se = mean_se(values)
        line = f"| GRM sampled, {name} | {m:.3f} ± {se:.3f} |"
        if name != "k=1":
            gain, gain_se = mean_se([v - w for v, w in zip(values, k1)])
            line = (
                line[:-2]
                + f"; vs k=1: {gain:+.3f} ± {gain_se:.3f} (paired), ratio {m / statistics.fmean(k1) if statistics.fmean(k1) else math.nan:.2f} |"
            )
        table.append(line)
    after = meta["metrics"]["after"]
    table.append(
        f"| meta RM on held-out judgments | accuracy {after['accuracy']:.3f}, AUC {after['auc']:.3f}, "
        f"top-trusted right {after['top_right']:.3f} (base rate {after['base_rate']:.3f}) |"
    )
    text = "\n".join(table)
    print(text)
    print(f"\nrejective fine-tuning: {metrics.get('rejections')}")
    print(f"grm {t_grm:.0f} s, total {time.time() - t0:.0f} s; {n_train} train / {n_eval} held-out items")
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(
        json.dumps({"metrics": metrics, "meta": meta["metrics"], "voting": per_item}, indent=2, default=str)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
