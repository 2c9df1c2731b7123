"""``critics eval``: run a critic on benchmarks, save every judgment as it comes, score, report, plot.

The critic is a checkpoint (or hub name) judged in process, or a running ``critics serve`` at a
URL; both go through the same engine and read the critic's spec (``critics.judging.spec``: its
template, its judging length, its prompt budget), so greedy results agree and no flag is needed.
``style``, ``think``, ``max_new_tokens`` and ``temperature`` override single spec fields of an
in-process critic (a server's are set where it is started). Each benchmark writes
into ``output_dir/<name>/``: ``predictions.jsonl`` (appended batch by batch, so a long run that
stops is resumed by running the same command again), ``quarantine.jsonl`` (rows that could not
be read, with the reason) and ``metrics.json``. The run writes ``metrics.json``, ``report.md`` and
PNG plots (confusion, accuracy per subset, position bias, accuracy against k) into
``output_dir``, and with ``card`` appends its table to the checkpoint's model card.

``samples`` k > 1 draws k critiques per request at ``temperature`` and votes (J1 / DeepSeek-GRM
style test-time scaling); the report gives the headline metric for every j <= k.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from critics.eval.benchmarks import BENCHMARKS, Benchmark, Item, parse_bench
from critics.eval.metrics import majority_vote

HEADLINE = {"processbench": ("mean_subset_f1", "F1 (mean over subsets)"), "judgebench": ("accuracy", "accuracy"),
            "rmbench": ("overall", "overall"), "pointwise": ("accuracy", "accuracy"),
            "refine": ("refine_accuracy", "accuracy after refinement"),
            "bestofn": ("filtered", "majority vote over critic-accepted solutions"),
            "vl_rewardbench": ("accuracy", "accuracy")}


@dataclass
class EvalConfig:
    """One ``critics eval`` run.

    Args:
        target: a checkpoint folder or hub name (judged in process), or the URL of ``critics serve``.
        benches: ``NAME`` or ``NAME:PATH`` per benchmark (``critics.eval.benchmarks``).
        output_dir: where predictions, metrics, the report and plots go.
        samples: critiques per request; more than 1 votes and needs ``temperature`` > 0.
        temperature: sampling temperature of a critique (None: the spec's, greedy for critics trained here).
        style, think, max_new_tokens: override the critic's spec (in process only; None: the spec's).
        spec: a spec file or built-in name for a checkpoint that carries none (a released judge).
        batch_size: requests judged (and saved) at a time.
        limit: items per benchmark (0: all).
        device: where an in-process critic runs.
        api_key: the server's key (else ``CRITICS_API_KEY``).
        card: append the results to the checkpoint's model card (``README.md``).
        actor: for ``refine``: the actor's checkpoint, or the base URL of an OpenAI-compatible endpoint
            (then ``actor_model`` is its served model name).
        actor_style: the actor's prompts (``critics.actors``).
    """

    target: str
    benches: list[str]
    output_dir: str = "outputs/eval"
    samples: int = 1
    temperature: float | None = None
    style: str | None = None
    think: bool | None = None
    max_new_tokens: int | None = None
    spec: str | None = None
    batch_size: int = 64
    limit: int = 0
    device: str = "auto"
    api_key: str | None = None
    card: bool = False
    actor: str = ""
    actor_model: str = ""
    actor_style: str = "default"
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.benches:
            raise ValueError("give at least one --bench")
        for spec in self.benches:
            parse_bench(spec)
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")
        if self.samples > 1 and not (self.temperature or 0) > 0:
            raise ValueError("samples > 1 votes over sampled critiques: set temperature > 0 (e.g. 1.0)")
        overrides = [k for k in ("style", "think", "max_new_tokens", "temperature", "spec") if getattr(self, k) is not None]
        if self.remote and overrides:
            raise ValueError(f"{', '.join(overrides)}: a served critic judges by its own spec; set them where it is "
                             "served (critics serve ... --style ...)")
        if any(BENCHMARKS.get(parse_bench(s)[0]).needs_actor for s in self.benches) and not self.actor:
            raise ValueError("the refine benchmark needs an actor: --actor CHECKPOINT (or --actor URL --actor-model NAME)")

    @property
    def remote(self) -> bool:
        return self.target.startswith(("http://", "https://"))


class Judge:
    """The critic behind one call: ``judge(payloads) -> [(verdict, score, critique, prompt) or None]``
    (None: the request failed and is retried by the next run)."""

    def __init__(self, config: EvalConfig):
        from critics.serving.remote import UNREACHABLE, open_critic

        self.config, self.unreachable = config, UNREACHABLE
        if config.remote:
            self.critic = open_critic(config.target, api_key=config.api_key, timeout=600.0)
        else:
            self.critic = open_critic(config.target, spec=config.spec, backend_options={"device": config.device},
                                      max_batch_size=config.batch_size, style=config.style, think=config.think,
                                      max_new_tokens=config.max_new_tokens, temperature=config.temperature)
        self.scalar = None if config.remote else self.critic.is_scalar  # a server's: known once it answers

    def __call__(self, payloads: list[dict[str, Any]]) -> list[tuple[Any, float | None, str, str] | None]:
        if self.scalar is None:
            try:
                self.scalar = self.critic.is_scalar
            except ConnectionError:
                return [None] * len(payloads)
        sent = [inline_images(p) for p in payloads] if self.config.remote else payloads
        return [None if c.verdict.reason == self.unreachable else (c.verdict.value, c.score, c.text, c.prompt)
                for c in self.critic.critique(sent)]

    def close(self) -> None:
        self.critic.close()


def inline_images(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload whose image paths become base64 data URLs (a server reads no path a client names)."""
    if not payload.get("images"):
        return payload
    import base64
    import mimetypes

    def url(path: str) -> str:
        if path.startswith("data:"):
            return path
        kind = mimetypes.guess_type(path)[0] or "image/png"
        return f"data:{kind};base64," + base64.b64encode(Path(path).read_bytes()).decode()

    return {**payload, "images": [url(p) for p in payload["images"]]}


