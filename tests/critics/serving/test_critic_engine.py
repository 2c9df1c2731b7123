"""The Critic engine: scores per task, soft scores, scalar checkpoints, and the dynamic batcher."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from critics.judging.chat import ChatModel, LocalChatModel
from critics.serving import BatcherClosed, Critic, DynamicBatcher, QueueFull
from critics.tiny import save_tiny_checkpoint


class RuleBackend(ChatModel):
    """Judges like a perfect critic of "a+b=c" claims, and records the batch sizes it was given."""

    name = "rule"

    def __init__(self, delay: float = 0.0):
        self.delay, self.batches = delay, []

    def generate(self, conversations, *, max_new_tokens, temperature, n=1):
        self.batches.append(len(conversations))
        time.sleep(self.delay)
        return [self.judge(c[-1]["content"]) for c in conversations for _ in range(n)]

    @staticmethod
    def judge(text: str) -> str:
        if "Better:" in text:
            return "A is right. \\boxed{A}"
        if "First wrong step" in text:
            return "Step 1 is wrong. \\boxed{1}"
        claim = re.fullmatch(r"(\d+)\+(\d+)=(\d+)", text.splitlines()[0].strip())
        if claim is None:
            return "I cannot tell."
        a, b, c = (int(x) for x in claim.groups())
        return f"{a}+{b} is {a + b}. \\boxed{{{'Correct' if a + b == c else 'Incorrect'}}}"


def critic(**settings) -> Critic:
    return Critic(RuleBackend(settings.pop("delay", 0.0)), style="compact", **settings)


def test_scores_per_task_and_none_without_a_verdict():
    with critic() as c:
        out = c.critique(
            [
                {"question": "q", "response": "2+2=4"},
                {"question": "q", "response": "2+2=5"},
                {"question": "q", "response": "no claim"},
                {"task": "pairwise", "question": "q", "response_a": "x", "response_b": "y"},
                {"task": "step", "question": "q", "steps": ["a", "b", "c", "d"]},
            ]
        )
    assert [x.score for x in out] == [1.0, 0.0, None, 1.0, 0.25]
    assert out[2].verdict.reason == "no verdict" and "2+2 is 4" in out[0].text


def test_a_missing_field_fails_in_the_caller_naming_it():
    with critic() as c, pytest.raises(KeyError, match="response"):
        c.critique([{"question": "q"}])


def test_concurrent_single_requests_are_coalesced_into_batches():
    with critic(delay=0.05, max_batch_size=16, max_wait_ms=20) as c:
        with ThreadPoolExecutor(32) as pool:
            scores = list(pool.map(lambda i: c.score([{"question": "q", "response": f"{i}+1={i + 1}"}])[0], range(64)))
        assert scores == [1.0] * 64
        assert max(c.backend.batches) > 1 and sum(c.backend.batches) == 64
        assert c.batcher.stats.jobs == 64 and c.batcher.stats.batches == len(c.backend.batches)


def test_a_full_queue_refuses_at_once_and_keeps_serving():
    release = threading.Event()
    batcher = DynamicBatcher(lambda key, xs: release.wait(5) and xs, max_batch_size=1, max_wait_s=0, max_queue=2)
    first = batcher.submit(1)
    time.sleep(0.05)  # the worker holds job 1; the queue takes two more
    queued = batcher.submit_many([2, 3])
    with pytest.raises(QueueFull):
        batcher.submit(4)
    release.set()
    assert [f.result(5) for f in [first, *queued]] == [1, 2, 3]
    assert batcher.stats.rejected_jobs == 1
    batcher.close()


def test_a_failing_batch_fails_its_callers_only():
    calls = []

    def fn(key, items):
        calls.append(items)
        if "boom" in items:
            raise RuntimeError("backend exploded")
        return items

    batcher = DynamicBatcher(fn, max_batch_size=4, max_wait_s=0)
    with pytest.raises(RuntimeError, match="exploded"):
        batcher.submit("boom").result(5)
    assert batcher.submit("fine").result(5) == "fine"
    assert batcher.stats.failed_jobs == 1
    batcher.close()


def test_close_drains_queued_jobs():
    batcher = DynamicBatcher(lambda key, xs: (time.sleep(0.02), xs)[1], max_batch_size=2, max_wait_s=0)
    futures = batcher.submit_many(list(range(6)))
    batcher.close(drain=True)
    assert [f.result(0) for f in futures] == list(range(6))


def mean_batch_of_callers_in_a_loop(follow_up: float, callers: int = 8, rounds: int = 12) -> float:
    """Callers that send their next job a few ms after the last one was answered (an RL trainer's
    reward workers, OpenRLHF's): the mean batch size a 60 ms batch function sees."""
    import random

    batcher = DynamicBatcher(
        lambda key, xs: (time.sleep(0.06), xs)[1], max_batch_size=callers, max_wait_s=0.001, follow_up=follow_up
    )

    def caller(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(rounds):
            batcher.submit(seed).result(10)
            time.sleep(rng.uniform(0.0, 0.006))

    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(caller, range(callers)))
    batcher.close()
    return batcher.stats.jobs / batcher.stats.batches


def test_callers_in_a_loop_are_waited_for_so_their_batches_stay_whole():
    # margins for a loaded 2-core machine: unloaded, 7.4 against 4.0 (the first batch is always partial)
    assert mean_batch_of_callers_in_a_loop(follow_up=0.5) >= 6.5
    assert mean_batch_of_callers_in_a_loop(follow_up=0.0) < 5.5  # a fixed 1 ms wait splits them


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model")


def test_soft_scores_are_probabilities_of_the_verdict(tiny):
    from critics.judging.judge import Critique, _soft
    from critics.judging.verdicts import Verdict

    backend = LocalChatModel(str(tiny), device="cpu")
    prompts = [[{"role": "user", "content": "2+2=4\nCorrect or Incorrect?"}]] * 2
    first, second = backend.choice_logprobs(prompts, ["ok \\boxed{", "ok \\boxed{"], [("Correct", "Incorrect")] * 2)[0]
    assert first < 0 and second < 0  # log-probabilities of real continuations
    # the soft score replaces 1/0 with P(first choice) for outputs that have a verdict
    hard = Critique("fine \\boxed{Correct}", Verdict("correct", True, "ok"), 1.0)
    probability = _soft(backend, prompts[:1], [0], [hard], [{"task": "pointwise"}])[0].score
    assert 0.0 < probability < 1.0 and abs(probability - 1 / (1 + pow(2.718281828, second - first))) < 1e-3
    Critic(backend, style="compact", soft=True).close()  # a backend with probabilities takes soft=True


def test_soft_needs_a_backend_that_exposes_probabilities():
    with pytest.raises(ValueError, match="soft scores"):
        Critic(RuleBackend(), soft=True)


def test_a_sequence_classifier_checkpoint_serves_scalar_scores(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "rm", classifier=True)
    with Critic.from_pretrained(str(path), backend_options={"device": "cpu"}) as c:
        assert c.is_scalar and c.spec.layout == "reward"
        out = c.critique([{"question": "q", "response": "2+2=4"}, {"question": "q", "response": "2+2=5"}])
    assert all(isinstance(x.score, float) for x in out) and out[0].score != out[1].score
    assert out[0].verdict.ok and out[0].text == ""


def test_a_random_tiny_causal_lm_runs_end_to_end(tiny):
    with Critic.from_pretrained(str(tiny), backend_options={"device": "cpu"}, style="compact", max_new_tokens=8) as c:
        out = c.critique([{"question": "q", "response": "2+2=4"}] * 3)
    assert len(out) == 3 and all(x.score is None or x.score in (0.0, 1.0) for x in out)


def test_cancelled_jobs_leave_the_queue_at_once_are_never_run_and_are_counted():
    release, ran = threading.Event(), []
    batcher = DynamicBatcher(lambda key, xs: (release.wait(10), ran.extend(xs), xs)[2], max_batch_size=8, max_wait_s=0)
    running = batcher.submit("running")
    wait_for = time.monotonic() + 10
    while batcher.queue_depth or not batcher.in_flight:  # the worker holds the first job at the gate
        assert time.monotonic() < wait_for, "the worker never took the first job"
        time.sleep(0.005)
    queued = batcher.submit_many(["gone-1", "kept", "gone-2"])
    assert queued[0].cancel() and queued[2].cancel() and not running.cancel()  # a running job cannot be
    assert batcher.queue_depth == 1 and batcher.stats.cancelled_jobs == 2  # left at once, not when the worker looks
    release.set()
    assert running.result(10) == "running" and queued[1].result(10) == "kept"
    batcher.close()
    assert ran == ["running", "kept"] and batcher.stats.jobs == 2


def test_close_with_a_deadline_fails_the_callers_still_waiting_instead_of_hanging():
    release = threading.Event()
    batcher = DynamicBatcher(lambda key, xs: (release.wait(30), xs)[1], max_batch_size=1, max_wait_s=0)
    futures = batcher.submit_many([1, 2, 3])  # one runs (held at the gate), two wait
    start = time.monotonic()
    batcher.close(drain=True, timeout=0.3)
    assert time.monotonic() - start < 5  # the deadline, not the 30 s the running batch could take
    for future in futures:
        with pytest.raises(BatcherClosed):
            future.result(0)
    assert not batcher.stopped  # the running batch goes on in the background; its result is dropped
    release.set()
    wait_for = time.monotonic() + 10
    while not batcher.stopped:
        assert time.monotonic() < wait_for, "the worker did not stop after its last batch"
        time.sleep(0.005)
    assert batcher.stats.failed_jobs == 0 and batcher.stats.jobs == 1
