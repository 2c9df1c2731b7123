"""``critics eval``: run a critic on benchmarks, save every judgment as it comes, score, report, plot.

The critic is a checkpoint (or hub name) judged in process, or a running ``critics serve`` at a
URL; both go through the same engine and read the critic's spec (``critics.judging.spec``: its
template, its judging length, its prompt budget), so greedy results agree and no flag is needed.
``style``, ``think``, ``max_new_tokens`` and ``temperature`` override single spec fields of an
in-process critic (a server's are set where it is started); the spec judged by is recorded in
``metrics.json`` and the report. Each benchmark writes into ``output_dir/<name>/``:
``predictions.jsonl`` (appended batch by batch, so a long run that stops is resumed by running the
same command again, and a larger ``limit`` judges only the new items: ``critics.eval.predictions``),
``quarantine.jsonl`` (rows that could not be read, with the reason) and ``metrics.json``. A
benchmark with no usable rows (or files that cannot be read) is recorded with its ``error`` and the
others still run. The run writes ``metrics.json``, ``report.md`` and PNG plots (confusion, accuracy
per subset, position bias, accuracy against k) into ``output_dir``, and with ``card`` appends its
table to the checkpoint's model card.

``samples`` k > 1 draws k critiques per request at ``temperature`` and votes (J1 / DeepSeek-GRM
style test-time scaling); the report gives the headline metric for every j <= k and every vote that
fits (``by_vote``). With ``meta_rm`` (in process) the meta RM scores each sampled judgment as it is
judged (saved beside it, ``critics.eval.predictions``) and ``meta`` is one of the votes: the
``meta_keep`` most trusted of the first j samples (default: half, at least 1), summed. A served
critic votes by its own spec (``critics serve --samples K --vote meta --meta-rm PATH``): evaluate its
URL and its answers are already voted.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from critics.eval.benchmarks import BENCHMARKS, Benchmark, Item, parse_bench
from critics.eval.predictions import check_resume, judge_missing, request_key
from critics.judging.votes import check_vote, combine, combine_meta, vote_method

logger = logging.getLogger("critics.eval")


class UnusableBenchmark(ValueError):
    """A benchmark that cannot be evaluated: its files cannot be read, or every row was quarantined."""

    def __init__(self, message: str, quarantined: int = 0):
        super().__init__(message)
        self.quarantined = quarantined


HEADLINE = {
    "processbench": ("mean_subset_f1", "F1 (mean over subsets)"),
    "judgebench": ("accuracy", "accuracy"),
    "rmbench": ("overall", "overall"),
    "pointwise": ("accuracy", "accuracy"),
    "refine": ("refine_accuracy", "accuracy after refinement"),
    "bestofn": ("filtered", "majority vote over critic-accepted solutions"),
    "vl_rewardbench": ("accuracy", "accuracy"),
    "rewardbench2": ("overall", "score (mean of the subsets)"),
    "listwise": ("accuracy", "best-of-N accuracy"),
}


@dataclass
class EvalConfig:
    """One ``critics eval`` run.

    Args:
        target: a checkpoint folder or hub name (judged in process), or the URL of ``critics serve``.
        benches: ``NAME`` or ``NAME:PATH`` per benchmark (``critics.eval.benchmarks``).
        output_dir: where predictions, metrics, the report and plots go.
        samples: critiques per request; more than 1 votes and needs ``temperature`` > 0.
        vote: how the samples combine (``critics.judging.votes``: ``sum``, ``mean``, ``majority``,
            ``meta`` with ``meta_rm``; None: each benchmark's task's default); the report also draws
            the other votes that fit.
        meta_rm: a meta RM folder (recipe ``meta_rm``; in process only): scores every sampled
            judgment, and adds the ``meta`` vote.
        meta_keep: how many of k samples ``meta`` keeps (None: the critic spec's ``meta_keep``, else
            half of k, at least 1); at j < keep samples all j vote.
        temperature: sampling temperature of a critique (None: the spec's, greedy for critics trained here).
        style, think, max_new_tokens: override the critic's spec (in process only; None: the spec's).
        spec: a spec file or built-in name for a checkpoint that carries none (a released judge).
        batch_size: requests judged (and saved) at a time.
        limit: items per benchmark, a sample stratified by subset and drawn with ``seed`` (0: all). A
            resumed run may raise it (only the new items are judged), not lower it.
        seed: the seed of the ``limit`` sample.
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
    vote: str | None = None
    meta_rm: str | None = None
    meta_keep: int | None = None
    temperature: float | None = None
    style: str | None = None
    think: bool | None = None
    max_new_tokens: int | None = None
    spec: str | None = None
    batch_size: int = 64
    limit: int = 0
    seed: int = 0
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
        if self.limit < 0:
            raise ValueError(f"limit must be 0 (all items) or more, got {self.limit}")
        if self.vote is not None:
            check_vote(self.vote)
        self._check_meta()
        if self.samples > 1 and not (self.temperature or 0) > 0:
            raise ValueError("samples > 1 votes over sampled critiques: set temperature > 0 (e.g. 1.0)")
        overrides = [
            k for k in ("style", "think", "max_new_tokens", "temperature", "spec") if getattr(self, k) is not None
        ]
        if self.remote and overrides:
            raise ValueError(
                f"{', '.join(overrides)}: a served critic judges by its own spec; set them where it is "
                "served (critics serve ... --style ...)"
            )
        if any(BENCHMARKS.get(parse_bench(s)[0]).needs_actor for s in self.benches) and not self.actor:
            raise ValueError(
                "the refine benchmark needs an actor: --actor CHECKPOINT (or --actor URL --actor-model NAME)"
            )

    @property
    def remote(self) -> bool:
        return self.target.startswith(("http://", "https://"))

    def _check_meta(self) -> None:
        if self.remote and (self.vote == "meta" or self.meta_rm):
            raise ValueError(
                "a served critic votes by its own spec and meta RM: start it with critics serve CKPT "
                "--samples K --vote meta --meta-rm PATH and evaluate its URL without --vote meta / --meta-rm "
                "(its answers are already voted)"
            )
        if self.vote == "meta" and not self.meta_rm:
            raise ValueError("vote meta ranks the samples with a meta RM: give --meta-rm PATH (recipe meta_rm)")
        if self.meta_keep is not None and not (isinstance(self.meta_keep, int) and 1 <= self.meta_keep <= self.samples):
            raise ValueError(f"meta_keep must be between 1 and samples ({self.samples}), got {self.meta_keep!r}")


