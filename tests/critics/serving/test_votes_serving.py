"""Test-time scaling where a critic is used: Critic, /score (per request and bounded), RemoteCritic,
reward_function, and ``critics serve --samples 8 --vote sum`` on a tiny real checkpoint."""

from __future__ import annotations

import itertools
import json
import threading
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient

from critics import cli
from critics.config import ConfigError
from critics.judging.chat import ChatModel
from critics.judging.spec import CriticSpec
from critics.serving import server
from critics.serving.adapters import reward_function
from critics.serving.critic import Critic
from critics.serving.remote import RemoteCritic
from critics.serving.server import ServerSettings, create_app
from tests.critics.serving.helpers import running_server

ITEMS = [
    {"question": "2+3?", "responses": ["2+3=5", "2+3=6"]},
    {"question": "1+1?", "responses": ["1+1=3", "1+1=2", "1+1=4"]},
]


class SamplingBackend(ChatModel):
    """Cycles through scripted score lists (one per response of the prompt), counting generate calls."""

    name = "sampling"

    def __init__(self):
        self.calls: list[tuple[int, int]] = []  # (conversations, n) per call
        self.lock, self.draws = threading.Lock(), itertools.count()

    def generate(self, conversations, *, max_new_tokens, temperature, n=1):
        with self.lock:
            self.calls.append((len(conversations), n))
        out = []
        for conversation in conversations:
            count = conversation[-1]["content"].count("\n") - 1  # compact: one line per response, Q, the ask
            for _ in range(n):
                first = 9 if next(self.draws) % 4 else 2  # three samples in four favour response 1
                out.append("\\boxed{" + ", ".join([str(first)] + ["4"] * (count - 1)) + "}")
        return out


def _critic(**fields) -> Critic:
    spec = CriticSpec(tasks=["listwise"], style="compact", max_new_tokens=16, temperature=1.0, **fields)
    return Critic(SamplingBackend(), spec)


def test_a_critic_samples_k_per_item_in_one_call_and_votes() -> None:
    with _critic(samples=8, vote="sum") as critic:
        out = critic.critique(ITEMS)
        assert critic.backend.calls == [(2, 8)]
        assert [len(c.samples) for c in out] == [8, 8]
        assert out[0].verdict.value == (9 * 6 + 2 * 2, 32) and out[1].verdict.value[1:] == (32, 32)
        again = critic.critique(ITEMS[:1], samples=2, vote="mean")  # per call
        assert len(again[0].samples) == 2 and critic.backend.calls[-1] == (1, 2)
        with pytest.raises(ValueError, match="vote 'meta' needs a meta RM"):
            critic.critique(ITEMS, vote="meta")
        with pytest.raises(ValueError, match="spec.samples must be a positive int"):
            critic.critique(ITEMS, samples=0)
    with pytest.raises(ValueError, match="give the critic a meta RM"):
        _critic(samples=4, vote="meta")


def test_score_takes_samples_and_vote_per_request_within_the_server_bound() -> None:
    with _critic() as critic:
        client = TestClient(create_app(critic, ServerSettings(max_samples=8)))
        body = client.post("/score", json={"items": ITEMS, "samples": 8, "vote": "sum"}).json()
        first = body["results"][0]
        assert first["verdict"] == [58, 32] and len(first["samples"]) == 8 and first["valid"]
        assert {s["verdict"][1] for s in first["samples"]} == {4}
        plain = client.post("/score", json={"items": ITEMS}).json()["results"][0]
        assert "samples" not in plain and len(plain["verdict"]) == 2
        over = client.post("/score", json={"items": ITEMS, "samples": 9})
        assert over.status_code == 413 and "max_samples (8)" in over.json()["error"]["message"]
        assert client.post("/score", json={"items": ITEMS, "samples": 0}).status_code == 422
        bad = client.post("/score", json={"items": ITEMS, "samples": 2, "vote": "summ"})
        assert bad.status_code == 422 and "did you mean 'sum'" in bad.json()["error"]["message"]
        meta = client.post("/score", json={"items": ITEMS, "samples": 2, "vote": "meta"})
        assert meta.status_code == 422 and "--meta-rm" in meta.json()["error"]["message"]
    with _critic(samples=16) as greedy_bound, pytest.raises(ConfigError, match="max_samples"):
        create_app(greedy_bound, ServerSettings(max_samples=8))


def test_a_vote_the_task_cannot_take_is_a_422_naming_it() -> None:
    critic = Critic(SamplingBackend(), CriticSpec(tasks=["pairwise", "listwise"], style="compact", temperature=1.0))
    with critic:
        client = TestClient(create_app(critic, ServerSettings()))
        item = {"question": "q", "response_a": "a", "response_b": "b"}
        response = client.post("/score", json={"task": "pairwise", "items": [item], "samples": 2, "vote": "sum"})
        assert (
            response.status_code == 422 and "pairwise verdicts vote by majority" in response.json()["error"]["message"]
        )
        fine = client.post("/score", json={"task": "listwise", "items": ITEMS, "samples": 2, "vote": "sum"})
        assert fine.status_code == 200


