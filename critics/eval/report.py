"""The readable side of ``critics eval``: ``report.md`` and its PNG plots.

Plots, one file each in the output folder:
- ``<bench>_confusion.png``: what the critic said against what was true;
- ``subsets.png``: the headline metric per subset of every benchmark;
- ``position_bias.png``: pairwise accuracy when the better answer is shown as A against as B (a
  critic that always answers "A" scores 1.0 and 0.0 here, whatever its overall accuracy);
- ``accuracy_vs_k.png``: the headline metric against the number of voted samples (``--samples``), one
  line per benchmark and vote method (``by_vote``: sum, mean, majority, meta) where the run has them.

An undefined number (``nan``; null in ``metrics.json``) is written "—" and drawn as no bar (a "—"
where it would stand) or a gap in a curve, never as 0. The report opens with the critic's spec
(its template style first) and gives each benchmark's items, quarantined rows, critiques without a
valid verdict, failed requests and prompts over budget, or the error that kept it from running.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

SUBSET_KEYS = ("subsets", "groups", "domains")
MISSING = "—"  # an undefined number (nan, None): never a made-up 0


def missing(value: Any) -> bool:
    """True for an undefined number: None (``metrics.json``'s null) or nan."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any) -> str:
    """A number for the report: three decimals, "—" when undefined.

    >>> _fmt(0.5), _fmt(float("nan")), _fmt(None), _fmt(7)
    ('0.500', '—', '—', '7')
    """
    if missing(value):
        return MISSING
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def results_table(summary: dict[str, Any]) -> str:
    """One row per benchmark: headline metric, items, quarantined rows, critiques without a valid
    verdict, failed requests, prompts over the critic's token budget (cut, or refused).

    >>> print(results_table({"benchmarks": {"llmbar": {"headline": [0.5, "accuracy"], "items": 4, "quarantined": 0,
    ...                                                "invalid_verdicts": 2, "failed_requests": 0, "too_long": 1}}}))
    | benchmark | metric | value | items | quarantined | invalid verdicts | failed requests | too long |
    |---|---|---:|---:|---:|---:|---:|---:|
    | llmbar | accuracy | 0.500 | 4 | 0 | 2 | 0 | 1 |
    """
    lines = [
        "| benchmark | metric | value | items | quarantined | invalid verdicts | failed requests | too long |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for spec, m in summary["benchmarks"].items():
        value, label = m["headline"]
        value = f"error: {m['error']}" if "error" in m else _fmt(value)
        lines.append(
            f"| {m.get('label', spec)} | {label} | {value} | {m['items']} | {m['quarantined']} | "
            f"{m.get('invalid_verdicts', 0)} | {m['failed_requests']} | {m.get('too_long', 0)} |"
        )
    return "\n".join(lines)


def spec_line(spec: dict[str, Any] | None) -> str:
    """The critic's spec in one line of the report (the template style first).

    >>> spec_line({"style": "compact", "think": False, "tasks": ["pairwise"], "max_new_tokens": 8, "budgets": None})
    'style=compact, think=False, tasks=pairwise, max_new_tokens=8'
    >>> spec_line(None)
    'unknown (the judge did not say)'
    """
    if spec is None:
        return "unknown (the judge did not say)"
    first = {k: spec[k] for k in ("style", "think") if k in spec}
    rest = {k: v for k, v in spec.items() if k not in first and v is not None}
    return ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in {**first, **rest}.items())


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
    """Items per subset: the metrics' own counts (ProcessBench, RM-Bench's pooled domains), else the
    run's ``subset_items``."""
    for name in SUBSET_KEYS:
        block = metrics.get(name)
        if isinstance(block, dict):
            counts = {k: v["n"] for k, v in block.items() if isinstance(v, dict) and "n" in v}
            if counts:
                return counts
    return dict(metrics.get("subset_items") or {})


def write_report(out: Path, summary: dict[str, Any]) -> Path:
    """Write ``report.md`` and the plots; return the report's path."""
    plots = write_plots(out, summary)
    lines = [
        f"# Evaluation of `{summary['target']}`",
        "",
        f"{summary['date']}; settings: "
        + ", ".join(f"{k}={v}" for k, v in summary["settings"].items() if k not in ("target", "benches")),
        "",
        f"Critic spec: {spec_line(summary.get('critic'))}",
        "",
        results_table(summary),
        "",
    ]
    for spec, m in summary["benchmarks"].items():
        lines += bench_section(spec, m)
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def bench_section(spec: str, m: dict[str, Any]) -> list[str]:
    """The report's lines for one benchmark: its error, or its subsets, position bias, votes and extras."""
    lines = [f"## {m.get('label', spec)}", "", f"`{spec}`", ""]
    if "error" in m:
        return lines + [f"**Not evaluated**: {m['error']}", ""]
    subsets, counts = subset_values(m), subset_counts(m)
    if subsets:
        lines += ["| subset | value | items |", "|---|---:|---:|"]
        lines += [f"| {s} | {_fmt(v)} | {counts.get(s, MISSING)} |" for s, v in subsets.items()]
        lines.append("")
    position = m.get("breakdown", {}).get("position")
    if position:
        lines += [
            "Position bias: accuracy when the better answer is A: "
            f"{_fmt(position['A'][0])} (n={position['A'][1]}); when it is B: "
            f"{_fmt(position['B'][0])} (n={position['B'][1]}).",
            "",
        ]
    if m.get("by_vote"):
        for method, by_k in m["by_vote"].items():
            votes = ", ".join(f"k={k}: {_fmt(v)}" for k, v in by_k.items())
            lines += [f"Voting over k samples ({method}): {votes}", ""]
    elif m.get("by_k"):
        lines += ["Voting over k samples: " + ", ".join(f"k={k}: {_fmt(v)}" for k, v in m["by_k"].items()), ""]
    extras = {
        k: m[k]
        for k in (
            "macro_accuracy",
            "strict",
            "chance",
            "inconsistent",
            "rewardbench_score",
            "f1",
            "precision",
            "recall",
            "hard",
            "normal",
            "easy",
        )
        if k in m
    }
    if extras:
        lines += [", ".join(f"{k}: {_fmt(v)}" for k, v in extras.items()), ""]
    return lines


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
    positions = {
        spec: m["breakdown"]["position"] for spec, m in benches.items() if m.get("breakdown", {}).get("position")
    }
    if positions:
        bars = {spec: {"better is A": p["A"][0], "better is B": p["B"][0]} for spec, p in positions.items()}
        written.append(_bars(plt, out / "position_bias.png", "accuracy by the better answer's position", bars))
    curves = vote_curves(benches, summary.get("settings", {}).get("vote"))
    if curves:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for label, by_k in curves.items():  # an undefined value is a gap in its curve, not a point at 0
            ks = sorted(by_k)
            ax.plot(ks, [float("nan") if missing(by_k[k]) else by_k[k] for k in ks], marker="o", label=label)
        ax.set_xlabel("samples voted (k)")
        ax.set_ylabel("headline metric")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        written.append(_save(plt, fig, out / "accuracy_vs_k.png"))
    return written


def vote_curves(benches: dict[str, dict[str, Any]], vote: str | None = None) -> dict[str, dict[int, Any]]:
    """The lines of ``accuracy_vs_k.png``: one per benchmark and vote method (``by_vote``), or one per
    benchmark (``by_k``, labelled with the run's ``vote`` when known); k as ints, in order.

    >>> vote_curves({"rb2": {"by_vote": {"sum": {"1": 0.5, "2": 0.7}, "meta": {"1": 0.5, "2": None}}},
    ...              "llmbar": {"by_k": {"1": 0.6, "3": 0.8}}}, vote="majority")
    {'rb2 (sum)': {1: 0.5, 2: 0.7}, 'rb2 (meta)': {1: 0.5, 2: None}, 'llmbar (majority)': {1: 0.6, 3: 0.8}}
    """
    curves: dict[str, dict[int, Any]] = {}
    for spec, m in benches.items():
        if m.get("by_vote"):
            for method, by_k in m["by_vote"].items():
                curves[f"{spec} ({method})"] = {int(k): v for k, v in sorted(by_k.items(), key=lambda kv: int(kv[0]))}
        elif m.get("by_k"):
            label = f"{spec} ({vote})" if vote else spec
            curves[label] = {int(k): v for k, v in sorted(m["by_k"].items(), key=lambda kv: int(kv[0]))}
    return curves


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


def bar_layout(groups: dict[str, dict[str, float | None]]) -> tuple[list[str], dict[int, float], list[int]]:
    """Where the bars of a bar plot go: the labels, ``{position: height}`` of the defined values,
    and the positions of undefined ones (nan, None), which get a "—" and no bar.

    >>> bar_layout({"llmbar": {"Natural": 0.5, "Neighbor": float("nan")}})
    (['Natural', 'Neighbor'], {0: 0.5}, [1])
    """
    labels = [f"{spec}\n{name}" if len(groups) > 1 else name for spec, values in groups.items() for name in values]
    values = [v for values in groups.values() for v in values.values()]
    heights = {i: v for i, v in enumerate(values) if not missing(v)}
    return labels, heights, [i for i in range(len(values)) if i not in heights]


def _bars(plt, path: Path, title: str, groups: dict[str, dict[str, float | None]]) -> Path:
    labels, heights, undefined = bar_layout(groups)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(labels) + 1.5), 3.5))
    ax.bar(list(heights), list(heights.values()), color="tab:blue")
    for i in undefined:
        ax.text(i, 0.02, MISSING, ha="center", va="bottom", fontsize=9, color="tab:gray")
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
