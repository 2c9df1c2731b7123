"""The HTTP server's endpoints, limits, auth and errors, in process (FastAPI's TestClient)."""

from __future__ import annotations

import json
import math
import re

import pytest
from fastapi.testclient import TestClient

from critics.config import ConfigError
from critics.judging.chat import ChatModel
from critics.serving.critic import Critic
from critics.serving.server import ServerSettings, create_app

CHATML = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{r}<|im_end|><|endoftext|>"


def client_for(critic: Critic, **settings) -> TestClient:
    return TestClient(create_app(critic, ServerSettings(**settings)))


def metric(text: str, name: str, labels: str = "") -> float:
    """One sample of a Prometheus page (0 when absent)."""
    key = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- /get_reward -----------------------------------------------------------------------------


def test_get_reward_scores_each_query_and_gives_invalid_ones_the_invalid_reward(critic):
    queries = [
        CHATML.format(q="1+1?", r="2 verdict=Correct"),
        CHATML.format(q="1+1?", r="3 verdict=Incorrect"),
        CHATML.format(q="1+1?", r="no idea"),
    ]
    with client_for(critic, invalid_reward=-1.0) as client:
        response = client.post("/get_reward", json={"query": queries})
        page = client.get("/metrics").text
    assert response.status_code == 200, response.text
    assert response.json() == {
        "rewards": [1.0, 0.0, -1.0],
        "scores": [1.0, 0.0, -1.0],
        "extra_logs": {"critic_valid": [1.0, 1.0, 0.0]},
    }
    assert metric(page, "critics_invalid_verdicts_total", 'endpoint="/get_reward"') == 1
    assert metric(page, "critics_items_total", 'endpoint="/get_reward"') == 3


