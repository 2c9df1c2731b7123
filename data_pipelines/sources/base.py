"""What every source shares: the row it yields, the canonical shapes, and local/hub reading.

A source turns one public dataset format into rows of a canonical *shape* that builders read
(see ``SHAPES``). It never raises on a bad row: it yields ``Row(error=...)`` so the build can
quarantine that row with its reason and go on. A source with no rows at all (an empty file, an
empty folder, a folder without data files) raises ``EmptySourceError``, naming itself and the path.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from data_pipelines.registry import Registry

SOURCES: Registry[type[Source]] = Registry("source")

# Canonical shapes: the keys (and types) a source promises for each row it yields. Builders read
# these names. Optional keys may be None; anything format-specific goes under ``extra`` and lands
# in the record's ``metadata``.
SHAPES: dict[str, dict[str, tuple[type, ...]]] = {
    # one solution to a question, maybe labelled; ``group`` ties solutions of the same question
    "solution": {
        "question": (str,),
        "solution": (str,),
        "is_correct": (bool, type(None)),
        "gold_answer": (str, type(None)),
        "model": (str, type(None)),
        "group": (str,),
    },
    # a preference pair
    "preference": {"question": (str,), "chosen": (str,), "rejected": (str,), "subset": (str, type(None))},
    # a step-by-step solution with the index of its first wrong step (-1 if none)
    "steps": {
        "question": (str,),
        "steps": (list,),
        "label": (int,),
        "final_answer_correct": (bool, type(None)),
        "gold_answer": (str, type(None)),
    },
    # a program with the tests that decide it
    "program": {
        "question": (str,),
        "program": (str,),
        "tests": (str,),
        "entry_point": (str, type(None)),
        "task_id": (str,),
        "model": (str, type(None)),
        "reference_solution": (str, type(None)),
        "group": (str,),
    },
    # several responses to one question: rated (``scores``, one per response) or with the first
    # ``num_correct`` responses correct and the rest not (RewardBench 2); a listwise builder reads it
    "responses": {
        "question": (str,),
        "responses": (list,),
        "scores": (list, type(None)),
        "num_correct": (int, type(None)),
        "subset": (str, type(None)),
    },
    # a preference pair about images: ``images`` are checked local paths, resolved to absolute
    "image_preference": {
        "question": (str,),
        "chosen": (str,),
        "rejected": (str,),
        "subset": (str, type(None)),
        "images": (list,),
    },
}


@dataclass
class Row:
    """One row from a source: ``data`` in the source's shape, or ``error`` saying why not.

    ``raw`` keeps (a prefix of) the original text of an unusable row so the quarantine loses
    nothing a person needs to find and fix it.
    """

    id: str
    data: dict[str, Any] | None = None
    error: str | None = None
    raw: str | None = None


class RowError(ValueError):
    """Raised inside a source or builder for a row that cannot be used; the message is the reason."""


class EmptySourceError(ValueError):
    """A source gave no rows at all; the message names the source, the path and why."""


DATA_SUFFIXES = (".json", ".jsonl", ".gz", ".parquet")  # what a folder source reads


@dataclass
class Source:
    """Base for sources: a local file/folder or a Hugging Face hub name, plus a split.

    Subclasses set ``shape`` and implement ``convert(raw)``: one raw record in, one row of the
    shape out (raising ``RowError``), or a list when one record becomes several rows; an item of
    that list may be a ``RowError``, which makes only that row an error.
    """

    path: str = ""
    split: str = "test"
    subset: str | None = None
    limit: int | None = None

    shape: ClassVar[str] = ""
    default_path: ClassVar[str] = ""  # hub name used when ``path`` is empty

    @property
    def name(self) -> str:
        return getattr(type(self), "registry_name", type(self).__name__)

    def raw_records(self) -> Iterator[tuple[str, dict[str, Any] | None, str | None, str | None]]:
        """Yield ``(id, record, error, raw)`` from the local path or the hub."""
        location = self.path or self.default_path
        if not location:
            raise ValueError(f"source '{self.name}' has no hub name: give it a local `path`")
        if is_local(location):
            yield from read_local(Path(location))
        else:
            yield from read_hub(location, self.subset, self.split)

    def convert(self, raw: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any] | RowError]:
        raise NotImplementedError

    def rows(self) -> Iterator[Row]:
        """Yield rows in the source's shape; bad records become error rows, never exceptions.

        Raises:
            EmptySourceError: the location holds no record at all (a malformed one still counts).
            ValueError: ``limit`` is below 1.
        """
        if self.limit is not None and self.limit < 1:
            raise ValueError(
                f"source '{self.name}': limit must be at least 1 (or null for every row), got {self.limit}"
            )
        count = 0
        for rid, raw, error, text in self.raw_records():
            if self.limit is not None and count >= self.limit:
                return
            count += 1
            if error is not None:
                yield Row(id=f"{self.name}:{rid}", error=error, raw=text)
                continue
            try:
                converted = self.convert(raw)
            except RowError as exc:
                yield Row(id=f"{self.name}:{rid}", error=str(exc), raw=clip(raw))
                continue
            items = converted if isinstance(converted, list) else [converted]
            for j, data in enumerate(items):
                row_id = (
                    f"{self.name}:{rid}"
                    if len(items) == 1 and not isinstance(converted, list)
                    else f"{self.name}:{rid}:{j}"
                )
                if isinstance(data, RowError):
                    yield Row(id=row_id, error=str(data), raw=clip(raw))
                    continue
                yield check_shape(row_id, data, self.shape, raw)
        if count == 0:
            location = self.path or self.default_path
            raise EmptySourceError(f"source '{self.name}' gave no rows: {location}: {why_empty(location)}")

    def describe(self) -> str:
        """One line for logs and data cards."""
        if self.path and is_local(self.path):
            return f"{self.name}({self.path})"
        return f"{self.name}({self.path or self.default_path}, subset={self.subset}, split={self.split})"


def check_shape(row_id: str, data: dict[str, Any], shape: str, raw: Any = None) -> Row:
    """Return ``Row(data)`` if ``data`` has every key of ``shape`` with the right type."""
    for key, types in SHAPES[shape].items():
        if key not in data:
            return Row(id=row_id, error=f"missing field '{key}'", raw=clip(raw))
        if not isinstance(data[key], types) or (bool not in types and isinstance(data[key], bool) and int in types):
            return Row(id=row_id, error=f"field '{key}' has type {type(data[key]).__name__}", raw=clip(raw))
    return Row(id=row_id, data=data)


def require(raw: dict[str, Any], key: str, kind: type | tuple[type, ...] = str, empty_ok: bool = False) -> Any:
    """Return ``raw[key]`` if present, of type ``kind`` and (for strings/lists) non-empty."""
    if not isinstance(raw, dict):
        raise RowError(f"record is a {type(raw).__name__}, not an object")
    if key not in raw or raw[key] is None:
        raise RowError(f"missing field '{key}'")
    value = raw[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise RowError(f"field '{key}' should be {'/'.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
    if not empty_ok and isinstance(value, (str, list)) and not (value.strip() if isinstance(value, str) else value):
        raise RowError(f"field '{key}' is empty")
    return value


def clip(raw: Any, limit: int = 2000) -> str | None:
    """A short printable form of a raw record for the quarantine file."""
    if raw is None:
        return None
    text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def is_local(location: str) -> bool:
    """A location is local when it exists on disk or looks like a path, else it is a hub name."""
    return (
        os.path.exists(location)
        or location.startswith((".", "/", "~"))
        or location.endswith((".json", ".jsonl", ".gz", ".parquet"))
    )


def why_empty(location: str) -> str:
    """Why a location gave no records, in a few words for the error message.

    >>> import tempfile
    >>> why_empty(tempfile.mkdtemp())
    'the folder is empty'
    """
    path = Path(location).expanduser()
    if not is_local(location):
        return "the hub dataset has no rows in this subset and split"
    if path.is_dir():
        entries = sorted(p.name for p in path.iterdir())
        if not entries:
            return "the folder is empty"
        if not any(name.endswith(DATA_SUFFIXES) for name in entries):
            shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
            return f"the folder holds no data files ({', '.join(DATA_SUFFIXES)}), only {shown}"
        return "its data files hold no records"
    if path.stat().st_size == 0:
        return "the file is empty"
    return "the file holds no records (only blank lines, or an empty JSON list)"


def read_local(path: Path) -> Iterator[tuple[str, dict | None, str | None, str | None]]:
    """Read JSONL (optionally gzipped), JSON (a list, or an object of lists) or a folder of them.

    Each record's id is ``file-stem/index``. A line that is not valid UTF-8 or not valid JSON is
    yielded as an error with its raw text.
    """
    path = path.expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    files = (
        sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(DATA_SUFFIXES)) if path.is_dir() else [path]
    )
    for file in files:
        stem = file.name.split(".")[0]
        if file.name.endswith((".jsonl", ".jsonl.gz")):
            yield from _read_jsonl(file, stem)
        elif file.suffix == ".json":
            yield from _read_json(file, stem)
        elif file.suffix == ".parquet":
            import datasets

            for i, rec in enumerate(datasets.Dataset.from_parquet(str(file))):
                yield f"{stem}/{i}", rec, None, None


def _read_jsonl(file: Path, stem: str) -> Iterator[tuple[str, dict | None, str | None, str | None]]:
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rb") as handle:
        for i, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield f"{stem}/{i}", None, f"invalid UTF-8 at byte {exc.start}", clip(line.decode("utf-8", "replace"))
                continue
            try:
                yield f"{stem}/{i}", json.loads(text), None, None
            except json.JSONDecodeError as exc:
                yield f"{stem}/{i}", None, f"invalid JSON: {exc.msg} at column {exc.colno}", clip(text)


def _read_json(file: Path, stem: str) -> Iterator[tuple[str, dict | None, str | None, str | None]]:
    raw = file.read_bytes()
    try:  # a broken JSON file is one unusable record, reported like a broken JSONL line
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        yield f"{stem}/0", None, f"invalid UTF-8 at byte {exc.start}", clip(raw.decode("utf-8", "replace"))
        return
    except json.JSONDecodeError as exc:
        yield f"{stem}/0", None, f"invalid JSON: {exc.msg} at line {exc.lineno}", clip(exc.doc)
        return
    if isinstance(data, dict):  # an object of parallel lists, or a single record
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if lists and len({len(v) for v in lists.values()}) == 1 and len(lists) == len(data):
            n = len(next(iter(lists.values())))
            data = [{k: v[i] for k, v in lists.items()} for i in range(n)]
        else:
            data = [data]
    elif not isinstance(data, list):
        data = [data]
    for i, rec in enumerate(data):
        yield f"{stem}/{i}", rec, None, None


def read_hub(name: str, subset: str | None, split: str, **options: Any) -> Iterator[tuple[str, dict, None, None]]:
    """Read a dataset from the Hugging Face hub (needs network, or a warm local cache).

    ``options`` go to ``datasets.load_dataset`` as they are (e.g. ``data_dir``).
    """
    import datasets

    dataset = datasets.load_dataset(name, subset, split=split, **options)
    for i, rec in enumerate(dataset):
        yield f"{split}/{i}", rec, None, None
