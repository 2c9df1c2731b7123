"""J1's per-response scores in ``/score`` results and back through ``RemoteCritic``."""

from __future__ import annotations

from fastapi.testclient import TestClient

from critics.judging.chat import ChatModel
from critics.judging.spec import CriticSpec
from critics.judging.verdicts import PointScores
from critics.serving.critic import Critic
from critics.serving.remote import as_critique
from critics.serving.server import ServerSettings, create_app

ITEMS = [
    {"question": "2+3?", "response_a": "5", "response_b": "6"},
    {"question": "1+1?", "response_a": "3", "response_b": "2"},
    {"question": "2+2?", "response_a": "4", "response_b": "5"},
]
ANSWERS = {
    "2+3?": "A adds up. <score_A>9</score_A> <score_B>1</score_B> \\boxed{A}",
    "1+1?": "<score_A>8</score_A> <score_B>2</score_B> \\boxed{B}",  # contradicts its verdict
    "2+2?": "A. \\boxed{A}",  # no scores
}


class ByQuestion(ChatModel):
    name = "by-question"

    def generate(self, conversations, *, max_new_tokens, temperature, n=1):
        return [next(a for q, a in ANSWERS.items() if q in c[-1]["content"]) for c in conversations for _ in range(n)]


def test_score_results_carry_the_scores_and_why_they_do_not_count() -> None:
    with Critic(ByQuestion(), CriticSpec(tasks=["pairwise"], style="compact")) as critic:
        results = (
            TestClient(create_app(critic, ServerSettings())).post("/score", json={"items": ITEMS}).json()["results"]
        )
    assert results[0]["scores"] == {"values": [9, 1], "ok": True, "reason": "ok"} and results[0]["verdict"] == "A"
    assert results[1]["scores"] == {"values": None, "ok": False, "reason": "scores contradict the verdict"}
    assert results[1]["verdict"] == "B" and results[1]["score"] == 0.0  # the verdict still counts
    assert "scores" not in results[2]
    back = [as_critique(r) for r in results]
    assert back[0].scores == PointScores((9, 1), True, "ok") and not back[1].scores.ok and back[2].scores is None