def test_get_reward_splits_question_and_response_and_passes_labels(make_critic):
    critic = make_critic(style="default")
    seen = []
    judge = critic.acritique

    async def spy(items):
        seen.extend(items)
        return await judge(items)

    critic.acritique = spy
    prompt = (
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    body = {
        "query": [prompt + "It is 4.<|im_end|><|endoftext|>", "Hi<|im_end|>"],
        "prompts": [prompt, "Hi"],
        "labels": ["4", ""],
    }
    with client_for(critic) as client:
        response = client.post("/get_reward", json=body)
    assert response.status_code == 200, response.text
    assert seen == [
        {"task": "pointwise", "question": "What is 2+2?", "response": "It is 4.", "gold_answer": "4"},
        {"task": "pointwise", "question": "Hi", "response": ""},
    ]
    assert "## Question\nWhat is 2+2?\n\n## Solution\nIt is 4.\n" in critic.backend.seen[0]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, ["JSON"]),
        (b"", 400, ["JSON"]),
        (json.dumps({"prompts": ["p"]}).encode(), 422, ["query", "Field required"]),
        (json.dumps({"query": "one string"}).encode(), 422, ["query", "array"]),
        (json.dumps({"query": [1]}).encode(), 422, ["query.0", "string"]),
        (json.dumps({"query": ["a", "b"], "prompts": ["p"]}).encode(), 422, ["'prompts' has 1", "'query' has 2"]),
        (json.dumps({"query": ["a"], "labels": ["x", "y"]}).encode(), 422, ["'labels' has 2"]),
        (json.dumps(["a list"]).encode(), 422, ["/get_reward", "body: Input should be an object"]),
    ],
)
def test_get_reward_rejects_malformed_bodies_with_a_message_naming_the_problem(critic, body, status, words):
    with client_for(critic) as client:
        response = client.post("/get_reward", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert all(w in message for w in words), message


def test_get_reward_scores_labels_of_any_json_scalar_as_their_text(critic):
    seen = []
    judge = critic.acritique

    async def spy(items):
        seen.extend(items)
        return await judge(items)

    critic.acritique = spy
    queries = [CHATML.format(q="6*7?", r=f"{answer} verdict=Correct") for answer in ("42", "2.5", "yes", "?", "0")]
    with client_for(critic) as client:  # a JSON dataset's label column: numbers, booleans, nulls, as they are
        response = client.post("/get_reward", json={"query": queries, "labels": [42, 2.5, True, None, 0]})
        nested = client.post("/get_reward", json={"query": ["q"], "labels": [[42]]})
    assert response.status_code == 200, response.text
    assert response.json()["rewards"] == [1.0] * 5
    assert [item.get("gold_answer") for item in seen] == ["42", "2.5", "true", None, "0"]
    assert nested.status_code == 422 and "labels[0] must be a string, number, boolean or null" in nested.text


def test_a_non_finite_scalar_score_counts_as_invalid_not_as_a_crash():
    class NaNScorer(ChatModel):
        name, kind = "nan-scorer", "scalar"

        def scalar_scores(self, conversations):
            return [math.nan, 0.5][: len(conversations)]

    critic = Critic(NaNScorer(), max_wait_ms=50)
    with client_for(critic, invalid_reward=-2) as client:
        reward = client.post("/get_reward", json={"query": ["x", "y"]}).json()
        result = client.post("/score", json={"items": [{"question": "q", "response": "x"}]}).json()["results"][0]
    assert reward["rewards"] == [-2.0, 0.5] and isinstance(reward["rewards"][0], float)
    assert reward["extra_logs"]["critic_valid"] == [0.0, 1.0]
    assert result["score"] is None and not result["valid"] and result["reason"] == "non-finite score"


# -- /score ----------------------------------------------------------------------------------


def test_score_returns_score_verdict_reason_and_critique_per_item_and_task(critic):
    items = [
        {"question": "q", "response": "verdict=Correct"},
        {"task": "pairwise", "question": "q", "response_a": "verdict=B", "response_b": "b"},
        {"task": "step", "question": "q", "steps": ["s0", "s1", "s2", "s3 verdict=2"]},
        {"question": "q", "response": "no verdict"},
    ]
    with client_for(critic) as client:
        response = client.post("/score", json={"items": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["score"] for r in results] == [1.0, 0.0, 0.5, None]
    assert [r["verdict"] for r in results] == ["correct", "B", 2, None]
    assert [r["valid"] for r in results] == [True, True, True, False]
    assert results[0]["reason"] == "ok" and results[3]["reason"] == "no verdict"
    assert results[0]["critique"] == "Judged. \\boxed{Correct}"


def test_score_task_applies_to_items_without_their_own(critic):
    with client_for(critic) as client:
        items = [{"question": "q", "response_a": "verdict=A", "response_b": "b"}]
        response = client.post("/score", json={"task": "pairwise", "items": items})
    assert response.json()["results"][0]["verdict"] == "A"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"items": [{"question": "q", "response": "r"}, {"question": "q"}]}, ["items[1]", "'response'"]),
        ({"items": [{"response": 3}]}, ["items[0].response must be a string"]),
        ({"items": ["text"]}, ["items[0] must be an object"]),
        ({"items": [{"task": "step", "steps": "s0"}]}, ["items[0].steps must be a list of strings"]),
        ({"items": [{"task": "pointwize", "response": "r"}]}, ["items[0].task must be one of"]),
        ({"task": "ranking", "items": []}, ["task must be one of", "'ranking'"]),
        ({"items": [], "itmes": []}, ["itmes", "Extra inputs"]),
    ],
)
def test_score_rejects_bad_items_with_422_naming_the_item(critic, body, words):
    with client_for(critic) as client:
        response = client.post("/score", json=body)
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert all(w in message for w in words), message


# -- OpenAI endpoints ------------------------------------------------------------------------