class Judge:
    """The critic behind one call: ``judge(payloads) -> [(verdict, score, critique, prompt) or None]``
    (None: the request failed and is retried by the next run)."""

    def __init__(self, config: EvalConfig):
        from critics.serving.remote import UNREACHABLE, open_critic

        self.config, self.unreachable = config, UNREACHABLE
        if config.remote:
            self.critic = open_critic(config.target, api_key=config.api_key, timeout=600.0)
        else:
            self.critic = open_critic(
                config.target,
                spec=config.spec,
                backend_options={"device": config.device},
                max_batch_size=config.batch_size,
                style=config.style,
                think=config.think,
                max_new_tokens=config.max_new_tokens,
                temperature=config.temperature,
            )
        self.scalar = None if config.remote else self.critic.is_scalar  # a server's: known once it answers

    def __call__(self, payloads: list[dict[str, Any]]) -> list[tuple[Any, float | None, str, str] | None]:
        if self.scalar is None:
            try:
                self.scalar = self.critic.is_scalar
            except ConnectionError:
                return [None] * len(payloads)
        sent = [inline_images(p) for p in payloads] if self.config.remote else payloads
        return [
            None if c.verdict.reason == self.unreachable else (c.verdict.value, c.score, c.text, c.prompt)
            for c in self.critic.critique(sent)
        ]

    @property
    def spec(self):
        """The critic's spec (``CriticSpec``; a server's from ``GET /spec``), None if a server cannot say."""
        try:
            return self.critic.spec
        except ConnectionError:
            return None

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


