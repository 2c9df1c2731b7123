"""Hostile or careless clients against a real server: clients that hang up while their items wait,
or in the middle of their body, and a SIGTERM while work is queued behind a batch that never ends."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from critics.serving.server import ANSWER_S, WORKER_STOP_S
from tests.critics.serving.helpers import free_port, running_server, wait_until
from tests.critics.serving.test_server import metric

ROOT = Path(__file__).resolve().parents[3]
BATCH_S = 0.5  # each batch the scripted backend runs takes this long


def send_and_hold(url: str, path: str, body: dict, cut: int | None = None) -> socket.socket:
    """Send a POST over a raw socket and keep the connection open without reading the answer; with
    ``cut``, send only the first ``cut`` bytes of the body (its Content-Length still says all of it)."""
    data = json.dumps(body).encode()
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    sock.sendall(head.encode() + data[:cut])
    return sock


def test_clients_that_hang_up_while_queued_have_their_items_dropped_unjudged(make_critic, caplog):
    gate = threading.Event()
    critic = make_critic(gate=gate, delay_s=BATCH_S, max_batch_size=8, max_wait_ms=0)
    with running_server(critic) as (url, _):
        blocker = threading.Thread(
            target=httpx.post, args=(url + "/get_reward",), kwargs={"json": {"query": ["blocker"]}, "timeout": 60}
        )
        blocker.start()  # holds the worker at the gate while the others queue behind it
        wait_until(lambda: critic.batcher.in_flight == 1 and critic.batcher.queue_depth == 0, what="the blocker")
        held = [
            send_and_hold(url, "/get_reward", {"query": [f"abandoned {i}.{j}" for j in range(8)]}) for i in range(20)
        ]
        held.append(
            send_and_hold(url, "/v1/chat/completions", {"messages": [{"role": "user", "content": "abandoned chat"}]})
        )
        wait_until(lambda: critic.batcher.queue_depth == 161, what="160 items and a chat queued")
        for sock in held:
            sock.close()  # 21 clients hang up without their answers
        wait_until(lambda: critic.batcher.queue_depth == 0, what="the abandoned items to leave the queue")
        gate.set()
        start = time.monotonic()
        response = httpx.post(url + "/get_reward", json={"query": ["verdict=Correct"]}, timeout=60)
        elapsed = time.monotonic() - start
        blocker.join(60)
        page = httpx.get(url + "/metrics").text
    assert response.status_code == 200 and response.json()["rewards"] == [1.0]
    assert not [text for text in critic.backend.seen if "abandoned" in text]  # none of their items was judged
    assert len(critic.backend.seen) == 2 and critic.batcher.stats.jobs == 2  # the blocker, then the next request
    assert metric(page, "critics_cancelled_jobs_total") == 161
    assert metric(page, "critics_client_disconnects_total", 'endpoint="/get_reward",stage="answer"') == 20
    assert metric(page, "critics_client_disconnects_total", 'endpoint="/v1/chat/completions",stage="answer"') == 1
    assert metric(page, "critics_requests_total", 'endpoint="/get_reward",code="499"') == 20
    assert metric(page, "critics_server_errors_total", 'endpoint="/get_reward"') == 0
    assert elapsed < 21 * BATCH_S / 2  # it waited for the blocker's batch, not for 21 batches nobody wanted
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_client_hanging_up_mid_body_is_a_disconnect_not_a_server_error(critic, caplog):
    with running_server(critic) as (url, _):
        sock = send_and_hold(url, "/get_reward", {"query": ["x" * 1000]}, cut=100)
        time.sleep(0.2)  # the handler is reading the body
        sock.close()

        def disconnects() -> float:
            page = httpx.get(url + "/metrics").text
            return metric(page, "critics_client_disconnects_total", 'endpoint="/get_reward",stage="body"')

        wait_until(lambda: disconnects() == 1, what="the disconnect to be counted")
        after = httpx.post(url + "/get_reward", json={"query": ["verdict=Correct"]}, timeout=30)
        page = httpx.get(url + "/metrics").text
    assert after.status_code == 200
    assert metric(page, "critics_server_errors_total", 'endpoint="/get_reward"') == 0
    assert metric(page, "critics_requests_total", 'endpoint="/get_reward",code="500"') == 0
    assert metric(page, "critics_requests_total", 'endpoint="/get_reward",code="499"') == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert critic.batcher.stats.jobs == 1  # the body never arrived, so nothing of it was judged


def test_sigterm_with_work_queued_exits_by_the_graceful_deadline_and_answers_503():
    graceful_s, port = 2.0, free_port()
    url = f"http://127.0.0.1:{port}"
    # every batch takes 10 minutes: a drain without a deadline would never end
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.critics.serving.scripted_server", str(port), str(graceful_s), "600"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    answers: list = []
    try:
        wait_until(lambda: _healthy(url, process), timeout_s=60, what="the server to start")
        callers = [threading.Thread(target=_post_into, args=(url, answers)) for _ in range(4)]
        for caller in callers:
            caller.start()
        wait_until(
            lambda: metric(httpx.get(url + "/metrics").text, "critics_in_flight") == 4,
            what="one request running and three queued",
        )
        start = time.monotonic()
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(60)
        elapsed = time.monotonic() - start
        for caller in callers:
            caller.join(30)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read()
    assert graceful_s - 0.5 <= elapsed < graceful_s + ANSWER_S + WORKER_STOP_S + 10, stderr[-3000:]
    assert returncode in (0, -signal.SIGTERM), stderr[-3000:]  # uvicorn re-raises the signal it caught
    assert [a.status_code for a in answers] == [503] * 4, answers  # the running one and the queued ones
    assert all("shutting down" in a.json()["error"]["message"] and a.headers["retry-after"] for a in answers)
    assert "Traceback" not in stderr and "timeout graceful shutdown exceeded" not in stderr, stderr[-3000:]


def _healthy(url: str, process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        pytest.fail(f"the server exited: {process.stderr.read()[-3000:]}")
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _post_into(url: str, answers: list) -> None:
    try:
        answers.append(httpx.post(url + "/get_reward", json={"query": ["verdict=Correct"]}, timeout=60))
    except httpx.HTTPError as error:  # a hang or a dropped connection lands here, and fails the test
        answers.append(error)
