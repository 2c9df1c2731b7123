"""Scored requests/s of `critics serve` with dynamic batching vs one-at-a-time generation, one run.

A real server (`critics serve` in a subprocess) and a real client (aiohttp) sending OpenRLHF's
request shape, one sample per `/get_reward` request, `--concurrency` requests at a time: how
OpenRLHF calls a remote reward. Same model, same server, same requests; the only difference is
`--max-batch-size` (32: concurrent requests are judged together; 1: one generation at a time).
The model is `--checkpoint` (a trained tiny critic, say), else a tiny random Llama from
`critics.tiny`. A random model stops early only by chance, which favours the one-at-a-time side
(a batch runs until its longest critique ends). Goal: ratio >= 4.

Its ceiling: the same items judged in this process by the same engine (`Critic.critique`), no HTTP
and no waiting, in batches of the server's `--batch-size`: what the server would reach if HTTP and
its callers cost nothing. Goal: served / ceiling >= 0.9. (Handed over all at once, the items run in
bigger batches than `--concurrency` callers can ever fill; that rate is printed too.) The critic
is read as its spec says; `--style` and `--max-new-tokens` override it.

    python benchmarks/serving_throughput.py [--checkpoint DIR] [--requests 256] [--concurrency 32]
    python benchmarks/serving_throughput.py --vocab real    # the tiny model over a 129k-token vocabulary
    python benchmarks/serving_throughput.py --vocab both    # char, then real

Without ``--checkpoint``, ``--vocab real`` builds the tiny random Llama over DeepSeek-V3/V4's
129k-token BPE (``critics.tiny``, the ``bench`` extra) instead of characters: the logits and the
tied ``lm_head`` then weigh on every generated token as in a real critic.

Measured on the 2-core CPU, the demo critic (SFT, 80-token verdicts), 256 requests at concurrency
32, three runs: dynamic batching 195-216 req/s against 19.3 one at a time (10x); ceiling 216-251
items/s, served / ceiling 0.78, 0.79, 1.00 (0.60 before the batcher waited for its callers to come
back: mean batch 15.5 -> 32; the server's own thread, parsing and answering 32 requests per batch,
costs the rest).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from transformers import AutoTokenizer

from critics.judging.spec import CriticSpec, find_spec
from critics.tiny import save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CHATML = "<|im_start|>user\nWhat is {a}+{b}?<|im_end|>\n<|im_start|>assistant\n{a}+{b} = {c}<|im_end|>"


def start_server(checkpoint: str, port: int, batch_size: int, args: argparse.Namespace) -> subprocess.Popen:
    """`critics serve` on ``port``; torch at one thread unless OMP_NUM_THREADS says otherwise (STACK.md)."""
    command = [
        sys.executable,
        "-m",
        "critics.cli",
        "serve",
        checkpoint,
        "--port",
        str(port),
        "--max-batch-size",
        str(batch_size),
        "--max-wait-ms",
        "5",
        "--device",
        args.device,
        "--log-level",
        "warning",
    ]
    command += [a for flag, value in overrides(args).items() for a in (f"--{flag.replace('_', '-')}", str(value))]
    env = {"OMP_NUM_THREADS": "1", **os.environ, "TQDM_DISABLE": "1"}
    return subprocess.Popen(command, cwd=ROOT, env=env)


async def wait_healthy(url: str, server: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"critics serve exited with status {server.returncode}")
            try:
                async with session.get(url + "/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("critics serve did not become healthy")


def overrides(args: argparse.Namespace) -> dict:
    """The spec fields given on the command line (else the checkpoint's spec decides)."""
    return {k: v for k, v in (("style", args.style), ("max_new_tokens", args.max_new_tokens)) if v is not None}


def query(i: int) -> str:
    """The ``i``-th request's query: a policy's decoded sequence, as OpenRLHF sends it."""
    return CHATML.format(a=i % 97, b=i % 89, c=i % 97 + i % 89 + i % 2)


async def drive(url: str, n: int, concurrency: int, offset: int = 0) -> tuple[float, list[float]]:
    """Send ``n`` one-sample /get_reward requests, ``concurrency`` at a time: (seconds, latencies)."""
    todo, latencies = iter(range(offset, offset + n)), []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:

        async def worker():
            for i in todo:
                start = time.perf_counter()
                async with session.post(url + "/get_reward", json={"query": [query(i)]}) as response:
                    body = await response.json()
                    if response.status != 200 or len(body["rewards"]) != 1:
                        raise RuntimeError(f"request {i} failed: {response.status} {body}")
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies


async def server_counters(url: str) -> dict[str, float]:
    """The server's batch sizes and busy time so far (``/metrics``)."""
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as response:
        samples = dict(line.rsplit(" ", 1) for line in (await response.text()).splitlines() if not line.startswith("#"))
    return {
        name: float(samples[name])
        for name in ("critics_batch_size_sum", "critics_batch_size_count", "critics_busy_seconds_total")
    }


def measure(checkpoint: str, batch_size: int, args: argparse.Namespace) -> dict:
    """Requests/s and latency quantiles of one server configuration (after a warm-up)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = start_server(checkpoint, port, batch_size, args)
    try:
        asyncio.run(wait_healthy(url, server))
        asyncio.run(drive(url, args.warmup, min(args.concurrency, args.warmup)))
        before = asyncio.run(server_counters(url))
        seconds, latencies = asyncio.run(drive(url, args.requests, args.concurrency, offset=args.warmup))
        after = asyncio.run(server_counters(url))
    finally:
        server.terminate()
        server.wait(60)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    delta = {name: after[name] - before[name] for name in after}
    return {
        "rate": args.requests / seconds,
        "p50": q[49],
        "p99": q[98],
        "batch": delta["critics_batch_size_sum"] / max(delta["critics_batch_size_count"], 1.0),
        "busy": delta["critics_busy_seconds_total"] / seconds,
    }


def ceiling(checkpoint: str, args: argparse.Namespace) -> dict:
    """The same items judged in this process by the same engine, no HTTP and no waiting: all of them
    handed over at once, and in batches of the server's ``--batch-size``; items/s of each."""
    import torch

    from critics.judging.tasks import reward_item
    from critics.serving import Critic
    from critics.serving.queries import split_query

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = {}
    for name, batch in (("all at once", args.requests), ("server batches", args.batch_size)):
        critic = Critic.from_pretrained(
            checkpoint,
            backend_options={"device": args.device, "batch_size": batch},
            max_batch_size=batch,
            **overrides(args),
        )
        with critic:
            items = [reward_item(critic.task, *split_query(query(i))) for i in range(args.warmup + args.requests)]
            critic.critique(items[: args.warmup])
            start = time.perf_counter()
            critic.critique(items[args.warmup :])
            out[name] = args.requests / (time.perf_counter() - start)
    return out


def tiny_checkpoint(vocab: str) -> str:
    """A random tiny Llama over ``vocab``, with the spec a tiny critic trained here would carry."""
    checkpoint = str(save_tiny_checkpoint(Path(tempfile.mkdtemp(prefix="serving-bench-")) / "tiny", vocab=vocab))
    CriticSpec(style="compact", max_new_tokens=48).save(checkpoint)
    return checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a critic checkpoint folder (default: a tiny random Llama)")
    parser.add_argument(
        "--vocab",
        choices=["char", "real", "both"],
        default="char",
        help="the tiny model's vocabulary (no --checkpoint)",
    )
    parser.add_argument("--requests", type=int, default=256, help="timed requests per side")
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, help="override the spec's judging length")
    parser.add_argument("--batch-size", type=int, default=32, help="max_batch_size of the batched side")
    parser.add_argument("--style", choices=["default", "compact"], help="override the spec's template")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bar from saving the tiny model
    if args.checkpoint is not None:
        if args.vocab != "char":
            raise SystemExit("--vocab builds the tiny model: give it or --checkpoint, not both")
        report(args.checkpoint, args.checkpoint, args)
        return
    for vocab in ["char", "real"] if args.vocab == "both" else [args.vocab]:
        checkpoint = tiny_checkpoint(vocab)
        size = len(AutoTokenizer.from_pretrained(checkpoint))
        report(checkpoint, f"tiny random Llama, {vocab} vocabulary of {size:,} tokens", args)