def run(config: EvalConfig, judge: Any = None, actor: Any = None, meta: Any = None) -> dict[str, Any]:
    """Evaluate on every benchmark; returns ``{bench: metrics}`` and writes the outputs.

    A benchmark that cannot be evaluated (no usable rows, files that cannot be read) gets
    ``{"error": ...}`` in place of its metrics, and the others still run. ``judge`` replaces the
    configured critic (any callable with ``Judge``'s interface: the tests' oracle and constant
    critics); ``actor`` replaces the configured actor of ``refine``; ``meta`` the configured meta RM
    (anything with ``MetaRM.scores``; ``config.meta_rm`` still names it in the saved settings).
    """
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if meta is None and config.meta_rm:
        from critics.judging.meta import MetaRM

        meta = MetaRM.from_pretrained(config.meta_rm, device=config.device)
    results: dict[str, Any] = {}
    try:
        judge = judge or Judge(config)
        try:
            for spec in config.benches:
                try:
                    results[spec] = run_bench(spec, judge, config, out, actor, meta)
                except UnusableBenchmark as exc:
                    logger.error("critics eval: %s: %s", spec, exc)
                    results[spec] = failed_bench(spec, exc, out)
            critic = critic_spec(judge)
        finally:
            judge.close()
    finally:
        if meta is not None and hasattr(meta, "close"):
            meta.close()
    settings = {k: v for k, v in asdict(config).items() if k not in ("api_key", "progress")}
    summary = {
        "target": config.target,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "critic": critic,
        "settings": settings,
        "benchmarks": results,
    }
    (out / "metrics.json").write_text(json.dumps(plain(summary), indent=2, default=_json_default))
    from critics.eval.report import write_report

    write_report(out, summary)
    if config.card and not config.remote:
        append_to_card(Path(config.target), summary)
    return results


def run_bench(
    spec: str, judge: Judge, config: EvalConfig, out: Path, actor: Any = None, meta: Any = None
) -> dict[str, Any]:
    """Load, judge what is not yet saved (``meta``: and score it with the meta RM), vote, score one benchmark."""
    name, path = parse_bench(spec)
    folder = out / folder_name(name, path)
    folder.mkdir(parents=True, exist_ok=True)
    scalar = judge.scalar if judge.scalar is not None else probe_scalar(judge, name, path, config.seed)
    bench: Benchmark = BENCHMARKS.get(name)(path, config.limit or None, scalar, config.seed)
    items, quarantine = load_items(bench, folder)
    ranked = meta is not None and not scalar
    if config.meta_rm and not ranked:
        logger.warning("critics eval: %s: a scalar critic's scores are not judgments: no meta vote", spec)
    methods = vote_methods(items, config.vote, meta=ranked)  # the first is the run's; k > 1: a curve each
    check_resume(folder, resume_settings(config, spec), config.limit, items)
    saved, texts, too_long, trust = judge_missing(
        items,
        judge,
        config.samples,
        config.batch_size,
        folder / "predictions.jsonl",
        spec,
        config.progress,
        meta if ranked else None,
    )
    keys = [
        [[request_key(item, r, s) for s in range(config.samples)] for r in range(len(item.requests))] for item in items
    ]
    failed = sum(k not in saved for item in keys for request in item for k in request)  # retried next run
    invalid = sum(k in saved and saved[k] is None for item in keys for request in item for k in request)
    samples = [[[saved.get(k) for k in request] for request in item] for item in keys]
    scores = [[[trust.get(k) for k in request] for request in item] for item in keys]
    keep = meta_keep(config, judge) if "meta" in methods else None
    if bench.needs_actor:
        bench.critiques = [[texts.get(request[0], "") for request in item] for item in keys]
        bench.actor = actor or make_eval_actor(config)
    ks = range(1, config.samples + 1)
    voted = {
        (m, j): [
            [
                vote(request[:j], scalar, r.payload["task"], m, trust=meta_scores[:j], keep=keep and min(keep, j))
                for request, meta_scores, r in zip(item_samples, item_scores, item.requests)
            ]
            for item_samples, item_scores, item in zip(samples, scores, items)
        ]
        for m in methods
        for j in ks
    }
    final = voted[(methods[0], config.samples)]
    metrics = bench.score(items, final)
    metrics.update(
        name=name,
        path=path,
        label=folder.name,
        items=len(items),
        quarantined=len(quarantine),
        scalar=scalar,
        failed_requests=failed,
        invalid_verdicts=invalid,
        too_long=too_long,
        subset_items=dict(Counter(item.subset for item in items)),
        breakdown=bench.breakdown(items, final),
        by_vote={m: {j: headline(name, bench.score(items, voted[(m, j)]))[0] for j in ks} for m in methods}
        if config.samples > 1
        else {},
        headline=headline(name, metrics),
        **({"meta_keep": keep or "half of k"} if "meta" in methods else {}),
    )
    metrics["by_k"] = metrics["by_vote"].get(methods[0], {})  # the run's own vote, as before
    (folder / "metrics.json").write_text(json.dumps(plain(metrics), indent=2, default=_json_default))
    return metrics


