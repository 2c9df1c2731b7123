"""Model cards for checkpoints, filled from the template ``critics/model_cards/critic.md``.

The template is package data (``pyproject.toml``), read through ``importlib.resources``, so a
non-editable install writes cards too.
"""

from __future__ import annotations

import datetime
import string
from importlib import resources
from pathlib import Path
from typing import Any

TEMPLATE = resources.files("critics") / "model_cards" / "critic.md"


def metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    """``{stage: {metric: value}}`` as a markdown table.

    >>> print(metrics_table({"before": {"accuracy": 0.5}, "after SFT": {"accuracy": 0.81}}))
    | stage | accuracy |
    |---|---:|
    | before | 0.5000 |
    | after SFT | 0.8100 |
    """
    if not metrics:
        return "No held-out evaluation was run."
    names = sorted({k for values in metrics.values() for k in values})
    lines = ["| stage | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for stage, values in metrics.items():
        cells = [f"{values[n]:.4f}" if isinstance(values.get(n), float) else str(values.get(n, "")) for n in names]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spec_table(spec) -> str:
    """A critic spec's fields as a markdown table (empty without a spec).

    >>> from types import SimpleNamespace
    >>> print(spec_table(SimpleNamespace(to_dict=lambda: {"style": "compact", "prompt_budget": 960})))
    | spec field | value |
    |---|---|
    | style | `compact` |
    | prompt_budget | `960` |
    """
    if spec is None:
        return ""
    rows = [f"| {k} | `{v}` |" for k, v in spec.to_dict().items() if v is not None]
    return "\n".join(["| spec field | value |", "|---|---|", *rows])


def overlap_note(overlap: dict[str, Any] | None) -> str:
    """The card's sentence on held-out records whose question the training records also ask.

    >>> overlap_note({"held_out": 8, "question_in_train": 0, "examples": []})
    'None of the 8 held-out records asks a question that a training record also asks.'
    >>> print(overlap_note({"held_out": 8, "question_in_train": 2, "examples": ["r3", "r7"]}))
    **2 of the 8 held-out records ask a question that a training record also asks** (e.g. `r3`, `r7`): on them the figures above partly measure recall of the training data. Give a held-out set split by question (`data.eval`) to measure generalisation.
    """
    if not overlap:
        return ""
    n, total = overlap["question_in_train"], overlap["held_out"]
    if n == 0:
        return f"None of the {total} held-out records asks a question that a training record also asks."
    examples = ", ".join(f"`{i}`" for i in overlap["examples"])
    return (
        f"**{n} of the {total} held-out records ask a question that a training record also asks** "
        f"(e.g. {examples}): on them the figures above partly measure recall of the training data. "
        "Give a held-out set split by question (`data.eval`) to measure generalisation."
    )


def data_section(sources: list[str], cards: dict[str, str]) -> str:
    """The training sources, each followed by its data card (headings demoted one level)."""
    parts = [f"- `{s}`" for s in sources]
    for where, card in cards.items():
        demoted = "\n".join("#" + line if line.startswith("#") else line for line in card.splitlines())
        parts += ["", f"<details><summary>Data card of <code>{where}</code></summary>", "", demoted, "", "</details>"]
    return "\n".join(parts)


def write_model_card(
    folder: str | Path,
    *,
    base_model: str,
    recipe: str,
    task: str,
    stages: str,
    config_hash: str,
    rewards: list[str],
    steps: int,
    template: str,
    verdict_format: str,
    metrics: dict[str, dict[str, float]],
    sources: list[str],
    cards: dict[str, str],
    extra_limitations: str = "",
    spec=None,
    overlap: dict[str, Any] | None = None,
) -> Path:
    """Write ``README.md`` (the model card) into a checkpoint folder and return its path; ``spec``
    (a ``CriticSpec``) adds its fields as a table, ``overlap`` (``held_out_overlap``) a sentence on
    held-out records whose question is also in the training records."""
    text = string.Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        title=f"{Path(folder).name}: {task} critic",
        base_model=base_model,
        recipe=recipe,
        task=task,
        stages=stages,
        config_hash=config_hash,
        rewards=", ".join(f"`{r}`" for r in rewards) or "none",
        steps=steps,
        created=datetime.date.today().isoformat(),
        template=template,
        verdict_format=verdict_format,
        metrics=metrics_table(metrics),
        data=data_section(sources, cards),
        extra_limitations=extra_limitations,
        spec=spec_table(spec),
        overlap=overlap_note(overlap),
    )
    path = Path(folder) / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
