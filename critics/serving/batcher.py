"""A dynamic batcher: requests from many callers coalesced into batches for one worker thread.

Callers ``submit`` jobs and get ``concurrent.futures.Future`` objects back (``asyncio`` callers
wrap them with ``asyncio.wrap_future``). One worker thread takes the oldest job, waits up to
``max_wait_s`` for more jobs with the same ``key`` (generation settings, say) until it has
``max_batch_size`` of them, and runs ``fn`` on the batch. The queue is bounded: a full queue
raises ``QueueFull`` at once instead of letting latency grow without limit.

Callers in a loop (OpenRLHF's reward workers, an RL trainer's concurrent requests) send their
next job only once the last batch answered them; a fixed short wait then cuts their next batch
in two, and the halves alternate for good (measured: a mean batch of 15.5 at concurrency 32).
So after a batch the worker expects its callers back: it waits for as many jobs as were in the
system during that batch (the batch, and what queued meanwhile), up to ``follow_up`` of the last
batch's run time after it ended; then it runs what it has.

A caller that gives up (an HTTP client that hung up) cancels its futures: a cancelled job leaves
the queue at once, is never run, and is counted in ``stats.cancelled_jobs``. ``close`` drains for
up to a deadline, then fails the callers still waiting with ``BatcherClosed``.

>>> batcher = DynamicBatcher(lambda key, xs: [x * 2 for x in xs], max_batch_size=4, max_wait_s=0.01)
>>> [f.result() for f in batcher.submit_many([1, 2, 3])]
[2, 4, 6]
>>> batcher.close()
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any


class QueueFull(RuntimeError):
    """The batcher's queue holds ``max_queue`` jobs: try again later."""


class BatcherClosed(RuntimeError):
    """The batcher was closed and takes no new jobs."""


@dataclass(eq=False)  # jobs are compared by identity: two callers may send equal items
class _Job:
    key: Hashable
    item: Any
    future: Future
    enqueued: float


@dataclass
class BatcherStats:
    """Counters for ``/metrics``: batches run, their sizes, jobs done, failed, refused and cancelled, queue waits."""

    batches: int = 0
    jobs: int = 0
    failed_jobs: int = 0
    rejected_jobs: int = 0
    cancelled_jobs: int = 0
    batch_sizes: Counter = field(default_factory=Counter)
    queue_wait_s: float = 0.0
    busy_s: float = 0.0