def load_items(bench: Benchmark, folder: Path) -> tuple[list[Item], list[dict[str, Any]]]:
    """The benchmark's items, its quarantine written to ``folder``; ``UnusableBenchmark`` when its files
    cannot be read or no row is usable."""
    try:
        items, quarantine = bench.load()
    except (ValueError, OSError) as exc:  # a missing or empty file, an unreachable hub copy
        raise UnusableBenchmark(f"cannot read it: {exc}") from exc
    _write_jsonl(folder / "quarantine.jsonl", quarantine)
    if not items:
        raise UnusableBenchmark(
            f"no usable items ({len(quarantine)} quarantined; see {folder / 'quarantine.jsonl'})", len(quarantine)
        )
    return items, quarantine


def failed_bench(spec: str, error: Exception, out: Path) -> dict[str, Any]:
    """The entry of a benchmark that could not be evaluated: its error, and no numbers."""
    name, path = parse_bench(spec)
    entry = {
        "name": name,
        "path": path,
        "label": folder_name(name, path),
        "error": str(error),
        "items": 0,
        "quarantined": getattr(error, "quarantined", 0),
        "failed_requests": 0,
        "invalid_verdicts": 0,
        "too_long": 0,
        "headline": (float("nan"), HEADLINE.get(name, ("accuracy", "accuracy"))[1]),
    }
    folder = out / entry["label"]
    if folder.is_dir():
        (folder / "metrics.json").write_text(json.dumps(plain(entry), indent=2, default=_json_default))
    return entry


def folder_name(name: str, path: str | None) -> str:
    """The benchmark's folder under ``output_dir`` (and its label in the report)."""
    return name if path is None else f"{name}-{Path(path).stem}"


def critic_spec(judge: Any) -> dict[str, Any] | None:
    """The spec the critic judged by, as ``critic_spec.json`` writes it; None when it is unknown."""
    spec = getattr(judge, "spec", None)
    return spec.to_dict() if spec is not None else None


def resume_settings(config: EvalConfig, spec: str) -> dict[str, Any]:
    """What saved judgments depend on, besides the sample (``critics.eval.predictions.check_resume``)."""
    meta = {"meta_rm": config.meta_rm} if config.meta_rm else {}  # saved meta scores are that meta RM's
    return {
        "target": config.target,
        "bench": spec,
        **meta,
        "samples": config.samples,
        "temperature": config.temperature,
        "style": config.style,
        "think": config.think,
        "max_new_tokens": config.max_new_tokens,
        "spec": config.spec,
        "seed": config.seed,
    }


