"""critics eval on small files in each benchmark's released shape (file names, layout and fields as
the benchmark ships them): every row is read into the subset its file or field names, an oracle
scores full marks, and known critics score what the official scripts give them.

Where each shape comes from:
- ProcessBench: QwenLM/ProcessBench ``dataset/{gsm8k,math}.json`` (the copy in ../shared/data).
- RewardBench: allenai/reward-bench ``data/filtered-00000-of-00001.parquet`` (dataset card features:
  prompt, chosen, chosen_model, rejected, rejected_model, subset, id).
- LLMBar: princeton-nlp/LLMBar ``Dataset/LLMBar/*/dataset.json`` rows, one file per subset named as
  in ../shared/data/llmbar (the released files are all called ``dataset.json``, one folder each).
- JudgeBench: ScalerLab/JudgeBench ``data/dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl``.
- RM-Bench: THU-KEG/RM-Bench ``data/{chat,code,math,safety-refuse,safety-response}_filtered.json``
  (no ``domain`` field: the official ``compute_accuracy`` only splits by domain when rows carry one,
  "this indicates this is total_dataset.json") and ``data/total_dataset.json`` (with ``domain``).
- VL-RewardBench: MMInstruction/VL-RewardBench's fields (id, query, response, human_ranking, models,
  judge, rationale, query_source, ground_truth) with its images exported to files (``image_path``):
  the hub parquet embeds them, which the ``vl_rewardbench`` source does not read.
- HH-RLHF: anthropics/hh-rlhf ``harmless-base/test.jsonl.gz`` (``chosen``/``rejected`` transcripts).
- UltraFeedback: HuggingFaceH4/ultrafeedback_binarized ``data/test_prefs-00000-of-00001.parquet``.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
from PIL import Image

from critics.eval.benchmarks import BENCHMARKS
from critics.eval.run import EvalConfig, run
from tests.critics.eval.test_eval_run import Constant, Oracle

RMBENCH_ROWS = {"chat": 3, "code": 2, "math": 2, "safety-refuse": 2, "safety-response": 1}


def rmbench_row(domain: str, i: int) -> dict:
    """An RM-Bench row: chosen and rejected in the styles concise, detailed, markdown (longer each
    time), every chosen answer one character longer than the rejected one of its style."""
    return {
        "id": f"{domain}/{i}",
        "prompt": f"{domain} prompt {i}",
        "chosen": [f"c{i}!" + "x" * 10 * k for k in range(3)],
        "rejected": [f"r{i}" + "y" * 10 * k for k in range(3)],
    }


def transcript(human: str, reply: str) -> str:
    return f"\n\nHuman: {human}\n\nAssistant: {reply}"


def chat(question: str, reply: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]


def write_parquet(path: Path, rows: list[dict]) -> str:
    import datasets

    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return str(path)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict[str, str]:
    """One small file (or folder) per benchmark, named and shaped as released."""
    root = tmp_path_factory.mktemp("released")
    pb = root / "processbench"
    pb.mkdir()
    for subset, n in (("gsm8k", 4), ("math", 6)):
        (pb / f"{subset}.json").write_text(
            json.dumps(
                [
                    {
                        "id": f"{subset}-{i}",
                        "generator": "Qwen2-7B-Instruct",
                        "problem": f"{subset} problem {i}",
                        "steps": [f"step {k} of {i}" for k in range(3)],
                        "final_answer_correct": i % 2 == 0,
                        "label": -1 if i % 2 == 0 else i % 3,
                    }
                    for i in range(n)
                ],
                indent=2,
            )
        )
    llmbar = root / "llmbar"
    llmbar.mkdir()
    for subset, n in (("Natural", 4), ("Adversarial_Neighbor", 2)):
        (llmbar / f"{subset}.json").write_text(
            json.dumps(
                [
                    {
                        "input": f"{subset} instruction {i}",
                        "output_1": f"first {i}",
                        "output_2": f"second {i}",
                        "label": 1 + i % 2,
                    }
                    for i in range(n)
                ],
                indent=4,
            )
        )
    rmbench = root / "rmbench"
    rmbench.mkdir()
    for domain, n in RMBENCH_ROWS.items():
        (rmbench / f"{domain}_filtered.json").write_text(json.dumps([rmbench_row(domain, i) for i in range(n)]))
    total = root / "total_dataset.json"
    total.write_text(
        json.dumps([{**rmbench_row(d, i), "domain": d} for d, n in RMBENCH_ROWS.items() for i in range(n)], indent=4)
    )
    judgebench = root / "dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl"
    judgebench.write_text(
        "".join(
            json.dumps(
                {
                    "pair_id": f"pair-{i}",
                    "original_id": 100 + i,
                    "source": ["mmlu-pro-law", "livecodebench"][i % 2],
                    "question": f"question {i}",
                    "response_model": "gpt-4o-2024-05-13",
                    "response_A": f"answer A{i}",
                    "response_B": f"answer B{i}",
                    "label": ["A>B", "A>B", "B>A"][i % 3],
                }
            )
            + "\n"
            for i in range(6)
        )
    )
    hh = root / "test.jsonl.gz"
    with gzip.open(hh, "wt", encoding="utf-8") as handle:
        for i in range(6):
            handle.write(
                json.dumps(
                    {
                        "chosen": transcript(f"ask {i}", f"kind reply {i}"),
                        "rejected": transcript(f"ask {i}", f"rude reply {i}"),
                    }
                )
                + "\n"
            )
    return {
        "processbench": str(pb),
        "llmbar": str(llmbar),
        "rmbench": str(rmbench),
        "rmbench_total": str(total),
        "judgebench": str(judgebench),
        "hh_rlhf": str(hh),
        "rewardbench": write_parquet(
            root / "filtered-00000-of-00001.parquet",
            [
                {
                    "prompt": f"prompt {i}",
                    "chosen": f"better {i}",
                    "chosen_model": "GPT-4",
                    "rejected": f"worse {i}",
                    "rejected_model": "Llama-2-7b-chat",
                    "subset": ["alpacaeval-easy", "hep-python"][i % 2],
                    "id": 30 + i,
                }
                for i in range(6)
            ],
        ),
        "ultrafeedback": write_parquet(
            root / "test_prefs-00000-of-00001.parquet",
            [
                {
                    "prompt": f"prompt {i}",
                    "prompt_id": f"p{i}",
                    "score_chosen": 8.0,
                    "score_rejected": 4.5,
                    "chosen": chat(f"prompt {i}", f"good {i}"),
                    "rejected": chat(f"prompt {i}", f"bad {i}"),
                    "messages": chat(f"prompt {i}", f"good {i}"),
                }
                for i in range(4)
            ],
        ),
        "vl_rewardbench": vl_index(root / "vl"),
    }


def vl_index(folder: Path) -> str:
    (folder / "images").mkdir(parents=True)
    rows = []
    for i, (colour, source) in enumerate(
        [("red", "WildVision"), ("blue", "POVID"), ("green", "RLAIF-V"), ("red", "MathVerse")]
    ):
        Image.new("RGB", (16, 16), colour).save(folder / "images" / f"{i}.png")
        rows.append(
            {
                "id": f"vl-{i}",
                "query": "What colour is the square?",
                "image_path": f"images/{i}.png",
                "response": [f"It is {colour}.", "It is black."][:: 1 if i % 2 else -1],
                "human_ranking": [0, 1] if i % 2 else [1, 0],
                "models": ["m1", "m2"],
                "judge": "human",
                "rationale": "",
                "query_source": source,
                "ground_truth": colour,
            }
        )
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(folder / "test.jsonl")


EXPECTED_SUBSETS = {  # what the per-subset item counts must be: every row read, each where its file puts it
    "processbench": {"gsm8k": 4, "math": 6},
    "llmbar": {"Natural": 4, "Adversarial_Neighbor": 2},
    "rmbench": {"chat": 3, "code": 2, "math": 2, "safety": 3},
    "rmbench_total": {"chat": 3, "code": 2, "math": 2, "safety": 3},
    "judgebench": {"knowledge": 3, "coding": 3},
    "hh_rlhf": {"hh_rlhf": 6},
    "rewardbench": {"alpacaeval-easy": 3, "hep-python": 3},
    "ultrafeedback": {"ultrafeedback": 4},
    "vl_rewardbench": {"WildVision": 1, "POVID": 1, "RLAIF-V": 1, "MathVerse": 1},
}


def spec_of(key: str, released: dict[str, str]) -> str:
    return f"{key.removesuffix('_total')}:{released[key]}"


def test_an_oracle_scores_full_marks_on_every_released_shape(tmp_path, released):
    config = EvalConfig(
        target="x",
        benches=[spec_of(k, released) for k in EXPECTED_SUBSETS],
        output_dir=str(tmp_path / "eval"),
        progress=False,
    )
    results = run(config, judge=Oracle(config))
    for key, subsets in EXPECTED_SUBSETS.items():
        metrics = results[spec_of(key, released)]
        assert metrics["quarantined"] == 0 and metrics["invalid_verdicts"] == 0, key
        assert metrics["items"] == sum(subsets.values()) and metrics["headline"][0] == 1.0, key
        counts = (
            {k: v["n"] for k, v in metrics["domains"].items()} if key.startswith("rmbench") else metrics["subset_items"]
        )
        assert counts == subsets, key


def test_rmbench_takes_each_domain_from_its_file_name_and_scores_a_length_biased_model(tmp_path, released):
    class LengthReward:  # a reward model that prefers longer answers: RM-Bench's style bias
        scalar = True

        def __call__(self, payloads):
            return [(None, float(len(p["response"])), "", "ok") for p in payloads]

        def close(self):
            pass

    specs = [spec_of("rmbench", released), spec_of("rmbench_total", released)]
    results = run(
        EvalConfig(target="x", benches=specs, output_dir=str(tmp_path / "rm"), progress=False), judge=LengthReward()
    )
    per_file, combined = (results[s] for s in specs)
    for metrics in (per_file, combined):
        # chosen beats rejected of its own style and plainer ones, never a fancier one
        assert (metrics["hard"], metrics["normal"], metrics["easy"]) == (0.0, 1.0, 1.0)
        assert set(metrics["domains"]) == {"chat", "code", "math", "safety"}
    assert per_file["domains"] == combined["domains"]


def test_the_rmbench_data_folder_as_released_is_refused_for_holding_every_item_twice(tmp_path, released):
    import shutil

    folder = tmp_path / "data"
    shutil.copytree(released["rmbench"], folder)
    shutil.copy(released["rmbench_total"], folder / "total_dataset.json")
    specs = [f"rmbench:{folder}", f"rmbench:{folder / 'total_dataset.json'}"]
    results = run(
        EvalConfig(target="x", benches=specs, output_dir=str(tmp_path / "eval"), progress=False), judge=Constant()
    )
    assert "the same items twice" in results[specs[0]]["error"]
    assert results[specs[1]]["items"] == sum(RMBENCH_ROWS.values())  # the combined file alone is read


def test_an_rmbench_row_whose_domain_contradicts_its_file_is_quarantined(tmp_path):
    folder = tmp_path / "rm"
    folder.mkdir()
    (folder / "math_filtered.json").write_text(
        json.dumps([rmbench_row("math", 0), {**rmbench_row("math", 1), "domain": "code"}])
    )
    (folder / "more_rows.json").write_text(json.dumps([rmbench_row("chat", 0)]))  # no domain anywhere
    spec = f"rmbench:{folder}"
    result = run(
        EvalConfig(target="x", benches=[spec], output_dir=str(tmp_path / "eval"), progress=False), judge=Constant()
    )[spec]
    assert result["items"] == 1 and result["quarantined"] == 2
    reasons = [
        json.loads(line)["reason"]
        for line in (tmp_path / "eval" / "rmbench-rm" / "quarantine.jsonl").read_text().splitlines()
    ]
    assert any("disagrees with the file name 'math_filtered'" in r for r in reasons)
    assert any("the file name 'more_rows' names no RM-Bench domain" in r for r in reasons)


def test_a_constant_critic_scores_the_official_baselines_on_released_shapes(tmp_path, released):
    keys = ["rewardbench", "llmbar", "hh_rlhf", "ultrafeedback", "judgebench", "processbench"]
    specs = [spec_of(k, released) for k in keys]
    results = run(
        EvalConfig(target="x", benches=specs, output_dir=str(tmp_path / "c"), progress=False), judge=Constant()
    )
    for key in ("rewardbench", "llmbar", "hh_rlhf", "ultrafeedback"):  # "A" is right for every other item
        assert results[spec_of(key, released)]["accuracy"] == 0.5, key
    assert results[spec_of("judgebench", released)]["accuracy"] == 0.0  # A, then A again after the swap
    assert results[spec_of("judgebench", released)]["inconsistent"] == 1.0
    processbench = results[spec_of("processbench", released)]  # always -1: every correct solution passed
    assert {s: (b["error_acc"], b["correct_acc"]) for s, b in processbench["subsets"].items()} == {
        "gsm8k": (0.0, 1.0),
        "math": (0.0, 1.0),
    }


class TiedScores:
    """A reward model that gives every answer the same score."""

    scalar = True

    def __call__(self, payloads):
        return [(None, 0.0, "", "ok") for _ in payloads]

    def close(self):
        pass


def test_judgebench_counts_a_scalar_tie_as_the_official_script_does(tmp_path, released):
    spec = spec_of("judgebench", released)
    result = run(
        EvalConfig(target="x", benches=[spec], output_dir=str(tmp_path / "tie"), progress=False), judge=TiedScores()
    )[spec]
    # utils/judges.py: 'A>B' if score1 > score2 else 'B>A'; a tie is "B>A", right on the 2 "B>A" pairs of 6
    assert result["accuracy"] == pytest.approx(2 / 6) and math.isnan(result["inconsistent"])  # one game
    assert result["breakdown"]["position"] == {"A": (0.0, 4), "B": (1.0, 2)}


@pytest.mark.shared_data
def test_the_released_hh_rlhf_file_reads_every_row_and_samples_it_with_a_limit(tmp_path, shared_data):
    path = shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = sum(1 for line in handle if line.strip())
    spec = f"hh_rlhf:{path}"
    config = EvalConfig(target="x", benches=[spec], output_dir=str(tmp_path / "hh"), limit=40, progress=False)
    result = run(config, judge=Oracle(config))[spec]
    items, quarantine = BENCHMARKS.get("hh_rlhf")(str(path)).load()  # no limit: every row
    assert result["items"] == 40 and result["accuracy"] == 1.0 and result["quarantined"] == len(quarantine)
    assert len(items) + len(quarantine) == rows == 2312  # each row an item or quarantined with its reason
