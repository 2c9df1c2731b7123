"""Listwise sources and builder: the released shapes (fixtures), quarantine reasons, the seeded order."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from data_pipelines import BuildConfig
from data_pipelines.build import build
from data_pipelines.builders.listwise import ListwiseBuilder
from data_pipelines.schema import ListwiseRecord, RecordError
from data_pipelines.sources import SOURCES, RowError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RB2 = str(FIXTURES / "rewardbench2_sample.jsonl")
UF_RAW = str(FIXTURES / "ultrafeedback_raw_sample.jsonl")
UF_BIN = str(FIXTURES / "ultrafeedback_sample.jsonl")


def run_build(tmp_path: Path, source: dict, builder: dict | None = None, seed: int = 0):
    config = BuildConfig(
        sources=[SOURCES.get(source.pop("name"))(**source)],
        builder=ListwiseBuilder(**(builder or {})),
        output_dir=str(tmp_path / "out"),
        seed=seed,
        cache=False,
    )
    result = build(config, progress=False)
    quarantine = [json.loads(line) for line in (result.output_dir / "quarantine.jsonl").read_text().splitlines()]
    return result, {q["id"].rsplit("/", 1)[-1]: q["reason"] for q in quarantine}


def test_hub_names_and_splits_are_the_released_ones():
    assert (SOURCES.get("rewardbench2").default_path, SOURCES.get("rewardbench2")().split) == (
        "allenai/reward-bench-2",
        "test",
    )
    assert (SOURCES.get("ultrafeedback_raw").default_path, SOURCES.get("ultrafeedback_raw")().split) == (
        "openbmb/UltraFeedback",
        "train",
    )


def test_rewardbench2_fixture_builds_best_of_4_and_ties_with_every_correct_answer(tmp_path):
    result, quarantined = run_build(tmp_path, {"name": "rewardbench2", "path": RB2})
    assert quarantined == {
        "7": "num_correct is 2 but the length of chosen is 1",
        "8": "field 'chosen' should be list, got str",
        "14": "missing field 'prompt'",
        "15": "invalid JSON: Invalid control character at at column 31",
        "12": "18 responses (max_responses is 16)",  # tied:1, 8 planets and 10 wrong answers
    }
    rows = {json.loads(r["metadata"])["id"]: r for r in result.load()}
    assert len(rows) == 11 and result.stats["rows_in"] == 16
    math = rows["3"]
    assert math["responses"][math["label"]] == "17 * 3 = 51." and math["best"] is None and math["scores"] is None
    assert math["source"] == "rewardbench2/Math" and math["task"] == "listwise"
    tied = rows["tied:0"]
    assert sorted(tied["responses"][i] for i in tied["best"]) == ["Blue.", "Green.", "Red."]
    assert tied["label"] == tied["best"][0] and len(tied["responses"]) == 7
    order = json.loads(tied["metadata"])["order"]  # position -> index in chosen + rejected
    assert sorted(order) == list(range(7)) and all(order[i] < 3 for i in tied["best"])


def test_the_order_is_seeded_shuffled_and_the_same_on_a_rebuild(tmp_path):
    first, _ = run_build(tmp_path / "a", {"name": "rewardbench2", "path": RB2}, seed=0)
    again, _ = run_build(tmp_path / "b", {"name": "rewardbench2", "path": RB2}, seed=0)
    other, _ = run_build(tmp_path / "c", {"name": "rewardbench2", "path": RB2}, seed=1)
    labels = [r["label"] for r in first.load()]
    assert labels == [r["label"] for r in again.load()] and labels != [r["label"] for r in other.load()]
    assert len(set(labels)) > 1  # the chosen is not always first
    unshuffled, _ = run_build(tmp_path / "d", {"name": "rewardbench2", "path": RB2}, {"shuffle": False})
    assert {r["label"] for r in unshuffled.load()} == {0}
    assert set(first.stats["label_position"][4]) <= {0, 1, 2, 3} and "## Position of the best response" in (
        first.card_path.read_text()
    )


def test_ultrafeedback_raw_rates_four_and_quarantines_a_shared_top(tmp_path):
    result, quarantined = run_build(tmp_path, {"name": "ultrafeedback_raw", "path": UF_RAW})
    assert quarantined == {
        "1": "top rating 9.0 is shared by responses 0 and 1: no unique best (top_ties: best keeps it)",
        "2": "completion 1 has no numeric overall_score (got None)",
        "3": "1 completion(s): a listwise item needs at least 2",
    }
    (row,) = result.load()
    assert len(row["responses"]) == 4 and row["scores"][row["label"]] == max(row["scores"]) == 8.5
    assert (
        row["responses"][row["label"]].startswith("Waves fold") and row["source"] == "ultrafeedback_raw/evol_instruct"
    )
    kept, quarantined = run_build(
        tmp_path / "best", {"name": "ultrafeedback_raw", "path": UF_RAW}, {"top_ties": "best"}
    )
    tie = next(r for r in kept.load() if r["best"])
    assert sorted(tie["responses"][i] for i in tie["best"]) == ["Gracias!", "Gracias."] and "1" not in quarantined
    fine, _ = run_build(
        tmp_path / "fine", {"name": "ultrafeedback_raw", "path": UF_RAW, "rating": "fine-grained_score"}
    )
    assert max(next(iter(fine.load()))["scores"]) == 4.75


def test_preference_pairs_become_two_responses_with_their_ratings(tmp_path):
    result, quarantined = run_build(tmp_path, {"name": "ultrafeedback", "path": UF_BIN})
    assert sorted(quarantined.values()) == [
        "chosen and rejected share the rating 7.0: no unique best",  # the binarized pick was arbitrary
        "field 'rejected' should be list, got str",
    ]
    rows = list(result.load())
    assert len(rows) == 4 and all(len(r["responses"]) == 2 for r in rows)
    assert all(r["scores"][r["label"]] > r["scores"][1 - r["label"]] for r in rows)
    assert set(Counter(r["label"] for r in rows)) == {0, 1}  # seeded per record, both positions used
    kept, _ = run_build(tmp_path / "best", {"name": "ultrafeedback", "path": UF_BIN}, {"top_ties": "best"})
    assert [r["best"] for r in kept.load() if r["best"]] == [[0, 1]]


@pytest.mark.parametrize(
    "data, reason",
    [
        ({"chosen": "a", "rejected": " a", "subset": None}, "chosen and rejected are identical"),
        (
            {"chosen": "a", "rejected": "b", "subset": None, "extra": {"score_chosen": 2, "score_rejected": 7}},
            "score_chosen 2.0 is below score_rejected 7.0",
        ),
        (
            {"chosen": "a", "rejected": "b", "subset": None, "extra": {"score_chosen": 5, "score_rejected": 5}},
            "chosen and rejected share the rating 5.0: no unique best",
        ),
        ({"responses": ["a", "b"], "scores": None, "num_correct": None, "subset": None}, "neither scores nor"),
        ({"responses": ["a", "b"], "scores": [1.0], "num_correct": None, "subset": None}, "1 scores for 2 responses"),
        (
            {"responses": ["a", "b"], "scores": [1.0, "x"], "num_correct": None, "subset": None},
            'score 1 is not a number: "x"',
        ),
        (
            {"responses": ["a", "b"], "scores": None, "num_correct": 2, "subset": None},
            "leaves no correct or no incorrect",
        ),
        ({"responses": ["a"], "scores": [1.0], "num_correct": None, "subset": None}, "needs at least 2"),
        ({"responses": [f"r{i}" for i in range(17)], "scores": None, "num_correct": 1, "subset": None}, "17 responses"),
    ],
)
def test_malformed_rows_are_refused_with_their_reason(data, reason):
    with pytest.raises(RowError, match=reason):
        ListwiseBuilder().build("x", {"question": "q", **data}, seed=0)


@pytest.mark.parametrize(
    "raw, reason",
    [
        ({"chosen": ["a"], "rejected": ["b", "a"]}, "response 0 and 2 are the same text"),
        ({"chosen": ["a"], "rejected": ["b", ""]}, "rejected 1 is empty"),
        ({"chosen": ["a"], "rejected": ["b"], "total_completions": 3}, "total_completions is 3 but"),
        (
            {"chosen": ["a"], "rejected": ["b"], "num_incorrect": 2},
            "num_incorrect is 2 but the length of rejected is 1",
        ),
        ({"chosen": [], "rejected": ["b"]}, "field 'chosen' is empty"),
    ],
)
def test_rewardbench2_rows_whose_lists_and_counts_disagree_are_errors(raw, reason):
    with pytest.raises(RowError, match=reason):
        SOURCES.get("rewardbench2")().convert({"id": "1", "prompt": "q", "subset": "Math", **raw})


def test_a_builder_bound_outside_the_schema_fails_at_config_time():
    with pytest.raises(ValueError, match="max_responses must lie in"):
        ListwiseBuilder(max_responses=17)
    with pytest.raises(RecordError, match="label 0 is not among best"):
        ListwiseRecord(id="x", source="s", question="q", responses=["a", "b", "c"], label=0, best=[1, 2]).validate()