def make_eval_actor(config: EvalConfig):
    """The actor of the ``refine`` benchmark: a checkpoint in process, or an OpenAI-compatible endpoint."""
    from critics.actors import ActorSettings, make_actor

    length = config.max_new_tokens or ActorSettings.max_new_tokens  # the critic's override, else the actor's default
    if config.actor.startswith(("http://", "https://")):
        return make_actor(
            ActorSettings(
                kind="openai",
                model=config.actor_model or "actor",
                base_url=config.actor,
                style=config.actor_style,
                max_new_tokens=length,
            )
        )
    return make_actor(
        ActorSettings(
            kind="transformers",
            model=config.actor,
            style=config.actor_style,
            max_new_tokens=length,
            device=config.device,
        )
    )


def vote(
    values: list[Any],
    scalar: bool,
    task_name: str = "pointwise",
    method: str | None = None,
    trust: list[float | None] | None = None,
    keep: int | None = None,
) -> Any:
    """The voted verdict of a request's samples (``critics.judging.votes.combine``; None: the task's
    default vote; ``meta``: ``combine_meta`` with the samples' meta RM scores ``trust`` and ``keep``);
    a scalar model has one score per request.

    >>> vote([[9, 2], [2, 9], [8, 3]], False, "listwise", "meta", trust=[0.9, 0.1, 0.7], keep=2)
    (17, 5)
    """
    if scalar:
        return values[0]
    method = vote_method(method, task_name)
    if method == "meta":
        return combine_meta(values, trust if trust is not None else [None] * len(values), task_name, keep)
    return combine(values, method)


def meta_keep(config: EvalConfig, judge: Any) -> int | None:
    """How many samples ``meta`` keeps: ``config.meta_keep``, else the critic spec's (None: half)."""
    if config.meta_keep is not None:
        return config.meta_keep
    return getattr(getattr(judge, "spec", None), "meta_keep", None)


def vote_methods(items: list[Item], chosen: str | None = None, meta: bool = False) -> list[str]:
    """The votes a benchmark is scored by: ``chosen`` (the run's ``--vote``; ``ValueError`` when it cannot
    combine the benchmark's verdicts) or its task's default first, then the other votes that can
    combine its verdicts (score lists: sum, mean, majority, and meta when ``meta``, a meta RM
    scores the samples; boxed verdicts: majority only)."""
    defaults = {vote_method(None, r.payload["task"]) for item in items for r in item.requests}
    methods = ["sum", "mean", "majority"] if defaults == {"sum"} else sorted(defaults)
    if meta and defaults == {"sum"}:
        methods.append("meta")
    if chosen is not None:
        for name in {r.payload["task"] for item in items for r in item.requests}:
            vote_method(chosen, name)
        methods = [chosen, *[m for m in methods if m != chosen]]
    return methods


def probe_scalar(judge: Judge, name: str, path: str | None, seed: int = 0) -> bool:
    """Whether a remote critic is a scalar model: judge one request of the benchmark and see."""
    try:
        items, _ = BENCHMARKS.get(name)(path, 1, False, seed).load()
    except (ValueError, OSError):  # unreadable: loading it again reports why
        return False
    if items:
        judge([items[0].requests[0].payload])
    return bool(judge.scalar)


def headline(name: str, metrics: dict[str, Any]) -> tuple[float, str]:
    """The one number a benchmark is known by, and its name."""
    metric, label = HEADLINE.get(name, ("accuracy", "accuracy"))
    if name not in HEADLINE and not math.isnan(metrics.get("rewardbench_score", float("nan"))):
        metric, label = "rewardbench_score", "RewardBench score"
    return metrics[metric], label


def append_to_card(checkpoint: Path, summary: dict[str, Any]) -> None:
    """Append the results table to the checkpoint's ``README.md`` (created if missing)."""
    from critics.eval.report import results_table

    card = checkpoint / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else f"# {checkpoint.name}\n"
    text = (
        text.rstrip("\n")
        + f"\n\n## Evaluation ({summary['date'][:10]}, `critics eval`)\n\n"
        + results_table(summary)
        + "\n"
    )
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
