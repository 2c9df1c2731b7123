"""vLLM where a user has it: settings pass to TRL unchanged; without vLLM, one clear error each."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from critics.actors import ActorSettings, make_actor
from critics.recipes.critic_rl import GRPOSettings
from critics.tiny import save_tiny_checkpoint

no_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")


def test_vllm_settings_reach_trl_unchanged():
    from trl import GRPOConfig

    settings = GRPOSettings(vllm_mode="server", vllm_server_base_url="http://trainer-0:8000")
    args = GRPOConfig(output_dir="x", use_cpu=True, bf16=False, **settings.trl_args())
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_base_url) == (False, "server", "http://trainer-0:8000")
    assert args.vllm_gpu_memory_utilization == settings.vllm_gpu_memory_utilization


@no_vllm
def test_use_vllm_without_vllm_is_one_clear_error():
    with pytest.raises(ImportError, match=r"grpo.use_vllm needs vLLM.*critic-suite\[gpu\].*use_vllm: false"):
        GRPOSettings(use_vllm=True, vllm_mode="colocate").trl_args()


@no_vllm
def test_a_vllm_actor_without_vllm_is_one_clear_error():
    with pytest.raises(ImportError, match=r"the vllm backend needs vLLM: pip install 'critic-suite\[gpu\]'"):
        make_actor(ActorSettings(kind="vllm", model="some/model"))
    with pytest.raises(ValueError, match="actor.model is empty"):
        ActorSettings(kind="vllm")


@no_vllm
def test_serve_with_the_vllm_backend_without_vllm_is_one_clear_line(tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "critic")
    done = subprocess.run(
        [sys.executable, "-m", "critics.cli", "serve", str(checkpoint), "--backend", "vllm"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("critics: the vllm backend needs vLLM: pip install")
    assert "Traceback" not in done.stderr
