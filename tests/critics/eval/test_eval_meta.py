"""``critics eval --vote meta --meta-rm PATH``: the meta RM scores each sample as it is judged, the score is
saved beside it (a resumed run reuses it), and ``by_vote`` gets a ``meta`` curve."""

from __future__ import annotations

import json

import pytest

from critics import cli
from critics.eval.run import EvalConfig, run
from critics.judging.votes import combine_meta

RIGHT, WRONG = "2 + 3 = 5", "2 + 3 = 6"
K = 4


@pytest.fixture()
def bench(tmp_path):
    path = tmp_path / "items.jsonl"
    rows = [
        {"id": f"q{i}", "question": f"Which is true ({i})?", "responses": [RIGHT, WRONG], "label": 0} for i in range(3)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f"listwise:{path}"


class Sampler:
    """A scripted GRM: its even samples guess (the wrong one, by a wide margin), its odd samples check
    (the right one, narrowly); the third sample of each item writes no box. ``sum`` is fooled; a meta
    RM that trusts checking finds the right one."""

    scalar = False

    def __init__(self):
        self.seen: dict[str, int] = {}
        self.shown: dict[str, list[str]] = {}
        self.calls = 0

    def __call__(self, payloads):
        self.calls += 1
        out = []
        for p in payloads:
            s = self.seen.get(p["question"], 0)
            self.seen[p["question"]], self.shown[p["question"]] = s + 1, p["responses"]
            ratings = {RIGHT: 6, WRONG: 5} if s % 2 else {RIGHT: 1, WRONG: 10}
            if s % K == 2:
                out.append((None, None, "no box", "ok"))
                continue
            value = tuple(ratings[r] for r in p["responses"])
            out.append((value, None, ("I check each sum. " if s % 2 else "I guess. ") + str(value), "ok"))
        return out

    def close(self):
        pass


class TrustChecking:
    """A stand-in meta RM: trusts judgments that say they checked."""

    def __init__(self):
        self.calls, self.scored = 0, 0

    def scores(self, rows, critiques):
        assert all(r["task"] == "listwise" and r["responses"] for r in rows)
        self.calls, self.scored = self.calls + 1, self.scored + len(critiques)
        return [1.0 if "check" in c.text else 0.0 for c in critiques]


class Refuses:
    def scores(self, rows, critiques):
        raise AssertionError("a resumed run scores nothing again")


def _config(tmp_path, bench, **fields):
    fields = {"samples": K, "temperature": 1.0, "meta_rm": str(tmp_path / "meta"), "progress": False, **fields}
    return EvalConfig(target=str(tmp_path / "ckpt"), benches=[bench], output_dir=str(tmp_path / "eval"), **fields)


def test_meta_votes_the_trusted_samples_and_a_resumed_run_reuses_their_scores(tmp_path, bench) -> None:
    config = _config(tmp_path, bench, vote="meta", meta_keep=2)
    meta = TrustChecking()
    first = run(config, judge=Sampler(), meta=meta)[bench]
    # 3 items x 4 samples, of which 3 boxless: 9 valid samples scored, in one call per batch
    assert (meta.calls, meta.scored) == (1, 9)
    assert list(first["by_vote"]) == ["meta", "sum", "mean", "majority"] and first["by_k"] == first["by_vote"]["meta"]
    # k=1: the guess alone; k=2: keep 2 = both, sum (1+6, 10+5) wrong; k=3: the box-less third does not
    # vote; k=4: the two checks (6+6 > 5+5)
    assert first["by_vote"]["meta"] == {1: 0.0, 2: 0.0, 3: 0.0, 4: 1.0}
    assert first["by_vote"]["sum"] == {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0} and first["accuracy"] == 1.0
    assert first["meta_keep"] == 2 and first["invalid_verdicts"] == 3
    lines = [
        json.loads(x) for x in (tmp_path / "eval" / "listwise-items" / "predictions.jsonl").read_text().splitlines()
    ]
    assert sorted(x["meta"] for x in lines if x["value"] is not None) == [0.0] * 3 + [1.0] * 6  # beside each value
    assert all(x["meta"] is None for x in lines if x["value"] is None)
    again = Sampler()
    second = run(config, judge=again, meta=Refuses())[bench]
    assert again.calls == 0 and second["by_vote"] == first["by_vote"]
    assert (tmp_path / "eval" / "accuracy_vs_k.png").is_file()
    with pytest.raises(ValueError, match="meta_rm"):  # scores of one meta RM never mix with another's
        run(_config(tmp_path, bench, meta_rm=str(tmp_path / "other")), judge=Sampler(), meta=TrustChecking())


def test_a_meta_rm_adds_a_meta_curve_beside_the_run_s_vote_and_keeps_half_by_default(tmp_path, bench) -> None:
    metrics = run(_config(tmp_path, bench), judge=Sampler(), meta=TrustChecking())[bench]
    assert list(metrics["by_vote"]) == ["sum", "mean", "majority", "meta"] and metrics["accuracy"] == 0.0
    # half of j: k=2 keeps the check (right), k=4 keeps 2: both checks
    assert metrics["by_vote"]["meta"] == {1: 0.0, 2: 1.0, 3: 1.0, 4: 1.0} and metrics["meta_keep"] == "half of k"


def test_a_tiny_meta_rm_is_loaded_from_its_folder_and_its_saved_scores_vote(tmp_path, bench) -> None:
    from critics.judging.meta import MetaLayout
    from critics.judging.tasks import best_index
    from critics.tiny import save_tiny_checkpoint

    path = save_tiny_checkpoint(tmp_path / "meta", classifier=True)
    MetaLayout(style="compact", max_tokens=256).save(path)
    judge = Sampler()
    metrics = run(_config(tmp_path, bench, vote="meta", device="cpu"), judge=judge)[bench]
    lines = [
        json.loads(x) for x in (tmp_path / "eval" / "listwise-items" / "predictions.jsonl").read_text().splitlines()
    ]
    assert all(isinstance(x["meta"], float) for x in lines if x["value"] is not None)
    right = []
    for i in range(3):  # the headline is combine_meta of the saved values and the tiny RM's saved scores
        saved = sorted((x for x in lines if x["key"].startswith(f"{i}:q{i}|")), key=lambda x: x["key"])
        voted = combine_meta([x["value"] for x in saved], [x["meta"] for x in saved], "listwise")
        right.append(best_index(voted) == judge.shown[f"Which is true ({i})?"].index(RIGHT))
    assert metrics["accuracy"] == pytest.approx(sum(right) / 3) == metrics["by_vote"]["meta"][K]


def test_meta_over_a_url_or_without_a_meta_rm_is_refused_and_the_cli_takes_it(monkeypatch, tmp_path, bench) -> None:
    with pytest.raises(ValueError, match="give --meta-rm PATH"):
        EvalConfig(target="ckpt", benches=[bench], vote="meta")
    for fields in ({"vote": "meta"}, {"meta_rm": "meta"}):
        with pytest.raises(ValueError, match="its answers are already voted"):
            EvalConfig(target="http://localhost:8000", benches=[bench], **fields)
    with pytest.raises(ValueError, match="meta_keep must be between 1 and samples"):
        EvalConfig(target="ckpt", benches=[bench], samples=2, temperature=1.0, meta_rm="m", meta_keep=3)
    seen = {}
    monkeypatch.setattr("critics.eval.run.run", lambda config: seen.update(config=config) or {})
    argv = ["eval", "ckpt", "--bench", bench, "--samples", "4", "--temperature", "1", "--vote", "meta"]
    assert cli.main([*argv, "--meta-rm", "m", "--meta-keep", "2"]) == 0
    assert (seen["config"].vote, seen["config"].meta_rm, seen["config"].meta_keep) == ("meta", "m", 2)
