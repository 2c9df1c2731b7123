"""Actors (in process, over OpenAI-compatible HTTP against `critics serve`, the critic itself), on-policy
critique data, and the critique-then-refine and filtered majority-vote evaluations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from critics import cli, onpolicy
from critics.actors import ActorSettings, ChatActor, make_actor, refine_messages
from critics.eval.refine import critique_then_refine, filtered_majority_vote
from critics.judging.chat import OpenAIChatModel
from critics.tiny import save_tiny_checkpoint
from tests.critics.serving.helpers import free_port, start_server


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("actor") / "model")


@pytest.fixture(scope="module")
def served(tiny):
    """`critics serve` over the tiny checkpoint in a subprocess, with an API key."""
    port = free_port()
    process = start_server(tiny, port, "--api-key", "secret", "--served-model-name", "actor", "--max-new-tokens", "32")
    yield f"http://127.0.0.1:{port}/v1"
    process.terminate()
    process.wait(30)


def test_transformers_actor_batches_n_samples_per_item_and_accepts_one_string(tiny):
    actor = make_actor(ActorSettings(model=str(tiny), device="cpu", style="compact", max_new_tokens=6, batch_size=4))
    solutions = actor.solve(["1+1", "2+2", "3+3"], n=3, temperature=1.0)
    assert [len(s) for s in solutions] == [3, 3, 3] and all(isinstance(t, str) for s in solutions for t in s)
    one = actor.refine("1+1", "1+1=3", "wrong, fix:2", n=2)
    assert len(one) == 2 and all(isinstance(t, str) for t in one)
    greedy = actor.refine(["1+1"] * 2, ["1+1=3"] * 2, ["fix:2"] * 2, n=2)  # refine_temperature 0: greedy
    assert greedy[0] == greedy[1] and greedy[0][0] == greedy[0][1]
    with pytest.raises(ValueError, match="equally long lists"):
        actor.refine(["q1", "q2"], ["s1"], ["c1", "c2"])


def test_the_critic_as_its_own_actor_keeps_its_training_mode_and_follows_its_spec(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from critics.judging.generation import LoadedModel
    from critics.judging.spec import CriticSpec

    model, tokenizer = AutoModelForCausalLM.from_pretrained(str(tiny)), AutoTokenizer.from_pretrained(str(tiny))
    model.train()
    actor = make_actor(
        ActorSettings(kind="self", max_new_tokens=4), LoadedModel(model, tokenizer), CriticSpec(style="compact")
    )
    assert actor.chat_model.lm.model is model and actor.style == "compact"  # a compact critic refines compactly
    assert len(actor.refine(["q"], ["s"], ["c"], n=2)[0]) == 2
    assert model.training  # generation switched to eval mode and back
    with pytest.raises(ValueError, match="pass its loaded model"):
        make_actor(ActorSettings(kind="self"))


def test_openai_actor_solves_and_refines_through_critics_serve(served, tiny):
    actor = make_actor(
        ActorSettings(
            kind="openai", model="actor", base_url=served, api_key="secret", style="compact", max_new_tokens=8
        )
    )
    assert isinstance(actor.chat_model, OpenAIChatModel)
    solutions = actor.solve(["1+1", "2+2"], n=3, temperature=1.0)
    assert [len(s) for s in solutions] == [3, 3]
    revisions = actor.refine(["1+1"], ["1+1=3"], ["fix:2"], n=2)
    assert len(revisions) == 1 and len(revisions[0]) == 2
    # greedy over HTTP equals greedy in process: the server runs the same model on the same prompt
    local = make_actor(ActorSettings(model=str(tiny), device="cpu", style="compact", max_new_tokens=8))
    assert actor.refine("1+1", "1+1=3", "fix:2") == local.refine("1+1", "1+1=3", "fix:2")
    actor.close()


def test_openai_actor_with_a_wrong_key_fails_with_the_servers_message(served):
    import openai

    actor = ChatActor(
        OpenAIChatModel("actor", base_url=served, api_key="wrong", max_retries=0), style="compact", max_new_tokens=4
    )
    with pytest.raises(openai.AuthenticationError):
        actor.solve(["1+1"])


class ScriptedActor:
    """Solves "a+b" right on even samples and one too high on odd ones; refines to whatever follows
    "fix:" in the critique, else keeps the solution."""

    def solve(self, questions, n=1, temperature=None):
        out = []
        for q in questions:
            total = sum(int(x) for x in q.split("+")) if "+" in q else None
            out.append([f"\\boxed{{{total + k % 2}}}" if total is not None else "no idea" for k in range(n)])
        return out

    def refine(self, questions, solutions, critiques, n=1):
        return [
            [f"\\boxed{{{c.split('fix:')[1].split()[0]}}}" if "fix:" in c else s] * n
            for s, c in zip(solutions, critiques)
        ]


def test_sample_records_labels_balances_and_quarantines():
    questions = [{"question": f"{i}+{i}", "gold_answer": str(2 * i)} for i in range(5)]
    questions += [{"question": "", "gold_answer": "1"}, {"question": "1+2"}, {"question": "what?", "gold_answer": "3"}]
    settings = onpolicy.SampleSettings(samples=3, balance="global", verifier="math")
    records, quarantine, report = onpolicy.sample_records(ScriptedActor(), questions, settings)
    # 5 questions x 3 samples: 10 correct, 5 incorrect; "what?" -> 3 unanswered -> incorrect
    assert report["labels_before_balance"] == {"correct": 10, "incorrect": 8}
    assert report["labels"] == {"correct": 8, "incorrect": 8} and len(records) == 16
    assert [q["reason"] for q in quarantine] == [
        "no question in column 'question'",
        "no gold answer in column 'gold_answer'",
    ]
    assert report["questions_never_solved"] == 1 and report["questions_always_solved"] == 0
    assert all(r.task == "pointwise" and r.gold_answer for r in records)
    assert abs(report["pass@1"] - 10 / 18) < 1e-9


def test_critics_data_sample_writes_a_dataset_that_recipes_read(tmp_path, tiny, capsys):
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "".join(json.dumps({"question": f"{i}+1", "answer": f"#### {i + 1}"}) + "\n" for i in range(6))
    )
    config = tmp_path / "sample.yaml"
    config.write_text(
        f"actor: {{kind: transformers, model: {tiny}, style: compact, max_new_tokens: 6, device: cpu}}\n"
        f"questions: {questions}\nanswer_column: answer\noutput_dir: {tmp_path / 'out'}\n"
        "sampling: {samples: 2, balance: none}\n"
    )
    assert cli.main(["data", "sample", str(config), "--no-progress"]) == 0
    assert "records to" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["questions"] == 6 and sum(report["labels"].values()) == 12 - report["quarantined"]
    from critics.judging.records import load_records

    rows = load_records(str(tmp_path / "out"), {})
    assert len(rows) == sum(report["labels"].values()) and set(rows["task"]) <= {"pointwise"}
    assert "On-policy pointwise records" in (tmp_path / "out" / "data_card.md").read_text()


def test_a_sample_config_without_an_actor_names_the_key(tmp_path):
    config = tmp_path / "sample.yaml"
    config.write_text("questions: q.jsonl\n")
    assert cli.main(["data", "sample", str(config)]) == 2


def test_critique_then_refine_counts_each_transition():
    rows = [
        {"question": "1+1", "response": r"\boxed{2}", "label": "correct", "gold_answer": "2"},
        {"question": "1+1", "response": r"\boxed{3}", "label": "incorrect", "gold_answer": "2"},
        {"question": "1+1", "response": r"\boxed{3}", "label": "incorrect", "gold_answer": "2"},
        {"question": "1+1", "response": r"\boxed{2}", "label": "correct", "gold_answer": "2"},
    ]
    critiques = [r"\boxed{Correct}", r"fix:2 \boxed{Incorrect}", r"\boxed{Incorrect}", r"fix:5 \boxed{Incorrect}"]
    result = critique_then_refine(rows, critiques, ScriptedActor(), verifier="math")
    assert (result["c->c"], result["i->c"], result["i->i"], result["c->i"]) == (0.25, 0.25, 0.25, 0.25)
    assert result["refine_accuracy"] == 0.5 and result["accuracy_before"] == 0.5
    assert result["discrimination_accuracy"] == 0.75 and result["change_rate"] == 0.5 and result["n"] == 4


def test_filtered_majority_vote_against_unfiltered_with_ties_and_fallback():
    questions = [
        {"gold_answer": "4", "solutions": [r"\boxed{5}", r"\boxed{4}", r"\boxed{5}"], "verdicts": [False, True, None]},
        {"gold_answer": "7", "solutions": [r"\boxed{7}", r"\boxed{8}"], "verdicts": [False, False]},  # all rejected
        {"gold_answer": "1", "solutions": [r"\boxed{2}", r"\boxed{1}"], "verdicts": [True, True]},  # a tie: first wins
    ]
    votes = filtered_majority_vote(questions, ks=[1, 3])
    assert votes[1] == {"unfiltered": 1 / 3, "filtered": 1 / 3, "n": 3, "kept": 1.0}
    assert votes[3]["unfiltered"] == pytest.approx(1 / 3) and votes[3]["filtered"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one verdict per solution"):
        filtered_majority_vote([{"gold_answer": "1", "solutions": ["a"], "verdicts": []}], ks=[1])


def test_refine_prompts_replay_the_conversation_for_chat_models():
    messages = refine_messages("What is 2+2?", r"2+2=5, \boxed{5}", "2+2 is 4, not 5.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "2+2 is 4, not 5." in messages[-1]["content"] and messages[2]["content"].endswith(r"\boxed{5}")