def run(config: EvalConfig, judge: Any = None, actor: Any = None) -> dict[str, Any]:
    """Evaluate on every benchmark; returns ``{bench: metrics}`` and writes the outputs.

    ``judge`` replaces the configured critic (any callable with ``Judge``'s interface: the tests'
    oracle and constant critics); ``actor`` replaces the configured actor of ``refine``.
    """
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    judge = judge or Judge(config)
    results: dict[str, Any] = {}
    try:
        for spec in config.benches:
            results[spec] = run_bench(spec, judge, config, out, actor)
    finally:
        judge.close()
    summary = {"target": config.target, "date": datetime.datetime.now().isoformat(timespec="seconds"),
               "settings": {k: v for k, v in asdict(config).items() if k not in ("api_key", "progress")},
               "benchmarks": results}
    (out / "metrics.json").write_text(json.dumps(plain(summary), indent=2, default=_json_default))
    from critics.eval.report import write_report

    write_report(out, summary)
    if config.card and not config.remote:
        append_to_card(Path(config.target), summary)
    return results


def run_bench(spec: str, judge: Judge, config: EvalConfig, out: Path, actor: Any = None) -> dict[str, Any]:
    """Load, judge what is not yet saved, vote, score one benchmark."""
    name, path = parse_bench(spec)
    folder = out / (name if path is None else f"{name}-{Path(path).stem}")
    folder.mkdir(parents=True, exist_ok=True)
    check_settings(folder, config, spec)
    scalar = judge.scalar if judge.scalar is not None else probe_scalar(judge, name, path)
    bench: Benchmark = BENCHMARKS.get(name)(path, config.limit or None, scalar)
    items, quarantine = bench.load()
    _write_jsonl(folder / "quarantine.jsonl", quarantine)
    if not items:
        raise ValueError(f"{spec}: no usable items ({len(quarantine)} quarantined; see {folder / 'quarantine.jsonl'})")
    saved, texts, too_long = judge_missing(items, judge, config, folder / "predictions.jsonl", spec)
    k = config.samples
    keys = [[[key(n, item.id, r, s) for s in range(k)] for r in range(len(item.requests))]
            for n, item in enumerate(items)]
    failed = sum(kk not in saved for item in keys for request in item for kk in request)  # retried next run
    samples = [[[saved.get(kk) for kk in request] for request in item] for item in keys]
    if bench.needs_actor:
        bench.critiques = [[texts.get(request[0], "") for request in item] for item in keys]
        bench.actor = actor or make_eval_actor(config)
    voted = {j: [[vote(request[:j], scalar) for request in item] for item in samples] for j in range(1, k + 1)}
    metrics = bench.score(items, voted[k])
    metrics.update(name=name, path=path, label=folder.name, items=len(items), quarantined=len(quarantine), scalar=scalar,
                   failed_requests=failed, too_long=too_long, breakdown=bench.breakdown(items, voted[k]),
                   by_k={j: headline(name, bench.score(items, voted[j]))[0] for j in voted} if k > 1 else {},
                   headline=headline(name, metrics))
    (folder / "metrics.json").write_text(json.dumps(plain(metrics), indent=2, default=_json_default))
    return metrics


def key(n: int, item_id: str, request: int, sample: int) -> str:
    return f"{n}:{item_id}|{request}|{sample}"


