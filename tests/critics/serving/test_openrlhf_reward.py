"""``critics/serving/openrlhf_reward.py``, OpenRLHF's custom reward file: numeric labels are scored
against a real server, and a failed request raises instead of becoming a reward of 0.0."""

from __future__ import annotations

import time

import httpx
import pytest

from critics.serving.openrlhf_reward import RewardServerError, request_rewards, reward_func
from tests.critics.serving.helpers import free_port, running_server

CHATML = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{r}<|im_end|><|endoftext|>"
URL = "http://critic.test/get_reward"
BODY = {"query": ["a", "b"], "prompts": ["", ""], "labels": [1, 2]}
GOOD = {"rewards": [1.0, 0.0], "scores": [1.0, 0.0], "extra_logs": {"critic_valid": [1.0, 1.0]}}


def test_numeric_labels_from_a_json_dataset_are_scored_not_zeroed(critic, monkeypatch):
    queries = [CHATML.format(q="6*7?", r="42 verdict=Correct"), CHATML.format(q="1/4?", r="0.3 verdict=Incorrect")]
    with running_server(critic) as (url, _):
        monkeypatch.setenv("CRITICS_URL", url)
        out = reward_func(queries, ["", ""], [42, 0.25])  # OpenRLHF passes the label column as it is
    assert out["rewards"].tolist() == [1.0, 0.0] and out["scores"].tolist() == [1.0, 0.0]
    assert out["extra_logs"]["critic_valid"].tolist() == [1.0, 1.0]


def scripted_client(*answers) -> tuple[httpx.Client, list]:
    """A client whose server answers with ``answers`` in turn (a status and a JSON body, or an
    exception to raise), recording the bodies it was sent."""
    sent, queue = [], list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = (*answer, {})[:3]
        return httpx.Response(status, json=body, headers=headers)

    return httpx.Client(transport=httpx.MockTransport(handle)), sent


def test_a_busy_or_restarting_critic_is_retried_until_it_answers():
    busy = {"error": {"message": "the critic is busy: queue full; retry later"}}
    client, sent = scripted_client(
        httpx.ConnectError("connection refused"), (503, busy, {"Retry-After": "0"}), (200, GOOD)
    )
    rewards, valid = request_rewards(client, URL, BODY, time.monotonic() + 30)
    assert (rewards, valid) == ([1.0, 0.0], [1.0, 1.0]) and len(sent) == 3


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ((422, {"error": {"message": "invalid body for /get_reward: labels.0: ..."}}), ["HTTP 422", "labels.0"]),
        ((401, {"error": {"message": "missing or wrong API key"}}), ["HTTP 401", "API key"]),
        ((500, {"error": {"message": "internal error: RuntimeError"}}), ["HTTP 500", "RuntimeError"]),
        ((200, {"rewards": [1.0]}), ["without rewards and critic_valid"]),
        ((200, {"rewards": [1.0], "extra_logs": {"critic_valid": [1.0]}}), ["1 rewards", "for 2 queries"]),
        ((200, {"rewards": [None, 1.0], "extra_logs": {"critic_valid": [0.0, 1.0]}}), ["without rewards"]),
    ],
)
def test_a_request_the_server_refuses_or_answers_wrongly_raises_at_once(answer, words):
    client, sent = scripted_client(answer, (200, GOOD))
    with pytest.raises(RewardServerError) as raised:
        request_rewards(client, URL, BODY, time.monotonic() + 30)
    assert all(w in str(raised.value) for w in words), raised.value
    assert len(sent) == 1  # retrying would get the same answer


def test_a_critic_still_down_at_the_deadline_raises_instead_of_scoring_zero(monkeypatch):
    monkeypatch.setenv("CRITICS_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("CRITICS_TIMEOUT", "2")
    start = time.monotonic()
    with pytest.raises(RewardServerError, match="no rewards in time.*ConnectError"):
        reward_func(["q"], [""], [1])
    assert time.monotonic() - start < 30  # it gave up at its deadline
