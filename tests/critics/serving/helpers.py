r"""Helpers of the serving tests: a scripted backend and a real uvicorn server in a thread.

The scripted backend answers like a critic whose verdict the judged text dictates:
``verdict=X`` anywhere in the last message -> ``Judged. \boxed{X}``; ``BOOM`` -> the batch raises;
anything else -> ``echo: <message>`` (no verdict).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from critics.judging.chat import ChatModel
from critics.serving.critic import Critic
from critics.serving.server import ServerSettings, serve_in_background

VERDICT_MARK = re.compile(r"verdict=(\S+)")


class ScriptedBackend(ChatModel):
    """A backend whose replies follow the judged text (module docstring); optional delay or gate."""

    name = "scripted"

    def __init__(self, delay_s: float = 0.0, gate: threading.Event | None = None):
        self.delay_s, self.gate = delay_s, gate
        self.calls: list[tuple[int, int, float]] = []  # (batch size, max_new_tokens, temperature)
        self.seen: list[str] = []  # the last message of every conversation generated for

    def generate(self, conversations, *, max_new_tokens, temperature, n=1):
        self.calls.append((len(conversations), max_new_tokens, temperature))
        self.seen += [c[-1]["content"] for c in conversations]
        if self.gate is not None:
            self.gate.wait(30)
        if self.delay_s:
            time.sleep(self.delay_s)
        return [self.reply(c[-1]["content"]) for c in conversations for _ in range(n)]

    @staticmethod
    def reply(text: str) -> str:
        if "BOOM" in text:
            raise RuntimeError("scripted backend failure")
        mark = VERDICT_MARK.search(text)
        return f"Judged. \\boxed{{{mark.group(1)}}}" if mark else f"echo: {text}"


def running_server(critic: Critic, settings: ServerSettings | None = None, graceful_timeout_s: float = 10.0):
    """A real uvicorn server for ``critic`` on a free localhost port (``serve_in_background``)."""
    return serve_in_background(critic, settings, graceful_timeout_s)


def wait_until(condition, timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition()`` until true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(checkpoint, port: int, *extra: str) -> subprocess.Popen:
    """``critics serve`` in a subprocess (compact prompts, 8 new tokens unless ``extra`` says
    otherwise); returns once ``/health`` answers."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from critics.cli import main; raise SystemExit(main())",
            "serve",
            str(checkpoint),
            "--port",
            str(port),
            "--style",
            "compact",
            "--max-new-tokens",
            "8",
            "--device",
            "cpu",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"critics serve exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("critics serve did not become healthy in 120 s")