def judge_missing(items: list[Item], judge: Judge, config: EvalConfig, path: Path,
                  spec: str) -> tuple[dict[str, Any], dict[str, str], int]:
    """Judge every request sample not in ``path`` yet, appending each batch as it finishes;
    returns the verdicts (or scores) and the critiques by key, and how many prompts were over the
    critic's token budget."""
    saved: dict[str, Any] = {}
    texts: dict[str, str] = {}
    cut: dict[str, bool] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                saved[row["key"]], texts[row["key"]] = row["value"], row.get("critique", "")
                cut[row["key"]] = row.get("prompt", "ok") != "ok"
    todo = [(key(n, item.id, r, s), request.payload) for n, item in enumerate(items)
            for r, request in enumerate(item.requests) for s in range(config.samples)]
    # longest first, so each batch pads its prompts to similar lengths (and the first batch shows the peak memory)
    todo = sorted(((k, p) for k, p in todo if k not in saved), key=lambda kp: -len(json.dumps(kp[1])))
    with path.open("a", encoding="utf-8") as handle, \
            tqdm(total=len(todo), desc=f"judging {spec}", unit=" request", disable=not config.progress) as bar:
        for start in range(0, len(todo), config.batch_size):
            batch = todo[start:start + config.batch_size]
            answers = judge([p for _, p in batch])
            for (k, _), answer in zip(batch, answers):
                if answer is None:  # a failed request: not saved, so the next run retries it
                    continue
                verdict, score, text, prompt = answer
                value = score if judge.scalar else verdict
                saved[k], texts[k] = value, text or ""
                cut[k] = prompt != "ok"
                handle.write(json.dumps({"key": k, "value": value, "critique": (text or "")[:4000],
                                         "prompt": prompt}) + "\n")
            handle.flush()
            bar.update(len(batch))
    return saved, texts, sum(cut.values())


def make_eval_actor(config: EvalConfig):
    """The actor of the ``refine`` benchmark: a checkpoint in process, or an OpenAI-compatible endpoint."""
    from critics.actors import ActorSettings, make_actor

    length = config.max_new_tokens or ActorSettings.max_new_tokens  # the critic's override, else the actor's default
    if config.actor.startswith(("http://", "https://")):
        return make_actor(ActorSettings(kind="openai", model=config.actor_model or "actor", base_url=config.actor,
                                        style=config.actor_style, max_new_tokens=length))
    return make_actor(ActorSettings(kind="transformers", model=config.actor, style=config.actor_style,
                                    max_new_tokens=length, device=config.device))


def vote(values: list[Any], scalar: bool) -> Any:
    """The voted verdict of a request's samples (a scalar model has one score per request)."""
    if scalar:
        return values[0]
    return majority_vote(values)


def probe_scalar(judge: Judge, name: str, path: str | None) -> bool:
    """Whether a remote critic is a scalar model: judge one request of the benchmark and see."""
    items, _ = BENCHMARKS.get(name)(path, 1, False).load()
    if items:
        judge([items[0].requests[0].payload])
    return bool(judge.scalar)


def headline(name: str, metrics: dict[str, Any]) -> tuple[float, str]:
    """The one number a benchmark is known by, and its name."""
    metric, label = HEADLINE.get(name, ("accuracy", "accuracy"))
    if name not in HEADLINE and not math.isnan(metrics.get("rewardbench_score", float("nan"))):
        metric, label = "rewardbench_score", "RewardBench score"
    return metrics[metric], label


def check_settings(folder: Path, config: EvalConfig, spec: str) -> None:
    """Refuse to mix saved predictions made with other settings into this run."""
    settings = {"target": config.target, "bench": spec, "samples": config.samples, "temperature": config.temperature,
                "style": config.style, "think": config.think, "max_new_tokens": config.max_new_tokens,
                "spec": config.spec,
                "limit": config.limit}
    path = folder / "settings.json"
    if path.is_file():
        before = json.loads(path.read_text())
        changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if changed:
            raise ValueError(f"{folder} holds predictions made with other settings ({changed}): use another "
                             "--output-dir, or delete that folder to start over")
    path.write_text(json.dumps(settings, indent=2))


def append_to_card(checkpoint: Path, summary: dict[str, Any]) -> None:
    """Append the results table to the checkpoint's ``README.md`` (created if missing)."""
    from critics.eval.report import results_table

    card = checkpoint / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else f"# {checkpoint.name}\n"
    text = text.rstrip("\n") + f"\n\n## Evaluation ({summary['date'][:10]}, `critics eval`)\n\n" + \
        results_table(summary) + "\n"
    card.write_text(text, encoding="utf-8")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=True, default=str) + "\n" for r in rows), encoding="utf-8")


def _json_default(value: Any) -> Any:
    return str(value)


def plain(value: Any) -> Any:
    """``value`` with NaN as None and int keys as strings, for strict JSON.

    >>> plain({"a": float("nan"), 1: [0.5]})
    {'a': None, '1': [0.5]}
    """
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
