"""load -> build -> verify -> save: turn source datasets into critique records.

Every row that comes in goes out exactly once: as a record, or into ``quarantine.jsonl`` with its
reason (``rows in = rows out + rows quarantined`` is checked before anything is written). The
build is deterministic for a seed, runs on ``num_proc`` processes, and is cached: a rebuild whose
config, source files and code are unchanged returns the saved result at once.

Exact duplicates are dropped before building (``drop_duplicates``, on by default): a row is an
exact duplicate of an earlier row when both come from the same source and their data in the
source's shape is equal field for field (question, responses, labels, gold answer, model, group
and the ``extra`` fields that become the record's ``metadata``), apart from ids: the row id (file
and line) and the dataset's own ``id`` field. A record is made from that data, its id and the
seed only, so two such rows would make the same record apart from its id and id-seeded draws
(the A/B order). The later row goes to the quarantine as ``duplicate of <id of the first>``, so
no copy of a record can land on both sides of a train / held-out split. Rows that share only a
question (several solutions of one problem) are not duplicates.

A source that gives no rows at all (an empty file, an empty folder, a folder without data
files) is an error naming the source and the path, never a build of 0 records.

Outputs in ``output_dir``: ``dataset/`` (``datasets.save_to_disk``), ``data.jsonl``,
``quarantine.jsonl``, ``data_card.md``, ``stats.json`` and ``fingerprint``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import data_pipelines
from data_pipelines.builders import BUILDERS, Builder
from data_pipelines.builders.base import Item
from data_pipelines.card import dataset_stats, write_card
from data_pipelines.files import OutputError, check_writable, recover, staged_folder, writing
from data_pipelines.registry import as_plain
from data_pipelines.schema import DEFAULT_MAX_CHARS, Record, RecordError
from data_pipelines.sources import SOURCES, Source
from data_pipelines.sources.base import RowError, is_local

CHUNK = 64


@dataclass
class BuildConfig:
    """A dataset build. YAML names sources and the builder by registry key.

    Args:
        sources: where rows come from (``{name: gsm8k_solutions, path: ...}``), concatenated.
        builder: how rows become records (``{name: pointwise, label_from: source}``).
        name: the dataset's name, used in the data card.
        output_dir: where the dataset, quarantine and card are written.
        seed: every random choice (A/B order, references) is drawn from it.
        num_proc: worker processes for building and verifying.
        max_chars: longest allowed text field; longer rows are quarantined.
        cache: reuse the saved result when nothing that shapes it changed.
        drop_duplicates: quarantine exact duplicate rows as ``duplicate of <id>`` (see the module
            docstring for what counts as one); false keeps every copy.
    """

    sources: list[Source] = field(metadata={"registry": SOURCES})
    builder: Builder = field(metadata={"registry": BUILDERS})
    name: str = "dataset"
    output_dir: str = "outputs/data/dataset"
    seed: int = 0
    num_proc: int = 1
    max_chars: int = DEFAULT_MAX_CHARS
    cache: bool = True
    drop_duplicates: bool = True

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("sources: give at least one source")
        if self.num_proc < 1:
            raise ValueError(f"num_proc must be >= 1, got {self.num_proc}")
        for source in self.sources:
            if source.shape not in self.builder.shapes:
                raise ValueError(
                    f"builder '{self.builder.registry_name}' reads {self.builder.shapes} "
                    f"rows, but source '{source.name}' gives '{source.shape}' rows"
                )


@dataclass
class BuildResult:
    """What a build wrote, and its statistics (``stats["rows_in"]`` etc.)."""

    output_dir: Path
    stats: dict[str, Any]
    cached: bool = False

    @property
    def dataset_path(self) -> Path:
        return self.output_dir / "dataset"

    @property
    def card_path(self) -> Path:
        return self.output_dir / "data_card.md"

    def load(self):
        """The built ``datasets.Dataset``."""
        import datasets

        return datasets.load_from_disk(str(self.dataset_path))


def build(config: BuildConfig, progress: bool = True) -> BuildResult:
    """Run a build (or return the cached one) and write every output atomically.

    Raises:
        EmptySourceError: a source gave no rows (its name and path are in the message).
        OutputError: ``output_dir`` cannot be written (checked before any row is read).
    """
    out = Path(config.output_dir)
    recover(out)  # a swap a crash interrupted: the old or the new build, whole
    fingerprint = compute_fingerprint(config)
    if config.cache and (out / "fingerprint").is_file() and (out / "fingerprint").read_text() == fingerprint:
        return BuildResult(out, json.loads((out / "stats.json").read_text()), cached=True)
    check_writable(out.parent, "the parent of output_dir")  # the build is staged beside ``out``, then swapped in
    if out.exists() and not out.is_dir():
        raise OutputError(f"output_dir {out} is a file, not a folder")
    started = time.perf_counter()
    quarantine: list[dict[str, Any]] = []
    items = load_rows(config, quarantine, progress)
    rows_in = len(items) + len(quarantine)
    if config.drop_duplicates:
        items = drop_duplicates(items, quarantine)
    records = build_records(config, items, quarantine, progress)
    if rows_in != len(records) + len(quarantine):  # the invariant users rely on; never write if broken
        raise AssertionError(f"lost rows: {rows_in} in, {len(records)} out, {len(quarantine)} quarantined")
    stats = dataset_stats(config, records, quarantine, rows_in)
    extra_stats, extra_md = config.builder.summary(records)
    stats.update(extra_stats, seconds=round(time.perf_counter() - started, 2))
    with _datasets_progress(progress), writing(out, "output_dir"):
        save(out, config, records, quarantine, stats, extra_md, fingerprint)
    return BuildResult(out, stats)


def load_rows(config: BuildConfig, quarantine: list[dict], progress: bool) -> list[Item]:
    """Read every source; unusable rows go to ``quarantine`` (stage ``load``)."""
    names = [s.name for s in config.sources]
    items: list[Item] = []
    seen: set[str] = set()
    for i, source in enumerate(config.sources):
        prefix = f"{i}/" if names.count(source.name) > 1 else ""
        for row in tqdm(source.rows(), desc=f"load {source.name}", disable=not progress, unit=" rows"):
            row_id = prefix + row.id
            if row.error is None and row_id in seen:
                row.error = "duplicate row id"
            if row.error is not None:
                quarantine.append({"id": row_id, "stage": "load", "reason": row.error, "raw": row.raw})
                continue
            seen.add(row_id)
            items.append((row_id, {**row.data, "source_name": source.name}))
    return items


def drop_duplicates(items: list[Item], quarantine: list[dict]) -> list[Item]:
    """Keep the first of every group of exact duplicates; quarantine the others (stage ``dedupe``).

    >>> rows = [("s:a/0", {"question": "q", "source_name": "s", "extra": {"id": 1}}),
    ...         ("s:a/1", {"question": "q", "source_name": "s", "extra": {"id": 2}}),
    ...         ("s:a/2", {"question": "q", "source_name": "s", "extra": {"id": 3, "level": 2}})]
    >>> quarantine = []
    >>> [row_id for row_id, _ in drop_duplicates(rows, quarantine)], [q["reason"] for q in quarantine]
    (['s:a/0', 's:a/2'], ['duplicate of s:a/0'])
    """
    first: dict[bytes, str] = {}
    kept: list[Item] = []
    for row_id, data in items:
        key = content_key(data)
        if key in first:
            quarantine.append(
                {"id": row_id, "stage": "dedupe", "reason": f"duplicate of {first[key]}", "raw": _clip(data)}
            )
        else:
            first[key] = row_id
            kept.append((row_id, data))
    return kept


def content_key(data: dict[str, Any]) -> bytes:
    """A digest of a row's content: every field of its shape and its source, without the dataset's ``id``."""
    extra = {k: v for k, v in (data.get("extra") or {}).items() if k != "id"}
    text = json.dumps({**data, "extra": extra}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def build_records(config: BuildConfig, items: list[Item], quarantine: list[dict], progress: bool) -> list[Record]:
    """Build and validate records in input order; rejected rows go to ``quarantine``."""
    builder, seed = config.builder, config.seed
    builder.prepare(items, seed)
    records: list[Record] = []
    bar = tqdm(total=len(items), desc=f"build {builder.registry_name}", disable=not progress, unit=" rows")
    for chunk, results in _run_chunks(builder, items, seed, config.num_proc):
        for (row_id, data), result in zip(chunk, results):
            reason = str(result) if isinstance(result, RowError) else _invalid(result, config.max_chars)
            if reason is None:
                records.append(result)
            else:
                quarantine.append({"id": row_id, "stage": "build", "reason": reason, "raw": _clip(data)})
        bar.update(len(chunk))
    bar.close()
    final = builder.finalize(records, seed)
    if len(final) != len(records):
        raise AssertionError(f"{builder.registry_name}.finalize changed the number of records")
    return final


def _invalid(record: Record, max_chars: int) -> str | None:
    try:
        record.validate(max_chars)
    except RecordError as exc:
        return str(exc)
    return None


_WORKER: tuple[Builder, int] | None = None


def _init_worker(builder: Builder, seed: int) -> None:
    global _WORKER
    _WORKER = (builder, seed)


def _work(chunk: list[Item]) -> list[Record | RowError]:
    builder, seed = _WORKER
    return builder.build_many(chunk, seed)


def _run_chunks(
    builder: Builder, items: list[Item], seed: int, num_proc: int
) -> Iterator[tuple[list[Item], list[Record | RowError]]]:
    """Yield ``(chunk, results)`` in order, from a process pool when ``num_proc > 1``."""
    if builder.in_process:  # the builder runs its own workers (a sandbox pool)
        size = max(CHUNK, 64 * num_proc)
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            yield chunk, builder.build_many(chunk, seed, workers=num_proc)
        return
    chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    if num_proc == 1 or len(chunks) < 2:
        for chunk in chunks:
            yield chunk, builder.build_many(chunk, seed)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(num_proc, initializer=_init_worker, initargs=(builder, seed)) as pool:
        yield from zip(chunks, pool.imap(_work, chunks))


def save(
    out: Path,
    config: BuildConfig,
    records: Sequence[Record],
    quarantine: list[dict],
    stats: dict[str, Any],
    extra_md: str,
    fingerprint: str,
) -> None:
    """Write all outputs into a staging folder, then swap it in, so a crash never leaves a half build."""
    import datasets

    with staged_folder(out) as tmp:
        rows = [r.to_row() for r in records]
        datasets.Dataset.from_list(rows).save_to_disk(str(tmp / "dataset"))
        _write_jsonl(tmp / "data.jsonl", rows)
        _write_jsonl(tmp / "quarantine.jsonl", quarantine, ascii_only=True)  # raw text may hold lone surrogates
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2, default=str))
        write_card(tmp / "data_card.md", config, records, quarantine, stats, extra_md)
        (tmp / "fingerprint").write_text(fingerprint)


@contextlib.contextmanager
def _datasets_progress(enabled: bool) -> Iterator[None]:
    """Silence ``datasets``' own progress bars when the caller asked for none."""
    import datasets

    was = datasets.is_progress_bar_enabled()
    if not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()


def _write_jsonl(path: Path, rows: Sequence[dict], ascii_only: bool = False) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=ascii_only, default=str) + "\n")


def _clip(data: dict[str, Any], limit: int = 2000) -> str:
    text = json.dumps(data, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def compute_fingerprint(config: BuildConfig) -> str:
    """A hash of everything that shapes the output: config, source file contents and our code."""
    settings = as_plain(config)
    for key in ("num_proc", "output_dir", "cache"):  # they do not change what is built
        settings.pop(key)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for source in config.sources:
        _hash_location(source.path or source.default_path, digest)
        for f in dataclasses.fields(source):  # e.g. codet's ``problems`` file
            value = getattr(source, f.name)
            if f.name != "path" and isinstance(value, str) and value and os.path.exists(value):
                _hash_location(value, digest)
    _hash_code(digest)
    return digest.hexdigest()


def _hash_location(location: str, digest: Any) -> None:
    path = Path(location).expanduser()
    if not is_local(location) or not path.exists():
        digest.update(location.encode())
        return
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.name).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)


def _hash_code(digest: Any) -> None:
    root = Path(data_pipelines.__file__).parent
    for file in sorted(root.rglob("*.py")):
        digest.update(file.read_bytes())
