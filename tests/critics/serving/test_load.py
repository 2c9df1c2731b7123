"""Load: 5,000 requests at concurrency 64 against a real server, bad ones mixed in.

Every request must come back (none lost), none with a 5xx, each with the status its kind calls for
and the valid ones with the right reward. Latencies are printed, not asserted (STYLE.md: timings
belong in benchmarks/).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import aiohttp

from critics.serving.server import ServerSettings
from tests.critics.serving.helpers import running_server
from tests.critics.serving.test_server import metric

REQUESTS, CONCURRENCY, KEY = 5000, 64, "load-key"
CHATML = "<|im_start|>user\nIs {i} even?<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>"


def plan(i: int) -> tuple[str, int]:
    """The kind of request ``i`` and the status it must get: 91% valid, the rest malformed or refused."""
    kind = {
        0: "malformed",
        1: "malformed",
        2: "malformed",
        3: "oversized",
        4: "oversized",
        5: "oversized",
        6: "no key",
        7: "no key",
        8: "no key",
        9: "wrong type",
    }.get(i % 100, "valid")
    return kind, {"malformed": 400, "oversized": 413, "no key": 401, "wrong type": 422, "valid": 200}[kind]


def request_for(i: int, kind: str) -> tuple[dict, bytes]:
    headers = {"Content-Type": "application/json"} | ({} if kind == "no key" else {"Authorization": f"Bearer {KEY}"})
    answer = f"yes verdict={'Correct' if i % 2 == 0 else 'Incorrect'}"
    if kind == "malformed":
        return headers, b'{"query": ['
    query = {
        "valid": [CHATML.format(i=i, answer=answer)],
        "no key": ["x"],
        "wrong type": [1, 2],
        "oversized": ["x" * 8192],
    }[kind]
    return headers, json.dumps({"query": query}).encode()


async def run_load(url: str) -> list[tuple[int, int, float, dict | None]]:
    """``(index, status, seconds, body of a 200)`` per request, ``CONCURRENCY`` workers sharing a queue."""
    todo, done = iter(range(REQUESTS)), []
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def worker():
            for i in todo:
                kind, _ = plan(i)
                headers, body = request_for(i, kind)
                start = time.perf_counter()
                async with session.post(url + "/get_reward", data=body, headers=headers) as response:
                    payload = await response.json() if response.status == 200 else None
                    done.append((i, response.status, time.perf_counter() - start, payload))

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done


def test_5000_requests_at_concurrency_64_none_lost_no_5xx_bad_ones_get_4xx(make_critic, capsys):
    critic = make_critic(delay_s=0.002, max_batch_size=32, max_wait_ms=2)
    settings = ServerSettings(api_key=KEY, max_body_bytes=4096, max_items_per_request=8)
    with running_server(critic, settings) as (url, _):
        start = time.perf_counter()
        done = asyncio.run(run_load(url))
        elapsed = time.perf_counter() - start
        page = asyncio.run(_get_metrics(url))
    assert sorted(i for i, *_ in done) == list(range(REQUESTS))  # none lost, none twice
    wrong = [(i, status) for i, status, _, _ in done if status != plan(i)[1]]
    assert not wrong, f"{len(wrong)} requests got an unexpected status, e.g. {wrong[:5]}"
    for i, status, _, payload in done:
        if status == 200:
            assert payload["rewards"] == [1.0 if i % 2 == 0 else 0.0], (i, payload)
    valid = sum(plan(i)[0] == "valid" for i in range(REQUESTS))
    assert metric(page, "critics_requests_total", 'endpoint="/get_reward",code="200"') == valid
    assert metric(page, "critics_server_errors_total", 'endpoint="/get_reward"') == 0
    latencies = sorted(seconds for _, status, seconds, _ in done if status == 200)
    q = statistics.quantiles(latencies, n=100)
    mean_batch = metric(page, "critics_batch_size_sum") / metric(page, "critics_batch_size_count")
    with capsys.disabled():
        print(
            f"\nload: {REQUESTS} requests ({valid} scored) at concurrency {CONCURRENCY} in {elapsed:.1f} s "
            f"= {REQUESTS / elapsed:.0f} req/s; scored p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms; "
            f"mean batch {mean_batch:.1f}"
        )


async def _get_metrics(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/metrics", headers={"X-API-Key": KEY}) as response:
            return await response.text()
