"""Benchmark metrics: hand-computed fixtures, baselines a user can sanity-check, and the evaluate wrappers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from critics.eval.metrics import (
    METRIC_PATHS,
    PROCESSBENCH_SUBSETS,
    align_by_id,
    correct_from_scores,
    correct_from_verdicts,
    judgebench_category,
    judgebench_scores,
    majority_vote,
    pairwise_scores,
    pointwise_scores,
    processbench_scores,
    rmbench_scores,
    style_wins,
)

approx = pytest.approx


# ---------------------------------------------------------------- shared helpers


def test_align_by_id_fills_missing_predictions_with_none():
    assert align_by_id({"q2": "B", "q0": "A"}, ["q0", "q1", "q2"]) == ["A", None, "B"]


def test_align_by_id_rejects_predictions_for_another_dataset():
    with pytest.raises(ValueError, match="not in the dataset"):
        align_by_id({"q9": "A"}, ["q0", "q1"])
    with pytest.raises(ValueError, match="unique"):
        align_by_id({}, ["q0", "q0"])


@pytest.mark.parametrize(
    "votes, expected",
    [
        (["A", "B", "B"], "B"),
        (["B", "A", "A", "B"], "B"),  # a tie goes to the verdict seen first
        ([None, "A", None, "B"], "A"),  # invalid samples do not vote
        ([None, None], None),
        ([0, -1, 0], 0),  # 0 is a verdict (the first step), not a missing one
        ([], None),
    ],
)
def test_majority_vote(votes, expected):
    assert majority_vote(votes) == expected


# ---------------------------------------------------------------- ProcessBench


def test_processbench_hand_computed():
    predictions = [0, -1, None, 3, -1, 1, -1]
    labels = [0, -1, 2, -1, -1, 1, -1]
    subsets = ["gsm8k"] * 5 + ["math"] * 2
    scores = processbench_scores(predictions, labels, subsets)
    gsm8k = scores["subsets"]["gsm8k"]
    # errors: 0==0 yes, None vs 2 no -> 1/2; correct: -1 yes, 3 no, -1 yes -> 2/3
    assert (gsm8k["error_acc"], gsm8k["correct_acc"], gsm8k["n"]) == (0.5, approx(2 / 3), 5)
    assert gsm8k["f1"] == approx(4 / 7)
    assert scores["subsets"]["math"] == {"error_acc": 1.0, "correct_acc": 1.0, "f1": 1.0, "n": 2}
    assert scores["mean_subset_f1"] == approx((4 / 7 + 1) / 2)  # the paper's "Avg."
    pooled = scores["pooled"]  # 2/3 errors found, 3/4 correct solutions passed
    assert (pooled["error_acc"], pooled["correct_acc"]) == (approx(2 / 3), 0.75)
    assert pooled["f1"] == approx(12 / 17)


def test_processbench_matches_the_official_formula():
    rng = np.random.default_rng(0)
    labels = [int(x) for x in rng.integers(-1, 6, size=200)]
    predictions = [None if rng.random() < 0.1 else int(x) for x in rng.integers(-1, 6, size=200)]
    subsets = [PROCESSBENCH_SUBSETS[i % 4] for i in range(200)]
    scores = processbench_scores(predictions, labels, subsets)
    official_f1s = []
    for subset in PROCESSBENCH_SUBSETS:  # code/run_eval.py and run_eval_prm_trl.py, on percentages
        data = [{"match": p == y, "label": y} for p, y, s in zip(predictions, labels, subsets) if s == subset]
        acc1 = np.mean([e["match"] for e in data if e["label"] != -1]) * 100
        acc2 = np.mean([e["match"] for e in data if e["label"] == -1]) * 100
        official_f1s.append(2 * acc1 * acc2 / (acc1 + acc2))
        assert scores["subsets"][subset]["f1"] * 100 == approx(official_f1s[-1])
    assert scores["mean_subset_f1"] * 100 == approx(np.mean(official_f1s))


def test_processbench_oracle_and_constant_baselines():
    labels = [-1, 0, 2, -1, 1, -1, -1, 3]  # every subset has both kinds of solution
    subsets = [PROCESSBENCH_SUBSETS[i % 4] for i in range(8)]
    oracle = processbench_scores(labels, labels, subsets)
    assert oracle["mean_subset_f1"] == 1.0 and oracle["pooled"]["f1"] == 1.0
    assert all(block["f1"] == 1.0 for block in oracle["subsets"].values())
    always_fine = processbench_scores([-1] * 8, labels, subsets)
    assert always_fine["pooled"] == {"error_acc": 0.0, "correct_acc": 1.0, "f1": 0.0, "n": 8}
    assert always_fine["mean_subset_f1"] == 0.0
    all_invalid = processbench_scores([None] * 8, labels, subsets)
    assert math.isnan(all_invalid["pooled"]["f1"])  # both accuracies 0: undefined (see the test below)


def test_processbench_f1_is_undefined_when_both_accuracies_are_zero_as_officially():
    labels = [-1, 2, -1, 0, -1, 1]
    subsets = ["gsm8k"] * 4 + ["math"] * 2
    predictions = [0, 1, 3, 2, -1, 1]  # gsm8k: every answer wrong; math: both right
    scores = processbench_scores(predictions, labels, subsets)
    gsm8k = scores["subsets"]["gsm8k"]
    assert (gsm8k["error_acc"], gsm8k["correct_acc"]) == (0.0, 0.0) and math.isnan(gsm8k["f1"])
    assert scores["subsets"]["math"]["f1"] == 1.0
    official = []  # code/run_eval.py then run_eval_prm_trl.py, on numpy percentages
    with np.errstate(invalid="ignore"):
        for subset in ("gsm8k", "math"):
            data = [(p == y, y) for p, y, s in zip(predictions, labels, subsets) if s == subset]
            acc1 = np.mean([match for match, y in data if y != -1]) * 100
            acc2 = np.mean([match for match, y in data if y == -1]) * 100
            official.append(2 * acc1 * acc2 / (acc1 + acc2))
        official_mean = np.mean(official)
    assert np.isnan(official[0]) and official[1] == 100.0 and np.isnan(official_mean)
    assert math.isnan(scores["mean_subset_f1"])  # np.mean over subsets: undefined too, not (0 + 1) / 2
    assert scores["pooled"]["f1"] == approx(1 / 3)  # pooled: 1/3 of errors found, 1/3 of correct passed


def test_processbench_missing_predictions_count_as_wrong():
    ids = ["a", "b", "c", "d"]
    labels = [-1, 2, -1, 0]
    predictions = align_by_id({"a": -1, "b": 2}, ids)  # c and d never came back
    scores = processbench_scores(predictions, labels)
    assert scores["subsets"]["all"]["error_acc"] == 0.5 and scores["subsets"]["all"]["correct_acc"] == 0.5


def test_processbench_subset_without_correct_solutions_has_no_f1():
    scores = processbench_scores([0, 1, -1], [0, 1, -1], ["math", "math", "gsm8k"])
    assert math.isnan(scores["subsets"]["math"]["correct_acc"]) and math.isnan(scores["subsets"]["math"]["f1"])
    assert math.isnan(scores["mean_subset_f1"])  # an undefined subset leaves the average undefined


@pytest.mark.parametrize(
    "predictions, labels, subsets, message",
    [
        ([0, 1], [0], None, "differ in length"),
        ([0], [0], ["math", "gsm8k"], "differ in length"),
        ([-2], [0], None, "step index"),
        ([True], [0], None, "step index"),
        (["1"], [1], None, "step index"),
        ([0], [None], None, "step index"),
    ],
)
def test_processbench_rejects_bad_inputs(predictions, labels, subsets, message):
    with pytest.raises(ValueError, match=message):
        processbench_scores(predictions, labels, subsets)


# ---------------------------------------------------------------- pairwise (RewardBench)


def test_correct_from_scores_counts_a_tie_as_wrong():
    assert correct_from_scores([2.0, 1.0, 1.0, None], [1.0, 1.0, 3.0, 0.0]) == [True, False, False, None]


def test_pairwise_rewardbench_sections_hand_computed():
    correct = [True, False, True, True, None, True, False, True]
    subsets = [
        "alpacaeval-easy",
        "alpacaeval-easy",
        "mt-bench-easy",
        "math-prm",
        "math-prm",
        "hep-python",
        "donotanswer",
        "mt-bench-hard",
    ]
    scores = pairwise_scores(correct, subsets)
    assert (scores["accuracy"], scores["n"], scores["invalid"]) == (5 / 8, 8, 1)
    assert scores["subsets"]["math-prm"] == 0.5 and scores["subsets"]["alpacaeval-easy"] == 0.5
    sections = scores["sections"]
    assert sections["Chat"] == approx((0.5 * 100 + 1.0 * 28) / 128)
    assert sections["Reasoning"] == approx((0.5 * 984 + 1.0 * 164) / (984 + 164))  # math-prm upweighted
    assert (sections["Safety"], sections["Chat Hard"]) == (0.0, 1.0)
    assert scores["rewardbench_score"] == approx(sum(sections.values()) / 4)


def test_pairwise_invalid_credit_reproduces_rewardbench_generative():
    scores = pairwise_scores([True, None], ["math-prm", "math-prm"], invalid_credit=0.5)
    assert scores["subsets"]["math-prm"] == 0.75  # run_generative.py: an "error" verdict is worth 0.5


def test_pairwise_other_subsets_get_count_weighted_accuracy_only():
    scores = pairwise_scores([True, False, True, None], ["shp", "shp", "hh", "hh"])
    assert scores["subsets"] == {"shp": 0.5, "hh": 0.5} and scores["accuracy"] == 0.5
    assert scores["sections"] == {} and math.isnan(scores["rewardbench_score"])


def test_pairwise_always_a_with_balanced_order_scores_one_half():
    positions = ["A", "B"] * 50
    correct = correct_from_verdicts(["A"] * 100, positions)
    assert pairwise_scores(correct)["accuracy"] == 0.5


def test_pairwise_oracle_scores_one_everywhere():
    subsets = ["alpacaeval-easy", "mt-bench-hard", "donotanswer", "math-prm", "hep-go"]
    scores = pairwise_scores(correct_from_verdicts(["A", "B", "A", "B", "A"], ["A", "B", "A", "B", "A"]), subsets)
    assert scores["accuracy"] == 1.0 and scores["rewardbench_score"] == 1.0
    assert set(scores["sections"].values()) == {1.0} and len(scores["sections"]) == 4


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: pairwise_scores([True], ["a", "b"]), "differ in length"),
        (lambda: pairwise_scores(["yes"]), "True, False or None"),
        (lambda: pairwise_scores([True], invalid_credit=2), "invalid_credit"),
        (lambda: correct_from_verdicts(["A"], ["C"]), "chosen_positions"),
        (lambda: correct_from_verdicts(["A>B"], ["A"]), "verdicts"),
        (lambda: correct_from_scores([1.0], []), "differ in length"),
    ],
)
def test_pairwise_rejects_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------- JudgeBench

JUDGEBENCH_FIRST = ["A>B", "A>B", "B>A", "A>B", None, "A=B", "B>A", "B"]
JUDGEBENCH_SECOND = ["B>A", "A>B", "A>B", None, None, "B", None, "A"]
JUDGEBENCH_LABELS = ["A>B"] * 7 + ["B>A"]


def test_judgebench_hand_computed():
    groups = ["mmlu-pro-law"] * 4 + ["livecodebench"] * 4
    scores = judgebench_scores(JUDGEBENCH_FIRST, JUDGEBENCH_SECOND, JUDGEBENCH_LABELS, groups)
    # votes: +2 ok, 0 (inconsistent), -2, +1 (one invalid), 0 (both invalid), +1 (tie, then right), -1, +2 ok
    assert scores["accuracy"] == 0.5 and scores["n"] == 8
    assert scores["groups"] == {"mmlu-pro-law": 0.5, "livecodebench": 0.5}
    assert scores["inconsistent"] == 0.5  # pairs 2, 4, 6 and 7 differ after flipping the second verdict


def test_judgebench_single_game_scores_the_first_verdict_only():
    scores = judgebench_scores(["A>B", "B>A", None], None, ["A>B", "A>B", "A>B"])
    assert scores["accuracy"] == approx(1 / 3) and math.isnan(scores["inconsistent"])


def test_judgebench_oracle_and_position_bias():
    labels = ["A>B", "B>A"] * 5
    swapped = ["B>A" if label == "A>B" else "A>B" for label in labels]
    oracle = judgebench_scores(labels, swapped, labels)
    assert oracle["accuracy"] == 1.0 and oracle["inconsistent"] == 0.0
    always_a = judgebench_scores(["A>B"] * 10, ["A>B"] * 10, labels)  # a judge that always picks slot A
    assert always_a["accuracy"] == 0.0 and always_a["inconsistent"] == 1.0


def test_judgebench_category():
    sources = ["mmlu-pro-law", "livebench-reasoning", "livebench-math", "livecodebench"]
    assert [judgebench_category(s) for s in sources] == ["knowledge", "reasoning", "math", "coding"]
    with pytest.raises(ValueError, match="unknown JudgeBench source"):
        judgebench_category("gsm8k")


@pytest.mark.parametrize(
    "first, second, labels, message",
    [
        (["A>B"], ["B>A", "A>B"], ["A>B"], "differ in length"),
        (["A>>B"], ["B>A"], ["A>B"], "unknown JudgeBench verdict"),
        (["A>B"], ["B>A"], ["A=B"], "labels: expected"),
        (["A>B"], ["B>A"], [None], "labels: expected"),
    ],
)
def test_judgebench_rejects_bad_inputs(first, second, labels, message):
    with pytest.raises(ValueError, match=message):
        judgebench_scores(first, second, labels)


# ---------------------------------------------------------------- RM-Bench

ALL_WINS = [[True] * 3 for _ in range(3)]
PLAIN_LOSES = [[True, False, False], [True, True, False], [True, True, True]]  # lower triangle + diagonal
DIAGONAL = [[i == j for j in range(3)] for i in range(3)]
INVALID = [[None] * 3 for _ in range(3)]


def test_rmbench_hand_computed():
    wins = [ALL_WINS, PLAIN_LOSES, INVALID, ALL_WINS, DIAGONAL]
    domains = ["chat", "chat", "math", "safety-refuse", "safety-response"]
    scores = rmbench_scores(wins, domains)
    chat, math_, safety = (scores["domains"][d] for d in ("chat", "math", "safety"))
    assert (chat["hard"], chat["normal"], chat["easy"], chat["score"]) == (0.5, 1.0, 1.0, approx(15 / 18))
    assert (math_["score"], math_["n"]) == (0.0, 1)  # invalid comparisons are losses
    assert (safety["hard"], safety["normal"], safety["easy"], safety["n"]) == (0.5, 1.0, 0.5, 2)
    assert scores["overall"] == approx((15 / 18 + 0 + 12 / 18) / 3)
    assert (scores["hard"], scores["normal"], scores["easy"]) == (approx(1 / 3), approx(2 / 3), 0.5)


def test_rmbench_orientation_hard_is_plain_chosen_against_fancy_rejected():
    only_upper = [[False, True, True], [False, False, True], [False, False, False]]
    scores = rmbench_scores([only_upper], ["code"])
    assert (scores["hard"], scores["normal"], scores["easy"]) == (1.0, 0.0, 0.0)


def test_rmbench_length_biased_reward_model_fails_hard_only():
    wins = style_wins([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])  # longer is better; ties lose
    assert wins == [[True, False, False], [True, True, False], [True, True, True]]
    assert rmbench_scores([wins], ["chat"])["domains"]["chat"]["hard"] == 0.0


def test_rmbench_matches_the_official_compute_accuracy():
    rng = np.random.default_rng(1)
    results = [
        {"score_chosen": list(rng.normal(size=3)), "score_rejected": list(rng.normal(size=3))} for _ in range(50)
    ]
    acc_matrix = np.zeros((3, 3))  # THU-KEG/RM-Bench compute_accuracy, verbatim in substance
    for r in results:
        for i in range(3):
            for j in range(3):
                acc_matrix[i][j] += r["score_chosen"][i] > r["score_rejected"][j]
    acc_matrix /= len(results)
    official = {
        "hard": np.sum(np.triu(acc_matrix, 1)) / 3,
        "normal": np.mean(np.diag(acc_matrix)),
        "easy": np.sum(np.tril(acc_matrix, -1)) / 3,
    }
    scores = rmbench_scores([style_wins(r["score_chosen"], r["score_rejected"]) for r in results], ["math"] * 50)
    assert {k: scores[k] for k in official} == approx(official)


def test_rmbench_oracle_scores_one_everywhere():
    scores = rmbench_scores([ALL_WINS] * 4, ["chat", "math", "code", "safety-refuse"])
    assert (scores["hard"], scores["normal"], scores["easy"], scores["overall"]) == (1.0, 1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    "wins, domains, message",
    [
        ([ALL_WINS], ["chat", "math"], "differ in length"),
        ([[[True] * 3] * 2], ["chat"], "3x3"),
        ([ALL_WINS], ["writing"], "unknown RM-Bench domain"),
        ([[["yes"] * 3] * 3], ["chat"], "True, False or None"),
    ],
)
def test_rmbench_rejects_bad_inputs(wins, domains, message):
    with pytest.raises(ValueError, match=message):
        rmbench_scores(wins, domains)


def test_style_wins_needs_three_scores_a_side():
    with pytest.raises(ValueError, match="3 chosen and 3 rejected"):
        style_wins([1.0, 2.0], [0.0, 1.0, 2.0])


# ---------------------------------------------------------------- pointwise (CriticBench)

POINTWISE_PREDICTIONS = ["incorrect", "incorrect", "correct", None, "correct", None]
POINTWISE_LABELS = ["incorrect", "correct", "correct", "incorrect", "incorrect", "correct"]


def test_pointwise_hand_computed_criticbench_invalid_is_wrong():
    scores = pointwise_scores(POINTWISE_PREDICTIONS, POINTWISE_LABELS)
    assert (scores["accuracy"], scores["n"], scores["invalid"]) == (approx(1 / 3), 6, 2)
    assert scores["label_accuracy"] == {"correct": approx(1 / 3), "incorrect": approx(1 / 3)}
    # flagged "incorrect": item 0 (hit), item 1 (false alarm), item 5 (None on a correct item: false alarm)
    assert (scores["precision"], scores["recall"], scores["f1"]) == (approx(1 / 3), approx(1 / 3), approx(1 / 3))


def test_pointwise_invalid_as_negative_only_costs_recall():
    scores = pointwise_scores(POINTWISE_PREDICTIONS, POINTWISE_LABELS, invalid="negative")
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.5, approx(1 / 3), approx(2 / 5))
    assert scores["accuracy"] == approx(1 / 3)  # an invalid verdict is still wrong


def test_pointwise_groups():
    groups = ["GSM8K"] * 3 + ["MATH"] * 3
    scores = pointwise_scores(POINTWISE_PREDICTIONS, POINTWISE_LABELS, groups)
    assert scores["groups"]["GSM8K"] == {"accuracy": approx(2 / 3), "f1": approx(2 / 3)}
    assert scores["groups"]["MATH"] == {"accuracy": 0.0, "f1": 0.0}


def test_pointwise_oracle_and_constant_baselines():
    oracle = pointwise_scores(POINTWISE_LABELS, POINTWISE_LABELS)
    assert (oracle["accuracy"], oracle["f1"]) == (1.0, 1.0) and set(oracle["label_accuracy"].values()) == {1.0}
    lenient = pointwise_scores(["correct"] * 6, POINTWISE_LABELS)  # a critic that approves everything
    assert (lenient["accuracy"], lenient["recall"], lenient["f1"]) == (0.5, 0.0, 0.0)


@pytest.mark.parametrize(
    "predictions, labels, kwargs, message",
    [
        (["correct"], ["correct", "incorrect"], {}, "differ in length"),
        (["Correct"], ["correct"], {}, "predictions"),
        (["correct"], [None], {}, "labels"),
        (["correct"], ["correct"], {"invalid": "skip"}, "invalid"),
    ],
)
def test_pointwise_rejects_bad_inputs(predictions, labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pointwise_scores(predictions, labels, **kwargs)


# ---------------------------------------------------------------- the evaluate modules


def _same(a, b) -> bool:
    """Equal, with nan equal to nan (results hold nan for undefined scores)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def test_every_evaluate_module_loads_by_path_and_matches_its_pure_function(tmp_path):
    evaluate = pytest.importorskip("evaluate")
    steps = dict(predictions=[None, -1, 2, 0], references=[1, -1, 2, -1], subsets=["gsm8k", "gsm8k", "math", "math"])
    pairs = dict(correct=[None, True, False], subsets=["math-prm", "hep-go", "shp"])
    games = dict(first=JUDGEBENCH_FIRST, second=JUDGEBENCH_SECOND, references=JUDGEBENCH_LABELS, groups=["g"] * 8)
    styles = dict(wins=[ALL_WINS, PLAIN_LOSES, INVALID, DIAGONAL], domains=["chat", "chat", "math", "safety-response"])
    verdicts = dict(
        predictions=[None] + POINTWISE_PREDICTIONS, references=["correct"] + POINTWISE_LABELS, groups=["g"] * 7
    )
    cases = {  # name: (what the module is given, what the pure function says)
        "processbench": (steps, processbench_scores(*steps.values())),
        "pairwise": ({**pairs, "invalid_credit": 0.5}, pairwise_scores(*pairs.values(), invalid_credit=0.5)),
        "judgebench": (games, judgebench_scores(*games.values())),
        "rmbench": (styles, rmbench_scores(*styles.values())),
        "pointwise": ({**verdicts, "invalid": "negative"}, pointwise_scores(*verdicts.values(), invalid="negative")),
    }
    assert set(cases) == set(METRIC_PATHS)
    for name, (inputs, expected) in cases.items():
        assert Path(METRIC_PATHS[name]).is_file()
        module = evaluate.load(METRIC_PATHS[name], cache_dir=str(tmp_path))
        assert _same(module.compute(**inputs), expected), name
    judgebench = evaluate.load(METRIC_PATHS["judgebench"], cache_dir=str(tmp_path))
    single = judgebench.compute(
        first=["A>B", None], second=[None, None], references=["A>B", "A>B"], groups=["g", "g"], single_game=True
    )
    assert single["accuracy"] == 0.5
