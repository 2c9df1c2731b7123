"""The ``critics`` command: parses arguments, loads a config, calls one function.

critics data build CONFIG [key=value ...]   build a critique dataset (data_pipelines.build)
critics data sample CONFIG [k=v ...]        sample an actor's solutions -> on-policy pointwise records
critics train CONFIG [--resume] [k=v ...]   train a critic with the recipe the config names
    [--nproc N [--accelerate-config FILE]]   ... on N processes (accelerate launch on CUDA, torchrun on a CPU)
critics demo                                data -> SFT -> GRPO on a laptop, nothing downloaded
critics serve CHECKPOINT [--port 8000 ...]  serve a critic over HTTP (critics.serving.server)
critics eval TARGET --bench NAME[:PATH]     evaluate a critic on benchmarks (critics.eval.run)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from critics.judging.tasks import TASKS
from critics.judging.templates import STYLES
from critics.judging.votes import VOTES


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``critics`` console script; returns the exit status."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    from critics.config import ConfigError
    from data_pipelines.files import OutputError
    from data_pipelines.sources.base import EmptySourceError

    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"critics: config error: {exc}", file=sys.stderr)
        return 2
    except (
        FileNotFoundError,
        FileExistsError,
        EmptySourceError,
    ) as exc:  # a missing or empty input, or --resume needed
        print(f"critics: {exc}", file=sys.stderr)
        return 2
    except OutputError as exc:  # a full, read-only or forbidden output folder: the path and the cause, no traceback
        print(f"critics: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:  # an optional extra that is not installed (vLLM): what to install
        if "pip install" not in str(exc):
            raise
        print(f"critics: {exc}", file=sys.stderr)
        return 2


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="critics", description="Critic and judge models for LLMs.")
    verbs = parser.add_subparsers(metavar="COMMAND")

    data = verbs.add_parser("data", help="build critique datasets").add_subparsers(metavar="ACTION")
    data_build = data.add_parser("build", help="load -> build -> verify -> save a dataset")
    data_build.add_argument("config", help="YAML config (see configs/data/)")
    data_build.add_argument(
        "overrides", nargs="*", metavar="key=value", help="override config keys, e.g. num_proc=2 builder.balance=false"
    )
    data_build.add_argument("--no-progress", action="store_true", help="hide progress bars")
    data_build.set_defaults(func=data_build_command)
    data_sample = data.add_parser("sample", help="sample an actor's solutions, label them, write pointwise records")
    data_sample.add_argument("config", help="YAML config (see configs/data/onpolicy_*.yaml)")
    data_sample.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="override config keys, e.g. sampling.samples=4 actor.model=PATH",
    )
    data_sample.add_argument("--no-progress", action="store_true", help="hide progress bars")
    data_sample.set_defaults(func=data_sample_command)

    train = verbs.add_parser("train", help="train a critic (the config's `recipe:` picks the recipe)")
    train.add_argument("config", help="YAML config (see configs/recipes/)")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. run.max_steps=10")
    train.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")
    train.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train on N processes (GPUs): accelerate launch on CUDA, torchrun (gloo) on a CPU; prints the line",
    )
    train.add_argument(
        "--accelerate-config",
        metavar="FILE",
        help="the accelerate config of --nproc (default configs/accelerate/ddp.yaml; zero2.yaml, zero3.yaml)",
    )
    train.set_defaults(func=train_command)

    demo = verbs.add_parser("demo", help="see the suite work on a laptop (generated data, no downloads)")
    demo.add_argument("--output-dir", default="outputs/demo")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="hide progress bars")
    demo.add_argument(
        "--policy",
        action="store_true",
        help="then train a judge, serve it over HTTP and train a tiny policy against it (about 4 more minutes)",
    )
    demo.add_argument(
        "--vlm",
        action="store_true",
        help="the multimodal demo instead: a tiny vision-language critic judges drawn shapes (about 2 minutes)",
    )
    demo.set_defaults(func=demo_command)
    add_serve_parser(verbs)
    add_eval_parser(verbs)
    return parser


def add_eval_parser(verbs) -> None:
    """``critics eval``: the options map one to one onto ``critics.eval.run.EvalConfig``."""
    ev = verbs.add_parser("eval", help="evaluate a critic on benchmarks (in process, or a server via its URL)")
    ev.add_argument("target", metavar="CHECKPOINT_OR_URL", help="a checkpoint folder or hub name, or http://host:port")
    ev.add_argument("--url", action="store_true", help="TARGET is the URL of `critics serve` (also implied by http://)")
    ev.add_argument(
        "--bench",
        action="append",
        required=True,
        metavar="NAME[:PATH]",
        help=f"{', '.join(benchmark_names())}; PATH reads a local file or folder instead of the hub "
        "(repeat for several)",
    )
    ev.add_argument("--output-dir", default="outputs/eval")
    ev.add_argument("--samples", type=int, default=1, help="critiques per request, voted (needs --temperature > 0)")
    ev.add_argument("--vote", choices=list(VOTES), help="how samples combine (default: the task's; meta: --meta-rm)")
    ev.add_argument("--meta-rm", help="a meta RM folder (recipe meta_rm): scores each sample, adds the meta vote")
    ev.add_argument("--meta-keep", type=int, help="samples the meta vote keeps (default: the spec's, else half)")
    ev.add_argument("--temperature", type=float, help="override the critic spec's judging temperature")
    ev.add_argument("--style", choices=list(STYLES), help="override the critic spec's prompt template")
    ev.add_argument(
        "--think", action=argparse.BooleanOptionalAction, default=None, help="override the critic spec's think block"
    )
    ev.add_argument("--max-new-tokens", type=int, help="override the critic spec's judgment length")
    ev.add_argument("--spec", help="a spec file or built-in name, for a checkpoint without its own (a released judge)")
    ev.add_argument("--batch-size", type=int, default=64, help="requests judged and saved at a time")
    ev.add_argument(
        "--limit",
        type=int,
        default=0,
        help="items per benchmark: a sample stratified by subset, drawn with --seed (0: all); "
        "rerun with a larger limit to judge only the new items",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    ev.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ev.add_argument("--api-key", default=None, help="the server's key (default: $CRITICS_API_KEY)")
    ev.add_argument("--card", action="store_true", help="append the results to the checkpoint's model card")
    ev.add_argument(
        "--actor", default="", help="refine: the actor's checkpoint, or the base URL of an OpenAI-compatible endpoint"
    )
    ev.add_argument("--actor-model", default="", help="refine: the actor's served model name (with a URL --actor)")
    ev.add_argument("--actor-style", choices=["default", "compact"], default="default")
    ev.add_argument("--no-progress", action="store_true", help="hide progress bars")
    ev.set_defaults(func=eval_command)


def eval_command(args: argparse.Namespace) -> int:
    from critics.config import ConfigError
    from critics.eval.run import EvalConfig, run

    if args.url and not args.target.startswith(("http://", "https://")):
        args.target = f"http://{args.target}"
    try:
        config = EvalConfig(
            target=args.target,
            benches=args.bench,
            output_dir=args.output_dir,
            samples=args.samples,
            vote=args.vote,
            meta_rm=args.meta_rm,
            meta_keep=args.meta_keep,
            temperature=args.temperature,
            style=args.style,
            think=args.think,
            spec=args.spec,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            limit=args.limit,
            device=args.device,
            seed=args.seed,
            api_key=args.api_key,
            card=args.card,
            actor=args.actor,
            actor_model=args.actor_model,
            actor_style=args.actor_style,
            progress=not args.no_progress,
        )
    except (ValueError, KeyError) as exc:
        raise ConfigError(exc.args[0] if exc.args else str(exc)) from None
    results = run(config)
    for spec, metrics in results.items():
        if "error" in metrics:
            print(f"  {spec:<24} not evaluated: {metrics['error']}")
            continue
        value, label = metrics["headline"]
        shown = "—" if value != value else f"{value:.3f}"
        print(
            f"  {spec:<24} {label} {shown} ({metrics['items']} items, {metrics['quarantined']} quarantined, "
            f"{metrics['invalid_verdicts']} without a valid verdict, {metrics['failed_requests']} failed requests)"
        )
    print(f"report: {config.output_dir}/report.md")
    return 1 if any("error" in m for m in results.values()) else 0


def add_serve_parser(verbs) -> None:
    """``critics serve``: options of the critic (its spec, ``Critic``) and of the server (``ServerSettings``).

    Options left out keep the checkpoint's spec and the defaults of those classes (their one home),
    so they default to None here; a spec field given is an override, logged when the server starts.
    """
    serve = verbs.add_parser(
        "serve",
        help="serve a critic over HTTP (OpenRLHF, OpenAI and native endpoints)",
        description="The critic is prompted and read as its spec (critic_spec.json) says; the "
        "spec options below override single fields of it. Other defaults: those "
        "of critics.serving.Critic and ServerSettings.",
    )
    serve.add_argument("checkpoint", help="a checkpoint folder (or, with --backend openai, the endpoint's model)")
    serve.add_argument("--host", help="default 127.0.0.1")
    serve.add_argument("--port", type=int, help="default 8000")
    serve.add_argument(
        "--api-key",
        default=os.environ.get("CRITICS_API_KEY"),
        help="require this key (Bearer or X-API-Key); default: $CRITICS_API_KEY, else none",
    )
    serve.add_argument("--backend", default="transformers", choices=["transformers", "vllm", "openai"])
    serve.add_argument("--base-url", help="the OpenAI-compatible endpoint (--backend openai only)")
    serve.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where the transformers backend runs the model",
    )
    serve.add_argument("--spec", help="a spec file or built-in name (internlm_polar), for a model without its own")
    serve.add_argument("--task", choices=list(TASKS), help="spec override: the default task of items")
    serve.add_argument("--style", choices=list(STYLES), help="spec override: the prompt template")
    serve.add_argument(
        "--think", action=argparse.BooleanOptionalAction, default=None, help="spec override: think first"
    )
    serve.add_argument("--max-new-tokens", type=int, help="spec override: the judgment length")
    serve.add_argument("--temperature", type=float, help="spec override: the judging temperature")
    serve.add_argument(
        "--samples", type=int, help="spec override: judgments sampled per item and voted (needs a temperature > 0)"
    )
    serve.add_argument("--vote", choices=list(VOTES), help="spec override: how samples combine (default: the task's)")
    serve.add_argument("--meta-rm", help="a meta RM folder (recipe meta_rm) for --vote meta")
    serve.add_argument("--max-samples", type=int, help="most samples per item a /score request may ask (default 16)")
    serve.add_argument(
        "--max-new-tokens-limit",
        type=int,
        help="cap on a chat request's max_tokens (default: the spec's max_new_tokens)",
    )
    serve.add_argument(
        "--soft", action="store_true", default=None, help="score by the verdict's probability (transformers backend)"
    )
    serve.add_argument("--max-batch-size", type=int)
    serve.add_argument("--max-wait-ms", type=float)
    serve.add_argument("--max-queue", type=int)
    serve.add_argument("--max-body-bytes", type=int)
    serve.add_argument("--max-items-per-request", type=int)
    serve.add_argument("--invalid-reward", type=float, help="/get_reward's reward for an output without a verdict")
    serve.add_argument("--served-model-name", help="the model name of the OpenAI endpoints (default: the folder name)")
    serve.add_argument(
        "--graceful-timeout",
        dest="graceful_timeout_s",
        type=float,
        help="seconds requests in flight get on SIGTERM before waiting callers get 503 (default 30)",
    )
    serve.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--access-log", action="store_true", default=None, help="log every request")
    serve.set_defaults(func=serve_command)


def data_build_command(args: argparse.Namespace) -> int:
    from critics.config import load_config
    from data_pipelines import BuildConfig, build

    config = load_config(BuildConfig, args.config, args.overrides)
    result = build(config, progress=not args.no_progress)
    print_summary(result)
    return 0


def data_sample_command(args: argparse.Namespace) -> int:
    from critics import onpolicy
    from critics.config import load_config

    config = load_config(onpolicy.SampleConfig, args.config, args.overrides)
    report = onpolicy.run(config, progress=not args.no_progress)
    print(
        f"wrote {sum(report['labels'].values()):,} records to {config.output_dir}: labels {report['labels']} "
        f"(before balancing {report['labels_before_balance']}), actor pass@1 {report['pass@1']:.3f}, "
        f"{report['quarantined']} quarantined"
    )
    return 0


def recipes() -> dict[str, tuple[type, object]]:
    """Recipe name -> (config class, module with ``run``); the one place that lists them."""
    from critics.recipes import (
        critic_rl,
        critique_grpo,
        critique_rl,
        grm,
        meta_rm,
        polar,
        policy_grpo,
        refcritic,
        rlac,
        sft,
    )

    return {
        "sft": (sft.SFTRecipeConfig, sft),
        "critic_rl": (critic_rl.CriticRLConfig, critic_rl),
        "critique_rl": (critique_rl.CritiqueRLConfig, critique_rl),
        "refcritic": (refcritic.RefCriticConfig, refcritic),
        "polar": (polar.PolarConfig, polar),
        "rlac": (rlac.RLACConfig, rlac),
        "policy_grpo": (policy_grpo.PolicyGRPOConfig, policy_grpo),
        "grm": (grm.GRMConfig, grm),
        "meta_rm": (meta_rm.MetaRMConfig, meta_rm),
        "critique_grpo": (critique_grpo.CritiqueGRPOConfig, critique_grpo),
    }


def load_recipe_config(path: str, overrides: list[str]):
    """``(config, module)`` for a recipe YAML: its ``recipe:`` key picks the config class."""
    from critics.config import ConfigError, apply_overrides, from_dict, load_yaml
    from data_pipelines.registry import did_you_mean

    data = apply_overrides(load_yaml(path), overrides)
    name = data.pop("recipe", None)
    known = recipes()
    if name not in known:
        raise ConfigError(
            f"{path}: 'recipe' must name one of {', '.join(known)}"
            + (f"; got '{name}'{did_you_mean(str(name), known)}" if name else "")
        )
    config_class, module = known[name]
    try:
        return from_dict(config_class, data), module
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def train_command(args: argparse.Namespace) -> int:
    from critics.recipes import distributed, launch

    config, module = load_recipe_config(args.config, args.overrides)  # a bad config fails here, once
    if (args.nproc > 1 or args.accelerate_config) and not launch.inside_launcher():
        flags = ["--resume"] * args.resume + ["--no-progress"] * args.no_progress
        return launch.launch([args.config, *args.overrides, *flags], args.nproc, args.accelerate_config)
    result = module.run(config, resume=args.resume, progress=not args.no_progress)
    if not distributed.is_main_process():  # one rank reports
        return 0
    print(f"final checkpoint: {result['final']}")
    for stage, metrics in result["metrics"].items():
        if isinstance(metrics, dict) and "accuracy" in metrics:
            print_accuracy(stage, metrics)
    return 0


def demo_command(args: argparse.Namespace) -> int:
    from critics import demo, demo_vlm

    if args.vlm and args.policy:
        raise SystemExit("critics demo: --policy belongs to the text demo; run it without --vlm")
    if args.vlm:
        output_dir = "outputs/demo_vlm" if args.output_dir == "outputs/demo" else args.output_dir
        result = demo_vlm.run(demo_vlm.VLMDemoSettings(output_dir=output_dir, seed=args.seed), progress=not args.quiet)
    else:
        result = demo.run(demo.DemoSettings(output_dir=args.output_dir, seed=args.seed), progress=not args.quiet)
    print_markdown(result["data"].card_path.read_text(encoding="utf-8"))
    print_summary(result["data"])
    print("\nHeld-out accuracy of the critic (greedy verdicts" + (", with the images):" if args.vlm else "):"))
    sft, grpo = result["sft"]["metrics"], result["grpo"]["metrics"]
    for stage, metrics in (
        ("before", sft["before"]),
        ("after SFT", sft["after SFT"]),
        ("after GRPO", grpo["after GRPO"]),
    ):
        print_accuracy(stage, metrics)
    final = Path(result["grpo"]["final"])
    print(
        f"\ncheckpoint:      {final}\nmodel card:      {final / 'README.md'}\n"
        f"training curves: {final / 'training_curves.png'} (GRPO), "
        f"{Path(result['sft']['final']) / 'training_curves.png'} (SFT)"
    )
    if args.policy:
        demo_policy_command(Path(args.output_dir) / "policy", args.seed, not args.quiet)
    return 0


def demo_policy_command(output_dir: Path, seed: int, progress: bool) -> None:
    """The demo's second half: a judge served over HTTP rewards a policy trained by policy_grpo."""
    from critics import demo_policy

    print(
        "\nTraining a judge on near and far thresholds (the critic above copies a near threshold's "
        "tens digit, which a policy would exploit), serving it over HTTP, and training a policy "
        "(two-digit sums) against it ..."
    )
    result = demo_policy.run(str(output_dir), seed=seed, progress=progress)
    print_accuracy("judge", result["judge"]["sft"]["metrics"]["after SFT"])
    print(
        f"judge served at {result['url']} (POST /score), {result['critic_failed']} unreachable, "
        f"{result['critic_invalid']} without a verdict"
    )
    rewards = result["rewards"]
    print(f"judge's reward during GRPO: {rewards[0]:.3f} (first steps) -> {rewards[-1]:.3f} (last steps)")
    print("Held-out task accuracy of the policy (its sums checked against a+b, which the reward never sees):")
    before, after = result["metrics"]["before"], result["metrics"]["after GRPO"]
    for stage, metrics in (("before", before), ("after GRPO", after)):
        print_accuracy(stage, metrics)
    if rewards[-1] > rewards[0] and after["accuracy"] < before["accuracy"]:
        print(
            "The judge's reward rose while the task accuracy fell: the policy learned what the judge "
            "misjudges. Audit a critic before you optimise against it."
        )
    print(f"judge checkpoint: {result['critic']}\npolicy checkpoint: {result['final']}")


