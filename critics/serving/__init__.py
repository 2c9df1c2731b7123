"""Serve critics as reward functions: the ``Critic`` engine, its HTTP server, and adapters for
TRL, OpenRLHF and verl (DESIGN.md, "Serving")."""

from critics.serving.adapters import compute_score, compute_score_async, reward_function
from critics.serving.batcher import BatcherClosed, DynamicBatcher, QueueFull
from critics.serving.critic import Critic, Critique, hard_score

__all__ = ["BatcherClosed", "Critic", "Critique", "DynamicBatcher", "QueueFull", "compute_score",
           "compute_score_async", "hard_score", "reward_function"]
