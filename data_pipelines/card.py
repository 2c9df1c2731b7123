"""Statistics and the markdown data card of a build: counts, label balance, lengths, quarantine."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_pipelines.schema import Record

QUARANTINE_REASONS_SHOWN = 15


def dataset_stats(config: Any, records: Sequence[Record], quarantine: list[dict], rows_in: int) -> dict[str, Any]:
    """Counts, label balance, per-source counts, text lengths and quarantine reasons."""
    return {
        "name": config.name,
        "task": config.builder.task,
        "rows_in": rows_in,
        "rows_out": len(records),
        "rows_quarantined": len(quarantine),
        "labels": label_counts(records),
        "sources": dict(Counter(r.source for r in records).most_common()),
        "lengths": length_stats(records),
        "quarantine_reasons": dict(Counter(reason_kind(q["reason"]) for q in quarantine).most_common()),
        "duplicates_dropped": sum(q["stage"] == "dedupe" for q in quarantine) if config.drop_duplicates else None,
        "seed": config.seed,
    }


DUPLICATE = "duplicate of an earlier row"


def reason_kind(reason: str) -> str:
    """A quarantine reason as the statistics count it: every ``duplicate of <id>`` is one kind.

    >>> reason_kind("duplicate of solutions:rows/3"), reason_kind("field 'question' is empty")
    ('duplicate of an earlier row', "field 'question' is empty")
    """
    return DUPLICATE if reason.startswith("duplicate of ") else reason


def label_counts(records: Sequence[Record]) -> dict[str, int]:
    """How many records carry each label (``same_policy`` for reference records; none for record
    types without a label, such as POLAR's triples and preference records, whose roles are fixed)."""
    field = "same_policy" if records and records[0].task == "reference" else "label"
    if records and not hasattr(records[0], field):
        return {}
    return {
        str(k): v
        for k, v in sorted(Counter(getattr(r, field, None) for r in records).items(), key=lambda kv: str(kv[0]))
    }


def length_stats(records: Sequence[Record]) -> dict[str, dict[str, float]]:
    """Characters per text field: mean, median, 95th percentile, max."""
    if not records:
        return {}
    out = {}
    fields = [f for f in records[0].text_fields if f not in ("id", "source")]
    fields += records[0].list_fields  # each list's texts, summed
    for name in fields:
        sizes = sorted(_size(getattr(r, name)) for r in records)
        out[name] = {
            "mean": round(statistics.fmean(sizes), 1),
            "median": statistics.median(sizes),
            "p95": sizes[min(len(sizes) - 1, int(0.95 * len(sizes)))],
            "max": sizes[-1],
        }
    return out


def _size(value: Any) -> int:
    return sum(len(v) for v in value) if isinstance(value, list) else len(value)


def write_card(
    path: Path, config: Any, records: Sequence[Record], quarantine: list[dict], stats: dict[str, Any], extra_md: str
) -> None:
    """Write the markdown data card."""
    lines = [
        f"# Data card: {stats['name']}",
        "",
        f"Task `{stats['task']}`, built by `{config.builder.registry_name}` with seed {stats['seed']} "
        f"in {stats.get('seconds', 0):.1f} s.",
        "",
        "## Counts",
        "",
        "| rows in | rows out | quarantined |",
        "|---:|---:|---:|",
        f"| {stats['rows_in']:,} | {stats['rows_out']:,} | {stats['rows_quarantined']:,} |",
        "",
        duplicates_line(stats.get("duplicates_dropped")),
        "",
        "## Sources",
        "",
    ]
    lines += [f"- `{s.describe()}`" for s in config.sources]
    lines += ["", "| source | rows |", "|---|---:|"]
    lines += [f"| {name} | {n:,} |" for name, n in stats["sources"].items()]
    lines += ["", "## Label balance", "", "| label | rows | share |", "|---|---:|---:|"]
    total = max(1, stats["rows_out"])
    lines += [f"| {label} | {n:,} | {n / total:.1%} |" for label, n in stats["labels"].items()]
    lines += ["", "## Lengths (characters)", "", "| field | mean | median | p95 | max |", "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {name} | {s['mean']:,} | {s['median']:,} | {s['p95']:,} | {s['max']:,} |"
        for name, s in stats["lengths"].items()
    ]
    if extra_md:
        lines += ["", extra_md]
    lines += ["", "## Quarantine", ""]
    if not quarantine:
        lines.append("No row was quarantined.")
    else:
        lines += [
            "Every quarantined row is in `quarantine.jsonl` with its reason and raw text.",
            "",
            "| reason | rows |",
            "|---|---:|",
        ]
        reasons = list(stats["quarantine_reasons"].items())
        lines += [f"| {_cell(reason)} | {n:,} |" for reason, n in reasons[:QUARANTINE_REASONS_SHOWN]]
        if len(reasons) > QUARANTINE_REASONS_SHOWN:
            lines.append(f"| ({len(reasons) - QUARANTINE_REASONS_SHOWN} more reasons) | |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def duplicates_line(dropped: int | None) -> str:
    """The data card's sentence on exact duplicates (``None``: the check was turned off).

    >>> duplicates_line(2)
    'Exact duplicates: 2 rows dropped, each in `quarantine.jsonl` as `duplicate of <id>` (same source and content, ids aside).'
    """
    if dropped is None:
        return "Exact duplicates: not checked (`drop_duplicates: false`); copies of a row may straddle a train / held-out split."
    return (
        f"Exact duplicates: {dropped:,} rows dropped, each in `quarantine.jsonl` as `duplicate of <id>` "
        "(same source and content, ids aside)."
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:120]
