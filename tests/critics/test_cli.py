"""The `critics` command: data build from YAML, config errors that name the key, the demo."""

from __future__ import annotations

import json

from critics.cli import main


def write_config(tmp_path, builder_text: str) -> str:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps({"question": f"{i}+1?", "solution": f"#### {i + 1}", "gold_answer": str(i + 1)})
            for i in range(20)
        )
        + "\n"
    )
    config = tmp_path / "build.yaml"
    config.write_text(
        f"name: t\nsources:\n  - name: solutions\n    path: {rows}\n{builder_text}output_dir: {tmp_path / 'out'}\n"
    )
    return str(config)


def test_data_build_writes_the_dataset_and_applies_overrides(tmp_path, capsys):
    config = write_config(tmp_path, "builder:\n  name: pointwise\n  label_from: verifier\n")
    assert main(["data", "build", config, "seed=3", "--no-progress"]) == 0
    assert "20 rows in -> 20 records + 0 quarantined" in capsys.readouterr().out
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["seed"] == 3 and stats["labels"] == {"correct": 20}


def test_a_misspelled_key_fails_naming_the_nearest_valid_key(tmp_path, capsys):
    config = write_config(tmp_path, "builder:\n  name: pointwise\n  lable_from: verifier\n")
    assert main(["data", "build", config, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'builder.lable_from' (did you mean 'label_from'?)" in err
    assert not (tmp_path / "out").exists()


def test_a_misspelled_builder_name_is_named_too(tmp_path, capsys):
    config = write_config(tmp_path, "builder:\n  name: pointwize\n")
    assert main(["data", "build", config, "--no-progress"]) == 2
    assert "unknown builder 'pointwize' (did you mean 'pointwise'?)" in capsys.readouterr().err


def test_an_output_folder_that_cannot_be_written_is_one_line_and_exit_1(tmp_path, capsys):
    blocker = tmp_path / "run"
    blocker.write_text("a file where the run's folder should be")
    config = tmp_path / "sft.yaml"
    config.write_text(
        f"recipe: sft\nmodel:\n  name_or_path: {tmp_path / 'no-model'}\n"
        f"data:\n  train: {tmp_path / 'no-data'}\nrun:\n  output_dir: {blocker}\n"
    )
    assert main(["train", str(config), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("critics: ") and "is a file, not a folder" in err and "Traceback" not in err


def test_a_source_without_rows_is_an_error_naming_it(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    config = tmp_path / "build.yaml"
    config.write_text(
        f"name: t\nsources:\n  - name: solutions\n    path: {empty}\nbuilder:\n  name: pointwise\n"
        f"output_dir: {tmp_path / 'out'}\n"
    )
    assert main(["data", "build", str(config), "--no-progress"]) == 2
    assert f"source 'solutions' gave no rows: {empty}" in capsys.readouterr().err
