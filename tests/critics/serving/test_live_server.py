"""A real uvicorn server on localhost, called by real clients: the ``openai`` package, an aiohttp
client sending OpenRLHF's request shape, and concurrent requests that fill the queue or outlive a
shutdown."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import aiohttp
import httpx
import openai
import pytest

from critics.serving.batcher import BatcherClosed
from critics.serving.server import ServerSettings
from tests.critics.serving.helpers import running_server, wait_until

CHATML = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{r}<|im_end|><|endoftext|>"


def test_the_openai_client_lists_models_and_gets_chat_completions(critic):
    with running_server(critic, ServerSettings(api_key="k", served_model_name="tiny-critic")) as (url, _):
        client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
        models = [m.id for m in client.models.list()]
        completion = client.chat.completions.create(
            model="tiny-critic", messages=[{"role": "user", "content": "Is 2+2=4?"}], max_tokens=16, n=2
        )
        with pytest.raises(openai.NotFoundError, match="tiny-critic"):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
    assert models == ["tiny-critic"]
    assert [c.message.content for c in completion.choices] == ["echo: Is 2+2=4?"] * 2
    usage = completion.usage  # estimated: the scripted backend has no tokenizer
    assert (
        completion.choices[0].finish_reason == "stop"
        and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    )


async def post_rewards(url: str, bodies: list[dict]) -> list[tuple[int, dict]]:
    """POST every body to /get_reward at once, as OpenRLHF's aiohttp workers do."""
    async with aiohttp.ClientSession(headers={"Content-Type": "application/json"}) as session:

        async def one(body):
            async with session.post(url + "/get_reward", json=body, timeout=aiohttp.ClientTimeout(30)) as response:
                return response.status, await response.json()

        return await asyncio.gather(*(one(b) for b in bodies))


def test_aiohttp_openrlhf_requests_one_sample_each_are_batched_together(make_critic):
    critic = make_critic(max_wait_ms=50)
    queries = [
        CHATML.format(q=f"{i}+1?", r=f"{i + 1} verdict={'Correct' if i % 2 else 'Incorrect'}") for i in range(16)
    ]
    bodies = [
        {"query": [q], "prompts": [q.split("<|im_start|>assistant")[0]], "labels": [str(i + 1)]}
        for i, q in enumerate(queries)
    ]
    with running_server(critic) as (url, _):
        single = asyncio.run(post_rewards(url, bodies))
        batched = asyncio.run(post_rewards(url, [{"query": queries}]))
    assert [status for status, _ in single] == [200] * 16
    assert [body["rewards"] for _, body in single] == [[float(i % 2)] for i in range(16)]
    assert all(body["extra_logs"] == {"critic_valid": [1.0]} for _, body in single)
    assert batched[0][1]["rewards"] == [float(i % 2) for i in range(16)]
    assert max(critic.batcher.stats.batch_sizes) > 1  # concurrent one-sample requests shared a batch


def test_a_full_queue_answers_503_with_retry_after_and_then_recovers(make_critic):
    gate = threading.Event()
    critic = make_critic(gate=gate, max_batch_size=1, max_queue=2, max_wait_ms=0)
    body = {"query": ["verdict=Correct"]}

    async def scenario(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            first = asyncio.create_task(client.post("/get_reward", json=body))  # taken by the worker, blocked
            await asyncio.to_thread(wait_until, lambda: critic.batcher.in_flight == 1, 10, "the first job")
            queued = [asyncio.create_task(client.post("/get_reward", json=body)) for _ in range(2)]
            await asyncio.to_thread(wait_until, lambda: critic.batcher.queue_depth == 2, 10, "a full queue")
            rejected = await client.post("/get_reward", json=body)
            gate.set()
            return rejected, await asyncio.gather(first, *queued), await client.post("/get_reward", json=body)

    with running_server(critic, ServerSettings(max_items_per_request=2, retry_after_s=3)) as (url, _):
        rejected, held, later = asyncio.run(scenario(url))
    assert rejected.status_code == 503 and rejected.headers["retry-after"] == "3"
    assert "queue full" in rejected.json()["error"]["message"]
    assert [r.status_code for r in held] == [200, 200, 200] and later.status_code == 200
    assert critic.batcher.stats.rejected_jobs == 1


def test_shutdown_stops_accepting_lets_the_request_in_flight_finish_then_closes_the_batcher(make_critic):
    gate = threading.Event()
    critic = make_critic(gate=gate)
    result, health = {}, []
    # the graceful timeout outlasts the 10 s the test may spend watching the socket close: with the default
    # 10 s the two raced on a loaded machine, and the server cancelled the request it should have let finish
    with running_server(critic, graceful_timeout_s=30) as (url, server):
        caller = threading.Thread(
            target=lambda: result.update(
                r=httpx.post(url + "/get_reward", json={"query": ["verdict=Correct"]}, timeout=30)
            )
        )
        caller.start()
        wait_until(lambda: critic.batcher.in_flight == 1, what="the request in flight")
        server.handle_exit(signal.SIGTERM, None)  # what uvicorn does on SIGTERM
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # /health says "draining" until the listening socket closes
            try:
                health.append(httpx.get(url + "/health", timeout=5).json()["status"])
            except (httpx.ConnectError, httpx.ReadError):  # refused, or reset in the backlog of the closing socket
                break
        else:
            pytest.fail("the server still accepts connections 10 s after SIGTERM")
        assert caller.is_alive()  # the request in flight is still waiting for its batch
        gate.set()
        caller.join(30)
    assert set(health) <= {"draining"}
    assert result["r"].status_code == 200 and result["r"].json()["rewards"] == [1.0]
    with pytest.raises(BatcherClosed):
        critic.batcher.submit("late")
