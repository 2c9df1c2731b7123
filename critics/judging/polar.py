"""POLAR's input layouts and scoring: a scalar reward of a candidate *against a reference*.

POLAR (Dou et al., 2025, arXiv 2507.05197) reads the prompt and a reference, a separator, the
prompt and a candidate, and puts a scalar head on the last position: the reward says how close the
candidate's policy is to the reference's. Two layouts of that idea:

- ``polar``, what the ``polar`` recipe trains: ``prompt + reference + <|reward_sep|> + prompt +
  candidate + <|reward|>`` as token ids; both tokens are added to the tokenizer as special tokens
  (``add_polar_tokens``), and each part is cut from the front to its token budget
  (``PolarBudgets``), so the end of a long prompt or response (where the answer is) survives.
- ``internlm_polar``, the released InternLM POLAR reward models (``internlm/POLAR-7B``, loaded
  with ``trust_remote_code``), as their ``RewardModelClient.encode`` builds it: the reference and
  the candidate are cut to their last 4,096 tokens, the prompt to its last
  ``(16384 - 4 - len(reference) - len(candidate)) // 2``, each part decoded back to text, and the
  text ``prompt + "\\n" + reference + "<|reward|>" + prompt + "\\n" + candidate +
  "[UNUSED_TOKEN_130]"`` tokenized with the tokenizer's special tokens; the score is the model's
  first output at the last real token (right padding).

>>> budgets = PolarBudgets(prompt=3, reference=2, candidate=2)
>>> ids = {"p": [1, 2, 3, 4], "r": [5, 6, 7], "c": [8, 9]}
>>> layout(ids["p"], ids["r"], ids["c"], budgets, separator=100, reward=101)
[2, 3, 4, 6, 7, 100, 2, 3, 4, 8, 9, 101]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

SEPARATOR = "<|reward_sep|>"
REWARD = "<|reward|>"
INTERNLM_END = "[UNUSED_TOKEN_130]"  # the released models' final reward token
LAYOUTS = ("polar", "internlm_polar")


@dataclass
class PolarBudgets:
    """Token budgets of each part; a longer part keeps its last tokens (POLAR: responses up to 4,096).

    For ``internlm_polar``, ``reference`` and ``candidate`` are the response budget and ``prompt``
    is unused (the prompt gets what the 16,384-token total leaves, halved).
    """

    prompt: int = 1024
    reference: int = 4096
    candidate: int = 4096

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"budgets.{name} must be a positive int, got {value!r}")

    @property
    def total(self) -> int:
        """The longest sequence the ``polar`` layout builds."""
        return 2 * self.prompt + self.reference + self.candidate + 2


def layout(
    prompt: list[int], reference: list[int], candidate: list[int], budgets: PolarBudgets, *, separator: int, reward: int
) -> list[int]:
    """The token ids the ``polar`` layout reads, each part cut to the end of its budget."""
    p = prompt[-budgets.prompt :]
    return p + reference[-budgets.reference :] + [separator] + p + candidate[-budgets.candidate :] + [reward]


def add_polar_tokens(tokenizer, model=None) -> tuple[int, int]:
    """Add the separator and reward tokens (if missing) and grow the model's embeddings; return their ids."""
    added = tokenizer.add_special_tokens(
        {"additional_special_tokens": [SEPARATOR, REWARD]}, replace_extra_special_tokens=False
    )
    if model is not None and (added or model.get_input_embeddings().num_embeddings < len(tokenizer)):
        model.resize_token_embeddings(len(tokenizer))
    return tokenizer.convert_tokens_to_ids(SEPARATOR), tokenizer.convert_tokens_to_ids(REWARD)


