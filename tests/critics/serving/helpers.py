r"""Helpers of the serving tests: a scripted backend and a real uvicorn server in a thread.

The scripted backend answers like a critic whose verdict the judged text dictates:
``verdict=X`` anywhere in the last message -> ``Judged. \boxed{X}``; ``BOOM`` -> the batch raises;
anything else -> ``echo: <message>`` (no verdict).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from critics.serving.backends import Backend
from critics.serving.critic import Critic
from critics.serving.server import DrainingServer, ServerSettings, create_app

VERDICT_MARK = re.compile(r"verdict=(\S+)")


class ScriptedBackend(Backend):
    """A backend whose replies follow the judged text (module docstring); optional delay or gate."""

    name = "scripted"

    def __init__(self, delay_s: float = 0.0, gate: threading.Event | None = None):
        self.delay_s, self.gate = delay_s, gate
        self.calls: list[tuple[int, int, float]] = []  # (batch size, max_new_tokens, temperature)
        self.seen: list[str] = []  # the last message of every conversation generated for

    def generate(self, conversations, *, max_new_tokens, temperature):
        self.calls.append((len(conversations), max_new_tokens, temperature))
        self.seen += [c[-1]["content"] for c in conversations]
        if self.gate is not None:
            self.gate.wait(30)
        if self.delay_s:
            time.sleep(self.delay_s)
        return [self.reply(c[-1]["content"]) for c in conversations]

    @staticmethod
    def reply(text: str) -> str:
        if "BOOM" in text:
            raise RuntimeError("scripted backend failure")
        mark = VERDICT_MARK.search(text)
        return f"Judged. \\boxed{{{mark.group(1)}}}" if mark else f"echo: {text}"


@contextlib.contextmanager
def running_server(critic: Critic, settings: ServerSettings | None = None,
                   graceful_timeout_s: float = 10.0) -> Iterator[tuple[str, DrainingServer]]:
    """A real uvicorn server for ``critic`` on a free localhost port, in a background thread.

    Yields ``(base_url, server)``; leaving the block stops the server as a signal would.
    """
    settings = settings or ServerSettings()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(critic, settings), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=graceful_timeout_s)
    server = DrainingServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_until(condition, timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition()`` until true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)
