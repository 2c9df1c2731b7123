"""Image preference sources: VL-RewardBench, Multimodal RewardBench, LLaVA-Critic, and a local JSONL +
images folder.

Each yields the "image_preference" shape: a preference pair plus ``images``, a list of absolute
paths. Image paths in a file are resolved relative to that file's folder (or ``image_root`` when
given) and checked as each row is read, before any record is written: a missing or unreadable
image makes that row an error row with the reason, and the build goes on.

Images embedded in a hub dataset (``datasets.Image`` columns) are not handled yet: export them
to files and point ``path`` at a JSON/JSONL index that names them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_pipelines.sources.base import SOURCES, RowError, Source, is_local, require
from data_pipelines.sources.preference import pair


def checked_image(value: Any, root: Path, field: str) -> str:
    """The absolute path of an image named in a row, after PIL has verified the file.

    >>> checked_image("nope.png", Path("/tmp"), "image")
    Traceback (most recent call last):
    ...
    data_pipelines.sources.base.RowError: image 'nope.png' (field 'image') not found at /tmp/nope.png
    """
    if not isinstance(value, str) or not value.strip():
        kind = "an embedded image" if isinstance(value, dict) or hasattr(value, "size") else type(value).__name__
        raise RowError(f"field '{field}' should be an image path, got {kind}")
    path = (root / value).expanduser().resolve()
    if not path.is_file():
        raise RowError(f"image {value!r} (field '{field}') not found at {path}")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RowError(f"image {value!r} (field '{field}') is not a readable image: {exc}") from None
    return str(path)


@dataclass
class ImageSource(Source):
    """Base for image sources: ``image_root`` (default: the folder of the index file)."""

    image_root: str | None = None

    shape = "image_preference"

    def raw_records(self) -> Iterator[tuple[str, dict[str, Any] | None, str | None, str | None]]:
        location = self.path or self.default_path
        if not is_local(location):
            raise ValueError(
                f"source '{self.name}' reads a local index file with image paths; "
                f"'{location}' is not local (hub images are not supported yet)"
            )
        yield from super().raw_records()

    @property
    def root(self) -> Path:
        if self.image_root:
            return Path(self.image_root).expanduser()
        path = Path(self.path).expanduser()
        return path if path.is_dir() else path.parent

    def images(self, value: Any, field: str) -> list[str]:
        """Check one path or a list of paths; ``RowError`` on the first bad one."""
        values = value if isinstance(value, list) else [value]
        if not values:
            raise RowError(f"field '{field}' is empty")
        return [checked_image(v, self.root, field) for v in values]


@SOURCES.register("vl_rewardbench")
@dataclass
class VLRewardBench(ImageSource):
    """VL-RewardBench (``MMInstruction/VL-RewardBench``) rows with image paths.

    Fields: ``id``, ``query``, ``response`` (two answers), ``human_ranking`` (two ranks, lower is
    better: ``[0, 1]`` prefers the first), ``image_path`` (or ``image`` as a path), and
    ``query_source`` (the subset). A tie is an error row.
    """

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        responses = require(raw, "response", list)
        ranking = require(raw, "human_ranking", list)
        if len(responses) != 2 or len(ranking) != 2:
            raise RowError(f"expected 2 responses and 2 ranks, got {len(responses)} and {len(ranking)}")
        if not all(isinstance(r, str) for r in responses):
            raise RowError("field 'response' should hold two strings")
        if not all(isinstance(r, int) and not isinstance(r, bool) for r in ranking) or ranking[0] == ranking[1]:
            raise RowError(f"human_ranking {ranking} does not rank one response above the other")
        key = "image_path" if raw.get("image_path") is not None else "image"
        images = self.images(require(raw, key, (str, list)), key)
        best = 0 if ranking[0] < ranking[1] else 1
        row = pair(
            require(raw, "query"),
            responses[best],
            responses[1 - best],
            raw.get("query_source"),
            id=raw.get("id"),
            human_ranking=ranking,
            models=raw.get("models"),
        )
        return {**row, "images": images}


@SOURCES.register("multimodal_rewardbench")
@dataclass
class MultimodalRewardBench(ImageSource):
    """Multimodal RewardBench (github facebookresearch/multimodal_rewardbench, ``all_data.json``).

    Fields: ``ID``, ``Text`` (the prompt), ``Image`` (a path under the image folder, by default
    the JSON file's folder), ``Output1``, ``Output2``, ``Better`` (``Output1`` or ``Output2``),
    and ``Category`` when present (the subset).
    """

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        better = require(raw, "Better")
        if better not in ("Output1", "Output2"):
            raise RowError(f"field 'Better' is {better!r}, not 'Output1' or 'Output2'")
        worse = "Output2" if better == "Output1" else "Output1"
        images = self.images(require(raw, "Image", (str, list)), "Image")
        row = pair(
            require(raw, "Text"),
            require(raw, better),
            require(raw, worse),
            raw.get("Category"),
            id=raw.get("ID"),
            better=better,
        )
        return {**row, "images": images}


@SOURCES.register("image_preference")
@dataclass
class ImagePreferenceFolder(ImageSource):
    """A local folder (or file) of JSONL rows: ``image`` (a path or a list), ``question``,
    ``chosen``, ``rejected``, and an optional ``subset``; image paths relative to the file.
    """

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        images = self.images(require(raw, "image", (str, list)), "image")
        row = pair(require(raw, "question"), require(raw, "chosen"), require(raw, "rejected"), raw.get("subset"))
        return {**row, "images": images}


_BRACKETED = re.compile(  # "Question: [..] The first response: [..] The second response: [..]" (or Response 1/2, A/B)
    r"Question:\s*\[(?P<question>.*?)\]\s*(?:The first response|Response 1|Response A):\s*\[(?P<first>.*?)\]\s*"
    r"(?:The second response|Response 2|Response B):\s*\[(?P<second>.*)\]",
    re.S,
)
_BETTER = re.compile(r"The better response:\s*\[?\s*(first|second|1|2|A|B)\b", re.I)
_ARENA = re.compile(  # MT-bench / arena judge prompts, with a "[[A>B]]" verdict
    r"<\|User Prompt\|>\s*(?P<question>.*?)\s*<\|The Start of Assistant A's Answer\|>\s*(?P<first>.*?)\s*"
    r"<\|The End of Assistant A's Answer\|>\s*<\|The Start of Assistant B's Answer\|>\s*(?P<second>.*?)\s*"
    r"<\|The End of Assistant B's Answer\|>",
    re.S,
)
_ARENA_VERDICT = re.compile(r"\[\[(A>>B|A>B|A=B|B>A|B>>A)\]\]")


@SOURCES.register("llava_critic")
@dataclass
class LLaVACriticPairwise(ImageSource):
    """LLaVA-Critic's pairwise judgments (``lmms-lab/llava-critic-113k``, config ``pairwise``), exported
    to JSON(L) with the image as a file: ``id``, ``source`` (the subset), ``image`` (a path or a list)
    and ``conversations``, LLaVA's ``[{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]``.

    The judge's prompt carries the question and two responses; its answer names the better one.
    Two layouts are read: the bracketed one ("Question: [...]", "The first response: [...]", ...,
    answered "The better response: [first]") and the arena one ("<|User Prompt|>" ... answered
    "[[A>B]]"). A tie, a row in any other layout, or an answer without a verdict is an error row
    with its reason. The judge's critique itself is not kept: it names the responses by their
    original order, which the pairwise builder shuffles.

    >>> row = LLaVACriticPairwise().parse({"source": "VLFeedback", "conversations": [
    ...     {"from": "human", "value": "<image>\\nQuestion: [What is shown?]\\nThe first response: [A cat.]\\n"
    ...                                "The second response: [A dog.]\\nWhich is better?"},
    ...     {"from": "gpt", "value": "The first misses the dog. The better response: [second]"}]})
    >>> row["chosen"], row["rejected"], row["subset"]
    ('A dog.', 'A cat.', 'VLFeedback')
    """

    def parse(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The preference pair of one row, without its image."""
        turns = require(raw, "conversations", list)
        human = next((t.get("value") for t in turns if isinstance(t, dict) and t.get("from") == "human"), None)
        judge = next((t.get("value") for t in turns if isinstance(t, dict) and t.get("from") == "gpt"), None)
        if not isinstance(human, str) or not isinstance(judge, str):
            raise RowError("field 'conversations' needs a human turn and a gpt turn, both text")
        prompt = human.replace("<image>", "").strip()
        if found := _BRACKETED.search(prompt):
            verdict = _BETTER.findall(judge)
            if not verdict:
                tie = "equally good" in judge.lower()
                raise RowError("the judgment is a tie" if tie else "the judgment names no better response")
            first = verdict[-1].lower() in ("first", "1", "a")
        elif found := _ARENA.search(prompt):
            verdict = _ARENA_VERDICT.findall(judge)
            if not verdict or verdict[-1] == "A=B":
                raise RowError("the judgment is a tie" if verdict else "the judgment has no [[A>B]] verdict")
            first = verdict[-1].startswith("A")
        else:
            raise RowError("the prompt is not a two-response comparison in a known LLaVA-Critic layout")
        question, one, two = (found.group(k).strip() for k in ("question", "first", "second"))
        chosen, rejected = (one, two) if first else (two, one)
        return pair(question, chosen, rejected, raw.get("source"), id=raw.get("id"))

    def convert(self, raw: dict[str, Any]) -> dict[str, Any]:
        row = self.parse(raw)
        return {**row, "images": self.images(require(raw, "image", (str, list)), "image")}