def serve_command(args: argparse.Namespace) -> int:
    from critics.config import ConfigError
    from critics.serving import Critic
    from critics.serving.server import ServerSettings, serve

    if (args.backend == "openai") != (args.base_url is not None):
        raise ConfigError("--base-url goes with --backend openai, and --backend openai needs --base-url")
    given = {k: v for k, v in vars(args).items() if v is not None}
    settings = ServerSettings(
        served_model_name=args.served_model_name or Path(args.checkpoint.rstrip("/")).name,
        **_pick(
            given,
            "host",
            "port",
            "api_key",
            "max_body_bytes",
            "max_items_per_request",
            "invalid_reward",
            "log_level",
            "access_log",
            "max_new_tokens_limit",
            "graceful_timeout_s",
            "max_samples",
        ),
    )
    options = {"transformers": {"device": args.device}, "openai": {"base_url": args.base_url}}.get(args.backend, {})
    critic = Critic.from_pretrained(
        args.checkpoint,
        backend=args.backend,
        backend_options=options,
        spec=args.spec,
        **_pick(
            given,
            "task",
            "style",
            "think",
            "max_new_tokens",
            "temperature",
            "samples",
            "vote",
            "meta_rm",
            "soft",
            "max_batch_size",
            "max_wait_ms",
            "max_queue",
        ),
    )
    print(f"critics serve: {args.checkpoint} as its spec says: {_spec_line(critic.spec)}", file=sys.stderr)
    serve(critic, settings)
    return 0


