"""Images through `critics serve`: the openai client sends a base64 image to a vision-language
critic and gets a completion built from it; `/score` items carry images; text-only critics and
anything but inline data URLs get a 422."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from critics.serving import Critic
from critics.serving.server import serve_in_background
from critics.tiny import save_tiny_checkpoint, save_tiny_vlm
from critics.vlm import vision_tower


def data_url(colour: str) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def vlm_critic(tmp_path_factory):
    critic = Critic.from_pretrained(
        str(save_tiny_vlm(tmp_path_factory.mktemp("vlm") / "model")),
        backend_options={"device": "cpu"},
        task="pairwise",
        style="compact",
        max_new_tokens=6,
    )
    seen = []
    _, tower = vision_tower(critic.backend.lm.model)
    handle = tower.register_forward_hook(lambda module, args, output: seen.append(args[0].shape))
    with serve_in_background(critic) as (url, _):
        yield url, seen
    handle.remove()


def test_the_openai_client_sends_a_base64_image_and_the_vision_tower_reads_it(vlm_critic):
    from openai import OpenAI

    url, seen = vlm_critic
    before = len(seen)
    client = OpenAI(base_url=f"{url}/v1", api_key="none")
    reply = client.chat.completions.create(
        model="critic",
        max_tokens=6,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_url("red")}},
                    {"type": "text", "text": "A: a red square\nB: a blue circle\nBetter: A or B?"},
                ],
            }
        ],
    )
    assert isinstance(reply.choices[0].message.content, str) and reply.usage.prompt_tokens > 0
    assert len(seen) > before  # the image reached the vision tower


def test_score_items_carry_images_and_get_a_verdict_field(vlm_critic):
    url, seen = vlm_critic
    before = len(seen)
    item = {
        "question": "What colour is the square?",
        "response_a": "red",
        "response_b": "blue",
        "images": [data_url("red")],
    }
    response = httpx.post(f"{url}/score", json={"items": [item, {**item, "images": [data_url("blue")]}]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 2 and all({"verdict", "score", "critique"} <= set(r) for r in results)
    assert len(seen) > before


@pytest.mark.parametrize(
    "image, message",
    [
        ("https://example.com/x.png", "base64 data URLs"),
        ("/etc/passwd", "base64 data URLs"),
        ("data:image/png;base64,bm90IGFuIGltYWdl", "not a readable image"),
    ],
)
def test_anything_but_an_inline_image_is_a_422(vlm_critic, image, message):
    url, _ = vlm_critic
    chat = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": "?"}],
                }
            ]
        },
    )
    score = httpx.post(
        f"{url}/score", json={"items": [{"question": "q", "response_a": "a", "response_b": "b", "images": [image]}]}
    )
    for response in (chat, score):
        assert response.status_code == 422 and message in response.json()["error"]["message"]


def test_a_text_only_critic_refuses_images_rather_than_ignoring_them(tmp_path):
    critic = Critic.from_pretrained(
        str(save_tiny_checkpoint(tmp_path / "text")),
        backend_options={"device": "cpu"},
        style="compact",
        max_new_tokens=4,
    )
    with serve_in_background(critic) as (url, _):
        chat = httpx.post(
            f"{url}/v1/chat/completions",
            json={
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": data_url("red")}},
                            {"type": "text", "text": "?"},
                        ],
                    }
                ]
            },
        )
        score = httpx.post(
            f"{url}/score", json={"items": [{"question": "q", "response": "r", "images": [data_url("red")]}]}
        )
    assert chat.status_code == 422 and "text only" in chat.json()["error"]["message"]
    assert score.status_code == 422 and "text only" in score.json()["error"]["message"]
