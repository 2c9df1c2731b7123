"""Faults: a `critics serve` process killed in the middle of a training step, then restarted.

The reward comes back as ``None`` for the affected items within the adapter's timeout (TRL leaves
them out of the reward sum), the adapter counts them, training goes on to ``max_steps``, and once
the server is back the critic scores again. Also: TRL's GRPOTrainer with ``reward_function(url)``
and a verl-style ``compute_score`` call against a real server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from critics.serving.adapters import compute_score, reward_function
from critics.tiny import save_tiny_checkpoint
from tests.critics.serving.helpers import free_port, start_server

STEPS, PROMPTS, GROUP = 6, 2, 4  # 8 completions per step
KILL_AT, RESTART_AT = 2, 4  # the server is down during steps 2 and 3 (0-based calls of the reward)


@pytest.fixture(scope="module")
def critic_checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("faults") / "critic", seed=1)


class Chaos:
    """A sync reward TRL calls before the (async) critic reward: it kills and restarts the server."""

    __name__ = "chaos"

    def __init__(self, checkpoint, port: int, process: subprocess.Popen):
        self.checkpoint, self.port, self.process, self.calls = checkpoint, port, process, 0

    def __call__(self, prompts, completions, **kwargs):
        if self.calls == KILL_AT:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.calls == RESTART_AT:
            self.process = start_server(self.checkpoint, self.port)
        self.calls += 1
        return [0.0] * len(completions)


def test_a_killed_server_costs_its_items_only_and_restarting_restores_scoring(tmp_path, critic_checkpoint):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    port = free_port()
    chaos = Chaos(critic_checkpoint, port, start_server(critic_checkpoint, port))
    reward = reward_function(f"http://127.0.0.1:{port}", asynchronous=True, timeout=5.0)
    seen = []  # (failed, invalid) after each step
    original = reward._finish

    def finish(items, critiques, kwargs):
        out = original(items, critiques, kwargs)
        seen.append((reward.failed, reward.invalid))
        return out

    reward._finish = finish
    policy = save_tiny_checkpoint(tmp_path / "policy")
    data = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": f"{i}+1="}]} for i in range(32)])
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=STEPS,
        per_device_train_batch_size=PROMPTS * GROUP,
        num_generations=GROUP,
        max_completion_length=8,
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
    )
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(policy),
        reward_funcs=[chaos, reward],
        args=args,
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(policy),
    )
    try:
        start = time.monotonic()
        trainer.train()
        elapsed = time.monotonic() - start
    finally:
        os.killpg(chaos.process.pid, signal.SIGKILL)
    per_step = PROMPTS * GROUP
    assert trainer.state.global_step == STEPS
    failed = [f for f, _ in seen]
    assert failed[KILL_AT - 1] == 0 and failed[RESTART_AT - 1] == (RESTART_AT - KILL_AT) * per_step
    assert failed[-1] == (RESTART_AT - KILL_AT) * per_step  # no failures once the server is back
    invalid = [i for _, i in seen]
    assert invalid[-1] - invalid[RESTART_AT - 1] == (STEPS - RESTART_AT) * per_step  # judged again (no verdicts)
    assert elapsed < 240  # connection refused is immediate; nothing waited for the full timeout per item
    assert any("critic/failed_items" in e for e in trainer.state.log_history)


def test_grpo_trainer_and_verl_compute_score_against_a_real_server(tmp_path, critic_checkpoint):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    port = free_port()
    process = start_server(critic_checkpoint, port)
    url = f"http://127.0.0.1:{port}"
    try:
        reward = reward_function(url, timeout=30.0)
        policy = save_tiny_checkpoint(tmp_path / "policy")
        data = datasets.Dataset.from_list([{"prompt": f"{i}+1="} for i in range(16)])
        args = GRPOConfig(
            output_dir=str(tmp_path / "out"),
            max_steps=2,
            per_device_train_batch_size=8,
            num_generations=4,
            max_completion_length=8,
            use_cpu=True,
            bf16=False,
            report_to=[],
            save_strategy="no",
            logging_steps=1,
        )
        trainer = GRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(policy),
            reward_funcs=[reward],
            args=args,
            train_dataset=data,
            processing_class=AutoTokenizer.from_pretrained(policy),
        )
        trainer.train()
        assert trainer.state.global_step == 2 and reward.failed == 0 and reward.invalid == 16
        result = compute_score("gsm8k", "2+2=4", "4", {"question": "What is 2+2?"}, critic_url=url)
        assert set(result) == {"score", "critic_valid"} and result["critic_valid"] in (0.0, 1.0)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
