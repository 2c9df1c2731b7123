"""``critics eval --vote``: the run's vote is checked before anything is judged and scores first."""

from __future__ import annotations

import pytest

from critics import cli
from critics.eval.benchmark_base import Item, Request
from critics.eval.run import EvalConfig, vote, vote_methods


def _items(task: str) -> list[Item]:
    return [Item("x", "all", [Request({"task": task, "question": "q"})])]


def test_the_run_vote_is_checked_and_scores_first() -> None:
    assert (
        EvalConfig(target="ckpt", benches=["listwise:x.jsonl"], samples=4, temperature=1.0, vote="mean").vote == "mean"
    )
    with pytest.raises(ValueError, match="did you mean 'sum'"):
        EvalConfig(target="ckpt", benches=["listwise:x.jsonl"], vote="summ")
    with pytest.raises(ValueError, match="--meta-rm"):
        EvalConfig(target="ckpt", benches=["listwise:x.jsonl"], vote="meta")
    assert vote_methods(_items("listwise")) == ["sum", "mean", "majority"]
    assert vote_methods(_items("listwise"), "majority") == ["majority", "sum", "mean"]
    assert vote_methods(_items("pairwise")) == ["majority"]
    with pytest.raises(ValueError, match="pairwise verdicts vote by majority"):
        vote_methods(_items("pairwise"), "sum")


def test_saved_score_lists_vote_as_json_lists() -> None:
    assert vote([[7, 3], None, [6, 5]], False, "listwise", "sum") == (13, 8)
    assert vote([[7, 3], [7, 3], [1, 9]], False, "listwise", "majority") == (7, 3)
    assert vote(["A", "B", "B"], False, "pairwise") == "B"


def test_eval_cli_takes_vote(monkeypatch) -> None:
    seen = {}
    monkeypatch.setattr("critics.eval.run.run", lambda config: seen.update(config=config) or {})
    assert (
        cli.main(
            ["eval", "ckpt", "--bench", "listwise:x.jsonl", "--samples", "4", "--temperature", "1", "--vote", "mean"]
        )
        == 0
    )
    assert seen["config"].vote == "mean" and seen["config"].samples == 4
