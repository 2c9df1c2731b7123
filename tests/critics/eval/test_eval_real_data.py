"""critics eval on the real benchmark files in ../shared/data with a tiny critic: ProcessBench
(gsm8k + math) and LLMBar run end to end, and the report's per-subset counts match the files."""

from __future__ import annotations

import json

import pytest

from critics.eval.run import EvalConfig, run
from critics.tiny import save_tiny_checkpoint

pytestmark = pytest.mark.shared_data


def test_processbench_and_llmbar_end_to_end_with_counts_that_match_the_files(tmp_path, shared_data):
    checkpoint = save_tiny_checkpoint(
        tmp_path / "tiny", max_positions=8192, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1
    )  # the smallest critic: the prompts are long
    processbench, llmbar = shared_data / "processbench", shared_data / "llmbar"
    config = EvalConfig(
        target=str(checkpoint),
        benches=[f"processbench:{processbench}", f"llmbar:{llmbar}"],
        output_dir=str(tmp_path / "eval"),
        style="compact",
        max_new_tokens=2,
        batch_size=16,
        device="cpu",
        progress=False,
    )
    results = run(config)

    pb = results[config.benches[0]]
    expected = {p.stem: len(json.loads(p.read_text())) for p in processbench.glob("*.json")}
    assert {name: block["n"] for name, block in pb["subsets"].items()} == expected == {"gsm8k": 400, "math": 1000}
    assert pb["quarantined"] == 0 and pb["failed_requests"] == 0
    bar = results[config.benches[1]]
    files = {p.stem: len(json.loads(p.read_text())) for p in llmbar.glob("*.json")}
    assert bar["items"] == sum(files.values()) == 619 and set(bar["subsets"]) == set(files)
    report = (tmp_path / "eval" / "report.md").read_text()
    for name, count in expected.items():
        assert f"| {name} | " in report and f" | {count} |" in report
    assert (tmp_path / "eval" / "position_bias.png").is_file()
