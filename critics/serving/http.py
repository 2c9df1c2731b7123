"""The server's HTTP plumbing: errors as JSON, the API key, bounded bodies, clients that hang up.

- ``ApiError`` is answered as ``{"error": {"message", "type", "code"}}`` (the OpenAI shape);
- ``read_body`` bounds a body in bytes before parsing it, and ``require_api_key`` checks the key;
- ``unless_gone`` awaits work while watching the client: a client that hangs up has its work
  cancelled (``ClientGone``), and ``CountingMiddleware`` counts it as a 499, never as a 5xx;
- ``CountingMiddleware`` times and counts every request, and turns an unexpected exception into a
  500 with a message, so one bad request never stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from critics.serving.metrics import ServerMetrics

logger = logging.getLogger("critics.serving.server")
T = TypeVar("T")
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that hung up before its answer; never sent


class ClientGone(Exception):
    """The client hung up: while its body arrived (``stage`` "body") or before its answer ("answer")."""

    def __init__(self, stage: str):
        super().__init__(f"the client hung up before {'its body was read' if stage == 'body' else 'its answer'}")
        self.stage = stage


class ApiError(Exception):
    """An error answered as ``{"error": {"message", "type"}}`` with ``status``."""

    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers


async def require_api_key(request: Request) -> None:
    """401 unless the request carries the configured key (``Authorization: Bearer`` or ``X-API-Key``)."""
    key = request.app.state.settings.api_key
    if key is None:
        return
    bearer = request.headers.get("authorization", "")
    given = bearer[7:].strip() if bearer[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
    if not secrets.compare_digest(given.encode(), key.encode()):
        raise ApiError(
            401,
            "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            "authentication_error",
            {"WWW-Authenticate": "Bearer"},
        )


async def read_body(request: Request, model: type[BaseModel]) -> Any:
    """The body parsed as ``model``: 413 over the size limit, 400 for bad JSON, 422 for wrong fields."""
    limit = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body has {declared} bytes; the limit is {limit}")
    raw = bytearray()
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                raise ApiError(413, f"the body exceeds the limit of {limit} bytes")
    except ClientDisconnect:
        raise ClientGone("body") from None
    try:
        return model.model_validate_json(bytes(raw))
    except ValidationError as error:
        problems = error.errors(include_url=False)
        status = 400 if problems[0]["type"] == "json_invalid" else 422
        described = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'body'}: {p['msg']}" for p in problems[:5])
        raise ApiError(status, f"invalid body for {request.url.path}: {described}") from None


async def unless_gone(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result, awaited while watching the client: if it hangs up first, ``work`` is
    cancelled (the batcher drops its jobs not yet running) and ``ClientGone`` is raised."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(hung_up(request))
    try:
        done, _ = await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when this handler is itself cancelled (uvicorn's last-resort shutdown timeout)
        gone.cancel()
        task.cancel()  # a no-op once it is done
    if task in done:
        return task.result()
    gone.result()  # re-raises, should watching the client itself have failed
    await asyncio.wait((task,))  # its jobs are dropped before the request counts as finished
    raise ClientGone("answer")


async def hung_up(request: Request) -> None:
    """Returns when the client disconnects: its body has been read, so the next ASGI message is the
    disconnect (uvicorn sends it when the connection drops; nothing else arrives before the response)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def api_error(request: Request, error: ApiError) -> JSONResponse:
    return error_response(error.status, error.message, error.kind, error.headers)


async def http_error(request: Request, error: HTTPException) -> JSONResponse:
    return error_response(error.status_code, str(error.detail), "invalid_request_error", error.headers)


def error_response(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": status}}, status_code=status, headers=headers
    )


class CountingMiddleware:
    """Times and counts every request by endpoint and status, and turns an unexpected exception
    into a 500 with a message (logged and counted) so one bad request never stops the server."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [None]

        async def send_counted(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        metrics: ServerMetrics = scope["app"].state.metrics
        try:
            await self.app(scope, receive, send_counted)
        except ClientGone as gone:  # nobody to answer, and not the server's fault: no traceback, no 5xx
            logger.debug("%s: %s", scope.get("path"), gone)
            status[0] = status[0] or CLIENT_CLOSED_REQUEST
            metrics.count_disconnect(scope["path"], gone.stage)
        except Exception as error:  # noqa: BLE001 - the edge of the server: answer, log, count
            logger.exception("unexpected error serving %s", scope.get("path"))
            if status[0] is None:
                response = error_response(500, f"internal error: {type(error).__name__}: {error}", "internal_error")
                await response(scope, receive, send_counted)
        finally:
            metrics.observe(scope["path"], status[0] or 500, time.perf_counter() - start)
