"""Sampled judgments/s of test-time scaling: k samples per item in one call vs k sequential calls, one run.

A critic (``Critic``, the engine behind ``critics serve``) judges the same listwise items (N = 2..4
arithmetic claims, DeepSeek-GRM's score lists) k times at temperature 1.0, two ways:

- batched: one ``critique(items, samples=k)`` call; each prompt is encoded once and its k samples
  are sequences of the same generation batch (``generate(n=k)``), then voted (``sum``);
- sequential (the peer): k calls of ``critique(items, samples=1)``, as a client looping over
  samples (or ``critics eval`` before this) would.

Both sides judge ``items * k`` prompts with the same model, template, token budget and seed, for
each request size in ``--items`` (1: how OpenRLHF calls a remote reward; more: a ``/score`` body or
an eval batch). The model is ``--checkpoint`` (a trained critic), else a tiny random Llama from
``critics.tiny``; a random model stops early only by chance, so both sides mostly run to
``--max-new-tokens``. Goal: batched / sequential >= 3x.

    python benchmarks/vote_throughput.py [--checkpoint DIR] [--items 1,4,16] [--samples 8] [--rounds 3]
    python benchmarks/vote_throughput.py --smoke    # a few seconds

What bounds the ratio: batching amortises each decoding step's fixed cost (Python, kernel launches)
over k times the sequences, while the sequential side already batches the request's items. On a
CPU the tiny model's forward turns compute-bound around a hundred sequences, so the gain shrinks as
items grow; on a GPU the fixed cost dominates far longer. Measured on the shared 2-core CPU (load
average 6-9 from other jobs; one torch thread), k = 8, 32 new tokens, the defaults: 1 item 7.7x,
4 items 3.6x, 16 items 2.1x (other runs: 1 item 5.4x; 4 items 2.2-3.3x; 8 items 2.4x; 16 items 1.65x).
On an NVIDIA H200 (torch 2.11, the same tiny model, k = 8, 32 new tokens, 2 rounds): 16 items 5.1x and
4.5x (1,014 vs 199 and 833 vs 187 judgments/s), 64 items 4.5x (3,073 vs 684). That run had no per-size
warm-up pass, so the first size of each run paid its shape's warm-up on the batched side (1 item
0.29x, 4 items 0.59x there); the pass was added after it and has not run on a GPU since.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time

import torch

from critics.judging.spec import CriticSpec
from critics.serving.critic import Critic
from critics.tiny import save_tiny_checkpoint


def listwise_items(n: int, seed: int) -> list[dict]:
    """``n`` listwise items: 2..4 claims about one sum, one of them true."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        a, b = rng.randint(1, 40), rng.randint(1, 40)
        claims = [a + b] + rng.sample([a + b + d for d in (-3, -2, -1, 1, 2, 3)], rng.randint(1, 3))
        rng.shuffle(claims)
        items.append({"question": f"{a}+{b}?", "responses": [f"{a}+{b}={c}" for c in claims]})
    return items


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[int, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a critic checkpoint (default: a tiny random Llama)")
    parser.add_argument("--items", default="1,4,16", help="items per request, comma-separated (one run each)")
    parser.add_argument("--samples", type=int, default=8, help="k")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per side (the median is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="1 and 4 items, 16 new tokens, 1 round")
    args = parser.parse_args(argv)
    if args.smoke:
        args.items, args.max_new_tokens, args.rounds = "1,4", 16, 1
    sizes = [int(n) for n in args.items.split(",")]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or str(save_tiny_checkpoint(f"{tmp}/tiny", seed=args.seed))
        spec = CriticSpec(
            tasks=["listwise"], style="compact", max_new_tokens=args.max_new_tokens, temperature=1.0, vote="sum"
        )
        k, ratios = args.samples, {}
        with Critic.from_pretrained(
            checkpoint, spec=spec, backend_options={"device": args.device}, max_batch_size=max(sizes)
        ) as critic:
            critic.critique(listwise_items(2, args.seed), samples=2)  # warm-up: first-call costs belong to neither side
            where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
            print(
                f"listwise items x k = {k} samples, {args.max_new_tokens} new tokens, median of {args.rounds} "
                f"round(s), on {where}"
            )
            for size in sizes:
                ratios[size] = compare(critic, listwise_items(size, args.seed), k, args.rounds, args.seed)
    return ratios


def compare(critic: Critic, items: list[dict], k: int, rounds: int, seed: int) -> float:
    """Time both sides on ``items``; print their judgments/s and the ratio; return the ratio."""
    batched, sequential = [], []
    # one untimed pass of each side first: a new batch shape costs a one-time warm-up (on a GPU, the
    # kernels and caches of that shape), which belongs to neither side (an H200 run without it: 0.3x at 1 item)
    critic.critique(items, samples=k)
    critic.critique(items, samples=1)
    for r in range(rounds):
        torch.manual_seed(seed + r)
        batched.append(timed(lambda: critic.critique(items, samples=k)))
        torch.manual_seed(seed + r)
        sequential.append(timed(lambda: [critic.critique(items, samples=1) for _ in range(k)]))
    judgments = len(items) * k
    fast, slow = judgments / statistics.median(batched), judgments / statistics.median(sequential)
    print(
        f"  {len(items):3d} item(s): batched (one call, n = k) {fast:7.1f} judgments/s, sequential (k calls) "
        f"{slow:7.1f} judgments/s, ratio {fast / slow:.2f}x (goal >= 3x)"
    )
    return fast / slow


if __name__ == "__main__":
    main()