class DynamicBatcher:
    """Coalesce jobs into batches of at most ``max_batch_size`` for ``fn(key, items) -> results``.

    ``fn`` gets the batch's shared key and its items and returns one result per item; if it
    raises, every job of that batch fails with the exception (the worker keeps running).
    """

    def __init__(
        self,
        fn: Callable[[Hashable, list[Any]], Sequence[Any]],
        *,
        max_batch_size: int = 32,
        max_wait_s: float = 0.005,
        max_queue: int = 4096,
        follow_up: float = 0.5,
        name: str = "batcher",
    ):
        if max_batch_size < 1 or max_queue < 1 or max_wait_s < 0 or not 0 <= follow_up <= 1:
            raise ValueError("max_batch_size and max_queue must be >= 1, max_wait_s >= 0, follow_up in [0, 1]")
        self.fn, self.max_batch_size, self.max_wait_s, self.max_queue = fn, max_batch_size, max_wait_s, max_queue
        self.follow_up = follow_up
        self._expected, self._patience_until = 0, 0.0  # the last batch's callers, and how long to wait for them
        self.stats = BatcherStats()
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._batch: list[_Job] = []  # the batch being run
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        """Jobs waiting (not counting the batch being run)."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Jobs waiting or running."""
        return len(self._queue) + len(self._batch)

    @property
    def stopped(self) -> bool:
        """Whether the worker thread has ended (after ``close``)."""
        return not self._thread.is_alive()

    def submit(self, item: Any, key: Hashable = None) -> Future:
        """Queue one job; raises ``QueueFull`` or ``BatcherClosed``."""
        return self.submit_many([item], key)[0]

    def submit_many(self, items: Sequence[Any], key: Hashable = None) -> list[Future]:
        """Queue several jobs together: all are accepted, or none (``QueueFull``). Cancelling a
        returned future before its batch starts drops the job."""
        now = time.monotonic()
        with self._cond:
            if self._closed:
                raise BatcherClosed("the batcher is closed")
            if len(self._queue) + len(items) > self.max_queue:
                self.stats.rejected_jobs += len(items)
                raise QueueFull(f"queue full ({len(self._queue)} of {self.max_queue} jobs waiting)")
            jobs = [_Job(key, item, Future(), now) for item in items]
            self._queue.extend(jobs)
            self._cond.notify()
        for job in jobs:  # no caller holds these futures yet, so none can be cancelled before this
            job.future.add_done_callback(functools.partial(self._forget_if_cancelled, job))
        return [job.future for job in jobs]

    def close(self, drain: bool = True, timeout: float | None = None) -> None:
        """Stop taking jobs. With ``drain``, finish the queued ones for up to ``timeout`` seconds
        (None: however long they take); after that, or at once without ``drain``, fail every caller
        still waiting, queued or in the running batch, with ``BatcherClosed``. A running batch
        cannot be interrupted: it finishes in the background and its results are dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout if drain else 0)
        if self._thread.is_alive():
            self._fail_waiting()

    def _forget_if_cancelled(self, job: _Job, future: Future) -> None:
        """Drop a cancelled job from the queue now, so it neither runs nor holds a place in the queue."""
        if not future.cancelled():
            return
        with self._cond:
            self.stats.cancelled_jobs += 1
            if job in self._queue:  # not yet taken into a batch (``_work`` skips one that was)
                self._queue.remove(job)

    def _fail_waiting(self) -> None:
        with self._cond:
            jobs = [*self._queue, *self._batch]
            self._queue.clear()
        error = BatcherClosed("the batcher was closed before this job was answered")
        for job in jobs:
            _settle(job.future, error=error)

    def _take_batch(self) -> list[_Job] | None:
        with self._cond:
            while True:
                if not self._queue:  # empty, or emptied by cancellations while waiting
                    if self._closed:
                        return None
                    self._cond.wait()
                    continue
                batch = self._ready_batch()
                if batch is not None:
                    for job in batch:
                        self._queue.remove(job)
                    self._batch = batch
                    return batch

    def _ready_batch(self) -> list[_Job] | None:
        """The oldest job's batch if it should run now; else None after waiting a while (lock held)."""
        batch = self._same_key(self._queue[0].key)
        now = time.monotonic()
        deadline = self._queue[0].enqueued + self.max_wait_s
        if len(batch) >= self.max_batch_size or self._closed:
            return batch
        # the base wait is over, and the last batch's callers are back (or were waited for long enough)
        back = len(batch) >= self._expected or now >= self._patience_until
        if now >= deadline and back:
            return batch
        self._cond.wait(max(deadline if now < deadline else self._patience_until, now + 1e-4) - now)
        return None

    def _same_key(self, key: Hashable) -> list[_Job]:
        batch = []
        for job in self._queue:
            if job.key == key:
                batch.append(job)
                if len(batch) == self.max_batch_size:
                    break
        return batch

    def _work(self) -> None:
        while (batch := self._take_batch()) is not None:
            live = [job for job in batch if _start(job.future)]
            start = time.monotonic()
            try:
                results = list(self.fn(batch[0].key, [job.item for job in live])) if live else []
                if len(results) != len(live):
                    raise RuntimeError(f"batch function returned {len(results)} results for {len(live)} items")
            except BaseException as error:  # noqa: BLE001 - handed to every caller of the batch
                for job in live:
                    _settle(job.future, error=error)
                self.stats.failed_jobs += len(live)
            else:
                for job, result in zip(live, results):
                    _settle(job.future, result)
            finally:
                self._finish(live, start)

    def _finish(self, live: list[_Job], start: float) -> None:
        """Count a batch run, and expect its callers back (``follow_up``)."""
        end = time.monotonic()
        with self._cond:
            self._expected = len(live) + len(self._queue)
            self._patience_until = end + self.follow_up * (end - start)
            self._batch = []
        self.stats.batches += 1
        self.stats.jobs += len(live)
        self.stats.batch_sizes[len(live)] += 1
        self.stats.queue_wait_s += sum(start - job.enqueued for job in live)
        self.stats.busy_s += end - start


def _start(future: Future) -> bool:
    """Mark a job running; False when its caller cancelled it or ``close`` already failed it."""
    try:
        return future.set_running_or_notify_cancel()
    except RuntimeError:  # failed by ``close`` between being taken and being started
        return False


def _settle(future: Future, result: Any = None, error: BaseException | None = None) -> None:
    """Answer a job, unless ``close`` already failed it (the shutdown deadline passed while it ran)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass
