"""Two processes on one CPU (gloo): the same global batch gives the losses of one process, only the
main process writes, a killed rank ends the run, and ``--resume`` on two processes finishes it.

Every run here is a subprocess started the way a user starts one: ``critics train CONFIG --nproc 2``
(the README's command) or torchrun around a small runner that records which rank did what. GRPO
samples each rank with its own seed (TRL seeds rank r with seed + r, so groups differ), so the
``critic_rl`` runs draw their completions from a scripted ``generate`` keyed by prompt and
position: both runs then see the same rollouts and everything else (sharding, rewards, advantages,
the loss, gradient averaging, checkpoints) is the recipe's own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from critics.recipes.common import latest_checkpoint
from critics.tiny import save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[3]
# losses of 1 and 2 processes agree to this relative tolerance (float32 sums in a different order)
RTOL = 1e-4
pytestmark = pytest.mark.slow

RUNNER = '''
import json, os, sys, time

EVENTS = os.environ["CRITICS_TEST_EVENTS"]
RANK = int(os.environ.get("RANK", 0))


def note(event, **extra):
    with open(EVENTS, "a") as f:
        f.write(json.dumps({"rank": RANK, "pid": os.getpid(), "event": event, **extra}) + "\\n")


def recorded(name, fn):
    def wrapped(*args, **kwargs):
        note(name, caller=sys._getframe(1).f_code.co_name)
        return fn(*args, **kwargs)
    return wrapped


note("started")
import critics.cards, critics.eval.heldout, critics.judging.generation, critics.recipes.common as common
critics.eval.heldout.critique_accuracy = recorded("evaluate", critics.eval.heldout.critique_accuracy)
critics.judging.generation.generate = recorded("generate", critics.judging.generation.generate)
critics.cards.write_model_card = recorded("card", critics.cards.write_model_card)
common.write_run_files = recorded("run files", common.write_run_files)

import torch
from transformers import AutoTokenizer, GenerationMixin
DELAY = float(os.environ.get("CRITICS_TEST_DELAY", "0"))
TOKENIZERS = {}


def scripted_generate(self, input_ids=None, attention_mask=None, generation_config=None, **kwargs):
    """The k-th copy of a prompt in the batch answers "k \\\\boxed{Correct}" for even k, else Incorrect."""
    time.sleep(DELAY)
    name = self.config._name_or_path
    tok = TOKENIZERS.setdefault(name, AutoTokenizer.from_pretrained(name))
    seen, rows = {}, []
    for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
        key = tuple(i for i, m in zip(ids, mask) if m)
        k = seen[key] = seen.get(key, -1) + 1
        text = f"{k} \\\\boxed{{{'Correct' if k % 2 == 0 else 'Incorrect'}}}"
        rows.append(tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
    width = max(map(len, rows))
    out = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows], device=input_ids.device)
    return torch.cat([input_ids, out], dim=1)


if os.environ.get("CRITICS_TEST_SCRIPTED"):
    GenerationMixin.generate = scripted_generate

from critics.cli import main
code = main(sys.argv[1:])
note("finished")
sys.exit(code)
'''


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model", hidden_size=64)


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "records.jsonl"
    rows = []
    for i in range(40):
        a, b = i % 7, i % 5
        verdict = "Correct" if i % 2 == 0 else "Incorrect"
        rows.append(
            {
                "id": f"r{i}",
                "source": "t",
                "task": "pointwise",
                "question": f"q{i}",
                "response": f"{a}+{b}={a + b + i % 2}",
                "label": verdict.lower(),
                "gold_answer": str(a + b),
                "verifier": "source",
                "metadata": "{}",
                "critique": f"{a + b} \\boxed{{{verdict}}}",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sft_yaml(path: Path, tiny: Path, records: Path) -> str:
    path.write_text(
        textwrap.dedent(
            f"""
            recipe: sft
            model: {{name_or_path: {tiny}, device: cpu}}
            data: {{train: {records}, eval_size: 8, task: pointwise}}
            run: {{output_dir: {path.parent / "sft"}, max_steps: 4, save_steps: 2, learning_rate: 1.0e-3,
                   per_device_train_batch_size: 8, logging_steps: 1, save_total_limit: 10, ddp_timeout: 120}}
            template: {{style: compact}}
            eval: {{enabled: false}}
            """
        )
    )
    return str(path)


def rl_yaml(path: Path, tiny: Path, records: Path, eval_enabled: bool = False) -> str:
    path.write_text(
        textwrap.dedent(
            f"""
            recipe: critic_rl
            model: {{name_or_path: {tiny}, device: cpu}}
            data: {{train: {records}, eval_size: 4, task: pointwise}}
            run: {{output_dir: {path.parent / "rl"}, max_steps: 6, save_steps: 2, learning_rate: 1.0e-3,
                   per_device_train_batch_size: 8, logging_steps: 1, save_total_limit: 10, ddp_timeout: 120}}
            grpo: {{num_generations: 4, max_completion_length: 24, beta: 0.0}}
            rewards: [{{name: pointwise_verdict}}]
            template: {{style: compact, think: false}}
            eval: {{enabled: {str(eval_enabled).lower()}, max_new_tokens: 16}}
            """
        )
    )
    return str(path)


def environment(events: Path, scripted: bool, delay: float = 0.0) -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
        "CRITICS_TEST_EVENTS": str(events),
        "CRITICS_TEST_SCRIPTED": "1" if scripted else "",
        "CRITICS_TEST_DELAY": str(delay),
    }


def start(args: list[str], events: Path, nproc: int = 1, scripted: bool = True, delay: float = 0.0):
    """``critics train *args`` through the recording runner, on ``nproc`` processes (torchrun)."""
    runner = events.with_suffix(".py")
    runner.write_text(RUNNER)
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    command = [*(head if nproc > 1 else [sys.executable]), str(runner), "train", *args, "--no-progress"]
    return subprocess.Popen(
        command,
        env=environment(events, scripted, delay),
        cwd=events.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-4000:]
    return output


def events_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def losses(output_dir: Path, keys: tuple[str, ...] = ("loss", "grad_norm")) -> dict[tuple[int, str], float]:
    """The logged loss and gradient norm of every step (GRPO's loss is 0 at its first iteration by
    construction, so the gradient norm is what shows the update)."""
    state = json.loads((output_dir / "final" / "trainer_state.json").read_text())
    return {(e["step"], k): e[k] for e in state["log_history"] if "loss" in e for k in keys if k in e}


def assert_close(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    worst = max(abs(got[s] - want[s]) / max(abs(want[s]), 1e-3) for s in want)
    assert worst <= RTOL, f"relative difference {worst:.2e} over {RTOL}: {got} vs {want}"
    print(f"max relative difference {worst:.2e} over {len(want)} logged values: {want}")


@pytest.fixture(scope="module")
def rl_runs(tmp_path_factory, tiny, records):
    """critic_rl (scripted rollouts) on 1 process (batch 8) and on 2 (batch 4 each), run side by side."""
    one, two = tmp_path_factory.mktemp("rl1"), tmp_path_factory.mktemp("rl2")
    first = start([rl_yaml(one / "rl.yaml", tiny, records)], one / "events.jsonl")
    second = start(
        [rl_yaml(two / "rl.yaml", tiny, records, eval_enabled=True), "run.per_device_train_batch_size=4"],
        two / "events.jsonl",
        nproc=2,
    )
    return {"one": (one, finish(first)), "two": (two, finish(second))}


def test_critic_rl_on_two_processes_gives_the_losses_of_one(rl_runs):
    (one, _), (two, _) = rl_runs["one"], rl_runs["two"]
    keys = ("loss", "grad_norm", "reward")
    assert_close(losses(two / "rl", keys), losses(one / "rl", keys))
    reference = losses(one / "rl", keys)
    assert min(v for (_, k), v in reference.items() if k == "grad_norm") > 0  # the scripted rollouts do train
    assert 0 < sum(v for (_, k), v in reference.items() if k == "reward") < 6


def test_only_the_main_process_writes_evaluates_and_reports(rl_runs):
    two, output = rl_runs["two"]
    events = events_of(two / "events.jsonl")
    assert sorted({e["rank"] for e in events if e["event"] == "started"}) == [0, 1]
    for event in ("evaluate", "run files", "card"):
        ranks = [e["rank"] for e in events if e["event"] == event]
        assert ranks == ([0, 0] if event == "evaluate" else [0]), (event, ranks)  # before and after training
    assert output.count("final checkpoint:") == 1 and output.count("held-out accuracy") == 2
    run = two / "rl"
    assert {f"checkpoint-{s}" for s in (2, 4, 6)} | {"final"} <= {p.name for p in run.iterdir()}
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no staging or swap leftovers
    for checkpoint in ("checkpoint-2", "checkpoint-6"):  # each rank's RNG state, for --resume
        assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in (run / checkpoint).iterdir()}
    assert {"README.md", "metrics.json", "critic_spec.json", "training_curves.png"} <= {
        p.name for p in (run / "final").iterdir()
    }


def test_sft_on_two_processes_with_the_cli_and_with_zero2(tmp_path, tiny, records):
    """``critics train --nproc 2`` (DDP) and with the ZeRO-2 accelerate config: the losses of one process."""
    runs = {}
    for name, extra in (
        ("one", []),
        ("ddp", ["--nproc", "2"]),
        ("zero2", ["--nproc", "2", "--accelerate-config", str(ROOT / "configs/accelerate/zero2.yaml")]),
    ):
        folder = tmp_path / name
        folder.mkdir()
        config = sft_yaml(folder / "sft.yaml", tiny, records)
        batch = [] if name == "one" else ["run.per_device_train_batch_size=4"]
        started = time.time()
        done = subprocess.run(
            [sys.executable, "-m", "critics.cli", "train", config, *batch, "--no-progress", *extra],
            env=environment(folder / "events.jsonl", scripted=False),
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        runs[name] = folder / "sft"
        print(f"sft {name}: {time.time() - started:.1f} s")
        if name != "one":
            assert (
                "critics train: " in done.stderr
                and "torch.distributed.run --standalone --nproc_per_node 2" in done.stderr
            )
            assert done.stdout.count("final checkpoint:") == 1
    assert_close(losses(runs["ddp"]), losses(runs["one"]))
    assert_close(losses(runs["zero2"]), losses(runs["one"]))
    shards = {p.name for p in (runs["zero2"] / "checkpoint-4").rglob("*optim_states.pt")}
    assert len(shards) == 2, shards  # ZeRO-2: each rank saved its optimizer partition


def test_a_killed_rank_ends_the_run_and_resume_on_two_processes_finishes_it(tmp_path, tiny, records, rl_runs):
    reference, _ = rl_runs["two"]
    config = rl_yaml(tmp_path / "rl.yaml", tiny, records, eval_enabled=True)
    events = tmp_path / "events.jsonl"
    batch = "run.per_device_train_batch_size=4"
    run = start([config, batch], events, nproc=2, delay=1.0)
    deadline = time.time() + 240
    while latest_checkpoint(tmp_path / "rl") is None and run.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert latest_checkpoint(tmp_path / "rl") is not None, "no checkpoint before the deadline"
    victim = next(e["pid"] for e in events_of(events) if e["event"] == "started" and e["rank"] == 1)
    killed = time.time()
    os.kill(victim, signal.SIGKILL)
    try:
        output, _ = run.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        run.kill()
        pytest.fail("the run hung after one rank was killed")
    print(f"the run ended {time.time() - killed:.1f} s after rank 1 was killed")
    assert run.returncode != 0 and not (tmp_path / "rl" / "final").exists(), output[-3000:]
    survivor = next(e["pid"] for e in events_of(events) if e["event"] == "started" and e["rank"] == 0)
    assert not Path(f"/proc/{survivor}").exists() or "zombie" in Path(f"/proc/{survivor}/status").read_text()

    resumed = start([config, batch, "--resume"], tmp_path / "resumed.jsonl", nproc=2)
    finish(resumed)
    state = json.loads((tmp_path / "rl" / "final" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    # it resumed (no "before" evaluation, only "after"), on both ranks
    resumed_events = events_of(tmp_path / "resumed.jsonl")
    assert [e["rank"] for e in resumed_events if e["event"] == "evaluate"] == [0]
    assert sorted(e["rank"] for e in resumed_events if e["event"] == "finished") == [0, 1]
    assert_close(losses(tmp_path / "rl"), losses(reference / "rl"))


def policy_yaml(path: Path, tiny: Path, feedback: bool = False) -> str:
    """policy_grpo with a critic checkpoint and the answer rule as rewards, and the audit every 2 steps."""
    prompts = path.parent / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"question": f"{i}+1=?", "answer": str(i + 1)}) + "\n" for i in range(24)))
    path.write_text(
        textwrap.dedent(
            f"""
            recipe: policy_grpo
            model: {{name_or_path: {tiny}, device: cpu}}
            data: {{train: {prompts}, eval_size: 6}}
            run: {{output_dir: {path.parent / "policy"}, max_steps: 4, save_steps: 2, learning_rate: 1.0e-3,
                   per_device_train_batch_size: 4, logging_steps: 1, ddp_timeout: 120}}
            grpo: {{num_generations: 4, max_completion_length: 8, beta: 0.0}}
            critic: {{checkpoint: {tiny}, task: pointwise, style: compact, max_new_tokens: 8}}
            rewards: [{{name: answer, verifier: exact}}]
            reward_weights: [0.5]
            eval: {{max_new_tokens: 8, verifier: exact}}
            audit: {{every: 2, probes: 4, window: 2, max_new_tokens: 8}}
            """
        )
        + ("feedback: {source: with_gold, style: compact, verifier: exact}\n" if feedback else "")
    )
    return str(path)


def test_policy_grpo_on_two_processes_audits_on_the_main_process_and_refuses_feedback(tmp_path_factory, tiny):
    """The reward-hacking audit answers and scores its probes once, on the main process (the other rank
    waits for the result, no hang); held-out accuracy, run files and the card come from rank 0; the
    Critique-GRPO feedback path, one process only, stops with its error on two."""
    audited, refused = tmp_path_factory.mktemp("policy"), tmp_path_factory.mktemp("feedback")
    run = start([policy_yaml(audited / "p.yaml", tiny)], audited / "events.jsonl", nproc=2)
    feedback = start([policy_yaml(refused / "p.yaml", tiny, feedback=True)], refused / "events.jsonl", nproc=2)
    output = finish(run)
    events = events_of(audited / "events.jsonl")
    assert sorted(e["rank"] for e in events if e["event"] == "finished") == [0, 1]
    generated = [(e["rank"], e["caller"]) for e in events if e["event"] == "generate"]
    assert generated.count((0, "answer")) == 3 and generated.count((0, "task_accuracy")) == 2, generated
    assert not [c for r, c in generated if r != 0 and c in ("answer", "task_accuracy")], generated
    for event in ("run files", "card"):
        assert [e["rank"] for e in events if e["event"] == event] == [0], event
    assert output.count("final checkpoint:") == 1
    final = audited / "policy" / "final"
    audit = json.loads((final / "metrics.json").read_text())["audit"]
    assert [h["step"] for h in audit["history"]] == [0, 2, 4] and audit["probes"] == 4
    assert all(h["scored"] == 4 for h in audit["history"]), audit  # the critic scored every probe
    assert any("audit/reward" in e for e in json.loads((final / "log_history.json").read_text()))

    output, _ = feedback.communicate(timeout=120)
    assert feedback.returncode != 0
    assert "feedback does not support more than one process" in output, output[-3000:]
    assert not (refused / "policy" / "final").exists() and latest_checkpoint(refused / "policy") is None