def report(checkpoint: str, model: str, args: argparse.Namespace) -> None:
    """Measure both sides and the ceiling on ``checkpoint`` and print them with the ratios."""
    batched = measure(checkpoint, args.batch_size, args)
    single = measure(checkpoint, 1, args)
    best = ceiling(checkpoint, args)
    spec = find_spec(None, checkpoint)
    length = args.max_new_tokens or (spec.max_new_tokens if spec else "the default")
    print(
        f"critics serve /get_reward, one sample per request, concurrency {args.concurrency}, "
        f"{args.requests} requests per side after {args.warmup} warm-up; {model}, "
        f"max_new_tokens {length}, device {args.device}"
    )
    for name, r in (
        ("one at a time (max_batch_size 1)", single),
        (f"dynamic batching (max_batch_size {args.batch_size})", batched),
    ):
        print(
            f"  {name:<38} {r['rate']:7.1f} req/s   p50 {r['p50'] * 1000:7.0f} ms   "
            f"p99 {r['p99'] * 1000:7.0f} ms   mean batch {r['batch']:.1f}   model busy {r['busy']:.0%}"
        )
    for name, rate in best.items():
        print(f"  in process, {name + ' (ceiling)' if name == 'server batches' else name:<27} {rate:7.1f} items/s")
    print(f"  ratio (batched / one at a time)        {batched['rate'] / single['rate']:7.2f}  (goal >= 4)")
    print(f"  ratio (served / in-process ceiling)    {batched['rate'] / best['server batches']:7.2f}  (goal >= 0.9)")
    print(f"  ratio (served / in process at once)    {batched['rate'] / best['all at once']:7.2f}", flush=True)


if __name__ == "__main__":
    main()
