"""Fixtures of the serving tests: critics on a scripted backend, and a tiny real checkpoint."""

from __future__ import annotations

import threading

import pytest

from critics.serving.critic import Critic
from tests.critics.serving.helpers import ScriptedBackend


@pytest.fixture
def make_critic():
    """Build ``Critic``s on a ``ScriptedBackend`` (compact prompts); all are closed after the test."""
    made = []

    def build(delay_s: float = 0.0, gate: threading.Event | None = None, **settings) -> Critic:
        critic = Critic(ScriptedBackend(delay_s, gate), **{"style": "compact", **settings})
        made.append(critic)
        return critic

    yield build
    for critic in made:
        critic.close()


@pytest.fixture
def critic(make_critic) -> Critic:
    return make_critic()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random Llama critic checkpoint (built once per session, nothing downloaded)."""
    from critics.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("serving") / "tiny-critic")
