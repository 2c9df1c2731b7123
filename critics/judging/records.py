"""Load critique records for training and evaluation: a build output, a data config, or JSON(L).

Eval and every recipe read records the same way, so the loader lives on the floor below both.
"""

from __future__ import annotations

from pathlib import Path


def load_records(path: str, cards: dict[str, str]):
    """A ``datasets.Dataset`` of records from a build output, a data config, or a JSON(L) file.

    A data config (``.yaml``) is built (or reused from its cache). The data card of a build output
    is added to ``cards`` under its path, for the model card.
    """
    import datasets

    location = Path(path)
    if location.suffix in (".yaml", ".yml"):
        from critics.config import load_config
        from data_pipelines import BuildConfig, build

        result = build(load_config(BuildConfig, location))
        location = result.output_dir
    if location.suffix in (".json", ".jsonl"):
        if location.is_file() and not _has_content(location):  # datasets would end in a bare StopIteration
            raise ValueError(f"{location} holds no rows")
        return datasets.Dataset.from_json(str(location))
    if not location.exists():
        raise FileNotFoundError(f"no dataset at {location}")
    if (location / "data_card.md").is_file():
        cards[str(location)] = (location / "data_card.md").read_text(encoding="utf-8")
    if (location / "dataset").is_dir():
        location = location / "dataset"
    return datasets.load_from_disk(str(location))


def _has_content(path: Path) -> bool:
    """Whether a file holds anything but whitespace (read until the first non-blank chunk)."""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            if chunk.strip():
                return True
    return False
