"""critics eval end to end: every benchmark format, oracle and constant critics, resume, voting,
scalar models, report and plots, model cards, and in process against over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from critics import cli
from critics.eval.benchmarks import BENCHMARKS
from critics.eval.run import EvalConfig, run
from critics.judging.spec import CriticSpec
from critics.tiny import save_tiny_checkpoint


def write_json(path: Path, rows, lines: bool = True) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) if lines else json.dumps(rows))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """One small file per benchmark format, with one malformed row each where the format allows."""
    root = tmp_path_factory.mktemp("benches")
    pb = root / "processbench"
    pb.mkdir()
    write_json(
        pb / "gsm8k.json",
        [
            {
                "id": f"g{i}",
                "generator": "m",
                "problem": f"p{i}",
                "steps": ["s0", "s1", "s2"],
                "final_answer_correct": i % 2 == 0,
                "label": -1 if i % 2 == 0 else i % 3,
            }
            for i in range(6)
        ]
        + [{"id": "bad", "problem": "p", "steps": [], "label": 0}],
        lines=False,
    )
    write_json(
        pb / "math.json",
        [
            {
                "id": f"m{i}",
                "generator": "m",
                "problem": f"q{i}",
                "steps": ["a", "b"],
                "final_answer_correct": i < 2,
                "label": -1 if i < 2 else 1,
            }
            for i in range(4)
        ],
        lines=False,
    )
    llmbar = root / "llmbar"
    llmbar.mkdir()
    write_json(
        llmbar / "Natural.json",
        [{"input": f"i{i}", "output_1": f"o1-{i}", "output_2": f"o2-{i}", "label": 1 + i % 2} for i in range(6)],
        lines=False,
    )
    write_json(
        llmbar / "Adversarial_Neighbor.json",
        [{"input": f"n{i}", "output_1": f"x{i}", "output_2": f"y{i}", "label": 2} for i in range(4)],
        lines=False,
    )
    return {
        "processbench": str(pb),
        "llmbar": str(llmbar),
        "pairwise": write_json(
            root / "pairs.jsonl",
            [
                {
                    "prompt": f"q{i}",
                    "chosen": f"good {i}",
                    "rejected": f"bad {i}",
                    "subset": "alpacaeval-easy" if i < 4 else "mt-bench-hard",
                }
                for i in range(8)
            ],
        ),
        "judgebench": write_json(
            root / "judgebench.jsonl",
            [
                {
                    "pair_id": f"j{i}",
                    "question": f"q{i}",
                    "response_A": f"ra{i}",
                    "response_B": f"rb{i}",
                    "label": "A>B" if i % 2 else "B>A",
                    "source": "mmlu-pro-math" if i < 3 else "livecodebench",
                }
                for i in range(6)
            ]
            + [{"pair_id": "bad", "question": "q", "response_A": "a", "response_B": "b", "label": "A=B"}],
        ),
        "rmbench": write_json(
            root / "rmbench.jsonl",
            [
                {
                    "id": i,
                    "prompt": f"p{i}",
                    "chosen": [f"c{i}-{k}" for k in range(3)],
                    "rejected": [f"r{i}-{k}" for k in range(3)],
                    "domain": ["chat", "math", "code", "safety-refuse"][i % 4],
                }
                for i in range(4)
            ],
        ),
        "pointwise": write_json(
            root / "pointwise.jsonl",
            [{"question": f"q{i}", "response": f"r{i}", "label": "correct" if i % 2 else "incorrect"} for i in range(6)]
            + [
                {"question": "q", "response": "r", "is_correct": True},
                {"question": "q", "response": "r", "label": "?"},
            ],
        ),
    }


SPECS = ["processbench", "llmbar", "pairwise", "judgebench", "rmbench", "pointwise"]


class Oracle:
    """Reads the labels: answers each payload with the verdict a perfect critic gives."""

    scalar = False

    def __init__(self, config: EvalConfig):
        self.answers = {}
        for spec in config.benches:
            name, _, path = spec.partition(":")
            for item in BENCHMARKS.get(name)(path or None, None, False).load()[0]:
                for request in item.requests:
                    self.answers[json.dumps(request.payload, sort_keys=True)] = request.expected
        self.calls = 0

    def __call__(self, payloads):
        self.calls += len(payloads)
        return [(self.answers[json.dumps(p, sort_keys=True)], None, "oracle", "ok") for p in payloads]

    def close(self):
        pass


class Constant:
    """Always the same verdict for a task ("A" for pairwise, -1 for steps, "correct" for pointwise)."""

    scalar = False

    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = 0, fail_after

    def __call__(self, payloads):
        out = []
        for p in payloads:
            self.calls += 1
            failed = self.fail_after is not None and self.calls > self.fail_after
            out.append(
                None if failed else ({"pairwise": "A", "step": -1, "pointwise": "correct"}[p["task"]], None, "", "ok")
            )
        return out

    def close(self):
        pass


def config_for(tmp_path, files, specs=SPECS, **options) -> EvalConfig:
    return EvalConfig(
        target=str(tmp_path / "ckpt"),
        benches=[f"{s}:{files[s]}" for s in specs],
        output_dir=str(tmp_path / "eval"),
        progress=False,
        **options,
    )


def test_an_oracle_scores_full_marks_on_every_benchmark(tmp_path, files):
    config = config_for(tmp_path, files)
    results = run(config, judge=Oracle(config))
    for spec, metrics in results.items():
        assert metrics["headline"][0] == 1.0, spec
    pb = results[f"processbench:{files['processbench']}"]
    assert {k: v["n"] for k, v in pb["subsets"].items()} == {"gsm8k": 6, "math": 4} and pb["quarantined"] == 1
    llmbar = results[f"llmbar:{files['llmbar']}"]
    assert set(llmbar["subsets"]) == {"Natural", "Adversarial_Neighbor"} and llmbar["items"] == 10
    assert results[f"judgebench:{files['judgebench']}"]["quarantined"] == 1
    assert results[f"pointwise:{files['pointwise']}"]["items"] == 7  # is_correct read, "?" quarantined
    out = tmp_path / "eval"
    assert {"metrics.json", "report.md", "subsets.png", "position_bias.png"} <= {p.name for p in out.iterdir()}
    assert any(p.name.endswith("_confusion.png") for p in out.iterdir())
    report = (out / "report.md").read_text()
    assert "| gsm8k | 1.000 | 6 |" in report and "![position_bias](position_bias.png)" in report
    json.loads((out / "metrics.json").read_text())  # strict JSON: no NaN


def test_a_constant_critic_scores_the_known_baselines_and_always_a_shows_in_position_bias(tmp_path, files):
    results = run(config_for(tmp_path, files), judge=Constant())
    pairwise = results[f"pairwise:{files['pairwise']}"]
    assert pairwise["accuracy"] == 0.5  # the chosen answer is at A for every other item
    assert pairwise["breakdown"]["position"]["A"][0] == 1.0 and pairwise["breakdown"]["position"]["B"][0] == 0.0
    assert results[f"processbench:{files['processbench']}"]["mean_subset_f1"] == 0.0  # always -1
    assert results[f"judgebench:{files['judgebench']}"]["accuracy"] == 0.0  # A, then A again after the swap
    pointwise = results[f"pointwise:{files['pointwise']}"]
    assert pointwise["recall"] == 0.0 and pointwise["label_accuracy"]["correct"] == 1.0


def test_a_stopped_run_resumes_and_judges_only_what_is_missing(tmp_path, files):
    config = config_for(tmp_path, files, specs=["pairwise"], batch_size=3)
    first = run(config, judge=Constant(fail_after=5))
    assert first[config.benches[0]]["failed_requests"] == 3
    again = Constant()
    second = run(config, judge=again)
    assert again.calls == 3 and second[config.benches[0]]["failed_requests"] == 0
    assert second[config.benches[0]]["accuracy"] == 0.5
    with pytest.raises(ValueError, match="other settings"):
        run(config_for(tmp_path, files, specs=["pairwise"], max_new_tokens=7), judge=Constant())


class Noisy:
    """Right with probability 0.7 per sample (seeded): voting over more samples helps."""

    scalar = False

    def __init__(self, oracle):
        import random

        self.oracle, self.rng = oracle, random.Random(0)

    def __call__(self, payloads):
        out = []
        for truth, *_ in self.oracle(payloads):
            wrong = {"A": "B", "B": "A"}.get(truth, truth)
            out.append((truth if self.rng.random() < 0.7 else wrong, None, "", "ok"))
        return out

    def close(self):
        pass


def test_voting_over_samples_reports_the_metric_against_k(tmp_path, files):
    config = config_for(tmp_path, files, specs=["pairwise", "llmbar"], samples=5, temperature=1.0)
    results = run(config, judge=Noisy(Oracle(config)))
    by_k = results[config.benches[0]]["by_k"]
    assert sorted(by_k) == [1, 2, 3, 4, 5]
    assert (tmp_path / "eval" / "accuracy_vs_k.png").is_file()
    with pytest.raises(ValueError, match="temperature > 0"):
        config_for(tmp_path, files, samples=3)


class Scalar:
    """A reward model that scores "good" responses above the rest."""

    scalar = True

    def __call__(self, payloads):
        return [(None, 1.0 if "good" in p["response"] else 0.0, "", "ok") for p in payloads]

    def close(self):
        pass


def test_a_scalar_reward_model_is_compared_by_scores(tmp_path, files):
    results = run(config_for(tmp_path, files, specs=["pairwise"]), judge=Scalar())
    assert results[f"pairwise:{files['pairwise']}"]["accuracy"] == 1.0
    with pytest.raises(ValueError, match="needs a generative critic"):
        run(config_for(tmp_path, files, specs=["processbench"]), judge=Scalar())


def test_unknown_benchmarks_and_bad_options_are_config_errors(tmp_path, capsys):
    assert cli.main(["eval", "ckpt", "--bench", "procesbench"]) == 2
    assert "did you mean 'processbench'" in capsys.readouterr().err
    assert cli.main(["eval", "ckpt", "--bench", "llmbar", "--samples", "4"]) == 2
    assert "temperature > 0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model", max_positions=2048)


def test_critics_eval_in_process_and_over_http_give_the_same_numbers(tmp_path, files, tiny, capsys):
    from critics.serving import Critic
    from critics.serving.server import serve_in_background

    # the checkpoint carries its spec: neither run passes a style or a length
    CriticSpec(style="compact", max_new_tokens=12).save(tiny)
    specs = [f"pairwise:{files['pairwise']}", f"processbench:{files['processbench']}"]
    common = ["--no-progress"]
    local_args = ["eval", str(tiny), "--output-dir", str(tmp_path / "local"), "--device", "cpu", "--card", *common]
    assert cli.main(local_args + [a for s in specs for a in ("--bench", s)]) == 0
    assert "report:" in capsys.readouterr().out
    critic = Critic.from_pretrained(str(tiny), backend_options={"device": "cpu"})
    with serve_in_background(critic) as (url, _):
        assert (
            cli.main(
                ["eval", url, "--output-dir", str(tmp_path / "remote"), *common]
                + [a for s in specs for a in ("--bench", s)]
            )
            == 0
        )
    local_run, remote_run = (json.loads((tmp_path / side / "metrics.json").read_text()) for side in ("local", "remote"))
    for critic in (local_run["critic"], remote_run["critic"]):  # the spec judged by, read from the checkpoint
        assert (critic["style"], critic["max_new_tokens"], critic["layout"]) == ("compact", 12, "chat")
    local, remote = local_run["benchmarks"], remote_run["benchmarks"]
    for spec in specs:
        for name in ("accuracy", "mean_subset_f1", "subsets", "breakdown"):
            assert local[spec].get(name) == remote[spec].get(name), (spec, name)
    assert "## Evaluation (" in (tiny / "README.md").read_text()


class FixActor:
    """Revises to the number after "fix:" in the critique, else keeps the solution."""

    def refine(self, questions, solutions, critiques, n=1):
        return [
            [f"\\boxed{{{c.split('fix:')[1].split()[0]}}}" if "fix:" in c else s] * n
            for s, c in zip(solutions, critiques)
        ]


class Fixer:
    """A critic whose critique of a wrong sum carries the fix (the gold is in the question here)."""

    scalar = False

    def __call__(self, payloads):
        out = []
        for p in payloads:
            gold = p["question"].split("=")[1]
            right = p["response"].endswith(f"{{{gold}}}")
            out.append(
                (
                    "correct" if right else "incorrect",
                    None,
                    "\\boxed{Correct}" if right else f"\\boxed{{Incorrect}} fix:{gold}",
                    "ok",
                )
            )
        return out

    def close(self):
        pass


def test_critique_then_refine_and_critic_filtered_best_of_n(tmp_path):
    refine = write_json(
        tmp_path / "refine.jsonl",
        [
            {
                "question": f"1+{i}={1 + i}",
                "response": f"\\boxed{{{1 + i + i % 2}}}",
                "gold_answer": str(1 + i),
                "label": "incorrect" if i % 2 else "correct",
            }
            for i in range(6)
        ],
    )
    bestofn = write_json(
        tmp_path / "bestofn.jsonl",
        [
            {
                "question": "2+2=4",
                "gold_answer": "4",
                "solutions": ["\\boxed{5}", "\\boxed{5}", "\\boxed{4}", "\\boxed{4}", "\\boxed{5}"],
            },
            {"question": "1+1=2", "gold_answer": "2", "solutions": ["\\boxed{3}", "\\boxed{2}", "\\boxed{3}"]},
        ],
    )
    config = EvalConfig(
        target="ckpt",
        benches=[f"refine:{refine}", f"bestofn:{bestofn}"],
        actor="scripted",
        output_dir=str(tmp_path / "eval"),
        progress=False,
    )
    results = run(config, judge=Fixer(), actor=FixActor())
    r = results[config.benches[0]]
    assert (r["accuracy_before"], r["refine_accuracy"], r["i->c"], r["discrimination_accuracy"]) == (0.5, 1.0, 0.5, 1.0)
    b = results[config.benches[1]]
    assert (b["unfiltered"], b["filtered"]) == (0.0, 1.0)  # the wrong answer wins the plain vote both times
    assert b["by_n"][1] == {"unfiltered": 0.0, "filtered": 0.0, "n": 2, "kept": 1.0}  # one solution: nothing to filter
    with pytest.raises(ValueError, match="needs an actor"):
        EvalConfig(target="ckpt", benches=[f"refine:{refine}"])


def test_critics_eval_exits_1_when_a_benchmark_has_no_usable_rows_and_still_writes_the_others(
    tmp_path, files, tiny, capsys
):
    CriticSpec(style="compact", max_new_tokens=4).save(tiny)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    args = [
        "eval",
        str(tiny),
        "--output-dir",
        str(tmp_path / "out"),
        "--device",
        "cpu",
        "--no-progress",
        "--bench",
        f"pairwise:{files['pairwise']}",
        "--bench",
        f"pointwise:{empty}",
    ]
    assert cli.main(args) == 1
    printed = capsys.readouterr().out
    assert f"pointwise:{empty}" in printed and "not evaluated" in printed
    benchmarks = json.loads((tmp_path / "out" / "metrics.json").read_text())["benchmarks"]
    assert benchmarks[f"pairwise:{files['pairwise']}"]["items"] == 8
