"""POLAR's input layout and scoring: a scalar reward of a candidate *against a reference*.

POLAR (Dou et al., 2025, arXiv 2507.05197) reads ``prompt + reference + <reward-separator> +
prompt + candidate + <reward-token>`` and puts a scalar head on the last position (the reward
token): the reward says how close the candidate's policy is to the reference's. The two tokens are
added to the tokenizer as special tokens (``add_polar_tokens``), and each part is cut from the
front to its token budget, so the end of a long prompt or response (where the answer is) survives.

A POLAR checkpoint is a ``*ForSequenceClassification`` model with one label plus
``polar.json`` (the tokens and budgets), which ``critics serve`` and the reward callables read.

>>> budgets = PolarBudgets(prompt=3, reference=2, candidate=2)
>>> ids = {"p": [1, 2, 3, 4], "r": [5, 6, 7], "c": [8, 9]}
>>> layout(ids["p"], ids["r"], ids["c"], budgets, separator=100, reward=101)
[2, 3, 4, 6, 7, 100, 2, 3, 4, 8, 9, 101]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SEPARATOR = "<|reward_sep|>"
REWARD = "<|reward|>"
CONFIG_FILE = "polar.json"


@dataclass
class PolarBudgets:
    """Token budgets of each part; a longer part keeps its last tokens (POLAR: responses up to 4,096)."""

    prompt: int = 1024
    reference: int = 4096
    candidate: int = 4096

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"budgets.{name} must be a positive int, got {value!r}")


def layout(prompt: list[int], reference: list[int], candidate: list[int], budgets: PolarBudgets, *,
           separator: int, reward: int) -> list[int]:
    """The token ids POLAR reads, each part cut to the end of its budget."""
    p = prompt[-budgets.prompt:]
    return p + reference[-budgets.reference:] + [separator] + p + candidate[-budgets.candidate:] + [reward]


def add_polar_tokens(tokenizer, model=None) -> tuple[int, int]:
    """Add the separator and reward tokens (if missing) and grow the model's embeddings; return their ids."""
    added = tokenizer.add_special_tokens({"additional_special_tokens": [SEPARATOR, REWARD]},
                                         replace_extra_special_tokens=False)
    if model is not None and (added or model.get_input_embeddings().num_embeddings < len(tokenizer)):
        model.resize_token_embeddings(len(tokenizer))
    return tokenizer.convert_tokens_to_ids(SEPARATOR), tokenizer.convert_tokens_to_ids(REWARD)


class PolarEncoder:
    """Encode (prompt, reference, candidate) texts into POLAR's layout with one tokenizer."""

    def __init__(self, tokenizer, budgets: PolarBudgets | None = None):
        self.tokenizer, self.budgets = tokenizer, budgets or PolarBudgets()
        self.separator, self.reward = (tokenizer.convert_tokens_to_ids(t) for t in (SEPARATOR, REWARD))
        if self.reward is None or self.reward == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {REWARD} token: call add_polar_tokens first")

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def __call__(self, prompt: str, reference: str, candidate: str) -> list[int]:
        return layout(self.ids(prompt), self.ids(reference), self.ids(candidate), self.budgets,
                      separator=self.separator, reward=self.reward)


def save_polar_config(folder: str | Path, budgets: PolarBudgets) -> None:
    """Mark a checkpoint folder as a POLAR model (tokens and budgets in ``polar.json``)."""
    (Path(folder) / CONFIG_FILE).write_text(json.dumps({"separator": SEPARATOR, "reward": REWARD,
                                                        "budgets": asdict(budgets)}, indent=2))


def load_polar_config(folder: str | Path) -> PolarBudgets | None:
    """The budgets of a POLAR checkpoint, or None for any other checkpoint (or a hub name)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return None
    return PolarBudgets(**json.loads(path.read_text())["budgets"])


def polar_scores(model, tokenizer, rows: Sequence[dict[str, Any]], budgets: PolarBudgets | None = None, *,
                 batch_size: int = 32) -> list[float]:
    """The reward of each ``{"question", "reference", "response"}`` row (no gradients, right-padded)."""
    import torch

    encode = PolarEncoder(tokenizer, budgets)
    sequences = [encode(r["question"], r["reference"], r["response"]) for r in rows]
    was_training = model.training
    model.eval()
    scores: list[float] = []
    pad = tokenizer.pad_token_id
    try:
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start:start + batch_size]
            width = max(len(s) for s in batch)
            ids = torch.tensor([s + [pad] * (width - len(s)) for s in batch], device=model.device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch], device=model.device)
            with torch.no_grad():
                scores += [float(x) for x in model(input_ids=ids, attention_mask=mask).logits[:, 0].float()]
    finally:
        model.train(was_training)
    return scores
