"""Serve critics as reward functions: ``Critic`` and ``RemoteCritic`` (one interface), the HTTP
server, and adapters for TRL, OpenRLHF and verl (DESIGN.md, "Serving")."""

from critics.judging.judge import Critique
from critics.serving.adapters import compute_score, compute_score_async, reward_function
from critics.serving.batcher import BatcherClosed, DynamicBatcher, QueueFull
from critics.serving.critic import Critic
from critics.serving.remote import RemoteCritic, open_critic

__all__ = [
    "BatcherClosed",
    "Critic",
    "Critique",
    "DynamicBatcher",
    "QueueFull",
    "RemoteCritic",
    "compute_score",
    "compute_score_async",
    "open_critic",
    "reward_function",
]
