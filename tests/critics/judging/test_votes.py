"""Test-time scaling: the spec's samples/vote fields, the votes, judge() sampling k in one call, the meta RM."""

from __future__ import annotations

import pytest

from critics.config import ConfigError
from critics.judging.chat import ChatModel
from critics.judging.judge import Critique, judge
from critics.judging.meta import MetaLayout, MetaRM, meta_conversation
from critics.judging.spec import CriticSpec, spec_from_dict
from critics.judging.verdicts import Verdict, fail
from critics.judging.votes import combine, vote

ROW = {"task": "listwise", "question": "Which is true?", "responses": ["2+3=5", "2+3=6"], "label": 0}


def _c(value, text: str = "") -> Critique:
    if value is None:
        return Critique(text or "no box", fail("no verdict"), None)
    if isinstance(value, tuple):
        return Critique(text or f"\\boxed{{{value}}}", Verdict(value, True, "ok"), (value[0] - 1) / 9)
    return Critique(text or value, Verdict(value, True, "ok"), 1.0 if value == "A" else 0.0)


# ---- the spec ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"samples": 4}, "spec.temperature is 0"),
        ({"samples": 0}, "spec.samples must be a positive int"),
        ({"samples": True}, "spec.samples must be a positive int"),
        ({"vote": "summ"}, "spec.vote: unknown vote 'summ' (did you mean 'sum'?)"),
        ({"vote": "sum"}, "spec.vote: vote 'sum' combines per-response scores"),
        ({"tasks": ["pairwise"], "vote": "meta"}, "pairwise verdicts vote by majority"),
        ({"tasks": ["listwise"], "samples": 4, "temperature": 1.0, "meta_keep": 5}, "spec.meta_keep must be between 1"),
        ({"tasks": ["listwise"], "meta_keep": 0}, "spec.meta_keep must be between 1"),
        (
            {"tasks": ["reference"], "layout": "polar", "max_new_tokens": 0, "samples": 2, "temperature": 1.0},
            "scores once",
        ),
    ],
)
def test_bad_vote_settings_are_config_errors_naming_the_field(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        CriticSpec(**fields)
    assert message in str(error.value)


def test_vote_settings_round_trip_through_the_spec_file() -> None:
    spec = CriticSpec(tasks=["listwise"], samples=8, vote="meta", meta_keep=3, temperature=1.0)
    back = spec_from_dict(spec.to_dict())
    assert (back.samples, back.vote, back.meta_keep) == (8, "meta", 3)
    assert CriticSpec().samples == 1 and CriticSpec().vote is None  # the defaults: one greedy judgment
    assert CriticSpec(tasks=["listwise", "pairwise"], vote="majority").vote == "majority"  # majority fits all
    with pytest.raises(ConfigError, match="spec.temperature"):
        spec.overridden(temperature=0.0)


# ---- the votes ---------------------------------------------------------------------------------------


def test_sum_adds_valid_score_lists_and_invalid_samples_do_not_vote() -> None:
    samples = [_c((7, 3)), _c(None), _c((4, 6)), _c((8, 1))]
    voted = vote(samples, ROW, "sum")
    assert voted.verdict == Verdict((19, 10), True, "ok") and voted.samples == tuple(samples)
    assert voted.score == pytest.approx(sum((v - 1) / 9 for v in (7, 4, 8)) / 3)
    assert vote(samples, ROW).verdict.value == (19, 10)  # listwise's default is sum
    assert vote(samples, ROW, "mean").verdict.value == pytest.approx((19 / 3, 10 / 3))


def test_sum_can_beat_majority_and_a_tie_in_the_sum_is_no_pick() -> None:
    samples = [_c((6, 5)), _c((6, 5)), _c((1, 10))]
    assert vote(samples, ROW, "majority").verdict.value == (6, 5)  # the most common list picks response 1
    assert vote(samples, ROW, "sum").verdict.value == (13, 20)  # the sum picks response 2
    from critics.judging.tasks import best_index, verdict_correct

    tied = vote([_c((9, 2)), _c((2, 9))], ROW, "sum")
    assert best_index(tied.verdict.value) is None and not verdict_correct(tied.verdict, ROW)


def test_majority_ties_go_to_the_first_sampled_and_the_text_is_a_voter_s() -> None:
    row = {"task": "pairwise", "question": "q", "response_a": "a", "response_b": "b"}
    samples = [_c(None), _c("B", "B is better \\boxed{B}"), _c("A"), _c("A"), _c("B")]
    voted = vote(samples, row)
    assert voted.verdict.value == "B" and voted.text == "B is better \\boxed{B}" and voted.score == 0.0
    assert combine(["A", "B"], "majority") == "A"


def test_all_invalid_samples_give_no_verdict_with_the_common_reason() -> None:
    samples = [Critique("x", fail("wrong score count"), None), _c(None), Critique("y", fail("wrong score count"), None)]
    voted = vote(samples, ROW, "sum")
    assert (voted.verdict.ok, voted.verdict.reason, voted.score) == (False, "wrong score count", None)


def test_meta_keeps_the_most_trusted_valid_samples_then_sums() -> None:
    samples = [_c((1, 10)), _c((9, 2)), _c(None), _c((8, 3)), _c((2, 9))]
    trust = [0.1, 0.9, 5.0, 0.8, 0.2]  # the invalid sample is trusted most: it still cannot vote
    assert vote(samples, ROW, "meta", meta_scores=trust, keep=2).verdict.value == (17, 5)
    assert vote(samples, ROW, "meta", meta_scores=trust).verdict.value == (17, 5)  # default keep: 5 // 2
    assert vote(samples, ROW, "meta", meta_scores=trust, keep=5).verdict.value == (20, 24)  # all valid: the sum
    with pytest.raises(ValueError, match="one meta RM score per sample"):
        vote(samples, ROW, "meta", meta_scores=[1.0])
    with pytest.raises(ValueError, match="keep must be between 1"):
        vote(samples, ROW, "meta", meta_scores=trust, keep=0)


def test_a_vote_that_does_not_fit_the_task_is_refused() -> None:
    with pytest.raises(ValueError, match="pointwise verdicts vote by majority"):
        vote([_c("A")], {"task": "pointwise", "question": "q", "response": "r"}, "sum")
    with pytest.raises(ValueError, match="adds score lists of one length"):
        combine([(1, 2), (1, 2, 3)], "sum")


# ---- judge(): k samples in one generate call ----------------------------------------------------------


class CountingModel(ChatModel):
    """Answers listwise prompts with scripted score boxes, counting generate calls and sequences."""

    name = "counting"

    def __init__(self, answers: list[str]):
        self.answers, self.calls, self.ns = answers, 0, []

    def generate(self, conversations, *, max_new_tokens, temperature, n=1):
        self.calls += 1
        self.ns.append(n)
        return [self.answers[(i * n + s) % len(self.answers)] for i in range(len(conversations)) for s in range(n)]


def test_judge_with_samples_makes_one_generate_call_and_votes() -> None:
    answers = ["\\boxed{9, 2}", "\\boxed{3, 4}", "no box", "\\boxed{8, 3}"]
    model = CountingModel(answers)
    spec = CriticSpec(tasks=["listwise"], style="compact", samples=4, temperature=1.0)
    rows = [ROW, {**ROW, "responses": ["a", "b"], "label": 1}, {**ROW, "responses": ["x", "y"]}]
    out = judge(model, rows, spec)
    assert (model.calls, model.ns) == (1, [4])
    assert all(len(c.samples) == 4 for c in out)
    assert out[0].verdict.value == (20, 9)  # 9+3+8, 2+4+3; the box-less sample does not vote
    greedy = CountingModel(answers)
    single = judge(greedy, rows, CriticSpec(tasks=["listwise"], style="compact"))
    assert greedy.ns == [1] and single[0].samples == () and single[0].verdict.value == (9, 2)


class ConstantMeta:
    """A stand-in meta RM: trusts judgments whose text says so."""

    def __init__(self):
        self.calls = 0

    def scores(self, rows, critiques):
        self.calls += 1
        return [1.0 if "trust" in c.text else 0.0 for c in critiques]


def test_judge_meta_vote_scores_every_sample_once_and_needs_a_meta_rm() -> None:
    model = CountingModel(["\\boxed{2, 9}", "trust \\boxed{9, 2}", "\\boxed{1, 9}", "trust \\boxed{8, 1}"])
    spec = CriticSpec(tasks=["listwise"], style="compact", samples=4, temperature=1.0, vote="meta", meta_keep=2)
    meta = ConstantMeta()
    out = judge(model, [ROW, ROW], spec, meta=meta)
    assert meta.calls == 1 and out[0].verdict.value == (17, 3) and model.calls == 1
    with pytest.raises(ValueError, match="meta RM"):
        judge(model, [ROW], spec)


def test_meta_rm_scores_judgments_with_a_tiny_sequence_classifier(tmp_path) -> None:
    from critics.tiny import save_tiny_checkpoint

    path = save_tiny_checkpoint(tmp_path / "meta", classifier=True)
    MetaLayout(style="compact", max_tokens=160).save(path)
    meta = MetaRM.from_pretrained(path, device="cpu")
    critiques = [_c((9, 2), "Scores: \\boxed{9, 2}"), _c((2, 9), "x" * 5000 + "\\boxed{2, 9}")]
    scores = meta.scores([ROW, ROW], critiques)
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores) and scores[0] != scores[1]
    assert all(
        m is not None and meta.model.measure(m, generation_prompt=False) <= 160
        for m in meta.conversations([ROW], critiques[1:])
    )
    assert meta_conversation(ROW, "j")[0]["content"].endswith("Scores 1-10?")
    tight = MetaRM(meta.model, MetaLayout(max_tokens=16))  # nothing fits: never trusted first
    assert tight.scores([ROW], critiques[:1]) == [float("-inf")]
    with pytest.raises(FileNotFoundError, match="meta_rm.json"):
        MetaRM.from_pretrained(tmp_path)
