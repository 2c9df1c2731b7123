"""The multimodal demo learns (marker ``slow``, seeded): a tiny vision-language critic, warm-started by
SFT on drawn shapes with their images, then trained by GRPO, beats its post-SFT held-out accuracy by
more than two standard errors (``critics/demo_vlm.py``; about four minutes on two CPU cores)."""

from __future__ import annotations

import json

import pytest

from critics.cli import main
from tests.critics.test_learning import two_standard_errors


@pytest.mark.slow
def test_vlm_critic_beats_its_sft_warm_start_after_grpo(tmp_path, capsys):
    out = tmp_path / "demo_vlm"
    assert main(["demo", "--vlm", "--output-dir", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    sft_metrics, grpo_metrics = (
        json.loads((out / stage / "final" / "metrics.json").read_text()) for stage in ("sft", "grpo")
    )
    sft, grpo = sft_metrics["after SFT"], grpo_metrics["after GRPO"]
    with capsys.disabled():
        print(
            f"\nVLM critic held-out accuracy (with the images): before {sft_metrics['before']['accuracy']:.3f}, "
            f"after SFT {sft['accuracy']:.3f} ± {sft['stderr']:.3f}, after GRPO {grpo['accuracy']:.3f} ± "
            f"{grpo['stderr']:.3f} (n={grpo['n']}; gain {grpo['accuracy'] - sft['accuracy']:+.3f}, "
            f"2 SE = {two_standard_errors(sft, grpo):.3f})"
        )
    assert sft["n"] == grpo["n"] == 1000 and sft["accuracy"] >= 0.80
    assert grpo["accuracy"] - sft["accuracy"] >= two_standard_errors(sft, grpo) and grpo["valid"] >= 0.95
    assert "with the images" in printed and "# Data card: demo-coloured-shapes" in printed
    assert (out / "grpo" / "final" / "README.md").is_file()
