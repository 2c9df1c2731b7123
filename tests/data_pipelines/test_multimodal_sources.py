"""Image preference sources: paths resolved and checked per row, bad images quarantined."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from data_pipelines import BuildConfig, build
from data_pipelines.builders.pairwise import PairwiseBuilder
from data_pipelines.sources.multimodal import (
    ImagePreferenceFolder,
    LLaVACriticPairwise,
    MultimodalRewardBench,
    VLRewardBench,
)


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "data" / "img"
    folder.mkdir(parents=True)
    for i, color in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        Image.new("RGB", (16, 16), color).save(folder / f"{i}.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    return folder


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_local_folder_resolves_paths_and_quarantines_bad_images(tmp_path, images):
    rows = [
        {"image": f"img/{i}.png", "question": f"What colour is image {i}?", "chosen": "red", "rejected": "blue"}
        for i in range(3)
    ]
    rows += [
        {"image": "img/corrupt.png", "question": "q", "chosen": "a", "rejected": "b"},
        {"image": "img/missing.png", "question": "q", "chosen": "a", "rejected": "b"},
        {"image": ["img/0.png", "img/1.png"], "question": "Compare", "chosen": "a", "rejected": "b"},
    ]
    _jsonl(tmp_path / "data" / "pairs.jsonl", rows)
    out = list(ImagePreferenceFolder(path=str(tmp_path / "data")).rows())
    good = [r for r in out if r.error is None]
    bad = {r.id: r.error for r in out if r.error is not None}
    assert len(good) == 4 and len(bad) == 2
    assert good[0].data["images"] == [str((images / "0.png").resolve())]
    assert len(good[3].data["images"]) == 2
    assert "not a readable image" in bad["image_preference:pairs/3"]
    assert "not found" in bad["image_preference:pairs/4"]


def test_pairwise_build_fills_images_and_randomises_order(tmp_path, images):
    rows = [
        {"image": f"img/{i % 3}.png", "question": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}
        for i in range(8)
    ]
    rows.append({"image": "img/missing.png", "question": "q", "chosen": "a", "rejected": "b"})
    index = _jsonl(tmp_path / "data" / "pairs.jsonl", rows)
    config = BuildConfig(
        sources=[ImagePreferenceFolder(path=str(index))],
        builder=PairwiseBuilder(),
        output_dir=str(tmp_path / "out"),
        seed=3,
    )
    result = build(config, progress=False)
    records = [json.loads(line) for line in (result.output_dir / "data.jsonl").read_text().splitlines()]
    quarantine = [json.loads(line) for line in (result.output_dir / "quarantine.jsonl").read_text().splitlines()]
    assert len(records) == 8 and len(quarantine) == 1
    assert "not found" in quarantine[0]["reason"] and quarantine[0]["stage"] == "load"
    assert sorted(r["label"] for r in records) == ["A"] * 4 + ["B"] * 4
    for r in records:
        good = r["response_b"] if r["swapped"] else r["response_a"]
        assert good.startswith("good") and len(r["images"]) == 1 and Path(r["images"][0]).is_file()
    assert result.load()[0]["images"] == records[0]["images"]


def test_vl_rewardbench_lower_rank_is_chosen(tmp_path, images):
    rows = [
        {
            "id": "a",
            "query": "Colour?",
            "response": ["red", "blue"],
            "human_ranking": [1, 0],
            "image_path": "img/0.png",
            "query_source": "WildVision",
        },
        {
            "id": "b",
            "query": "Colour?",
            "response": ["red", "blue"],
            "human_ranking": [0, 0],
            "image_path": "img/0.png",
        },
        {
            "id": "c",
            "query": "Colour?",
            "response": ["red", "blue"],
            "human_ranking": [0, 1],
            "image_path": "img/corrupt.png",
        },
    ]
    out = list(VLRewardBench(path=str(_jsonl(tmp_path / "data" / "vl.jsonl", rows))).rows())
    assert out[0].data["chosen"] == "blue" and out[0].data["subset"] == "WildVision"
    assert "does not rank" in out[1].error
    assert "not a readable image" in out[2].error


def test_multimodal_rewardbench_uses_better_and_an_image_root(tmp_path, images):
    rows = [
        {
            "ID": "1",
            "Text": "Describe",
            "Image": "1.png",
            "Output1": "x",
            "Output2": "y",
            "Better": "Output2",
            "Category": "reasoning",
        },
        {"ID": "2", "Text": "Describe", "Image": "1.png", "Output1": "x", "Output2": "y", "Better": "Tie"},
    ]
    (tmp_path / "mmrb").mkdir()
    index = tmp_path / "mmrb" / "all_data.json"
    index.write_text(json.dumps(rows))
    out = list(MultimodalRewardBench(path=str(index), image_root=str(images)).rows())
    assert (out[0].data["chosen"], out[0].data["rejected"], out[0].data["subset"]) == ("y", "x", "reasoning")
    assert out[0].data["images"] == [str((images / "1.png").resolve())]
    assert "'Tie'" in out[1].error


def _llava(human: str, gpt: str, image: str = "img/0.png", **extra) -> dict:
    return {
        "id": extra.pop("id", "x"),
        "source": "VLFeedback",
        "image": image,
        "conversations": [{"from": "human", "value": "<image>\n" + human}, {"from": "gpt", "value": gpt}],
    }


def test_llava_critic_pairwise_layouts_and_their_error_rows(tmp_path, images):
    bracketed = "Question: [What colour?]\nThe first response: [Red.]\nThe second response: [Blue.]\nCompare them."
    arena = (
        "<|User Prompt|>\nWhat colour?\n<|The Start of Assistant A's Answer|>\nRed.\n"
        "<|The End of Assistant A's Answer|>\n<|The Start of Assistant B's Answer|>\nBlue.\n"
        "<|The End of Assistant B's Answer|>"
    )
    rows = [
        _llava(bracketed, "Red matches. The better response: [first]"),
        _llava(
            bracketed.replace("The first response", "Response 1").replace("The second response", "Response 2"),
            "The better response: [2]",
        ),
        _llava(arena, "B is right. [[B>>A]]"),
        _llava(bracketed, "Both are equally good."),
        _llava(arena, "[[A=B]]"),
        _llava(bracketed, "I cannot decide."),
        _llava("Describe the image in detail.", "Final Score: 80"),
        _llava(bracketed, "The better response: [first]", image="img/missing.png"),
        {"id": "y", "image": "img/0.png", "conversations": [{"from": "human", "value": bracketed}]},
    ]
    out = list(LLaVACriticPairwise(path=str(_jsonl(tmp_path / "data" / "critic.jsonl", rows))).rows())
    good = [r.data for r in out if r.error is None]
    errors = [r.error for r in out if r.error is not None]
    assert [(g["chosen"], g["rejected"]) for g in good] == [("Red.", "Blue."), ("Blue.", "Red."), ("Blue.", "Red.")]
    assert good[0]["question"] == "What colour?" and good[0]["subset"] == "VLFeedback"
    assert good[0]["images"] == [str((images / "0.png").resolve())]
    assert errors[0] == errors[1] == "the judgment is a tie"
    assert "names no better response" in errors[2] and "known LLaVA-Critic layout" in errors[3]
    assert "not found" in errors[4] and "human turn and a gpt turn" in errors[5]