def test_remote_critic_and_reward_function_pass_samples_and_vote() -> None:
    with _critic() as critic, running_server(critic) as (url, _):
        remote = RemoteCritic(url)
        out = remote.critique(ITEMS, samples=4, vote="sum")
        assert [len(c.samples) for c in out] == [4, 4] and isinstance(out[0].verdict.value, tuple)
        assert critic.backend.calls[-1] == (2, 4)
        assert len(remote.score(ITEMS, samples=2)) == 2 and critic.backend.calls[-1] == (2, 2)
        with pytest.raises(ValueError, match="unknown vote"):
            remote.critique(ITEMS, vote="best")
        reward = reward_function(url, samples=4, vote="mean")
        scores = reward(prompts=["2+3?", "1+1?"], completions=["2+3=5", "1+1=3"])
        assert critic.backend.calls[-1] == (2, 4) and all(0.0 <= s <= 1.0 for s in scores)
        with pytest.raises(ValueError, match="samples must be a positive int"):
            reward_function(url, samples=0)
    local = reward_function(_critic(), samples=3)
    assert len(local(prompts=["q"], completions=["a"])) == 1 and local.critic.backend.calls == [(1, 3)]
    local.critic.close()


@pytest.fixture
def captured(monkeypatch):
    seen = {}

    def fake_from_pretrained(path, backend="transformers", *, backend_options=None, spec=None, **settings):
        seen.update(critic=settings)
        return SimpleNamespace(spec=CriticSpec(tasks=["listwise"], samples=8, temperature=1.0, vote="sum"))

    monkeypatch.setattr(Critic, "from_pretrained", staticmethod(fake_from_pretrained))
    monkeypatch.setattr(server, "serve", lambda critic, settings: seen.update(settings=settings))
    return seen


def test_serve_command_passes_samples_vote_meta_rm_and_the_bound(captured) -> None:
    argv = ["serve", "ckpt", "--samples", "8", "--vote", "sum", "--meta-rm", "meta", "--max-samples", "32"]
    assert cli.main(argv) == 0
    assert captured["critic"] == {"samples": 8, "vote": "sum", "meta_rm": "meta"}
    assert captured["settings"].max_samples == 32


def test_critics_serve_samples_8_vote_sum_answers_listwise_items_in_one_batch(tiny_checkpoint) -> None:
    critic = Critic.from_pretrained(
        str(tiny_checkpoint),
        backend_options={"device": "cpu"},
        tasks=["listwise"],
        style="compact",
        max_new_tokens=8,
        temperature=1.0,
        samples=8,
        vote="sum",
    )
    calls = []
    generate = critic.backend.generate
    critic.backend.generate = lambda conversations, **kw: (
        calls.append((len(conversations), kw.get("n"))) or generate(conversations, **kw)
    )
    with critic, running_server(critic) as (url, _):
        assert httpx.get(f"{url}/spec").json()["samples"] == 8
        response = httpx.post(f"{url}/score", json={"items": ITEMS}, timeout=60)
    results = response.json()["results"]
    assert response.status_code == 200 and calls == [(2, 8)]
    assert all(len(r["samples"]) == 8 for r in results)
    assert all(r["score"] is None or 0.0 <= r["score"] <= 1.0 for r in results)
    assert json.dumps(results)  # JSON all the way


def test_vote_throughput_benchmark_smoke_run_prints_both_sides_and_the_ratio() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run(
        [sys.executable, "benchmarks/vote_throughput.py", "--smoke", "--samples", "4"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if "ratio" in line]
    assert len(lines) == 2 and all(
        "batched (one call, n = k)" in line and "sequential (k calls)" in line for line in lines
    )


def test_verl_adapters_sample_and_vote() -> None:
    import asyncio

    from critics.serving.adapters import compute_score, compute_score_async

    args = ("gsm8k", "2+3=5", "5", {"question": "2+3?"})
    with _critic() as critic, running_server(critic) as (url, _):
        out = compute_score(*args, critic_url=url, samples=4, vote="mean")
        assert critic.backend.calls[-1] == (1, 4) and out["critic_valid"] == 1.0
        # the async reward loop asks the chat endpoint for k choices in one request and votes them
        out = asyncio.run(compute_score_async(*args, reward_router_address=url, samples=4, vote="mean"))
        assert critic.backend.calls[-1] == (1, 4) and out["critic_valid"] == 1.0
        assert out["score"] == pytest.approx((3 * 8 / 9 + 1 / 9) / 4)  # three samples in four say 9, one says 2
        with pytest.raises(ValueError, match="has no meta RM"):
            asyncio.run(compute_score_async(*args, reward_router_address=url, samples=4, vote="meta"))
        with pytest.raises(ValueError, match="samples must be a positive int"):
            compute_score(*args, critic_url=url, samples=0)
