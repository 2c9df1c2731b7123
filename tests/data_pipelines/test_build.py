"""The build: nothing lost, bad rows quarantined with reasons, deterministic, parallel, cached, atomic."""

from __future__ import annotations

import json
import random
import sys
import time

import pytest

from data_pipelines import BuildConfig, build
from data_pipelines.builders.pairwise import PairwiseBuilder
from data_pipelines.builders.pointwise import PointwiseBuilder
from data_pipelines.sources.generic import SolutionsSource
from data_pipelines.sources.preference import RewardBench


def good_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        answer = a + b if i % 3 else a + b + 1
        rows.append(
            {
                "question": f"What is {a} + {b}? (#{i})",
                "solution": f"{a} + {b} = {answer}\n#### {answer}",
                "gold_answer": str(a + b),
                "is_correct": bool(i % 3),
                "model": f"m{i % 2}",
            }
        )
    return rows


def bad_lines(n: int) -> list[bytes]:
    """At least ``n`` malformed lines of every kind the issue names."""
    kinds = [
        lambda i: {"solution": "x", "is_correct": True},  # missing question
        lambda i: {"question": f"q{i}", "is_correct": True},  # missing solution
        lambda i: {"question": i, "solution": "x", "is_correct": True},  # wrong type
        lambda i: {"question": f"q{i}", "solution": ["x"], "is_correct": True},  # wrong type
        lambda i: {"question": "  ", "solution": "x", "is_correct": True},  # empty string
        lambda i: {"question": f"q{i}", "solution": "", "is_correct": False},  # empty string
        lambda i: {"question": f"q{i}", "solution": "x", "is_correct": "yes"},  # invalid label
        lambda i: {"question": f"q{i}", "solution": "x", "is_correct": 1},  # invalid label
        lambda i: {"question": f"q{i}", "solution": "x"},  # no label at all
        lambda i: [1, 2, 3],  # not an object
    ]
    lines = [json.dumps(kinds[i % len(kinds)](i)).encode() for i in range(n)]
    lines += [b'{"question": "caf\xe9 \xff", "solution": "x", "is_correct": true}'] * 20  # invalid UTF-8
    lines += [b'{"question": "q", "solution": "x", "is_correct": tru'] * 20  # invalid JSON
    lines += [b'{"question": "bad \\ud800", "solution": "x", "is_correct": true}'] * 10  # lone surrogate
    huge = "9" * (10 * 1024 * 1024)
    lines += [json.dumps({"question": huge, "solution": "x", "is_correct": True}).encode()] * 3  # 10 MB
    lines += [json.dumps({"question": "q", "solution": huge, "is_correct": False}).encode()] * 2
    return lines


