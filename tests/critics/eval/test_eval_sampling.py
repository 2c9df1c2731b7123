"""``--limit``: a seeded sample stratified by subset, not the first rows of the sorted files; a
resumed run with a larger limit reuses what it judged and judges only the new items; a smaller or
different sample is refused."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from critics.eval.benchmarks import BENCHMARKS
from critics.eval.run import EvalConfig, run
from tests.critics.eval.test_eval_run import Constant

SIZES = {"alpacaeval-easy": 30, "hep-go": 10}  # the file lists one subset, then the other


@pytest.fixture
def pairs(tmp_path) -> str:
    rows = [
        {"prompt": f"{subset} q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "subset": subset}
        for subset, n in SIZES.items()
        for i in range(n)
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def sample(path: str, limit: int | None, seed: int = 0) -> list[str]:
    return [item.key for item in BENCHMARKS.get("pairwise")(path, limit, False, seed).load()[0]]


def subsets_of(path: str, keys: list[str]) -> Counter:
    by_key = {item.key: item.subset for item in BENCHMARKS.get("pairwise")(path).load()[0]}
    return Counter(by_key[k] for k in keys)


def test_a_limit_is_a_seeded_sample_stratified_by_subset(pairs):
    first = sample(pairs, 8)
    assert subsets_of(pairs, first) == {"alpacaeval-easy": 6, "hep-go": 2}  # in proportion, 30:10
    assert first != sample(pairs, None)[:8]  # not the first rows of the file
    assert sample(pairs, 8) == first and sample(pairs, 8, seed=1) != first  # the seed decides, and only it
    smaller: list[str] = []
    for n in range(1, 41):  # every size is stratified, and a larger one only adds items
        keys = sample(pairs, n)
        counts = subsets_of(pairs, keys)
        assert all(abs(counts[s] - n * size / 40) <= 1 for s, size in SIZES.items()), (n, counts)
        assert set(smaller) < set(keys)
        smaller = keys


def config(tmp_path, pairs, limit, seed=0) -> EvalConfig:
    return EvalConfig(
        target="ckpt",
        benches=[f"pairwise:{pairs}"],
        output_dir=str(tmp_path / "eval"),
        limit=limit,
        seed=seed,
        batch_size=5,
        progress=False,
    )


def test_a_resumed_run_with_a_larger_limit_judges_only_the_new_items(tmp_path, pairs):
    spec = f"pairwise:{pairs}"
    judge = Constant()
    first = run(config(tmp_path, pairs, 8), judge=judge)[spec]
    assert judge.calls == 8 and first["subset_items"] == {"alpacaeval-easy": 6, "hep-go": 2}
    judge = Constant()
    larger = run(config(tmp_path, pairs, 20), judge=judge)[spec]
    assert judge.calls == 12  # the 8 judged before are reused
    assert larger["items"] == 20 and larger["subset_items"] == {"alpacaeval-easy": 15, "hep-go": 5}
    assert (
        larger["failed_requests"] == 0
        and larger["breakdown"]["position"]["A"][1] + larger["breakdown"]["position"]["B"][1] == 20
    )
    judge = Constant()
    everything = run(config(tmp_path, pairs, 0), judge=judge)[spec]  # 0: all items
    assert judge.calls == 20 and everything["items"] == 40 and everything["accuracy"] == 0.5
    lines = (tmp_path / "eval" / "pairwise-pairs" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(line)["key"] for line in lines}) == 40  # nothing judged twice
    with pytest.raises(ValueError, match="--limit 8 is smaller than the saved run's all"):
        run(config(tmp_path, pairs, 8), judge=Constant())
    with pytest.raises(ValueError, match="other settings.*seed"):
        run(config(tmp_path, pairs, 0, seed=1), judge=Constant())


def test_a_sample_from_changed_files_is_refused(tmp_path, pairs):
    run(config(tmp_path, pairs, 8), judge=Constant())
    rows = open(pairs).read().splitlines()
    with open(pairs, "w") as handle:  # one row less at the top: every row's place in the file moves
        handle.write("\n".join(rows[1:]) + "\n")
    with pytest.raises(ValueError, match="not in this run's sample .the benchmark's files changed"):
        run(config(tmp_path, pairs, 8), judge=Constant())


def test_a_negative_limit_is_a_config_error(tmp_path, pairs):
    with pytest.raises(ValueError, match="limit must be 0"):
        config(tmp_path, pairs, -1)
