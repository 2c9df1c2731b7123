"""What ``critics serve`` counts, written as Prometheus text by hand (no client library needed).

``ServerMetrics`` keeps request counts by endpoint and status code, server errors, client
disconnects, invalid verdicts, items judged and a latency histogram per endpoint; ``render`` adds
the dynamic batcher's state (queue depth, jobs in flight, batch sizes, jobs cancelled). Updated
from the event loop only. A client that hung up counts as code 499 (nginx's), which no client sees.

>>> metrics = ServerMetrics(["/score"])
>>> metrics.observe("/score", 200, 0.02)
>>> metrics.observe("/nowhere", 404, 0.001)
>>> [line for line in metrics.request_lines() if line.startswith("critics_requests_total")]
['critics_requests_total{endpoint="/score",code="200"} 1', 'critics_requests_total{endpoint="other",code="404"} 1']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from critics.serving.batcher import DynamicBatcher

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
OTHER = "other"  # the endpoint label of paths the server does not serve (bounded label values)


class Histogram:
    """Cumulative Prometheus buckets with their sum and count."""

    def __init__(self, bounds: Iterable[float]):
        self.bounds = tuple(bounds)
        self.counts = [0] * len(self.bounds)
        self.count, self.total = 0, 0.0

    def observe(self, value: float, times: int = 1) -> None:
        """Add ``value`` (``times`` times)."""
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += times
                break
        self.count += times
        self.total += value * times

    def lines(self, name: str, labels: str = "") -> list[str]:
        """The ``_bucket``, ``_sum`` and ``_count`` lines; ``labels`` like ``endpoint="/score"``."""
        sep = "," if labels else ""
        out, running = [], 0
        for bound, n in zip(self.bounds, self.counts):
            running += n
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        braces = f"{{{labels}}}" if labels else ""
        return out + [f"{name}_sum{braces} {self.total:.6f}", f"{name}_count{braces} {self.count}"]


class ServerMetrics:
    """Counters of the HTTP server; ``endpoints`` are the paths it serves (others count as ``other``)."""

    def __init__(self, endpoints: Iterable[str]):
        self.endpoints = frozenset(endpoints)
        self.requests: Counter = Counter()  # (endpoint, status code)
        self.server_errors: Counter = Counter()  # endpoint -> 5xx responses and unhandled exceptions
        self.client_disconnects: Counter = Counter()  # (endpoint, "body" | "answer") -> clients that hung up
        self.invalid_verdicts: Counter = Counter()  # endpoint -> items without a valid verdict
        self.items: Counter = Counter()  # endpoint -> items judged or generated
        self.prompts_cut: Counter = Counter()  # (endpoint, "truncated" | "too_long") -> prompts over the budget
        self.latency: dict[str, Histogram] = {}

    def label(self, path: str) -> str:
        """The endpoint label of a request path."""
        return path if path in self.endpoints else OTHER

    def observe(self, path: str, code: int, seconds: float) -> None:
        """Count one finished request."""
        endpoint = self.label(path)
        self.requests[endpoint, code] += 1
        if code >= 500:
            self.server_errors[endpoint] += 1
        self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS_S)).observe(seconds)

    def count_disconnect(self, path: str, stage: str) -> None:
        """Count a client that hung up while its body arrived (``body``) or before its answer (``answer``)."""
        self.client_disconnects[self.label(path), stage] += 1

    def count_items(self, path: str, n: int, invalid: int = 0) -> None:
        """Count ``n`` items judged by one request, ``invalid`` of them without a valid verdict."""
        self.items[path] += n
        self.invalid_verdicts[path] += invalid

    def count_prompt(self, path: str, status: str) -> None:
        """Count a prompt the token budget cut (``truncated``) or refused (``too_long``); ``ok`` is not counted."""
        if status != "ok":
            self.prompts_cut[self.label(path), status] += 1

    def request_lines(self) -> list[str]:
        """The request-side metrics."""
        lines = _family(
            "critics_requests_total",
            "counter",
            "HTTP requests by endpoint and status code",
            {f'endpoint="{e}",code="{c}"': n for (e, c), n in sorted(self.requests.items())},
        )
        lines += _family(
            "critics_server_errors_total",
            "counter",
            "responses with a 5xx status, by endpoint",
            _by_endpoint(self.server_errors),
        )
        lines += _family(
            "critics_client_disconnects_total",
            "counter",
            "clients that hung up (code 499), by endpoint and stage: while sending the body, or waiting for the answer",
            {f'endpoint="{e}",stage="{s}"': n for (e, s), n in sorted(self.client_disconnects.items())},
        )
        lines += _family(
            "critics_invalid_verdicts_total",
            "counter",
            "judged items without a valid verdict (scored with the invalid reward)",
            _by_endpoint(self.invalid_verdicts),
        )
        lines += _family(
            "critics_items_total", "counter", "items judged or generated, by endpoint", _by_endpoint(self.items)
        )
        lines += _family(
            "critics_prompts_cut_total",
            "counter",
            "prompts over the critic's token budget: cut in the middle (truncated) or refused (too_long)",
            {f'endpoint="{e}",action="{a}"': n for (e, a), n in sorted(self.prompts_cut.items())},
        )
        lines += [
            "# HELP critics_request_duration_seconds request latency, by endpoint",
            "# TYPE critics_request_duration_seconds histogram",
        ]
        for endpoint, histogram in sorted(self.latency.items()):
            lines += histogram.lines("critics_request_duration_seconds", f'endpoint="{endpoint}"')
        return lines

    def render(self, batcher: DynamicBatcher, draining: bool) -> str:
        """The whole ``/metrics`` page."""
        stats = batcher.stats
        sizes = Histogram(BATCH_SIZE_BUCKETS)
        for size, n in sorted(dict(stats.batch_sizes).items()):  # dict(): one copy, the worker may add keys
            sizes.observe(size, n)
        lines = self.request_lines()
        lines += _family("critics_queue_depth", "gauge", "jobs waiting in the batcher", {"": batcher.queue_depth})
        lines += _family("critics_in_flight", "gauge", "jobs waiting or running", {"": batcher.in_flight})
        lines += _family("critics_max_queue", "gauge", "the batcher's queue limit", {"": batcher.max_queue})
        lines += _family("critics_draining", "gauge", "1 while the server shuts down", {"": int(draining)})
        lines += _family("critics_batches_total", "counter", "batches run", {"": stats.batches})
        lines += _family("critics_jobs_total", "counter", "jobs run", {"": stats.jobs})
        lines += _family("critics_failed_jobs_total", "counter", "jobs whose batch raised", {"": stats.failed_jobs})
        lines += _family(
            "critics_rejected_jobs_total", "counter", "jobs refused by a full queue", {"": stats.rejected_jobs}
        )
        lines += _family(
            "critics_cancelled_jobs_total",
            "counter",
            "queued jobs dropped unrun because their caller hung up",
            {"": stats.cancelled_jobs},
        )
        lines += _family(
            "critics_queue_wait_seconds_total",
            "counter",
            "time jobs waited for a batch",
            {"": round(stats.queue_wait_s, 6)},
        )
        lines += _family(
            "critics_busy_seconds_total",
            "counter",
            "time the worker spent running batches",
            {"": round(stats.busy_s, 6)},
        )
        lines += ["# HELP critics_batch_size jobs per batch run", "# TYPE critics_batch_size histogram"]
        lines += sizes.lines("critics_batch_size")
        return "\n".join(lines) + "\n"


def _by_endpoint(counter: Counter) -> dict[str, int]:
    return {f'endpoint="{e}"': n for e, n in sorted(counter.items())}


def _family(name: str, kind: str, help_text: str, samples: Mapping[str, float]) -> list[str]:
    """One metric family: HELP, TYPE and a line per label set (``""`` for none)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    return lines + [f"{name}{{{labels}}} {value}" if labels else f"{name} {value}" for labels, value in samples.items()]