def test_chat_completions_answers_in_the_openai_shape_with_n_choices_in_one_batch(critic):
    body = {
        "model": "critic",
        "messages": [{"role": "user", "content": "hello"}],
        "n": 3,
        "max_tokens": 7,
        "temperature": 0.5,
        "top_p": 0.9,
    }
    with client_for(critic) as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["object"] == "chat.completion" and out["model"] == "critic" and out["id"].startswith("chatcmpl-")
    assert [c["index"] for c in out["choices"]] == [0, 1, 2]
    assert all(c["message"] == {"role": "assistant", "content": "echo: hello"} for c in out["choices"])
    assert all(c["finish_reason"] == "stop" for c in out["choices"])
    usage = out["usage"]  # estimated: the scripted backend has no tokenizer
    assert usage["prompt_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert critic.backend.calls == [(1, 7, 0.5)]  # one conversation, its n samples in one call


def test_chat_completions_defaults_and_text_parts(make_critic):
    critic = make_critic(max_new_tokens=11, temperature=0.0)
    body = {
        "messages": [
            {"role": "system", "content": None},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        ],
        "max_completion_tokens": 5,
        "max_tokens": 9,
    }
    with client_for(critic) as client:
        first = client.post("/v1/chat/completions", json=body).json()
        body.pop("max_completion_tokens"), body.pop("max_tokens")
        client.post("/v1/chat/completions", json=body)
    assert first["choices"][0]["message"]["content"] == "echo: ab"
    assert critic.backend.calls == [(1, 5, 0.0), (1, 11, 0.0)]  # max_completion_tokens wins; critic's defaults


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "stream": True}, 400, ["streaming is not supported"]),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, 404, ["'gpt-4o'", "'critic'"]),
        ({"messages": []}, 422, ["messages"]),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            422,
            ["messages[0].content[0]", "base64 data URLs"],
        ),
        ({"messages": [{"role": "user", "content": "x"}], "n": 0}, 422, ["n"]),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "robot", "content": "y"}]},
            422,
            ["messages[1].role must be one of system, user, assistant, developer", "'robot'"],
        ),
        ({"messages": [{"role": "User", "content": "x"}]}, 422, ["messages[0].role", "'User'"]),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "42"}]},
            422,
            ["messages[1].role 'tool' is not supported", "no tools"],
        ),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, 422, ["max_tokens"]),
    ],
)
def test_chat_completions_rejects_what_it_cannot_honour(critic, body, status, words):
    with client_for(critic) as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert all(w in message for w in words), message


def test_a_developer_message_is_read_as_the_system_message(critic):
    seen = []
    chat = critic.backend.generate

    def spy(conversations, **kwargs):
        seen.extend(conversations)
        return chat(conversations, **kwargs)

    critic.backend.generate = spy
    body = {"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}]}
    with client_for(critic) as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert [m["role"] for m in seen[0]] == ["system", "user"]


def test_models_lists_the_served_model_name(critic):
    with client_for(critic, served_model_name="my-critic") as client:
        data = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in data] == ["my-critic"]


# -- health, metrics -------------------------------------------------------------------------


def test_health_is_ok_then_503_draining(critic):
    with client_for(critic) as client:
        ok = client.get("/health")
        client.app.state.draining = True
        draining = client.get("/health")
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    assert draining.status_code == 503 and draining.json()["status"] == "draining"


def test_metrics_count_requests_by_endpoint_and_code_latency_and_batches(critic):
    with client_for(critic) as client:
        for _ in range(3):
            client.post("/score", json={"items": [{"response": "verdict=Correct"}, {"response": "x"}]})
        client.post("/score", content=b"{")
        client.get("/no/such/path")
        page = client.get("/metrics")
    assert page.headers["content-type"].startswith("text/plain")
    text = page.text
    assert metric(text, "critics_requests_total", 'endpoint="/score",code="200"') == 3
    assert metric(text, "critics_requests_total", 'endpoint="/score",code="400"') == 1
    assert metric(text, "critics_requests_total", 'endpoint="other",code="404"') == 1
    assert metric(text, "critics_invalid_verdicts_total", 'endpoint="/score"') == 3
    assert metric(text, "critics_request_duration_seconds_count", 'endpoint="/score"') == 4
    assert metric(text, "critics_request_duration_seconds_bucket", 'endpoint="/score",le="+Inf"') == 4
    assert metric(text, "critics_jobs_total") == 6 and metric(text, "critics_batch_size_count") >= 3
    assert metric(text, "critics_batch_size_bucket", 'le="+Inf"') == metric(text, "critics_batches_total")
    assert metric(text, "critics_queue_depth") == 0 and metric(text, "critics_max_queue") == 4096
    for line in text.splitlines():  # every sample line is "name{labels} number"
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+", line), line