def _spec_line(spec) -> str:
    if spec.scalar:
        return f"{spec.layout} scores of {', '.join(spec.tasks)} items"
    return (
        f"{', '.join(spec.tasks)}, {spec.style} template{' + think' if spec.think else ''}, "
        f"{spec.max_new_tokens} new tokens, prompt budget {spec.prompt_budget} tokens"
        + (f", {spec.samples} samples voted by {spec.vote or 'each task default'}" if spec.samples > 1 else "")
    )


def benchmark_names() -> list[str]:
    from critics.eval.benchmarks import BENCHMARKS

    return list(BENCHMARKS.names())


def _pick(values: dict, *names: str) -> dict:
    return {name: values[name] for name in names if name in values}


def print_accuracy(stage: str, m: dict) -> None:
    valid = f", valid verdicts {m['valid']:.0%}" if "valid" in m else ""
    refine = (
        f"; after refinement {m['refine_accuracy']:.3f} (from {m['accuracy_before']:.3f}, "
        f"change rate {m['change_rate']:.2f})"
        if "refine_accuracy" in m
        else ""
    )
    print(f"  {stage:<11} held-out accuracy {m['accuracy']:.3f} ± {m['stderr']:.3f} (n={m['n']}{valid}){refine}")


def print_summary(result) -> None:
    s = result.stats
    cached = " (cached: nothing changed since the last build)" if result.cached else ""
    print(
        f"{s['rows_in']:,} rows in -> {s['rows_out']:,} records + {s['rows_quarantined']:,} "
        f"quarantined{cached}\ndataset: {result.dataset_path}\ncard:    {result.card_path}\n"
        f"quarantine: {Path(result.output_dir) / 'quarantine.jsonl'}"
    )


def print_markdown(text: str) -> None:
    """Render markdown in a terminal (rich), or print it as it is when not on a terminal."""
    if sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        print(text)


if __name__ == "__main__":
    sys.exit(main())
