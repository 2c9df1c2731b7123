r"""The meta reward model: which sampled judgments to trust (DeepSeek-GRM's meta RM, ``vote: meta``).

A meta RM is a scalar model (a sequence classifier, as POLAR's and the ``reward`` layout's) that
reads one item and ONE sampled judgment of it and says how far that judgment can be trusted; the
``meta_rm`` recipe trains it on the ``grm`` recipe's samples, labelled 1 when the judgment's scores
single out the labelled best (``tasks.listwise_correct``). ``vote: meta`` keeps the ``meta_keep``
samples it scores highest and sums them (``critics.judging.votes``).

Its input (``meta_conversation``, the one home of the layout; the recipe trains on ``meta_text``):
the critic's prompt text for the item (its task's template in the meta RM's ``style``) as the user
turn, the judgment as the assistant turn, through the model's chat template, fitted to
``max_tokens`` (the longest part cut in the middle: ``critics.judging.budget.fit_messages``). The
score is the classifier's first output at the last token (``LocalChatModel.scalar_scores``). A
trained meta RM folder carries ``meta_rm.json`` (``MetaLayout``): the style and the token budget.

>>> row = {"task": "listwise", "question": "2+3?", "responses": ["5", "6"]}
>>> for m in meta_conversation(row, "Scores: \\boxed{9, 2}", "compact"):
...     print(m["role"], repr(m["content"]))
user '1: 5\n2: 6\nQ: 2+3?\nScores 1-10?'
assistant 'Scores: \\boxed{9, 2}'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from critics.config import ConfigError, from_dict
from critics.judging import templates
from critics.judging.budget import fit_messages
from critics.judging.chat import ChatModel, LocalChatModel
from critics.judging.tasks import task

META_FILE = "meta_rm.json"
UNTRUSTED = float("-inf")  # the score of a judgment whose input could not be fitted: never kept first


@dataclass
class MetaLayout:
    """What a meta RM reads (``meta_rm.json``).

    Args:
        style: the template style of the item's prompt (``critics.judging.templates``).
        max_tokens: the token budget of the whole input (prompt and judgment).
        tasks: the tasks whose judgments it ranks.
    """

    style: str = "compact"
    max_tokens: int = 2048
    tasks: tuple[str, ...] = ("listwise",)

    def __post_init__(self) -> None:
        try:
            templates.check_style(self.style)
        except ValueError as error:
            raise ConfigError(f"meta_rm.style: {error}") from None
        if not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool) or self.max_tokens < 16:
            raise ConfigError(f"meta_rm.max_tokens must be an int of at least 16, got {self.max_tokens!r}")
        self.tasks = tuple(self.tasks)
        for name in self.tasks:
            if task(name).template is None:
                raise ConfigError(f"meta_rm.tasks: a {name} item is scored, not judged in text")

    def save(self, folder: str | Path) -> Path:
        """Write ``meta_rm.json`` into a checkpoint folder."""
        path = Path(folder) / META_FILE
        path.write_text(json.dumps({**asdict(self), "tasks": list(self.tasks)}, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> MetaLayout:
        """The layout a meta RM folder carries; ``FileNotFoundError`` naming the file otherwise."""
        path = Path(folder) / META_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} is no meta RM: it carries no {META_FILE} (train one with recipe meta_rm)"
            )
        return from_dict(cls, json.loads(path.read_text(encoding="utf-8")), prefix="meta_rm.")


def meta_conversation(row: dict[str, Any], judgment: str, style: str = "compact") -> list[dict[str, str]]:
    """The meta RM's input for one judgment of one item: the critic's prompt text, then the judgment."""
    template = task(row.get("task")).template
    if template is None:
        raise ValueError(f"a {row.get('task')} item is scored, not judged in text: a meta RM has nothing to read")
    return [{"role": "user", "content": template(row, style)}, {"role": "assistant", "content": judgment}]


def meta_text(tokenizer: Any, row: dict[str, Any], judgment: str, layout: MetaLayout) -> str:
    """What the meta RM's tokenizer reads for one judgment (the recipe trains on exactly this; unfitted)."""
    return tokenizer.apply_chat_template(meta_conversation(row, judgment, layout.style), tokenize=False)


class MetaRM:
    """A meta RM loaded for ``vote: meta``: ``scores(rows, critiques)``, one float per judgment.

    Args:
        chat_model: a scalar ``ChatModel`` (``LocalChatModel`` of a sequence classifier).
        layout: what it reads (``MetaLayout``).
        batch_size: judgments scored per forward pass.
    """

    def __init__(self, chat_model: ChatModel, layout: MetaLayout | None = None, *, batch_size: int = 32):
        if chat_model.kind != "scalar":
            raise ValueError("a meta RM is a scalar model (a sequence classifier): it scores, it does not write")
        self.model, self.layout, self.batch_size = chat_model, layout or MetaLayout(), batch_size

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str = "auto", dtype: str = "auto", batch_size: int = 32):
        """Load the meta RM in ``path`` (a folder with ``meta_rm.json``, as the ``meta_rm`` recipe writes it)."""
        layout = MetaLayout.load(path)
        return cls(LocalChatModel(str(path), device=device, dtype=dtype, kind="scalar"), layout, batch_size=batch_size)

    def conversations(self, rows: Sequence[dict[str, Any]], critiques: Sequence[Any]) -> list[list[dict] | None]:
        """Each judgment's input, fitted to the layout's budget (None: it cannot be fitted)."""
        measure, counter = (lambda m: self.model.measure(m, generation_prompt=False)), self.model.counter()
        out = []
        for row, critique in zip(rows, critiques, strict=True):
            messages = meta_conversation(row, critique.text, self.layout.style)
            out.append(fit_messages(messages, measure, self.layout.max_tokens, counter).row)
        return out

    def scores(self, rows: Sequence[dict[str, Any]], critiques: Sequence[Any]) -> list[float]:
        """The meta RM's trust in each judgment (``critiques[i]`` of ``rows[i]``); higher: more trusted."""
        inputs = self.conversations(rows, critiques)
        fitted = [i for i, m in enumerate(inputs) if m is not None]
        out = [UNTRUSTED] * len(inputs)
        for start in range(0, len(fitted), self.batch_size):
            chunk = fitted[start : start + self.batch_size]
            for i, score in zip(chunk, self.model.scalar_scores([inputs[i] for i in chunk])):
                out[i] = score
        return out

    def close(self) -> None:
        """Release the model."""
        self.model.close()
