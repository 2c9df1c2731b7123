"""The wheel carries the model card template, and a non-editable install writes model cards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WRITE_CARD = """
import sys
from pathlib import Path
import critics, critics.cards
assert Path(critics.__file__).is_relative_to(Path(sys.argv[1])), critics.__file__  # the installed copy
path = critics.cards.write_model_card(
    sys.argv[2], base_model="tiny", recipe="sft", task="pointwise", stages="SFT", config_hash="abc", rewards=[],
    steps=1, template="compact", verdict_format="\\\\boxed{Correct}", metrics={}, sources=["x.jsonl"], cards={},
    overlap={"held_out": 4, "question_in_train": 1, "examples": ["r3"]})
print(path.read_text())
"""


def test_the_wheel_ships_the_card_template_and_an_installed_copy_writes_cards(tmp_path):
    source = tmp_path / "src"  # a clean copy: the build leaves build/ and egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("critics", "data_pipelines"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # offline
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("critic_suite-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        assert "critics/model_cards/critic.md" in archive.namelist()

    subprocess.run(
        [sys.executable, "-m", "pip", "install", str(wheel), "--no-deps", "-q", "--target", str(tmp_path / "site")],
        check=True,
        env=env,
        capture_output=True,
    )
    (tmp_path / "card").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", WRITE_CARD, str(tmp_path / "site"), str(tmp_path / "card")],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "trained from `tiny` with the `sft` recipe of critics" in done.stdout
    assert "**1 of the 4 held-out records ask a question that a training record also asks** (e.g. `r3`)" in done.stdout
