"""Fixtures shared by the critics tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    """A tiny random Qwen2.5-VL checkpoint with its image-only processor (built once per session)."""
    import torch

    from critics.tiny import save_tiny_vlm

    torch.set_num_threads(1)
    return save_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm") / "model")


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> Path:
    """A tiny random LLaVA (CLIP tower + Llama) with the stock LlavaProcessor (built once per session)."""
    from critics.tiny import save_tiny_llava

    return save_tiny_llava(tmp_path_factory.mktemp("tiny_llava") / "model")