# -- limits, auth, errors --------------------------------------------------------------------


def test_bodies_over_the_limit_get_413_whether_declared_or_streamed(critic):
    big = json.dumps({"query": ["x" * 2000]}).encode()
    with client_for(critic, max_body_bytes=1000) as client:
        declared = client.post("/get_reward", content=big, headers={"content-type": "application/json"})
        streamed = client.post("/get_reward", content=iter([big[:600], big[600:]]))
        small = client.post("/get_reward", json={"query": ["x"]})
    assert declared.status_code == 413 and "limit is 1000" in declared.json()["error"]["message"]
    assert streamed.status_code == 413 and "exceeds the limit" in streamed.json()["error"]["message"]
    assert small.status_code == 200


def test_too_many_items_in_one_request_get_413(critic):
    with client_for(critic, max_items_per_request=2) as client:
        rewards = client.post("/get_reward", json={"query": ["a", "b", "c"]})
        scores = client.post("/score", json={"items": [{"response": "r"}] * 3})
        chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "n": 3})
        fine = client.post("/get_reward", json={"query": ["a", "b"]})
    assert [r.status_code for r in (rewards, scores, chat, fine)] == [413, 413, 413, 200]
    assert "3 queries in one request; the limit is 2" in rewards.json()["error"]["message"]


def test_api_key_is_required_by_every_endpoint_but_health(critic):
    with client_for(critic, api_key="s3cret") as client:
        body = {"query": ["verdict=Correct"]}
        missing = client.post("/get_reward", json=body)
        wrong = client.post("/get_reward", json=body, headers={"Authorization": "Bearer nope"})
        bearer = client.post("/get_reward", json=body, headers={"Authorization": "Bearer s3cret"})
        header = client.post("/get_reward", json=body, headers={"X-API-Key": "s3cret"})
        closed = [client.get(p).status_code for p in ("/metrics", "/v1/models")]
        closed += [client.post(p, json={}).status_code for p in ("/score", "/v1/chat/completions")]
        health = client.get("/health")
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer" and "API key" in missing.json()["error"]["message"]
    assert bearer.json()["rewards"] == [1.0] and header.json()["rewards"] == [1.0]
    assert closed == [401] * 4 and health.status_code == 200


def test_an_unexpected_error_is_a_500_with_a_message_and_the_server_keeps_serving(critic):
    with client_for(critic) as client:
        failed = client.post("/get_reward", json={"query": ["BOOM"]})
        after = client.post("/get_reward", json={"query": ["verdict=Correct"]})
        page = client.get("/metrics").text
    assert failed.status_code == 500
    assert "RuntimeError: scripted backend failure" in failed.json()["error"]["message"]
    assert after.status_code == 200 and after.json()["rewards"] == [1.0]
    assert metric(page, "critics_server_errors_total", 'endpoint="/get_reward"') == 1
    assert metric(page, "critics_requests_total", 'endpoint="/get_reward",code="500"') == 1


def test_settings_are_checked_when_made(critic):
    with pytest.raises(ConfigError, match="'port' must be an integer from 0"):
        ServerSettings(port=70000)
    with pytest.raises(ConfigError, match="'retry_after_s' must be a positive integer"):
        ServerSettings(retry_after_s=0)
    with pytest.raises(ConfigError, match="'invalid_reward' must be a finite number"):
        ServerSettings(invalid_reward=math.nan)
    with pytest.raises(ConfigError, match="'graceful_timeout_s' must be >= 0 seconds"):
        ServerSettings(graceful_timeout_s=-1)
    with pytest.raises(TypeError, match="max_body_size"):
        ServerSettings(max_body_size=10)
    with pytest.raises(ConfigError, match="exceeds the batcher's max_queue"):
        create_app(critic, ServerSettings(max_items_per_request=critic.batcher.max_queue + 1))
