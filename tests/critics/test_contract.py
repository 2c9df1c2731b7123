"""A trained critic carries its contract (issue 16's must-show): the demo's compact critic, trained
with 80-token verdicts, gets the same verdicts with **no** style or token flags from every way of
using it: ``Critic.from_pretrained``, ``critics serve`` (a real process) through ``/score``,
``/get_reward`` and the ``openai`` client, and verl's ``compute_score`` and ``compute_score_async``
with their default arguments."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from critics import demo
from critics.judging.tasks import read_verdict, render
from critics.serving import Critic
from critics.serving.adapters import compute_score, compute_score_async

ITEMS = 64


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The demo's critic after a short SFT on its compact critiques (about 25 s on 2 CPU cores)."""
    import torch

    from critics.tiny import save_tiny_checkpoint

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("contract")
    settings = demo.DemoSettings(output_dir=str(out), n_claims=2000, eval_size=100, sft_steps=250, grpo_steps=0)
    demo.quiet()
    demo.build_dataset(settings, progress=False)
    base = save_tiny_checkpoint(out / "tiny-base", seed=0)
    sft, _ = demo.sft_then_grpo(
        out,
        base,
        "pointwise",
        None,
        sft_steps=settings.sft_steps,
        grpo_steps=0,
        grpo_learning_rate=0.0,
        grpo_batch_size=64,
        eval_size=100,
        eval_batch_size=128,
        max_length=128,
        seed=0,
        progress=False,
    )
    return Path(sft["final"])


@pytest.fixture(scope="module")
def held_out() -> list[dict]:
    rng = random.Random(12345)  # claims drawn apart from the training seed
    claims = [demo.make_claim(rng)[0] for _ in range(ITEMS)]
    return [{"question": f"Is it true that {c}?", "response": c} for c in claims]


@pytest.fixture(scope="module")
def served(trained):
    """``critics serve CKPT`` in its own process, with nothing but a port and the device."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "critics.cli", "serve", str(trained), "--port", str(port), "--device", "cpu"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"critics serve did not start:\n{process.stdout.read() if process.stdout else ''}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0]
    assert "overriding" not in output  # no spec field was overridden: the server judged by the checkpoint's spec


def score_of(verdict) -> float | None:
    return None if not verdict.ok else (1.0 if verdict.value == "correct" else 0.0)


def test_every_way_of_using_the_critic_reads_it_as_it_was_trained(trained, held_out, served):
    rows = [{"task": "pointwise", **item} for item in held_out]
    with Critic.from_pretrained(str(trained), backend_options={"device": "cpu"}) as critic:
        assert (critic.spec.style, critic.spec.max_new_tokens) == ("compact", 80)
        expected = [c.verdict.value if c.verdict.ok else None for c in critic.critique(held_out)]
    valid = sum(v is not None for v in expected) / len(expected)
    assert valid >= 0.95, f"only {valid:.2f} of the held-out items got a verdict"
    scores = [None if v is None else (1.0 if v == "correct" else 0.0) for v in expected]

    # the native endpoint
    results = httpx.post(f"{served}/score", json={"items": held_out}, timeout=120).json()["results"]
    assert [r["verdict"] if r["valid"] else None for r in results] == expected

    # OpenRLHF's remote reward: the policy's whole decoded sequence per query
    queries = [
        f"<|im_start|>user\n{i['question']}<|im_end|>\n<|im_start|>assistant\n{i['response']}<|im_end|>"
        for i in held_out
    ]
    reward = httpx.post(f"{served}/get_reward", json={"query": queries}, timeout=120).json()
    assert reward["extra_logs"]["critic_valid"] == [0.0 if s is None else 1.0 for s in scores]
    assert reward["rewards"] == [0.0 if s is None else s for s in scores]

    # the openai client: the prompt layout comes from the served spec, the length from the server
    from openai import OpenAI

    client = OpenAI(base_url=f"{served}/v1", api_key="none")
    model = client.models.list().data[0]
    spec = model.model_extra["critic_spec"]
    assert (spec["style"], spec["max_new_tokens"], spec["prompt_budget"]) == ("compact", 80, 1024 - 80)
    chat = []
    for row in rows[:16]:
        reply = client.chat.completions.create(
            model=model.id, messages=render(row, style=spec["style"], think=spec["think"])
        )
        verdict = read_verdict(reply.choices[0].message.content, row)
        chat.append(verdict.value if verdict.ok else None)
    assert chat == expected[:16]

    # verl, with its default arguments: a URL and nothing about the template or the length
    verl = [
        compute_score("demo", i["response"], None, {"question": i["question"]}, critic_url=served) for i in held_out
    ]
    assert [v["score"] if v["critic_valid"] else None for v in verl] == scores

    async def all_async():
        return await asyncio.gather(
            *(
                compute_score_async(
                    "demo", i["response"], None, {"question": i["question"]}, reward_router_address=served
                )
                for i in held_out
            )
        )

    verl_async = asyncio.run(all_async())
    assert [v["score"] if v["critic_valid"] else None for v in verl_async] == scores
