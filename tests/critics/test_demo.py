"""The demo's data step: generated claims, quarantined junk, and the teacher's critiques: right, or
slipped (a dropped carry) in a way the SFT recipe's verdict filter catches only when the verdict flips."""

from __future__ import annotations

import datasets

from critics import demo
from critics.judging.tasks import parse_verdict
from critics.recipes.common import TemplateSettings
from critics.recipes.sft import filter_critiques


def test_demo_data_labels_and_the_teachers_slips(tmp_path):
    result = demo.build_dataset(demo.DemoSettings(output_dir=str(tmp_path), n_claims=400), progress=False)
    assert result.stats["rows_in"] == 404 and result.stats["rows_out"] == 400
    assert result.stats["rows_quarantined"] == 4
    rows = list(datasets.load_from_disk(str(tmp_path / "data_with_critiques")))
    assert {r["label"] for r in rows} == {"correct", "incorrect"}
    slipped = flipped = 0
    for row in rows:
        right, slip = demo.critique(row["response"]), demo.critique(row["response"], drop_carry=True)
        assert row["critique"] in (right, slip)
        verdict = parse_verdict(row["critique"], "pointwise", quoted=[row["response"]])
        assert verdict.ok
        if row["critique"] == right:
            assert verdict.value == row["label"]  # the teacher is right when it does not slip
        else:
            slipped += 1
            flipped += verdict.value != row["label"]
    assert slipped > 50 and 0 < flipped < slipped  # some slips flip the verdict, some do not
    kept, stats = filter_critiques(rows, [[r["critique"]] for r in rows], TemplateSettings(style="compact"))
    assert stats["wrong verdict"] == flipped and len(kept) == len(rows) - flipped
