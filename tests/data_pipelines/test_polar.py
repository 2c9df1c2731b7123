"""POLAR data: triples balanced across policies, every unused row accounted for, references from other pairs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from critics.config import load_config
from data_pipelines import BuildConfig, build
from data_pipelines.builders import polar
from data_pipelines.builders.polar import PolarPreferenceBuilder, PolarTriplesBuilder
from data_pipelines.schema import PolarTripleRecord, Record, RecordError, record_from_row
from data_pipelines.sources.base import RowError
from data_pipelines.sources.generic import SolutionsSource
from data_pipelines.sources.preference import RewardBench

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"
POLICIES = ("alpha", "beta", "gamma")


def pool(prompts: int = 12, per_policy: int = 3, policies=POLICIES) -> list[tuple[str, dict]]:
    """``per_policy`` distinct responses by each policy to each prompt, as build items."""
    return [
        (
            f"p{g}/{m}/{i}",
            {
                "question": f"question {g}",
                "solution": f"{m} answer {i} to {g}",
                "model": m,
                "group": f"g{g}",
                "gold_answer": None,
                "is_correct": None,
                "source_name": "synthetic",
            },
        )
        for g in range(prompts)
        for m in policies
        for i in range(per_policy)
    ]


def run(builder, items, seed=0):
    builder.prepare(items, seed)
    return builder.build_many(items, seed)


def records(results) -> list[Record]:
    return [r for r in results if isinstance(r, Record)]


def reasons(results) -> Counter:
    return Counter(str(r) for r in results if isinstance(r, RowError))


def test_each_triple_pairs_two_responses_of_one_policy_against_another_policy():
    items = pool()
    text = {row_id: data["solution"] for row_id, data in items}
    model = {row_id: data["model"] for row_id, data in items}
    results = run(PolarTriplesBuilder(), items)
    for rec in records(results):
        rec.validate()
        meta = json.loads(rec.metadata)
        assert text[meta["reference_id"]] == rec.reference and text[rec.id] == rec.positive
        assert model[meta["reference_id"]] == model[rec.id] == rec.reference_model
        assert text[meta["negative_id"]] == rec.negative and model[meta["negative_id"]] == rec.negative_model
        assert rec.negative_model != rec.reference_model and meta["reference_id"] != rec.id
        assert record_from_row(rec.to_row()) == rec


def test_default_gives_one_triple_per_policy_per_prompt_and_accounts_for_every_row():
    items = pool(prompts=12)
    results = run(PolarTriplesBuilder(), items)
    recs = records(results)
    assert len(results) == len(items)  # one result per row: a record or a reason
    assert len(recs) == 12 * 3
    assert Counter(r.reference_model for r in recs) == {m: 12 for m in POLICIES}
    per_prompt = Counter((json.loads(r.metadata)["group"], r.reference_model) for r in recs)
    assert set(per_prompt.values()) == {1}
    why = reasons(results)
    assert why[polar.AS_REFERENCE] == len(recs)  # references are distinct rows, never positives
    assert sum(why.values()) == len(items) - len(recs)
    assert set(why) <= {polar.AS_REFERENCE, polar.AS_NEGATIVE, polar.CAP_REACHED}


@pytest.mark.parametrize("cap", [1, 2])
def test_a_cap_below_the_policy_count_still_balances_policies_as_a_within_one(cap):
    recs = records(run(PolarTriplesBuilder(triples_per_prompt=cap), pool(prompts=13)))
    assert len(recs) == 13 * cap
    as_a = Counter(r.reference_model for r in recs)
    assert set(as_a) == set(POLICIES) and max(as_a.values()) - min(as_a.values()) <= 1


def test_negative_policy_is_drawn_uniformly_among_the_other_policies():
    recs = records(run(PolarTriplesBuilder(), pool(prompts=300, per_policy=2)))
    for a in POLICIES:
        bs = Counter(r.negative_model for r in recs if r.reference_model == a)
        assert set(bs) == set(POLICIES) - {a}
        assert all(abs(n / 300 - 0.5) < 0.1 for n in bs.values()), bs  # 0.1 is over 3 standard errors


def test_a_cap_above_the_policy_count_uses_disjoint_pairs_round_robin():
    items = pool(prompts=4, per_policy=5)  # 5 responses: two disjoint pairs per policy
    results = run(PolarTriplesBuilder(triples_per_prompt=100), items)
    recs = records(results)
    assert Counter(r.reference_model for r in recs) == {m: 4 * 2 for m in POLICIES}
    used = [json.loads(r.metadata)["reference_id"] for r in recs] + [r.id for r in recs]
    assert len(used) == len(set(used))
    assert polar.LEFT_OVER in reasons(results) and polar.CAP_REACHED not in reasons(results)


def test_triples_are_deterministic_under_a_seed_and_move_with_it():
    items = pool()
    first = records(run(PolarTriplesBuilder(), items, seed=3))
    assert first == records(run(PolarTriplesBuilder(), items, seed=3))
    # the draw depends on the seed and the row ids, not on the order rows arrive in
    shuffled = records(run(PolarTriplesBuilder(), list(reversed(items)), seed=3))
    assert sorted(shuffled, key=lambda r: r.id) == sorted(first, key=lambda r: r.id)
    other = records(run(PolarTriplesBuilder(), items, seed=4))
    assert sorted(r.metadata for r in other) != sorted(r.metadata for r in first)


def test_rows_that_cannot_take_part_are_quarantined_with_their_reason():
    items = [
        ("nomodel", {"question": "q0", "solution": "x", "model": None, "group": "g0"}),
        ("solo1", {"question": "q1", "solution": "x", "model": "alpha", "group": "g1"}),
        ("solo2", {"question": "q1", "solution": "y", "model": "alpha", "group": "g1"}),
        ("once-a", {"question": "q2", "solution": "x", "model": "alpha", "group": "g2"}),
        ("once-b", {"question": "q2", "solution": "y", "model": "beta", "group": "g2"}),
        # g3: alpha answered twice, beta and gamma once: one triple, one single answer not drawn
        ("a1", {"question": "q3", "solution": "a1", "model": "alpha", "group": "g3"}),
        ("a2", {"question": "q3", "solution": "a2", "model": "alpha", "group": "g3"}),
        ("b1", {"question": "q3", "solution": "b1", "model": "beta", "group": "g3"}),
        ("c1", {"question": "q3", "solution": "c1", "model": "gamma", "group": "g3"}),
    ]
    results = dict(zip([i for i, _ in items], run(PolarTriplesBuilder(), items)))
    assert str(results["nomodel"]) == polar.NO_MODEL
    assert str(results["solo1"]) == str(results["solo2"]) == polar.ONE_POLICY
    assert str(results["once-a"]) == str(results["once-b"]) == polar.NO_PAIR
    triple = [r for r in results.values() if isinstance(r, Record)]
    assert len(triple) == 1 and triple[0].reference_model == "alpha"
    negative = json.loads(triple[0].metadata)["negative_id"]
    assert str(results[negative]) == polar.AS_NEGATIVE
    assert str(results[({"b1", "c1"} - {negative}).pop()]) == polar.ONLY_ANSWER


def test_a_response_identical_to_the_negative_is_never_paired_against_it():
    # alpha's second answer repeats beta's only answer: the pair (a1, a2) would put the negative's
    # twin in the triple, so alpha cannot serve and both its rows are left over
    items = [
        ("a1", {"question": "q", "solution": "4", "model": "alpha", "group": "g"}),
        ("a2", {"question": "q", "solution": "five", "model": "alpha", "group": "g"}),
        ("b1", {"question": "q", "solution": "five", "model": "beta", "group": "g"}),
    ]
    results = run(PolarTriplesBuilder(), items)
    assert not records(results)
    assert [str(r) for r in results] == [polar.LEFT_OVER, polar.LEFT_OVER, polar.ONLY_ANSWER]


def test_triple_record_validation():
    rec = PolarTripleRecord(
        id="x",
        source="s",
        question="q",
        reference="r",
        positive="p",
        negative="n",
        reference_model="A",
        negative_model="B",
    )
    rec.validate()
    with pytest.raises(RecordError, match="positive is empty"):
        PolarTripleRecord(**{**rec.__dict__, "positive": " "}).validate()
    with pytest.raises(RecordError, match="must differ"):
        PolarTripleRecord(**{**rec.__dict__, "negative_model": "A"}).validate()
    with pytest.raises(ValueError, match="at least 1"):
        PolarTriplesBuilder(triples_per_prompt=0)


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_build_in_two_processes_keeps_rows_in_equal_records_plus_quarantined(tmp_path):
    rows = [
        {"question": d["question"], "solution": d["solution"], "model": d["model"], "group": d["group"]}
        for _, d in pool(prompts=10)
    ]
    rows.append({"question": "q", "solution": "s", "group": "g9"})  # no model
    path = write_jsonl(tmp_path / "pool.jsonl", rows)

    def stats(num_proc):
        config = BuildConfig(
            sources=[SolutionsSource(path=path)],
            builder=PolarTriplesBuilder(),
            output_dir=str(tmp_path / f"out{num_proc}"),
            num_proc=num_proc,
            cache=False,
        )
        result = build(config, progress=False)
        return result, [json.loads(line) for line in open(result.output_dir / "data.jsonl")]

    (one, rows_one), (_, rows_two) = stats(1), stats(2)
    assert rows_one == rows_two  # the plan made in prepare reaches the worker processes intact
    s = one.stats
    assert s["rows_in"] == 91 == s["rows_out"] + s["rows_quarantined"] and s["rows_out"] == 30
    assert s["policy_as_a"] == {m: 10 for m in POLICIES}
    assert s["quarantine_reasons"][polar.NO_MODEL] == 1
    assert "| alpha | 10 |" in one.card_path.read_text()


# --- fine-tuning records ----------------------------------------------------------------------


def pref(row_id, question, chosen, rejected):
    return row_id, {
        "question": question,
        "chosen": chosen,
        "rejected": rejected,
        "subset": None,
        "source_name": "synthetic",
    }


def rank(record) -> str:
    return json.loads(record.metadata)["reference_rank"]


def test_the_reference_is_another_pairs_chosen_answer_preferring_one_ranked_above_chosen():
    items = [
        pref("p0", "q", "best", "good"),
        pref("p1", "q", "good", "bad"),
        pref("p2", "q", "other", "worst"),
        pref("p3", "q", "bad", "worst"),
    ]
    b = PolarPreferenceBuilder()
    results = dict(zip([i for i, _ in items], run(b, items)))
    # p1: "best" beat its chosen "good" (reference > chosen > rejected); "other" is unranked
    assert (results["p1"].reference, rank(results["p1"])) == ("best", "above_chosen")
    # p3 ("bad" over "worst"): "good" beat "bad" so it ranks above chosen
    assert results["p3"].reference == "good"
    # p0: "good" is its own rejected, "bad" lost to "good"; "other" is the only usable reference
    assert (results["p0"].reference, rank(results["p0"])) == ("other", "unranked")
    for rec in results.values():
        rec.validate()
        assert rec.reference not in (rec.chosen, rec.rejected)


def test_a_single_pair_is_quarantined_by_default_and_self_referenced_on_request():
    items = [pref("solo", "q1", "yes", "no"), pref("a", "q2", "x", "y"), pref("b", "q2", "y", "x")]
    results = run(PolarPreferenceBuilder(), items)
    assert [str(r) for r in results] == [polar.SINGLE_PAIR, polar.NO_REFERENCE, polar.NO_REFERENCE]
    leaky = run(PolarPreferenceBuilder(reference_from="chosen"), items)
    assert [(r.reference, r.chosen, rank(r)) for r in leaky] == [
        ("yes", "yes", "self"),
        ("x", "x", "self"),
        ("y", "y", "self"),
    ]


def test_preference_references_are_seeded():
    items = [pref(f"p{i}", "q", f"chosen {i}", f"rejected {i}") for i in range(20)]
    picks = {seed: [r.reference for r in run(PolarPreferenceBuilder(), items, seed)] for seed in (0, 1)}
    assert picks[0] == [r.reference for r in run(PolarPreferenceBuilder(), items, 0)]
    assert picks[0] != picks[1]


def test_preference_build_counts_references_in_the_card(tmp_path):
    rows = [
        {"prompt": "q", "chosen": "best", "rejected": "good", "subset": "s"},
        {"prompt": "q", "chosen": "good", "rejected": "bad", "subset": "s"},
        {"prompt": "alone", "chosen": "a", "rejected": "b", "subset": "s"},
    ]
    config = BuildConfig(
        sources=[RewardBench(path=write_jsonl(tmp_path / "p.jsonl", rows))],
        builder=PolarPreferenceBuilder(),
        output_dir=str(tmp_path / "out"),
        cache=False,
    )
    result = build(config, progress=False)
    assert (result.stats["rows_out"], result.stats["rows_quarantined"]) == (1, 2)
    assert result.stats["reference_rank"] == {"above_chosen": 1, "unranked": 0, "self": 0}
    assert result.load()[0]["task"] == "polar_preference"
    assert "## References" in result.card_path.read_text()


# --- real pools (../shared/data) --------------------------------------------------------------


@pytest.mark.shared_data
def test_codet_config_builds_810_triples_and_accounts_for_every_row(tmp_path, monkeypatch, shared_data):
    monkeypatch.chdir(CONFIGS.parents[1])
    config = load_config(BuildConfig, CONFIGS / "codet_polar_triples.yaml", [f"output_dir={tmp_path / 'out'}"])
    result = build(config, progress=False)
    s = result.stats
    assert s["rows_in"] == 164 * 10 + 164 == s["rows_out"] + s["rows_quarantined"]
    assert s["rows_out"] == 810
    # one eligible policy: CodeGen-16B is always A, the human solution always B
    assert s["policy_as_a"] == {"codegen-16B": 810} and s["policy_as_b"] == {"human": 810}
    why = s["quarantine_reasons"]
    assert why == {polar.AS_REFERENCE: 810, polar.AS_NEGATIVE: 164, polar.LEFT_OVER: 20}
    rows = [json.loads(line) for line in open(result.output_dir / "data.jsonl")]
    quarantined = {q["id"]: q["reason"] for q in map(json.loads, open(result.output_dir / "quarantine.jsonl"))}
    assert all(quarantined[json.loads(r["metadata"])["reference_id"]] == polar.AS_REFERENCE for r in rows)
    assert all(quarantined[json.loads(r["metadata"])["negative_id"]] == polar.AS_NEGATIVE for r in rows)
    assert max(Counter(json.loads(r["metadata"])["group"] for r in rows).values()) == 5
    assert all(r["negative"] != r["positive"] for r in rows)


@pytest.mark.shared_data
def test_gsm8k_solutions_give_no_triple_one_answer_per_policy_per_question(tmp_path, shared_data):
    from data_pipelines.sources.math import GSM8KSolutions

    source = GSM8KSolutions(path=str(shared_data / "gsm8k" / "example_model_solutions.jsonl"))
    config = BuildConfig(sources=[source], builder=PolarTriplesBuilder(), output_dir=str(tmp_path / "out"))
    s = build(config, progress=False).stats
    assert (s["rows_in"], s["rows_out"]) == (5276, 0)
    assert s["quarantine_reasons"] == {polar.NO_PAIR: 5276}


@pytest.mark.shared_data
def test_llmbar_gives_162_fine_tuning_records_with_references_from_other_pairs(tmp_path, shared_data):
    from data_pipelines.sources.preference import LLMBar

    config = BuildConfig(
        sources=[LLMBar(path=str(shared_data / "llmbar"))],
        builder=PolarPreferenceBuilder(),
        output_dir=str(tmp_path / "out"),
    )
    result = build(config, progress=False)
    s = result.stats
    assert (s["rows_in"], s["rows_out"], s["rows_quarantined"]) == (619, 162, 457)
    assert s["reference_rank"] == {"above_chosen": 42, "unranked": 120, "self": 0}
    for row in map(json.loads, open(result.output_dir / "data.jsonl")):
        assert row["reference"].strip() not in (row["chosen"].strip(), row["rejected"].strip())
