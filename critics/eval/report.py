"""The readable side of ``critics eval``: ``report.md`` and its PNG plots.

Plots, one file each in the output folder:
- ``<bench>_confusion.png``: what the critic said against what was true;
- ``subsets.png``: the headline metric per subset of every benchmark;
- ``position_bias.png``: pairwise accuracy when the better answer is shown as A against as B (a
  critic that always answers "A" scores 1.0 and 0.0 here, whatever its overall accuracy);
- ``accuracy_vs_k.png``: the headline metric against the number of voted samples (``--samples``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

SUBSET_KEYS = ("subsets", "groups", "domains")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def results_table(summary: dict[str, Any]) -> str:
    """One row per benchmark: headline metric, items, quarantined rows, failed requests, prompts over
    the critic's token budget (cut, or refused).

    >>> print(results_table({"benchmarks": {"llmbar": {"headline": [0.5, "accuracy"], "items": 4,
    ...                                                "quarantined": 0, "failed_requests": 0, "too_long": 1}}}))
    | benchmark | metric | value | items | quarantined | failed requests | too long |
    |---|---|---:|---:|---:|---:|---:|
    | llmbar | accuracy | 0.500 | 4 | 0 | 0 | 1 |
    """
    lines = ["| benchmark | metric | value | items | quarantined | failed requests | too long |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for spec, m in summary["benchmarks"].items():
        value, label = m["headline"]
        lines.append(f"| {m.get('label', spec)} | {label} | {_fmt(value)} | {m['items']} | {m['quarantined']} | "
                     f"{m['failed_requests']} | {m.get('too_long', 0)} |")
    return "\n".join(lines)


def subset_values(metrics: dict[str, Any]) -> dict[str, float]:
    """The per-subset headline of one benchmark's metrics (F1 for ProcessBench, score for RM-Bench)."""
    for name in SUBSET_KEYS:
        block = metrics.get(name)
        if isinstance(block, dict) and block:
            out = {}
            for subset, value in block.items():
                if isinstance(value, dict):
                    value = value.get("f1", value.get("score", value.get("accuracy")))
                out[subset] = value
            return out
    return {}


def subset_counts(metrics: dict[str, Any]) -> dict[str, int]:
    """Items per subset where the metrics record them (ProcessBench, RM-Bench)."""
    for name in SUBSET_KEYS:
        block = metrics.get(name)
        if isinstance(block, dict):
            return {k: v["n"] for k, v in block.items() if isinstance(v, dict) and "n" in v}
    return {}


def write_report(out: Path, summary: dict[str, Any]) -> Path:
    """Write ``report.md`` and the plots; return the report's path."""
    plots = write_plots(out, summary)
    lines = [f"# Evaluation of `{summary['target']}`", "", f"{summary['date']}; settings: "
             + ", ".join(f"{k}={v}" for k, v in summary["settings"].items() if k not in ("target", "benches")), "",
             results_table(summary), ""]
    for spec, m in summary["benchmarks"].items():
        lines += [f"## {m.get('label', spec)}", "", f"`{spec}`", ""]
        subsets, counts = subset_values(m), subset_counts(m)
        if subsets:
            lines += ["| subset | value | items |", "|---|---:|---:|"]
            lines += [f"| {s} | {_fmt(v)} | {counts.get(s, '')} |" for s, v in subsets.items()]
            lines.append("")
        position = m.get("breakdown", {}).get("position")
        if position:
            lines.append("Position bias: accuracy when the better answer is A: "
                         f"{_fmt(position['A'][0])} (n={position['A'][1]}); when it is B: "
                         f"{_fmt(position['B'][0])} (n={position['B'][1]}).")
            lines.append("")
        if m.get("by_k"):
            lines.append("Voting over k samples: " + ", ".join(f"k={k}: {_fmt(v)}" for k, v in m["by_k"].items()))
            lines.append("")
        extras = {k: m[k] for k in ("macro_accuracy", "inconsistent", "rewardbench_score", "f1", "precision", "recall", "hard",
                                    "normal", "easy", "invalid") if k in m}
        if extras:
            lines += [", ".join(f"{k}: {_fmt(v)}" for k, v in extras.items()), ""]
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_plots(out: Path, summary: dict[str, Any]) -> list[Path]:
    """Every plot the results support; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    benches = {m.get("label", spec): m for spec, m in summary["benchmarks"].items()}
    for spec, m in benches.items():
        table = m.get("breakdown", {}).get("confusion")
        if table:
            written.append(_confusion(plt, out / f"{_slug(spec)}_confusion.png", spec, table))
    subsets = {spec: subset_values(m) for spec, m in benches.items() if subset_values(m)}
    if subsets:
        written.append(_bars(plt, out / "subsets.png", "per subset", subsets))
    positions = {spec: m["breakdown"]["position"] for spec, m in benches.items() if m.get("breakdown", {}).get("position")}
    if positions:
        bars = {spec: {"better is A": p["A"][0], "better is B": p["B"][0]} for spec, p in positions.items()}
        written.append(_bars(plt, out / "position_bias.png", "accuracy by the better answer's position", bars))
    curves = {spec: m["by_k"] for spec, m in benches.items() if m.get("by_k")}
    if curves:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for spec, by_k in curves.items():
            ks = sorted(int(k) for k in by_k)
            ax.plot(ks, [by_k[k] if k in by_k else by_k[str(k)] for k in ks], marker="o", label=spec)
        ax.set_xlabel("samples voted (k)")
        ax.set_ylabel("headline metric")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        written.append(_save(plt, fig, out / "accuracy_vs_k.png"))
    return written


def _confusion(plt, path: Path, title: str, table: dict[str, dict[str, int]]) -> Path:
    rows = list(table)
    cols = sorted({c for r in table.values() for c in r})
    values = [[table[r].get(c, 0) for c in cols] for r in rows]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(cols), 1.2 + 0.7 * len(rows)))
    ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=9)
    ax.set_xlabel("critic said")
    ax.set_title(title, fontsize=9)
    return _save(plt, fig, path)


def _bars(plt, path: Path, title: str, groups: dict[str, dict[str, float]]) -> Path:
    labels = [f"{spec}\n{name}" if len(groups) > 1 else name for spec, values in groups.items() for name in values]
    heights = [v if v is not None and not (isinstance(v, float) and math.isnan(v)) else 0.0
               for values in groups.values() for v in values.values()]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(labels) + 1.5), 3.5))
    ax.bar(range(len(labels)), heights, color="tab:blue")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, path)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
