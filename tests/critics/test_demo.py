"""The demo's data step: generated claims, quarantined junk, critiques whose verdicts match labels."""

from __future__ import annotations

import datasets

from critics import demo
from critics.verdicts import parse_verdict


def test_demo_data_labels_match_the_critiques_it_teaches(tmp_path):
    result = demo.build_dataset(demo.DemoSettings(output_dir=str(tmp_path), n_claims=300), progress=False)
    assert result.stats["rows_in"] == 304 and result.stats["rows_out"] == 300
    assert result.stats["rows_quarantined"] == 4
    rows = datasets.load_from_disk(str(tmp_path / "data_with_critiques"))
    assert {r["label"] for r in rows} == {"correct", "incorrect"}
    for row in rows:
        verdict = parse_verdict(row["critique"], "pointwise", quoted=[row["response"]])
        assert verdict.ok and verdict.value == row["label"]
