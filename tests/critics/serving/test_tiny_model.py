"""A real (tiny, random) transformers critic behind the server: in process, and through
``critics serve`` in a subprocess stopped with SIGTERM while requests are in flight.

A random model writes no valid verdicts, so its scores are None: these tests check shapes, token
counts and that nothing fails, not the judgments.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from critics.serving.critic import Critic
from critics.serving.server import ServerSettings, create_app
from tests.critics.serving.test_server import metric

ROOT = Path(__file__).resolve().parents[3]
CHATML = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{r}<|im_end|>"


@pytest.fixture
def one_thread():
    """Tiny-model generation is erratic at 2 torch threads on this machine (STACK.md)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_tiny_model_serves_score_get_reward_and_chat(tiny_checkpoint, one_thread):
    critic = Critic.from_pretrained(
        str(tiny_checkpoint), backend_options={"device": "cpu"}, style="compact", max_new_tokens=8
    )
    with TestClient(create_app(critic, ServerSettings(invalid_reward=-1.0))) as client:
        scored = client.post("/score", json={"items": [{"response": "2+2=4"}, {"response": "2+2=5"}]})
        rewarded = client.post("/get_reward", json={"query": [CHATML.format(q="2+2?", r="4"), "raw text"]})
        chat = client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        )
        page = client.get("/metrics").text
    assert [r.status_code for r in (scored, rewarded, chat)] == [200, 200, 200]
    results = scored.json()["results"]
    assert len(results) == 2 and all(
        set(r) == {"score", "verdict", "valid", "ok", "reason", "prompt", "critique"} for r in results
    )
    assert all(r["score"] is None or 0.0 <= r["score"] <= 1.0 for r in results)
    reward = rewarded.json()
    assert len(reward["rewards"]) == 2 and all(isinstance(x, float) for x in reward["rewards"])
    invalid = reward["extra_logs"]["critic_valid"].count(0.0)
    assert reward["rewards"].count(-1.0) >= invalid
    assert metric(page, "critics_invalid_verdicts_total", 'endpoint="/get_reward"') == invalid
    usage = chat.json()["usage"]
    # the character tokenizer: <|im_start|> "user\nhi" <|im_end|> "\n" <|im_start|> "assistant\n"
    assert usage["prompt_tokens"] == 1 + 7 + 1 + 1 + 1 + 10
    assert 0 <= usage["completion_tokens"] <= 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert metric(page, "critics_server_errors_total", 'endpoint="/get_reward"') == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"critics serve exited with {process.returncode}: {process.stderr.read()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("critics serve did not become healthy")


def test_critics_serve_finishes_requests_in_flight_on_sigterm(tiny_checkpoint):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "critics.cli",
        "serve",
        str(tiny_checkpoint),
        "--port",
        str(port),
        "--style",
        "compact",
        "--max-new-tokens",
        "200",
        "--max-batch-size",
        "1",
        "--log-level",
        "warning",
        "--device",
        "cpu",
        "--api-key",
        "k",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_health(url, process)
        results = []

        def call(i):
            body = {"query": [CHATML.format(q=f"{i}+1?", r=str(i + 1))]}
            results.append(httpx.post(url + "/get_reward", json=body, headers={"X-API-Key": "k"}, timeout=120))

        callers = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        for caller in callers:
            caller.start()
        deadline = time.monotonic() + 60
        while (
            metric(httpx.get(url + "/metrics", headers={"X-API-Key": "k"}).text, "critics_in_flight") < 6
        ):  # all six queued: none races the shutdown
            assert time.monotonic() < deadline, "the requests never reached the batcher"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        for caller in callers:
            caller.join(120)
        returncode = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
    assert [r.status_code for r in results] == [200] * 6, [r.text for r in results]
    assert all(len(r.json()["rewards"]) == 1 for r in results)
    assert returncode in (0, -signal.SIGTERM), process.stderr.read()[-3000:]  # uvicorn re-raises the signal