def write_lines(path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def pointwise_config(path, out, **kw) -> BuildConfig:
    return BuildConfig(sources=[SolutionsSource(path=str(path))], builder=PointwiseBuilder(), output_dir=str(out), **kw)


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_malformed_rows_are_quarantined_and_every_good_row_is_kept(tmp_path):
    good = good_rows(600)
    bad = bad_lines(1000)
    lines = [json.dumps(r).encode() for r in good] + bad
    random.Random(1).shuffle(lines)
    write_lines(tmp_path / "mixed.jsonl", lines)

    result = build(pointwise_config(tmp_path / "mixed.jsonl", tmp_path / "out", num_proc=2), progress=False)

    stats = result.stats
    assert stats["rows_in"] == len(lines) == stats["rows_out"] + stats["rows_quarantined"]
    assert stats["rows_out"] == len(good) and stats["rows_quarantined"] == len(bad) >= 1000
    kept = {r["question"] for r in read_jsonl(result.output_dir / "data.jsonl")}
    assert kept == {r["question"] for r in good}
    quarantine = read_jsonl(result.output_dir / "quarantine.jsonl")
    assert len(quarantine) == len(bad) and all(q["reason"] and q["id"] for q in quarantine)
    reasons = " ".join(q["reason"] for q in quarantine)
    for expected in (
        "missing field 'question'",
        "invalid UTF-8",
        "invalid JSON",
        "is_correct",
        "is empty",
        "10,485,760 characters",
        "not valid Unicode",
    ):
        assert expected in reasons
    assert all(len(q["raw"] or "") < 5000 for q in quarantine)  # raw text kept, but clipped
    assert "| rows in | rows out | quarantined |" in result.card_path.read_text()


def test_same_seed_same_output_on_one_or_two_processes(tmp_path):
    write_lines(tmp_path / "rows.jsonl", [json.dumps(r).encode() for r in good_rows(300)])
    one = build(pointwise_config(tmp_path / "rows.jsonl", tmp_path / "a", num_proc=1), progress=False)
    two = build(pointwise_config(tmp_path / "rows.jsonl", tmp_path / "b", num_proc=2), progress=False)
    assert (one.output_dir / "data.jsonl").read_text() == (two.output_dir / "data.jsonl").read_text()
    assert len(one.load()) == 300


def preference_file(path, n: int = 101) -> None:
    rows = [{"prompt": f"p{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "subset": "s"} for i in range(n)]
    write_lines(path, [json.dumps(r).encode() for r in rows])


def test_pairwise_order_is_balanced_seeded_and_recoverable(tmp_path):
    preference_file(tmp_path / "pairs.jsonl")

    def run(seed, name):
        config = BuildConfig(
            sources=[RewardBench(path=str(tmp_path / "pairs.jsonl"))],
            builder=PairwiseBuilder(),
            output_dir=str(tmp_path / name),
            seed=seed,
        )
        return read_jsonl(build(config, progress=False).output_dir / "data.jsonl")

    first, again, other = run(0, "a"), run(0, "b"), run(1, "c")
    assert first == again and first != other
    assert sum(r["label"] == "B" for r in first) == 50  # exactly half (rounded down) swapped
    for r in first:
        preferred = r["response_b"] if r["swapped"] else r["response_a"]
        assert preferred.startswith("good") and (r["label"] == "B") == r["swapped"]


def test_unchanged_rebuild_is_cached_and_a_change_rebuilds(tmp_path):
    source = tmp_path / "rows.jsonl"
    write_lines(source, [json.dumps(r).encode() for r in good_rows(2000)])
    config = pointwise_config(source, tmp_path / "out")
    start = time.perf_counter()
    first = build(config, progress=False)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    second = build(config, progress=False)
    warm = time.perf_counter() - start
    assert not first.cached and second.cached and second.stats == first.stats
    assert warm < cold / 5
    write_lines(source, [json.dumps(r).encode() for r in good_rows(1999)])
    third = build(config, progress=False)
    assert not third.cached and third.stats["rows_out"] == 1999
    assert not build(pointwise_config(source, tmp_path / "out", seed=5), progress=False).cached


def test_a_crash_while_saving_leaves_the_previous_build_intact(tmp_path, monkeypatch):
    source = tmp_path / "rows.jsonl"
    write_lines(source, [json.dumps(r).encode() for r in good_rows(50)])
    first = build(pointwise_config(source, tmp_path / "out"), progress=False)
    before = (first.output_dir / "data.jsonl").read_text()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    # ``data_pipelines.build`` is the function (DESIGN's entry point); the module is in sys.modules
    monkeypatch.setattr(sys.modules["data_pipelines.build"], "write_card", crash)
    write_lines(source, [json.dumps(r).encode() for r in good_rows(40)])
    with pytest.raises(RuntimeError, match="disk full"):
        build(pointwise_config(source, tmp_path / "out"), progress=False)
    assert (first.output_dir / "data.jsonl").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "rows.jsonl"]


def test_a_builder_that_cannot_read_a_source_shape_is_a_config_error(tmp_path):
    with pytest.raises(
        ValueError, match="reads \\('preference', 'image_preference'\\) rows, but source 'solutions' gives 'solution'"
    ):
        BuildConfig(sources=[SolutionsSource(path="x.jsonl")], builder=PairwiseBuilder())


def content(row: dict) -> str:
    """A record row without its id: what two exact duplicates share."""
    return json.dumps({k: v for k, v in row.items() if k != "id"}, sort_keys=True)


@pytest.mark.parametrize("drop", [True, False])
def test_exact_duplicates_are_quarantined_and_never_straddle_a_split(tmp_path, drop):
    import datasets

    rows = good_rows(50)
    (tmp_path / "rows").mkdir()
    write_lines(tmp_path / "rows" / "a.jsonl", [json.dumps(r).encode() for r in rows])
    copies = [rows[k] for k in range(10)]  # exact copies, in a second file
    copies.append({**rows[3], "id": "dataset-id-7"})  # a copy that differs only in its id field
    copies.append({**rows[5], "solution": "another solution"})  # same question, other solution: kept
    write_lines(tmp_path / "rows" / "b.jsonl", [json.dumps(r).encode() for r in copies])

    result = build(pointwise_config(tmp_path / "rows", tmp_path / "out", drop_duplicates=drop), progress=False)

    stats = result.stats
    assert stats["rows_in"] == 62 == stats["rows_out"] + stats["rows_quarantined"]
    built = read_jsonl(result.output_dir / "data.jsonl")
    quarantine = read_jsonl(result.output_dir / "quarantine.jsonl")
    card = result.card_path.read_text()
    if not drop:  # every copy becomes a second record, and copies straddle a split
        assert stats["rows_out"] == 62 and quarantine == [] and "Exact duplicates: not checked" in card
        assert len({content(r) for r in built}) == 52  # 10 records twice (the id-only copy keeps its id in metadata)
        return
    assert stats["rows_out"] == 51 and stats["duplicates_dropped"] == 11
    reasons = {q["id"]: q["reason"] for q in quarantine}
    assert reasons == {
        **{f"solutions:b/{k}": f"duplicate of solutions:a/{k}" for k in range(10)},
        "solutions:b/10": "duplicate of solutions:a/3",
    }
    assert all(q["stage"] == "dedupe" and "What is" in q["raw"] for q in quarantine)
    assert stats["quarantine_reasons"] == {"duplicate of an earlier row": 11}
    assert "Exact duplicates: 11 rows dropped" in card
    assert len({content(r) for r in built}) == len(built)  # no record content twice ...
    for seed in range(5):  # ... so no split puts a copy of a training record in the held-out set
        split = datasets.Dataset.from_list(built).train_test_split(test_size=10, seed=seed)
        assert not {content(r) for r in split["train"]} & {content(r) for r in split["test"]}


def test_duplicate_pairs_are_dropped_before_the_order_is_drawn(tmp_path):
    rows = [
        {"prompt": f"p{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "subset": "s", "id": i} for i in range(20)
    ]
    rows += [{**rows[i], "id": 100 + i} for i in range(6)]  # the same pairs under new dataset ids
    write_lines(tmp_path / "pairs.jsonl", [json.dumps(r).encode() for r in rows])
    config = BuildConfig(
        sources=[RewardBench(path=str(tmp_path / "pairs.jsonl"))],
        builder=PairwiseBuilder(),
        output_dir=str(tmp_path / "out"),
    )
    result = build(config, progress=False)
    built = read_jsonl(result.output_dir / "data.jsonl")
    assert len(built) == 20 and result.stats["duplicates_dropped"] == 6
    assert sum(r["label"] == "B" for r in built) == 10  # still exactly half swapped
    assert len({(r["question"], frozenset((r["response_a"], r["response_b"]))) for r in built}) == 20


def empty_file(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    return tmp_path / "empty.jsonl", "the file is empty"


def blank_file(tmp_path):
    (tmp_path / "blank.jsonl").write_text("\n\n  \n")
    return tmp_path / "blank.jsonl", "the file holds no records (only blank lines, or an empty JSON list)"


def empty_folder(tmp_path):
    (tmp_path / "rows").mkdir()
    return tmp_path / "rows", "the folder is empty"


def folder_without_data(tmp_path):
    (tmp_path / "rows").mkdir()
    (tmp_path / "rows" / "notes.txt").write_text("not data")
    (tmp_path / "rows" / "table.csv").write_text("question,solution\n")
    return tmp_path / "rows", "the folder holds no data files (.json, .jsonl, .gz, .parquet), only notes.txt, table.csv"


@pytest.mark.parametrize("make", [empty_file, blank_file, empty_folder, folder_without_data])
def test_a_source_with_no_rows_is_an_error_naming_the_source_and_the_path(tmp_path, make):
    from data_pipelines.sources.base import EmptySourceError

    path, why = make(tmp_path)
    write_lines(tmp_path / "good.jsonl", [json.dumps(r).encode() for r in good_rows(5)])
    config = BuildConfig(
        sources=[SolutionsSource(path=str(tmp_path / "good.jsonl")), SolutionsSource(path=str(path))],
        builder=PointwiseBuilder(),
        output_dir=str(tmp_path / "out"),
    )
    with pytest.raises(EmptySourceError) as caught:
        build(config, progress=False)
    assert str(caught.value) == f"source 'solutions' gave no rows: {path}: {why}"
    assert not (tmp_path / "out").exists()  # nothing written: not a build of 0 records


def test_a_limit_below_one_is_an_error_naming_the_source(tmp_path):
    write_lines(tmp_path / "good.jsonl", [json.dumps(r).encode() for r in good_rows(5)])
    config = BuildConfig(
        sources=[SolutionsSource(path=str(tmp_path / "good.jsonl"), limit=0)],
        builder=PointwiseBuilder(),
        output_dir=str(tmp_path / "out"),
    )
    with pytest.raises(ValueError, match="source 'solutions': limit must be at least 1"):
        build(config, progress=False)


def test_a_full_disk_while_saving_is_one_error_naming_output_dir_and_the_last_build_survives(tmp_path, monkeypatch):
    import errno

    from data_pipelines.files import OutputError

    source = tmp_path / "rows.jsonl"
    write_lines(source, [json.dumps(r).encode() for r in good_rows(30)])
    first = build(pointwise_config(source, tmp_path / "out"), progress=False)
    before = (first.output_dir / "data.jsonl").read_text()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sys.modules["data_pipelines.build"], "write_card", full)
    write_lines(source, [json.dumps(r).encode() for r in good_rows(20)])
    with pytest.raises(OutputError) as caught:
        build(pointwise_config(source, tmp_path / "out"), progress=False)
    assert str(caught.value) == f"cannot write to output_dir {tmp_path / 'out'}: No space left on device (ENOSPC)"
    assert (first.output_dir / "data.jsonl").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "rows.jsonl"]


def test_an_unwritable_output_dir_fails_before_any_row_is_read(tmp_path, monkeypatch):
    from data_pipelines.files import OutputError

    (tmp_path / "taken").write_text("a file where the output folder's parent should be")
    read = []
    monkeypatch.setattr(SolutionsSource, "raw_records", lambda self: read.append(1) or iter(()))
    with pytest.raises(OutputError, match=f"^the parent of output_dir {tmp_path / 'taken'} is a file, not a folder$"):
        build(pointwise_config(tmp_path / "x.jsonl", tmp_path / "taken" / "out"), progress=False)
    assert read == []
