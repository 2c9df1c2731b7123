"""Preference sources: LLMBar, RewardBench, HH-RLHF and UltraFeedback (binarized).

Each yields the "preference" shape: a question, the chosen and the rejected response, a subset.
A pair whose two responses are identical carries no preference and is an error row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from data_pipelines.sources.base import SOURCES, RowError, Source, read_hub, require

ASSISTANT = "\n\nAssistant:"


def pair(question: str, chosen: str, rejected: str, subset: str | None, **extra: Any) -> dict[str, Any]:
    """A preference row; ``RowError`` when both responses are the same text.

    >>> pair("q", "a", "b", None)["chosen"]
    'a'
    """
    if chosen.strip() == rejected.strip():
        raise RowError("chosen and rejected are identical")
    return {"question": question, "chosen": chosen, "rejected": rejected, "subset": subset, "extra": extra}


@SOURCES.register("llmbar")
@dataclass
class LLMBar(Source):
    """LLMBar (github princeton-nlp/LLMBar): ``input``, ``output_1``, ``output_2``, ``label`` (1|2).

    ``path`` is one JSON file or a folder of them; the subset is the file stem (Natural,
    Adversarial_Neighbor, MTBench_human, ...). The hub copy needs a loading script, which
    ``datasets`` no longer runs, so a local ``path`` is required.

    >>> row = LLMBar().convert({"input": "Say hi", "output_1": "Bye", "output_2": "Hi",
    ...                         "label": 2, "subset": "Natural"})
    >>> row["chosen"], row["subset"]
    ('Hi', 'Natural')
    """

    shape = "preference"

    def raw_records(self) -> Iterator[tuple[str, dict[str, Any] | None, str | None, str | None]]:
        """Records with their subset (the file stem) added."""
        for rid, raw, error, text in super().raw_records():
            yield rid, ({"subset": rid.split("/")[0], **raw} if isinstance(raw, dict) else raw), error, text

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        label = require(raw, "label", int)
        if label not in (1, 2):
            raise RowError(f"label {label} is not 1 or 2")
        outputs = {1: require(raw, "output_1"), 2: require(raw, "output_2")}
        return pair(require(raw, "input"), outputs[label], outputs[3 - label], raw.get("subset"), original_label=label)


@SOURCES.register("rewardbench")
@dataclass
class RewardBench(Source):
    """RewardBench (``allenai/reward-bench``, split ``filtered``): prompt, chosen, rejected, subset.

    >>> RewardBench().convert({"prompt": "q", "chosen": "a", "rejected": "b", "subset": "hep-cpp",
    ...                        "id": 7})["extra"]
    {'id': 7, 'chosen_model': None, 'rejected_model': None}
    """

    split: str = "filtered"

    shape = "preference"
    default_path = "allenai/reward-bench"

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        return pair(
            require(raw, "prompt"),
            require(raw, "chosen"),
            require(raw, "rejected"),
            require(raw, "subset"),
            id=raw.get("id"),
            chosen_model=raw.get("chosen_model"),
            rejected_model=raw.get("rejected_model"),
        )


@SOURCES.register("hh_rlhf")
@dataclass
class HHRLHF(Source):
    """Anthropic HH-RLHF: ``chosen``/``rejected`` full ``\\n\\nHuman: ... \\n\\nAssistant: ...`` transcripts.

    ``question`` is the shared dialogue before the final ``\\n\\nAssistant:`` marker, stripped,
    speaker labels kept ("Human: ..." for one turn, the whole transcript for several);
    ``chosen``/``rejected`` are the two final assistant replies, stripped. A transcript without
    an assistant turn, an empty final reply, or two transcripts that differ before the final
    reply make an error row. On the hub, ``data_dir`` picks the part (default harmless-base)
    and is the rows' subset; a local file's rows have no subset.

    >>> row = HHRLHF().convert({"chosen": "\\n\\nHuman: Hi\\n\\nAssistant: Hello!",
    ...                         "rejected": "\\n\\nHuman: Hi\\n\\nAssistant: Go away."})
    >>> row["question"], row["chosen"], row["extra"]
    ('Human: Hi', 'Hello!', {'turns': 1})
    """

    data_dir: str = "harmless-base"

    shape = "preference"
    default_path = "Anthropic/hh-rlhf"

    def raw_records(self) -> Iterator[tuple[str, dict[str, Any] | None, str | None, str | None]]:
        """Read the local path, or the hub with ``data_dir``."""
        if self.path:
            yield from super().raw_records()
        else:
            yield from read_hub(self.default_path, self.subset, self.split, data_dir=self.data_dir)

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        context, chosen = last_turn(require(raw, "chosen"), "chosen")
        other, rejected = last_turn(require(raw, "rejected"), "rejected")
        if context != other:
            raise RowError("chosen and rejected differ before the final assistant reply")
        return pair(
            context,
            chosen,
            rejected,
            self.data_dir if not self.path else None,
            turns=("\n\n" + context).count("\n\nHuman:"),
        )


def last_turn(transcript: str, field: str) -> tuple[str, str]:
    """Split an HH-RLHF transcript into (dialogue before the final assistant turn, final reply).

    >>> last_turn("\\n\\nHuman: Hi\\n\\nAssistant: Yo\\n\\nHuman: Bye\\n\\nAssistant: Ciao", "chosen")
    ('Human: Hi\\n\\nAssistant: Yo\\n\\nHuman: Bye', 'Ciao')
    """
    context, found, reply = transcript.rpartition(ASSISTANT)
    if not found:
        raise RowError(f"field '{field}' has no assistant turn")
    if not context.strip():
        raise RowError(f"field '{field}' has no human turn before the assistant reply")
    if not reply.strip():
        raise RowError(f"the final assistant reply in '{field}' is empty")
    return context.strip(), reply.strip()


@SOURCES.register("ultrafeedback")
@dataclass
class UltraFeedback(Source):
    """UltraFeedback binarized (``HuggingFaceH4/ultrafeedback_binarized``, split ``test_prefs``).

    ``chosen``/``rejected`` are chat message lists; the responses are their last (assistant)
    messages, which must follow the same conversation. The scores go to ``extra``.

    >>> msgs = lambda reply: [{"role": "user", "content": "q"}, {"role": "assistant", "content": reply}]
    >>> row = UltraFeedback().convert({"prompt": "q", "prompt_id": "p0", "chosen": msgs("a"),
    ...     "rejected": msgs("b"), "score_chosen": 8.0, "score_rejected": 5.0})
    >>> row["chosen"], row["extra"]["score_chosen"]
    ('a', 8.0)
    """

    split: str = "test_prefs"

    shape = "preference"
    default_path = "HuggingFaceH4/ultrafeedback_binarized"

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        context, chosen = last_reply(require(raw, "chosen", list), "chosen")
        other, rejected = last_reply(require(raw, "rejected", list), "rejected")
        if context != other:
            raise RowError("chosen and rejected follow different conversations")
        scores = {key: raw.get(key) for key in ("score_chosen", "score_rejected")}
        for key, score in scores.items():
            if score is not None and (not isinstance(score, (int, float)) or isinstance(score, bool)):
                raise RowError(f"field '{key}' should be a number, got {type(score).__name__}")
        return pair(require(raw, "prompt"), chosen, rejected, None, prompt_id=raw.get("prompt_id"), **scores)


def last_reply(messages: list[Any], field: str) -> tuple[list[dict[str, str]], str]:
    """Split a chat into (messages before the last, content of the last, an assistant message).

    >>> last_reply([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "chosen")
    ([{'role': 'user', 'content': 'q'}], 'a')
    """
    for message in messages:
        if not isinstance(message, dict) or not all(isinstance(message.get(k), str) for k in ("role", "content")):
            raise RowError(f"field '{field}' should be a list of {{role, content}} messages")
    if messages[-1]["role"] != "assistant":
        raise RowError(f"the last message of '{field}' is from '{messages[-1]['role']}', not the assistant")
    if not messages[-1]["content"].strip():
        raise RowError(f"the last message of '{field}' is empty")
    return messages[:-1], messages[-1]["content"]
