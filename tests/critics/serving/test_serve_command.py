"""``critics serve``: options reach the Critic and ServerSettings; left-out ones keep their defaults."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from critics import cli
from critics.judging.spec import CriticSpec
from critics.serving import server
from critics.serving.critic import Critic


@pytest.fixture
def captured(monkeypatch):
    """Run ``critics serve`` without loading a model or listening: record what it would serve."""
    seen = {}

    def fake_from_pretrained(path, backend="transformers", *, backend_options=None, spec=None, **settings):
        seen.update(path=path, backend=backend, options=backend_options, critic=settings, spec=spec)
        return SimpleNamespace(spec=CriticSpec())

    monkeypatch.setattr(Critic, "from_pretrained", staticmethod(fake_from_pretrained))
    monkeypatch.setattr(server, "serve", lambda critic, settings: seen.update(settings=settings))
    monkeypatch.delenv("CRITICS_API_KEY", raising=False)
    return seen


def test_serve_passes_the_options_given_and_keeps_the_defaults_of_the_others(captured):
    assert (
        cli.main(
            [
                "serve",
                "outputs/run/final/",
                "--port",
                "9001",
                "--max-batch-size",
                "8",
                "--think",
                "--max-items-per-request",
                "16",
                "--device",
                "cpu",
                "--graceful-timeout",
                "5",
            ]
        )
        == 0
    )
    settings = captured["settings"]
    assert (settings.port, settings.max_items_per_request, settings.host) == (9001, 16, "127.0.0.1")
    assert settings.graceful_timeout_s == 5.0
    assert settings.served_model_name == "final" and settings.api_key is None
    assert captured["critic"] == {"max_batch_size": 8, "think": True}  # the rest: Critic's own defaults
    assert captured["path"] == "outputs/run/final/" and captured["options"] == {"device": "cpu"}


def test_serve_reads_the_api_key_from_the_environment(captured, monkeypatch):
    monkeypatch.setenv("CRITICS_API_KEY", "from-env")
    parser_args = ["serve", "ckpt", "--served-model-name", "judge"]
    assert cli.main(parser_args) == 0
    assert captured["settings"].api_key == "from-env" and captured["settings"].served_model_name == "judge"


def test_serve_refuses_inconsistent_options_before_loading_anything(captured, capsys):
    assert cli.main(["serve", "ckpt", "--backend", "openai"]) == 2
    assert "--backend openai needs --base-url" in capsys.readouterr().err
    assert cli.main(["serve", "ckpt", "--max-body-bytes", "0"]) == 2
    assert "'max_body_bytes' must be a positive integer" in capsys.readouterr().err
    assert "path" not in captured
