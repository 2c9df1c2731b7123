"""The grm and meta_rm recipes: RFT's filter rules and data card, the listwise GRPO reward, the meta RM's
labels, and one end-to-end run on a few records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from critics.recipes import grm, meta_rm
from critics.rewards.verdict import ListwiseReward

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from grm_experiment import SlippingTeacher, judgment, write_items  # noqa: E402

ROW = {"task": "listwise", "question": "3+4?", "responses": ["3+4=8", "3+4=7"], "label": 1, "best": None}
PROMPT = [{"role": "user", "content": "p"}]
RIGHT, WRONG, TIE = "\\boxed{2, 9}", "\\boxed{9, 2}", "\\boxed{5, 5}"


def test_rft_keeps_right_judgments_and_drops_too_easy_records_with_counts():
    rows = [ROW, ROW, ROW, ROW]
    prompts = [PROMPT, PROMPT, PROMPT, None]
    judgments = [[RIGHT, RIGHT], [RIGHT, WRONG, TIE, "no box", "\\boxed{9}"], [WRONG, WRONG], [RIGHT]]
    kept, stats = grm.rft_filter(rows, prompts, judgments)
    assert len(kept) == 1 and kept[0]["completion"][0]["content"] == RIGHT and kept[0]["prompt"] == PROMPT
    assert stats == {
        "records: too easy": 1,
        "too easy": 2,
        "kept": 1,
        "wrong pick": 4,  # a wrong argmax three times, and a tie for the top
        "no verdict": 1,
        "wrong score count": 1,
        "records: kept": 1,
        "records: none right": 1,
        "records: too long": 1,
    }
    kept, stats = grm.rft_filter(rows[:1], prompts[:1], judgments[:1], drop_too_easy=False, keep_per_record=1)
    assert len(kept) == 1 and stats["extra match"] == 1


def test_a_hinted_reask_is_trained_on_the_unhinted_prompt():
    kept, stats = grm.rft_filter([ROW], [PROMPT], [[WRONG]], hinted=[[RIGHT]])
    assert kept[0]["prompt"] == PROMPT and kept[0]["completion"][0]["content"] == RIGHT
    assert stats["records: hinted"] == 1 and stats["records: kept with hint"] == 1 and stats["wrong pick"] == 1
    hinted = grm.with_hint(PROMPT, ROW)
    assert hinted[-1]["content"].endswith("Hint: the best response is Response 2.") and PROMPT[0]["content"] == "p"


def test_the_rejection_card_lists_every_reason():
    card = grm.rejection_card({"kept": 3, "records: too easy": 2}, grm.JudgmentSampler(samples=4), 10)
    assert "| records: too easy | 2 |" in card and "| kept | 3 |" in card and "4 judgments each" in card


def test_the_grpo_stage_takes_its_own_batch_and_learning_rate(tmp_path):
    from critics.recipes import critic_rl
    from critics.recipes.common import RunSettings

    config = grm.GRMConfig(
        run=RunSettings(output_dir=str(tmp_path), per_device_train_batch_size=16, learning_rate=3e-3),
        rl=grm.RLSettings(learning_rate=2e-5, batch_size=64),
    )
    run = grm.rl_config(config, "model", tmp_path).run
    assert (run.per_device_train_batch_size, run.learning_rate) == (64, 2e-5)
    assert grm.rl_config(grm.GRMConfig(run=config.run), "model", tmp_path).run.per_device_train_batch_size == 16
    with pytest.raises(ValueError, match="rl.batch_size"):
        grm.GRMConfig(rl=grm.RLSettings(batch_size=12), grpo=critic_rl.GRPOSettings(num_generations=8))


def test_listwise_reward_is_plus_one_or_minus_one_and_cannot_be_gamed():
    rows = {"task": ["listwise"] * 6, "responses": [ROW["responses"]] * 6, "label": [1] * 6}
    texts = [RIGHT, WRONG, TIE, "\\boxed{2, 11}", "\\boxed{3+4=7}", "\\boxed{2, 9, 1}"]
    assert ListwiseReward()(None, texts, **rows) == [1.0, -1.0, -1.0, -1.0, -1.0, -1.0]
    cut = ListwiseReward(max_completion_tokens=4)(
        None, [RIGHT], completion_ids=[[1] * 4], **{k: v[:1] for k, v in rows.items()}
    )
    assert cut == [-1.0]  # a judgment cut off by the limit earns no more than a wrong one


def test_meta_rm_labels_are_the_listwise_rule():
    rows = grm.judgment_rows([ROW], [[RIGHT, WRONG, TIE]], "final")
    assert [r["right"] for r in rows] == [True, False, False]
    assert [r["reason"] for r in rows] == ["ok", "wrong pick", "wrong pick"]
    assert {r["stage"] for r in rows} == {"final"} and [r["sample"] for r in rows] == [0, 1, 2]


def test_meta_rm_refuses_malformed_judgments(tmp_path):
    path = tmp_path / "judgments.jsonl"
    path.write_text(json.dumps({"question": "q", "responses": ["a"], "label": 0, "judgment": "j"}) + "\n")
    with pytest.raises(ValueError, match=r"judgments.jsonl:1"):
        meta_rm.load_judgments(meta_rm.MetaRMData(judgments=str(tmp_path), stage=""))


def test_the_teacher_writes_judgments_the_parser_reads():
    teacher = SlippingTeacher(slip=0.0, seed=0)
    [text] = teacher.generate(
        [[{"role": "user", "content": "1: 3+4=8\n2: 3+4=7\nQ: 3+4?\nScores 1-10?"}]], max_new_tokens=48, temperature=1.0
    )
    assert text == judgment(3, 4, [8, 7], 7) and grm.judge_samples(ROW, [text]) == [(True, "ok")]


@pytest.mark.slow
def test_grm_then_meta_rm_end_to_end(tmp_path):
    from critics.models import ModelConfig
    from critics.recipes import critic_rl
    from critics.recipes.common import DataSettings, EvalSettings, RunSettings, TemplateSettings
    from critics.tiny import save_tiny_checkpoint

    base = save_tiny_checkpoint(tmp_path / "base", hidden_size=32, num_layers=1)
    train, held = write_items(tmp_path / "train.jsonl", 24, 0), write_items(tmp_path / "held.jsonl", 8, 1, start=24)
    run = RunSettings(
        output_dir=str(tmp_path / "grm"), per_device_train_batch_size=8, learning_rate=1e-3, save_steps=100
    )
    config = grm.GRMConfig(
        model=ModelConfig(name_or_path=str(base), device="cpu"),
        data=DataSettings(train=str(train), eval=str(held), task="listwise"),
        run=run,
        rft=grm.RFTSettings(sampler=grm.JudgmentSampler(samples=3), max_steps=2, hint=True),
        rl=grm.RLSettings(max_steps=1),
        grpo=critic_rl.GRPOSettings(num_generations=2, max_completion_length=16, beta=0.0),
        template=TemplateSettings(style="compact"),
        eval=EvalSettings(max_new_tokens=16),
        meta_samples=2,
    )
    result = grm.run(config, progress=False, teacher=SlippingTeacher(slip=0.5, seed=0))
    spec = json.loads((Path(result["final"]) / "critic_spec.json").read_text())
    assert spec["tasks"] == ["listwise"]
    card = json.loads((tmp_path / "grm" / "rft" / "rejections.json").read_text())
    assert card["records: kept"] + card.get("records: too easy", 0) + card.get("records: none right", 0) == 24
    judged = [json.loads(line) for line in (tmp_path / "grm" / "judgments.jsonl").read_text().splitlines()]
    assert sum(r["stage"] == "rft" for r in judged) == 24 * 3 and sum(r["stage"] == "final" for r in judged) == 24 * 2
    for stage in ("before", "after RFT", "after GRPO"):
        assert stage in result["metrics"]
    # a few right judgments so that the meta RM has both labels
    extra = grm.judgment_rows(
        [json.loads(line) for line in train.read_text().splitlines()][:6], [[judgment(0, 0, [0], 0)]] * 6, "final"
    )
    grm.append_judgments(tmp_path / "grm", extra)
    meta = meta_rm.run(
        meta_rm.MetaRMConfig(
            model=ModelConfig(name_or_path=str(base), device="cpu"),
            data=meta_rm.MetaRMData(judgments=str(tmp_path / "grm"), eval_items=4),
            run=RunSettings(
                output_dir=str(tmp_path / "meta"), max_steps=2, per_device_train_batch_size=8, save_steps=100
            ),
        ),
        progress=False,
    )
    from critics.judging.meta import MetaLayout, MetaRM

    assert MetaLayout.load(meta["final"]).style == "compact"
    assert {"accuracy", "auc", "top_right", "base_rate"} <= set(meta["metrics"]["after"])
    scorer = MetaRM.from_pretrained(meta["final"], device="cpu")
    from types import SimpleNamespace

    [score] = scorer.scores([ROW], [SimpleNamespace(text=RIGHT)])
    assert isinstance(score, float)
