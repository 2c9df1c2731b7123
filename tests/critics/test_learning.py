"""The demo learns (marker ``slow``, seeded): a tiny critic from scratch improves with SFT, then
with GRPO by more than two standard errors; a judge trained the same way and served over HTTP is
then the only reward of a tiny policy, whose held-out task accuracy rises by more than two
standard errors (``critics/demo_policy.py``)."""

from __future__ import annotations

import json
import math

import pytest

from critics.cli import main


def two_standard_errors(a: dict, b: dict) -> float:
    """Two standard errors of the difference of two independent accuracies."""
    return 2 * math.sqrt(a["stderr"] ** 2 + b["stderr"] ** 2)


@pytest.mark.slow
def test_demo_critic_learns_and_a_served_judge_teaches_a_policy(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--output-dir", str(out), "--quiet", "--policy"]) == 0
    printed = capsys.readouterr().out
    sft_metrics, grpo_metrics = (
        json.loads((out / stage / "final" / "metrics.json").read_text()) for stage in ("sft", "grpo")
    )
    before, sft, grpo = sft_metrics["before"], sft_metrics["after SFT"], grpo_metrics["after GRPO"]
    policy = json.loads((out / "policy" / "policy-grpo" / "final" / "metrics.json").read_text())
    judge = json.loads((out / "policy" / "judge" / "sft" / "final" / "metrics.json").read_text())["after SFT"]
    p_before, p_after = policy["before"], policy["after GRPO"]
    with capsys.disabled():
        print(
            f"\ncritic held-out accuracy: before {before['accuracy']:.3f}, after SFT {sft['accuracy']:.3f} "
            f"± {sft['stderr']:.3f}, after GRPO {grpo['accuracy']:.3f} ± {grpo['stderr']:.3f} (n={grpo['n']}; "
            f"gain {grpo['accuracy'] - sft['accuracy']:+.3f}, 2 SE = {two_standard_errors(sft, grpo):.3f})"
        )
        print(
            f"judge held-out accuracy {judge['accuracy']:.3f} (n={judge['n']}); "
            f"policy task accuracy (the judge's reward only, over HTTP): before {p_before['accuracy']:.3f} "
            f"± {p_before['stderr']:.3f}, after GRPO {p_after['accuracy']:.3f} ± {p_after['stderr']:.3f} "
            f"(n={p_after['n']}; gain {p_after['accuracy'] - p_before['accuracy']:+.3f}, "
            f"2 SE = {two_standard_errors(p_before, p_after):.3f}); critic calls lost: {policy['critic']}"
        )
    assert sft["accuracy"] >= 0.70
    assert grpo["accuracy"] - sft["accuracy"] >= two_standard_errors(sft, grpo) and grpo["valid"] >= 0.95
    assert p_after["accuracy"] - p_before["accuracy"] >= two_standard_errors(p_before, p_after)
    assert policy["critic"]["failed_items"] == 0 and p_before["n"] == p_after["n"] == 1000
    final = out / "grpo" / "final"
    assert (final / "README.md").is_file() and (final / "training_curves.png").stat().st_size > 1000
    assert "Held-out accuracy of the critic" in printed and str(final) in printed
    assert "# Data card: demo-sum-claims" in printed and "quarantined" in printed
    assert "judge served at http://127.0.0.1:" in printed and "judge's reward during GRPO" in printed

    # critics eval of the demo critic: a report with plots, and the same numbers over HTTP
    from critics.serving import Critic
    from critics.serving.server import serve_in_background

    bench = ["--bench", f"pointwise:{out / 'data'}", "--limit", "300", "--no-progress"]  # the spec says the rest
    assert main(["eval", str(final), "--output-dir", str(tmp_path / "eval-local"), "--device", "cpu", *bench]) == 0
    critic = Critic.from_pretrained(str(final), backend_options={"device": "cpu"})
    with serve_in_background(critic) as (url, _):
        assert main(["eval", url, "--output-dir", str(tmp_path / "eval-http"), *bench]) == 0
    local, remote = (
        json.loads((tmp_path / where / "metrics.json").read_text())["benchmarks"]
        for where in ("eval-local", "eval-http")
    )
    assert local == remote and next(iter(local.values()))["accuracy"] >= 0.70
    assert {"report.md", "subsets.png", "pointwise-data_confusion.png"} <= {
        p.name for p in (tmp_path / "eval-local").iterdir()
    }
