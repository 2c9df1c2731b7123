"""Plots people would rather look at than tables: training curves from a trainer's log history."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

CURVES = (
    "loss",
    "reward",
    "rewards/",
    "kl",
    "learning_rate",
    "completions/mean_length",
    "entropy",
    "audit/",
    "feedback/",
)


def plot_training_curves(
    log_history: Sequence[dict[str, Any]], path: str | Path, title: str = "training", wanted: Sequence[str] = CURVES
) -> Path | None:
    """One panel per logged metric whose name starts with one of ``wanted``; None if nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, tuple[list[int], list[float]]] = {}
    for entry in log_history:
        step = entry.get("step")
        for key, value in entry.items():
            if step is None or not isinstance(value, (int, float)) or not key.startswith(tuple(wanted)):
                continue
            if key.endswith("_std") or key.startswith(("train_", "eval_")):
                continue
            xs, ys = series.setdefault(key, ([], []))
            xs.append(step)
            ys.append(float(value))
    if not series:
        return None
    names = sorted(series)[:9]
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        xs, ys = series[name]
        ax.plot(xs, ys, marker="." if len(xs) < 40 else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
