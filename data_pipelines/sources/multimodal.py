"""Image preference sources: VL-RewardBench, Multimodal RewardBench, and a local JSONL + images folder.

Each yields the "image_preference" shape: a preference pair plus ``images``, a list of absolute
paths. Image paths in a file are resolved relative to that file's folder (or ``image_root`` when
given) and checked as each row is read, before any record is written: a missing or unreadable
image makes that row an error row with the reason, and the build goes on.

Images embedded in a hub dataset (``datasets.Image`` columns) are not handled yet: export them
to files and point ``path`` at a JSON/JSONL index that names them.
"""

from __future__ import annotations

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
            raise ValueError(f"source '{self.name}' reads a local index file with image paths; "
                             f"'{location}' is not local (hub images are not supported yet)")
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
        row = pair(require(raw, "query"), responses[best], responses[1 - best], raw.get("query_source"),
                   id=raw.get("id"), human_ranking=ranking, models=raw.get("models"))
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
        row = pair(require(raw, "Text"), require(raw, better), require(raw, worse), raw.get("Category"),
                   id=raw.get("ID"), better=better)
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
