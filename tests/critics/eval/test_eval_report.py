"""What a run reports besides its headline numbers: critiques without a valid verdict per benchmark,
undefined numbers shown as "—" (never as 0, in the report or a plot), the critic's spec, and a
benchmark with no usable rows reported as an error beside the ones that ran."""

from __future__ import annotations

import json
import math
import zlib

import matplotlib.axes
import pytest

from critics.eval.benchmarks import BENCHMARKS
from critics.eval.report import MISSING, write_plots
from critics.eval.run import EvalConfig, run
from critics.judging.spec import CriticSpec
from tests.critics.eval.test_eval_run import SPECS, Oracle, config_for, files  # noqa: F401 (files: a fixture)


def speechless(payload: dict) -> bool:
    """Whether the critic below writes no valid verdict for this payload (a fixed third of them)."""
    return zlib.crc32(json.dumps(payload, sort_keys=True).encode()) % 3 == 0


class SometimesSpeechless(Oracle):
    """The oracle, except that for a fixed third of the payloads its critique has no verdict."""

    def __call__(self, payloads):
        return [
            (None, None, "I cannot decide.", "ok") if speechless(p) else answer
            for p, answer in zip(payloads, super().__call__(payloads))
        ]


def test_every_benchmark_reports_its_critiques_without_a_valid_verdict(tmp_path, files):
    config = config_for(tmp_path, files)
    results = run(config, judge=SometimesSpeechless(config))
    for spec, metrics in results.items():
        name, _, path = spec.partition(":")
        items = BENCHMARKS.get(name)(path, None, False).load()[0]
        expected = sum(speechless(r.payload) for item in items for r in item.requests)
        assert expected > 0 and metrics["invalid_verdicts"] == expected, spec
        assert metrics["failed_requests"] == 0, spec  # an answer without a verdict is not a failed request
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| invalid verdicts |" in report
    pairwise = results[f"pairwise:{files['pairwise']}"]
    assert f"| {pairwise['items']} | 0 | {pairwise['invalid_verdicts']} | 0 |" in report


class AlwaysWrong(Oracle):
    """Every verdict wrong: the other answer, a step for a correct solution, -1 for a wrong one."""

    def __call__(self, payloads):
        out = []
        for truth, *rest in super().__call__(payloads):
            wrong = {"A": "B", "B": "A"}.get(truth) if isinstance(truth, str) else (0 if truth == -1 else -1)
            out.append((wrong, *rest))
        return out


def test_an_undefined_f1_is_null_in_metrics_json_and_a_dash_in_the_report(tmp_path, files):
    spec = f"processbench:{files['processbench']}"
    config = EvalConfig(target="x", benches=[spec], output_dir=str(tmp_path / "eval"), progress=False)
    result = run(config, judge=AlwaysWrong(config))[spec]
    assert all(math.isnan(block["f1"]) for block in result["subsets"].values())  # both accuracies 0
    assert math.isnan(result["mean_subset_f1"]) and math.isnan(result["headline"][0])
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())["benchmarks"][spec]
    assert saved["mean_subset_f1"] is None and saved["subsets"]["gsm8k"]["f1"] is None
    report = (tmp_path / "eval" / "report.md").read_text()
    assert f"| F1 (mean over subsets) | {MISSING} |" in report and f"| gsm8k | {MISSING} | 6 |" in report
    assert "nan" not in report and "n/a" not in report


def test_an_undefined_value_is_never_drawn_as_a_zero_bar(tmp_path, monkeypatch):
    drawn = []
    real_bar = matplotlib.axes.Axes.bar

    def bar(self, x, height, *args, **kwargs):
        drawn.append((list(x), list(height)))
        return real_bar(self, x, height, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", bar)
    summary = {
        "benchmarks": {
            "processbench": {"subsets": {"gsm8k": {"f1": None, "n": 6}, "math": {"f1": 0.75, "n": 4}}},
            "llmbar": {"subsets": {"Natural": float("nan"), "Neighbor": 0.5}},
        }
    }
    write_plots(tmp_path, summary)
    assert drawn == [([1, 3], [0.75, 0.5])]  # positions 0 (None) and 2 (nan) have no bar at all
    assert (tmp_path / "subsets.png").is_file()


def test_the_critic_spec_is_recorded_in_metrics_json_and_the_report(tmp_path, files):
    config = config_for(tmp_path, files, specs=["llmbar"])
    judge = Oracle(config)
    judge.spec = CriticSpec(tasks=["pairwise"], style="compact", think=True, max_new_tokens=24)
    run(config, judge=judge)
    critic = json.loads((tmp_path / "eval" / "metrics.json").read_text())["critic"]
    assert (critic["style"], critic["think"], critic["max_new_tokens"], critic["tasks"]) == (
        "compact",
        True,
        24,
        ["pairwise"],
    )
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "Critic spec: style=compact, think=True, tasks=pairwise, max_new_tokens=24" in report


def test_a_benchmark_with_no_usable_rows_is_an_error_and_the_others_are_written(tmp_path, files):
    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        json.dumps({"pair_id": "p", "question": "q", "response_A": "a", "response_B": "b", "label": "A=B"})
        + "\n{not json\n"
    )  # a tie label, and a broken line
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    specs = [
        f"judgebench:{broken}",
        f"llmbar:{files['llmbar']}",
        f"rmbench:{tmp_path / 'missing.json'}",
        f"pairwise:{empty}",
    ]
    config = EvalConfig(target="x", benches=specs, output_dir=str(tmp_path / "eval"), progress=False)
    results = run(config, judge=Oracle(EvalConfig(target="x", benches=specs[1:2])))
    assert "no usable items (2 quarantined" in results[specs[0]]["error"]
    assert results[specs[0]]["quarantined"] == 2 and results[specs[0]]["items"] == 0
    assert "missing.json" in results[specs[2]]["error"]  # files that cannot be read: an error too
    assert results[specs[3]]["error"] and results[specs[3]]["items"] == 0  # an empty file
    assert results[specs[1]]["headline"][0] == 1.0 and "error" not in results[specs[1]]
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())["benchmarks"]
    assert set(saved) == set(specs) and saved[specs[1]]["accuracy"] == 1.0
    assert saved[specs[0]]["error"] == results[specs[0]]["error"]
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| judgebench-broken | accuracy | error: no usable items" in report
    assert "**Not evaluated**: no usable items" in report and "| llmbar-llmbar | accuracy | 1.000 |" in report
    assert json.loads((tmp_path / "eval" / "judgebench-broken" / "metrics.json").read_text())["error"]


@pytest.mark.parametrize("spec_name", SPECS)
def test_each_benchmark_fills_the_items_column_of_its_subset_table(tmp_path, files, spec_name):
    config = config_for(tmp_path, files, specs=[spec_name])
    metrics = run(config, judge=Oracle(config))[config.benches[0]]
    report = (tmp_path / "eval" / "report.md").read_text()
    section = report.split(f"## {metrics['label']}")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "subset" not in line]
    assert rows, section
    counts = [int(line.rstrip(" |").rsplit("| ", 1)[1]) for line in rows]  # the items column
    assert sum(counts) == metrics["items"], section
