"""``critics serve``: a ``Critic`` behind HTTP (FastAPI + uvicorn).

- ``POST /get_reward``: OpenRLHF's remote reward, ``{"query": [...], "prompts": [...], "labels": [...]}``
  -> ``{"rewards", "scores", "extra_logs": {"critic_valid"}}``; queries are split by ``critics.serving.queries``.
- ``POST /v1/chat/completions``, ``GET /v1/models``: OpenAI chat (the ``openai`` client, verl's
  generative reward loop), ``n`` samples per request, no streaming (``critics.serving.openai_chat``).
- ``POST /score``: native, ``{"task": ..., "items": [...]}`` -> a score, verdict, reason and critique per item;
  optional ``"samples": k`` and ``"vote"`` override the spec's test-time scaling for the request (k
  judgments per item in one batch, voted: ``critics.judging.votes``; each result then carries its
  ``samples``), k at most ``max_samples`` (413 beyond it; 422 for a vote the items' task cannot take);
  a pairwise result whose critique writes J1's per-response scores carries ``scores`` (``values``,
  ``ok``, ``reason``: ``critics.judging.tasks.read_scores``).
- ``GET /spec``: the critic's spec (``critics.judging.spec``): how it is prompted and read; the
  ``/v1/models`` entry carries it too, so clients (``RemoteCritic``, verl's adapters) need no flags.
- ``GET /health``: ``{"status": "ok"}``, or 503 ``"draining"`` once shutdown began (needs no API key).
- ``GET /metrics``: Prometheus text (``critics.serving.metrics``).

Handlers are ``async`` and await the critic's dynamic batcher, so many concurrent one-sample
requests (how OpenRLHF calls a remote reward) are judged together in batches.

Every request is bounded in tokens as well as bytes: a prompt over the critic's budget has its
judged text cut in the middle (or, with the spec's ``truncate: false``, the item gets no score and
reason ``too_long``; a chat request a 400), counted in ``critics_prompts_cut_total``; a chat
request's ``max_tokens`` is capped at ``max_new_tokens_limit`` (default: the spec's
``max_new_tokens``).

Every error is a JSON body ``{"error": {"message", "type"}}`` (the OpenAI shape) with a status
saying whose fault it is: 400 malformed JSON, 401 missing or wrong API key, 404 unknown model, 413
body or item count over the limits, 422 wrong types or missing fields (the message names them),
503 with ``Retry-After`` while the batcher's queue is full or the server shuts down, 500 for
anything unexpected (logged and counted; the server keeps serving).

A client that hangs up is no error: while its body arrives, or while it waits for its answer, it
is counted as a 499 (nginx's "client closed request") in ``critics_client_disconnects_total``, and
its items still queued are dropped unjudged (``critics_cancelled_jobs_total``), so work nobody
waits for never delays the next request.

On SIGTERM the server stops accepting connections and lets requests in flight finish for up to
``graceful_timeout_s``; then the callers still waiting get a 503 and the server exits (a batch
the model is running cannot be interrupted: its results are dropped).

An OpenRLHF item without a valid verdict gets ``ServerSettings.invalid_reward`` (OpenRLHF needs
a float), 0.0 in ``extra_logs.critic_valid`` and a count in ``critics_invalid_verdicts_total``.
Its ``labels`` are any JSON scalars (a dataset's ``"answer": 42``): numbers and booleans are judged
as their JSON text, null as no label.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, field_validator
from starlette.exceptions import HTTPException

from critics.config import ConfigError
from critics.judging.judge import Critique, in_both_orders, mean_of_orders
from critics.judging.tasks import reward_item, task
from critics.serving.batcher import BatcherClosed, QueueFull
from critics.serving.critic import Critic
from critics.serving.http import (
    ApiError,
    CountingMiddleware,
    api_error,
    http_error,
    read_body,
    require_api_key,
    unless_gone,
)
from critics.serving.metrics import ServerMetrics
from critics.serving.openai_chat import ChatRequest, completion_body, conversation, has_images
from critics.serving.queries import split_query

logger = logging.getLogger(__name__)
ANSWER_S = 5.0  # after the drain deadline: how long the 503s get to reach their callers before uvicorn cancels
WORKER_STOP_S = 2.0  # at shutdown: how long to wait for a batch still running before exiting without it
ENDPOINTS = ("/get_reward", "/score", "/v1/chat/completions", "/v1/models", "/spec", "/health", "/metrics")


@dataclass
class ServerSettings:
    """How ``critics serve`` listens and what it accepts; the one home of its defaults.

    Args:
        host, port: where uvicorn listens.
        api_key: when set, every endpoint but ``/health`` needs ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``.
        served_model_name: the model name ``/v1/models`` lists; a chat request naming another gets 404.
        max_body_bytes: larger request bodies get 413.
        max_items_per_request: more queries, items or ``n`` in one request get 413.
        max_samples: the most judgments sampled per item (the spec's ``samples`` and a ``/score``
            request's); a request asking more gets 413.
        max_new_tokens_limit: a chat request's ``max_tokens`` is capped here (None: the spec's
            ``max_new_tokens``).
        invalid_reward: the ``/get_reward`` reward of an item without a valid verdict.
        retry_after_s: the ``Retry-After`` of a 503 (full queue, shutting down).
        graceful_timeout_s: how long a shutdown lets requests in flight finish; then the callers still
            waiting get a 503 and the server exits.
        log_level, access_log: uvicorn's logging.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    served_model_name: str = "critic"
    max_body_bytes: int = 8 * 1024 * 1024
    max_items_per_request: int = 1024
    max_samples: int = 16
    max_new_tokens_limit: int | None = None
    invalid_reward: float = 0.0
    retry_after_s: int = 1
    graceful_timeout_s: float = 30.0
    log_level: str = "info"
    access_log: bool = False

    def __post_init__(self):
        for name in ("max_body_bytes", "max_items_per_request", "retry_after_s", "max_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"'{name}' must be a positive integer, got {value!r}")
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 <= self.port <= 65535:
            raise ConfigError(f"'port' must be an integer from 0 (any free port) to 65535, got {self.port!r}")
        for name in ("invalid_reward", "graceful_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ConfigError(f"'{name}' must be a finite number, got {value!r}")
        if self.graceful_timeout_s < 0:
            raise ConfigError(f"'graceful_timeout_s' must be >= 0 seconds, got {self.graceful_timeout_s!r}")
        limit = self.max_new_tokens_limit
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise ConfigError(f"'max_new_tokens_limit' must be a positive integer or None, got {limit!r}")
        if self.api_key is not None and not self.api_key:
            raise ConfigError("'api_key' is empty: pass a key, or None for an open server")


# -- request bodies --------------------------------------------------------------------------


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward request; unknown keys are ignored (the protocol grows).

    ``labels`` are whatever the dataset's label column holds (OpenRLHF sends it as it is): any JSON
    scalar, kept as text, since a label is a gold answer or a reference the critic reads.

    >>> RewardRequest.model_validate({"query": ["q"] * 4, "labels": [42, 2.5, True, None]}).labels
    ['42', '2.5', 'true', None]
    """

    query: list[str]
    prompts: list[str] | None = None
    labels: list[Any] | None = None

    @field_validator("labels")
    @classmethod
    def _labels_as_text(cls, labels: list | None) -> list[str | None] | None:
        if labels is None:
            return None
        for i, label in enumerate(labels):
            if isinstance(label, (list, dict)):
                raise ValueError(
                    f"labels[{i}] must be a string, number, boolean or null (a gold answer or a "
                    f"reference), got {'an array' if isinstance(label, list) else 'an object'}"
                )
        return [label if label is None or isinstance(label, str) else json.dumps(label) for label in labels]


class ScoreRequest(BaseModel):
    """``/score``'s body: items are record-like dicts, checked one by one (``check_item``)."""

    model_config = ConfigDict(extra="forbid")
    task: str | None = None
    items: list[Any]
    samples: int | None = None
    vote: str | None = None


# -- the app ---------------------------------------------------------------------------------


def create_app(critic: Critic, settings: ServerSettings) -> FastAPI:
    """The FastAPI app serving ``critic``; its lifespan shutdown drains and closes the critic."""
    if settings.max_items_per_request > critic.batcher.max_queue:
        raise ConfigError(
            f"'max_items_per_request' ({settings.max_items_per_request}) exceeds the batcher's "
            f"max_queue ({critic.batcher.max_queue}): such a request could never be queued"
        )
    if critic.spec.samples > settings.max_samples:
        raise ConfigError(
            f"the critic samples {critic.spec.samples} judgments per item (spec.samples), over the "
            f"server's 'max_samples' ({settings.max_samples}): raise --max-samples or lower --samples"
        )
    app = FastAPI(title="critics", lifespan=_lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.critic, app.state.settings, app.state.draining = critic, settings, False
    app.state.metrics = ServerMetrics(ENDPOINTS)
    guarded = [Depends(require_api_key)]
    app.add_api_route("/get_reward", get_reward, methods=["POST"], dependencies=guarded)
    app.add_api_route("/score", score, methods=["POST"], dependencies=guarded)
    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"], dependencies=guarded)
    app.add_api_route("/v1/models", list_models, methods=["GET"], dependencies=guarded)
    app.add_api_route("/spec", spec, methods=["GET"], dependencies=guarded)
    app.add_api_route("/metrics", metrics, methods=["GET"], dependencies=guarded)
    app.add_api_route("/health", health, methods=["GET"])
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_middleware(CountingMiddleware)
    return app


def serve(critic: Critic, settings: ServerSettings) -> None:
    """Run the server until SIGTERM or SIGINT: it stops accepting, lets requests in flight finish
    for up to ``graceful_timeout_s``, answers the callers still waiting with 503, and exits."""
    app = create_app(critic, settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=settings.graceful_timeout_s + ANSWER_S,
    )
    DrainingServer(config, settings.graceful_timeout_s).run()


@contextlib.contextmanager
def serve_in_background(
    critic: Critic, settings: ServerSettings | None = None, graceful_timeout_s: float = 10.0
) -> Iterator[tuple[str, DrainingServer]]:
    """Serve ``critic`` from a background thread on a free localhost port (the demo, tests).

    Yields ``(base_url, server)``; leaving the block stops the server as a signal would (requests
    in flight get ``graceful_timeout_s`` to finish, then the critic's batcher is closed).
    """
    settings = settings or ServerSettings()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((settings.host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(critic, settings),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=graceful_timeout_s + ANSWER_S,
    )
    server = DrainingServer(config, graceful_timeout_s)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the background critic server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{settings.host}:{port}", server
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose app reports ``draining`` on ``/health`` from the moment it is told to
    stop, and whose shutdown has a deadline: ``drain_s`` after it began, the critic's batcher fails
    the jobs still waiting, so their callers get a 503 and the server can exit (uvicorn's own
    timeout, ``ANSWER_S`` later, only cancels what still has not answered)."""

    def __init__(self, config: uvicorn.Config, drain_s: float):
        super().__init__(config)
        self.drain_s = drain_s

    def handle_exit(self, sig, frame) -> None:
        self.config.app.state.draining = True
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets=None) -> None:
        give_up = asyncio.get_running_loop().call_later(self.drain_s, self._give_up)
        try:
            await super().shutdown(sockets)
        finally:
            give_up.cancel()

    def _give_up(self) -> None:
        batcher = self.config.app.state.critic.batcher
        if batcher.in_flight:
            logger.warning(
                "shutting down: %d jobs still unanswered after %g s; their callers get 503",
                batcher.in_flight,
                self.drain_s,
            )
        batcher.close(drain=False)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    yield
    app.state.draining = True
    # every request has been answered by now; a batch still running for a caller given up on is not waited for
    await asyncio.to_thread(app.state.critic.close, WORKER_STOP_S)


# -- endpoints -------------------------------------------------------------------------------


async def get_reward(request: Request) -> JSONResponse:
    """OpenRLHF's remote reward: each query's response judged as the critic's default task says
    (pointwise: the label, if any, as the gold answer; a critic that compares, pairwise in both
    orders as its spec says, or a POLAR model: against the label as the reference, OpenRLHF's
    ``--label_key``)."""
    body = await read_body(request, RewardRequest)
    settings: ServerSettings = request.app.state.settings
    critic: Critic = request.app.state.critic
    n = len(body.query)
    _check_count(n, settings, "queries")
    for name in ("prompts", "labels"):
        given = getattr(body, name)
        if given is not None and len(given) != n:
            raise ApiError(422, f"'{name}' has {len(given)} entries but 'query' has {n}: send one per query")
    compares = len(task(critic.task).judged) > 1
    if compares and not (body.labels and all(body.labels)):
        raise ApiError(
            422,
            f"this server judges {critic.task} items against references: send each query's "
            "reference in 'labels' (OpenRLHF's --label_key)",
        )
    items = []
    for i, query in enumerate(body.query):
        question, response = split_query(query, body.prompts[i] if body.prompts else None)
        label = body.labels[i] if body.labels else None
        item = reward_item(critic.task, question, response, label if compares else None)
        if label and not compares:  # OpenRLHF sends "" for rows without a label
            item["gold_answer"] = label
        items.append(item)
    both = compares and critic.spec.both_orders and task(critic.task).both_orders
    critiques = await judge(request, in_both_orders(items) if both else items)
    scores = [_finite(c.score) for c in critiques]
    scores = mean_of_orders(items, scores) if both else scores
    rewards = [float(settings.invalid_reward) if s is None else s for s in scores]
    return JSONResponse(
        {
            "rewards": rewards,
            "scores": rewards,
            "extra_logs": {"critic_valid": [0.0 if s is None else 1.0 for s in scores]},
        }
    )


async def score(request: Request) -> JSONResponse:
    """Native judging: a score, the verdict and its reason, and the critique per item."""
    body = await read_body(request, ScoreRequest)
    critic: Critic = request.app.state.critic
    task = body.task or critic.task
    if task not in critic.tasks:
        raise ApiError(422, f"task must be one of {', '.join(critic.tasks)}, got {task!r}")
    settings: ServerSettings = request.app.state.settings
    _check_count(len(body.items), settings, "items")
    if body.samples is not None and not 1 <= body.samples <= settings.max_samples:
        status = 413 if body.samples > settings.max_samples else 422
        raise ApiError(
            status, f"samples must be from 1 to this server's max_samples ({settings.max_samples}), got {body.samples}"
        )
    rows = [check_item(i, item, task, critic) for i, item in enumerate(body.items)]
    try:
        critic.spec_for(body.samples, body.vote, rows)
    except ValueError as error:
        raise ApiError(422, str(error)) from None
    critiques = await judge(request, rows, samples=body.samples, vote=body.vote)
    return JSONResponse({"results": [_result(c) for c in critiques]})


async def chat_completions(request: Request) -> JSONResponse:
    """OpenAI chat completions (``n`` samples per request; no streaming); ``max_tokens`` capped."""
    body = await read_body(request, ChatRequest)
    critic: Critic = request.app.state.critic
    settings: ServerSettings = request.app.state.settings
    if body.stream:
        raise ApiError(400, 'streaming is not supported: send "stream": false')
    if body.model and body.model != settings.served_model_name:
        raise ApiError(
            404,
            f"model '{body.model}' is not served here; this server serves '{settings.served_model_name}'",
            "model_not_found",
        )
    if critic.is_scalar:
        raise ApiError(422, "this server serves a scalar model, which writes nothing: use /score or /get_reward")
    _check_count(body.n, settings, "choices (n)")
    try:
        messages = conversation(body)
    except ValueError as error:
        raise ApiError(422, str(error)) from None
    if has_images(messages) and not critic.backend.supports_images:
        raise ApiError(422, "this critic reads text only: send no image_url parts (or serve a vision-language critic)")
    limit = settings.max_new_tokens_limit or critic.spec.max_new_tokens
    max_tokens = min(body.max_completion_tokens or body.max_tokens or critic.spec.max_new_tokens, limit)
    temperature = critic.spec.temperature if body.temperature is None else body.temperature
    try:
        result = await unless_gone(
            request, critic.achat(messages, max_new_tokens=max_tokens, temperature=temperature, n=body.n)
        )
    except (QueueFull, BatcherClosed) as error:
        raise _unavailable(error, settings) from None
    metrics: ServerMetrics = request.app.state.metrics
    metrics.count_prompt(request.url.path, result.prompt)
    if result.texts is None:
        raise ApiError(
            400,
            f"the prompt has {result.prompt_tokens} tokens; this critic's budget is "
            f"{critic.spec.prompt_budget} (its spec refuses over-long prompts)",
            "context_length_exceeded",
        )
    metrics.count_items(request.url.path, len(result.texts))
    return JSONResponse(
        completion_body(
            result.texts, result.prompt_tokens, result.completion_tokens, max_tokens, settings.served_model_name
        )
    )


async def list_models(request: Request) -> JSONResponse:
    """The one model this server serves, with its critic spec."""
    name = request.app.state.settings.served_model_name
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "critics",
                    "critic_spec": request.app.state.critic.spec.to_dict(),
                }
            ],
        }
    )


async def spec(request: Request) -> JSONResponse:
    """The served critic's spec: how it is prompted and read (``critics.judging.spec``)."""
    return JSONResponse(request.app.state.critic.spec.to_dict())


async def health(request: Request) -> JSONResponse:
    """Liveness and load: 200 ``ok``, or 503 ``draining`` once shutdown has begun."""
    state = request.app.state
    batcher = state.critic.batcher
    body = {
        "status": "draining" if state.draining else "ok",
        "model": state.settings.served_model_name,
        "task": state.critic.task,
        "backend": state.critic.backend.name,
        "prompt_budget": state.critic.spec.prompt_budget,
        "queue_depth": batcher.queue_depth,
        "in_flight": batcher.in_flight,
        "max_queue": batcher.max_queue,
    }
    return JSONResponse(body, status_code=503 if state.draining else 200)


async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text exposition."""
    state = request.app.state
    return PlainTextResponse(
        state.metrics.render(state.critic.batcher, state.draining), media_type="text/plain; version=0.0.4"
    )


# -- helpers ---------------------------------------------------------------------------------


async def judge(request: Request, items: list[dict[str, Any]], **votes: Any) -> list[Critique]:
    """The critic's judgments of ``items`` (``samples``/``vote``: per request), counted; a full queue or
    a closed batcher is a 503."""
    try:
        critiques = await unless_gone(request, request.app.state.critic.acritique(items, **votes))
    except (QueueFull, BatcherClosed) as error:
        raise _unavailable(error, request.app.state.settings) from None
    invalid = sum(_finite(c.score) is None for c in critiques)
    metrics: ServerMetrics = request.app.state.metrics
    metrics.count_items(request.url.path, len(critiques), invalid)
    for c in critiques:
        metrics.count_prompt(request.url.path, c.prompt)
    return critiques


def check_item(index: int, item: Any, task_name: str, critic: Critic) -> dict[str, Any]:
    """One ``/score`` item as a record row, or a 422 naming ``items[index]`` and what is wrong."""
    where = f"items[{index}]"
    if not isinstance(item, dict):
        raise ApiError(422, f"{where} must be an object of record fields, got {type(item).__name__}")
    row = {"task": task_name, **item}
    if row["task"] not in critic.tasks:
        raise ApiError(422, f"{where}.task must be one of {', '.join(critic.tasks)}, got {row['task']!r}")
    if row.get("images") is not None:
        row["images"] = _decode_images(row["images"], where)
    try:
        return critic.row(row)
    except TypeError as error:  # names the field: "response must be a string"
        raise ApiError(422, f"{where}.{error.args[0]}") from None
    except (KeyError, ValueError) as error:
        raise ApiError(422, f"{where}: {error.args[0] if error.args else error}") from None


def _decode_images(images: Any, where: str) -> list:
    """An item's ``images``: base64 data URLs only (the server reads no path and fetches no URL)."""
    from critics.vlm import decode_data_url

    if not isinstance(images, list):
        raise ApiError(422, f"{where}.images must be a list of base64 data URLs")
    try:
        return [decode_data_url(image) for image in images]
    except ValueError as error:
        raise ApiError(422, f"{where}.images: {error}") from None


def _check_count(n: int, settings: ServerSettings, what: str) -> None:
    if n > settings.max_items_per_request:
        raise ApiError(413, f"{n} {what} in one request; the limit is {settings.max_items_per_request}")


def _unavailable(error: Exception, settings: ServerSettings) -> ApiError:
    reason = "the server is shutting down" if isinstance(error, BatcherClosed) else f"the critic is busy: {error}"
    return ApiError(503, f"{reason}; retry later", "server_busy", {"Retry-After": str(settings.retry_after_s)})


def _finite(value: float | None) -> float | None:
    """A score JSON can carry: NaN and infinities (a broken scalar head) count as no score."""
    return value if value is not None and math.isfinite(value) else None


def _result(critique: Critique) -> dict[str, Any]:
    value = _finite(critique.score)
    reason = critique.verdict.reason if critique.score is None or value is not None else "non-finite score"
    result = {
        "score": value,
        "verdict": critique.verdict.value,
        "valid": value is not None,
        "ok": critique.verdict.ok,
        "reason": reason,
        "prompt": critique.prompt,
        "critique": critique.text,
    }
    if critique.scores is not None:  # per-response scores beside the verdict (J1), or why they do not count
        result["scores"] = {
            "values": list(critique.scores.values) if critique.scores.values is not None else None,
            "ok": critique.scores.ok,
            "reason": critique.scores.reason,
        }
    if critique.samples:  # a voted judgment: what each sample said
        result["samples"] = [_result(sample) for sample in critique.samples]
    return result