class PolarEncoder:
    """Encode (prompt, reference, candidate) texts into the ``polar`` layout with one tokenizer."""

    def __init__(self, tokenizer, budgets: PolarBudgets | None = None):
        self.tokenizer, self.budgets = tokenizer, budgets or PolarBudgets()
        self.separator, self.reward = (tokenizer.convert_tokens_to_ids(t) for t in (SEPARATOR, REWARD))
        if self.reward is None or self.reward == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {REWARD} token: call add_polar_tokens first")

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(_bounded(text, self.budgets), add_special_tokens=False)["input_ids"]

    def __call__(self, prompt: str, reference: str, candidate: str) -> list[int]:
        return layout(
            self.ids(prompt),
            self.ids(reference),
            self.ids(candidate),
            self.budgets,
            separator=self.separator,
            reward=self.reward,
        )


class InternLMPolarEncoder:
    """Encode (prompt, reference, candidate) as the released InternLM POLAR models read them."""

    max_length = 16384

    def __init__(self, tokenizer, budgets: PolarBudgets | None = None):
        self.tokenizer, self.budgets = tokenizer, budgets or PolarBudgets()
        for token in (REWARD, INTERNLM_END):
            if tokenizer.convert_tokens_to_ids(token) in (None, tokenizer.unk_token_id):
                raise ValueError(f"the tokenizer has no {token} token: this is not an InternLM POLAR checkpoint")

    def text(self, prompt: str, reference: str, candidate: str) -> str:
        """The layout as text (their ``wrapper="sft"``: a newline after each prompt)."""
        tok, keep = self.tokenizer, self.budgets.reference
        p_ids, r_ids, c_ids = (
            tok.encode(_bounded(t, self.budgets), add_special_tokens=True) for t in (prompt, reference, candidate)
        )
        r_ids, c_ids = r_ids[-keep:], c_ids[-self.budgets.candidate :]
        prompt_budget = max((self.max_length - 4 - len(r_ids) - len(c_ids)) // 2, 1)
        p, r, c = (tok.decode(ids, skip_special_tokens=True) for ids in (p_ids[-prompt_budget:], r_ids, c_ids))
        return p + "\n" + r + REWARD + p + "\n" + c + INTERNLM_END

    def __call__(self, prompt: str, reference: str, candidate: str) -> list[int]:
        return self.tokenizer(self.text(prompt, reference, candidate), add_special_tokens=True)["input_ids"]


def encoder(name: str, tokenizer, budgets: PolarBudgets | None = None):
    """The encoder of layout ``name`` (``polar`` or ``internlm_polar``)."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown POLAR layout {name!r} (layouts: {', '.join(LAYOUTS)})")
    return (PolarEncoder if name == "polar" else InternLMPolarEncoder)(tokenizer, budgets)


def polar_scores(
    model,
    tokenizer,
    rows: Sequence[dict[str, Any]],
    budgets: PolarBudgets | None = None,
    *,
    batch_size: int = 32,
    layout_name: str = "polar",
) -> list[float]:
    """The reward of each ``{"question", "reference", "response"}`` row (no gradients, right-padded):
    the model's first output (a sequence classifier's logits, a remote-code reward model's scores)."""
    import torch

    encode = encoder(layout_name, tokenizer, budgets)
    sequences = [encode(r["question"], r["reference"], r["response"]) for r in rows]
    was_training = model.training
    model.eval()
    scores: list[float] = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    try:
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start : start + batch_size]
            width = max(len(s) for s in batch)
            ids = torch.tensor([s + [pad] * (width - len(s)) for s in batch], device=model.device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch], device=model.device)
            with torch.no_grad():
                out = model(input_ids=ids, attention_mask=mask)
            values = out[0] if isinstance(out, (tuple, list)) else out.logits
            scores += [float(x) for x in values.reshape(len(batch), -1)[:, 0].float()]
    finally:
        model.train(was_training)
    return scores


def _bounded(text: str, budgets: PolarBudgets) -> str:
    """``text`` cut to its last characters before tokenizing: no token holds more than 64 characters
    here, so a part cut to its last tokens never needs more, and a hostile megabyte costs nothing."""
    limit = 64 * max(budgets.prompt, budgets.reference, budgets.candidate)
    return text if len(text) <= limit else text[-limit:]
