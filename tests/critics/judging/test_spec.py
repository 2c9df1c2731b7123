"""The critic spec: written by recipes, found in checkpoints, overridden one field at a time (each
override logged), defaults with a warning for a model without one, and a built-in spec that serves
the released InternLM POLAR reward models' layout."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import yaml

from critics.config import ConfigError
from critics.judging.polar import INTERNLM_END, REWARD
from critics.judging.spec import SPEC_FILE, CriticSpec, find_spec, load_spec, spec_from_dict
from critics.serving import Critic
from critics.serving.remote import RemoteCritic
from critics.serving.server import serve_in_background


def test_a_spec_round_trips_through_its_file_and_derived_fields_are_ignored(tmp_path):
    spec = CriticSpec(tasks=["pairwise"], style="compact", think=True, max_new_tokens=64, context_tokens=1024)
    spec.save(tmp_path)
    written = json.loads((tmp_path / SPEC_FILE).read_text())
    assert written["prompt_budget"] == 960 and written["verdict_format"] == "\\boxed{A} or \\boxed{B}"
    assert find_spec(None, tmp_path) == spec


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"styl": "compact"}, "did you mean 'style'"),
        ({"tasks": ["pointwize"]}, "did you mean 'pointwise'"),
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
        ({"layout": "reward", "tasks": ["pairwise"]}, "reads tasks pointwise"),
    ],
)
def test_a_bad_spec_names_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        spec_from_dict(data)


def test_a_spec_file_given_by_the_user_wins_over_the_checkpoint(tmp_path):
    CriticSpec(style="compact").save(tmp_path)
    given = tmp_path / "judge.yaml"
    given.write_text(yaml.safe_dump({"tasks": ["pairwise"], "style": "default", "think": True}))
    assert find_spec(given, tmp_path) == CriticSpec(tasks=["pairwise"], think=True)
    with pytest.raises(FileNotFoundError, match="built-in specs: internlm_polar"):
        find_spec(tmp_path / "missing.json")


def test_a_checkpoint_from_before_specs_gets_one_from_its_training_config(tmp_path):
    (tmp_path / "critics_config.yaml").write_text(
        yaml.safe_dump(
            {
                "recipe": "critic_rl",
                "template": {"style": "compact", "think": False},
                "grpo": {"max_completion_length": 64},
                "data": {"task": "pairwise"},
            }
        )
    )
    assert find_spec(None, tmp_path) == CriticSpec(tasks=["pairwise"], style="compact", max_new_tokens=64)


def test_a_model_without_a_spec_gets_the_documented_defaults_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="critics.spec"):
        spec = load_spec(None, tmp_path)
        scalar = load_spec(None, tmp_path, kind="scalar")
    assert spec == CriticSpec() and (spec.style, spec.max_new_tokens) == ("default", 512)
    assert scalar.layout == "reward" and scalar.tasks == ["pointwise"]
    assert sum("carries no critic spec" in r.message for r in caplog.records) == 2


def test_each_override_is_logged_once_and_an_unchanged_field_is_not(caplog):
    spec = CriticSpec(style="compact", max_new_tokens=64)
    with caplog.at_level(logging.WARNING, logger="critics.spec"):
        changed = spec.overridden("ckpt", style="compact", max_new_tokens=32, think=None)
    assert changed.max_new_tokens == 32 and changed.style == "compact"
    assert [r.message for r in caplog.records] == ["ckpt: overriding the critic spec's max_new_tokens: 64 -> 32"]
    with pytest.raises(ConfigError, match="no spec field styel"):
        spec.overridden(styel="default")


@pytest.fixture(scope="module")
def internlm_polar(tmp_path_factory):
    from critics.tiny import save_tiny_internlm_polar

    return save_tiny_internlm_polar(tmp_path_factory.mktemp("internlm") / "POLAR-tiny")


def reference_score(path, prompt: str, reference: str, candidate: str) -> float:
    """The released models' score as their own client builds the input (no code of ours in the way):
    ``prompt + "\\n" + reference + <|reward|> + prompt + "\\n" + candidate + [UNUSED_TOKEN_130]``."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=True)
    model = AutoModel.from_pretrained(str(path), trust_remote_code=True).eval()
    text = prompt + "\n" + reference + REWARD + prompt + "\n" + candidate + INTERNLM_END
    ids = torch.tensor([tokenizer(text, add_special_tokens=True)["input_ids"]])
    with torch.no_grad():
        return float(model(input_ids=ids)[0].reshape(-1)[0])


def test_the_released_internlm_polar_layout_is_served_through_its_built_in_spec(internlm_polar):
    rows = [("What is 2+2?", "2+2=4, so 4.", "4"), ("Name a colour.", "Blue.", "Seven is a number.")]
    expected = [reference_score(internlm_polar, *row) for row in rows]
    critic = Critic.from_pretrained(str(internlm_polar), spec="internlm_polar", backend_options={"device": "cpu"})
    assert critic.spec.layout == "internlm_polar" and critic.is_scalar
    with serve_in_background(critic) as (url, _):
        served = httpx.get(f"{url}/spec").json()
        queries = [f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{c}<|im_end|>" for q, _, c in rows]
        rewards = httpx.post(f"{url}/get_reward", json={"query": queries, "labels": [r for _, r, _ in rows]}).json()
        remote = RemoteCritic(url).score([{"question": q, "reference": r, "response": c} for q, r, c in rows])
        no_reference = httpx.post(f"{url}/get_reward", json={"query": queries})
    assert served["layout"] == "internlm_polar" and served["trust_remote_code"] is True
    assert rewards["rewards"] == pytest.approx(expected, abs=1e-5)
    assert remote == pytest.approx(expected, abs=1e-5)
    assert no_reference.status_code == 422 and "labels" in no_reference.json()["error"]["message"]
