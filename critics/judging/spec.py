"""The critic spec: what a checkpoint needs to be prompted and read as it was trained.

A trained critic read one prompt layout and wrote one verdict format within a token budget. Every
recipe writes that into the checkpoint as ``critic_spec.json``; ``Critic.from_pretrained``,
``critics serve``, ``critics eval``, ``policy_grpo``, ``kind: self`` actors, ``reward_function``
and the verl adapters read it, and a user overrides single fields (each override is logged once,
when the critic is opened). A served critic publishes it (``GET /spec``, and its ``/v1/models``
entry), so remote clients read it too.

Where the spec comes from, first match wins (``load_spec``):

1. what the caller gives: a ``CriticSpec``, a spec file (``.json`` or ``.yaml``), or a built-in name
   (``BUILTIN_SPECS``: ``internlm_polar`` for the released InternLM POLAR reward models);
2. the checkpoint's ``critic_spec.json``;
3. an older checkpoint of this project: its ``critics_config.yaml`` (template and generation
   length) or ``polar.json`` (a POLAR model's budgets);
4. the documented defaults, with a warning (a hub model was not trained by this project):
   ``CriticSpec()`` for a model that writes (pointwise, pairwise and step items, ``default`` template,
   no think block, 512 new tokens, greedy), ``CriticSpec(layout="reward")`` for a scalar reward model.

>>> spec = CriticSpec(tasks=["pointwise"], style="compact", max_new_tokens=64, context_tokens=1024)
>>> spec.prompt_budget, spec.verdict_format
(960, '\\\\boxed{Correct} or \\\\boxed{Incorrect}')
>>> CriticSpec(style="compct")
Traceback (most recent call last):
...
critics.config.ConfigError: spec.style: unknown template style 'compct' (did you mean 'compact'?)
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critics.config import ConfigError, from_dict, load_yaml
from critics.judging import templates
from critics.judging.polar import LAYOUTS as SCALAR_LAYOUTS
from critics.judging.polar import PolarBudgets
from critics.judging.tasks import GENERATIVE_TASKS, VERDICT_TASKS, task
from critics.judging.votes import VOTES, check_vote
from data_pipelines.registry import as_plain, did_you_mean

SPEC_FILE = "critic_spec.json"
LAYOUTS = ("chat", "reward", *SCALAR_LAYOUTS)
logger = logging.getLogger("critics.spec")


@dataclass
class CriticSpec:
    """How a critic must be prompted and read.

    Args:
        tasks: the tasks it judges (an item of another task is refused); the first is the default
            of items that name none. Default: every task with a boxed verdict, pointwise first.
        style, think: its prompt template (``critics.judging.templates``).
        max_new_tokens: the length of a judgment (what it was trained to write within).
        temperature: judging temperature (0: greedy).
        context_tokens: its model's context; filled from the model when it is loaded.
        prompt_tokens: an explicit prompt budget; None: ``context_tokens - max_new_tokens``.
        truncate: a prompt over budget has its judged text cut in the middle (True) or is refused
            as ``too_long`` (False).
        both_orders: a pairwise critic rewarding a policy judges each pair in both orders and
            averages (position bias cancels).
        layout: ``chat`` (a generative critic: prompt, critique, verdict), ``reward`` (a scalar reward
            model scoring the conversation of a pointwise item's question and response), or a scalar
            reference layout (``polar``, ``internlm_polar``: ``critics.judging.polar``).
        budgets: the scalar layouts' token budgets per part.
        validator: an adversarial critic's check kind (``code``, ``factual``, ``synthetic_sums``).
        trust_remote_code: the checkpoint ships model code that must run to load it.
        samples: judgments sampled per item (test-time scaling); more than 1 needs ``temperature`` > 0
            and votes (``critics.judging.votes``).
        vote: how samples combine: ``sum``, ``majority``, ``mean`` or ``meta``; None: each task's
            default (listwise ``sum``, boxed verdicts ``majority``).
        meta_keep: ``vote: meta``: the samples the meta RM trusts most that vote (None: half, at least 1).
        think_budget: J1's thinking budget in tokens (``critics.judging.generation``): an earlier
            ``</think>`` becomes "Wait", at the budget ``</think>`` is forced; below ``max_new_tokens``.
    """

    tasks: list[str] = field(default_factory=lambda: list(VERDICT_TASKS))
    style: str = "default"
    think: bool = False
    max_new_tokens: int = 512
    temperature: float = 0.0
    context_tokens: int | None = None
    prompt_tokens: int | None = None
    truncate: bool = True
    both_orders: bool = True
    layout: str = "chat"
    budgets: PolarBudgets | None = None
    validator: str | None = None
    trust_remote_code: bool = False
    samples: int = 1
    vote: str | None = None
    meta_keep: int | None = None
    think_budget: int | None = None

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ConfigError("spec.tasks: give at least one task")
        for name in self.tasks:
            try:
                task(name)
            except KeyError as error:
                raise ConfigError(f"spec.tasks: {error.args[0]}") from None
        try:
            templates.check_style(self.style)
        except ValueError as error:
            raise ConfigError(f"spec.style: {error}") from None
        if self.layout not in LAYOUTS:
            raise ConfigError(f"spec.layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        scalar = self.layout != "chat"
        if self.layout == "reward" and self.tasks == list(VERDICT_TASKS):
            self.tasks = ["pointwise"]  # the default list, for a scalar model: it scores single responses
        reads = {"chat": set(GENERATIVE_TASKS), "reward": {"pointwise"}}
        allowed = reads.get(self.layout, {"reference"})
        if not set(self.tasks) <= allowed:
            raise ConfigError(
                f"spec.layout {self.layout!r} reads tasks {', '.join(sorted(allowed))}, not "
                f"{', '.join(t for t in self.tasks if t not in allowed)}"
            )
        if self.layout in SCALAR_LAYOUTS and self.budgets is None:
            self.budgets = PolarBudgets()
        if not scalar and self.max_new_tokens < 1:
            raise ConfigError(f"spec.max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"spec.temperature must be >= 0, got {self.temperature}")
        if self.think_budget is not None and not 1 <= self.think_budget < self.max_new_tokens:
            raise ConfigError(
                f"spec.think_budget must be at least 1 and below spec.max_new_tokens ({self.max_new_tokens}), "
                f"got {self.think_budget}"
            )
        for name in ("context_tokens", "prompt_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"spec.{name} must be a positive int or null, got {value}")
        self._check_votes()

    def _check_votes(self) -> None:
        """``samples``, ``vote`` and ``meta_keep`` (``critics.judging.votes``)."""
        if not isinstance(self.samples, int) or isinstance(self.samples, bool) or self.samples < 1:
            raise ConfigError(f"spec.samples must be a positive int, got {self.samples!r}")
        if self.samples > 1 and self.scalar:
            raise ConfigError(f"spec.samples: a scalar model ({self.layout}) scores once; it cannot sample")
        if self.samples > 1 and self.temperature == 0:
            raise ConfigError(
                f"spec.temperature is 0 (greedy): {self.samples} samples would be one judgment {self.samples} "
                "times; set a temperature > 0 (e.g. 1.0) to vote over samples"
            )
        if self.vote is not None:
            if self.vote not in VOTES:
                raise ConfigError(f"spec.vote: unknown vote '{self.vote}'{did_you_mean(str(self.vote), VOTES)}")
            for name in self.tasks:
                try:
                    check_vote(self.vote, name)
                except ValueError as error:
                    raise ConfigError(f"spec.vote: {error} (spec.tasks: {', '.join(self.tasks)})") from None
        keep = self.meta_keep
        if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or not 1 <= keep <= self.samples):
            raise ConfigError(f"spec.meta_keep must be between 1 and spec.samples ({self.samples}), got {keep!r}")

    @property
    def task(self) -> str:
        """The default task."""
        return self.tasks[0]

    @property
    def scalar(self) -> bool:
        """A scalar model (a reference layout), not a critic that writes."""
        return self.layout != "chat"

    @property
    def prompt_budget(self) -> int | None:
        """Prompt tokens allowed: the explicit budget, capped by what the context leaves after the
        judgment; None when neither is known."""
        left = (
            None if self.context_tokens is None else self.context_tokens - (0 if self.scalar else self.max_new_tokens)
        )
        candidates = [v for v in (self.prompt_tokens, left) if v is not None]
        return max(min(candidates), 1) if candidates else None

    @property
    def verdict_format(self) -> str:
        """The verdict(s) the critic writes, in words (model cards, ``/spec``)."""
        formats = [task(t).verdict_format for t in self.tasks]
        return formats[0] if len(formats) == 1 else "; ".join(f"{t}: {f}" for t, f in zip(self.tasks, formats))

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready values (what ``critic_spec.json`` and ``GET /spec`` hold)."""
        return {**as_plain(self), "prompt_budget": self.prompt_budget, "verdict_format": self.verdict_format}

    def save(self, folder: str | Path) -> Path:
        """Write ``critic_spec.json`` into a checkpoint folder."""
        path = Path(folder) / SPEC_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    def overridden(self, where: str = "", **changes: Any) -> CriticSpec:
        """A copy with ``changes`` (None values ignored), each change logged once."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = [k for k in changes if k not in {f.name for f in dataclasses.fields(self)}]
        if unknown:
            raise ConfigError(f"no spec field {', '.join(unknown)}")
        changed = {k: v for k, v in changes.items() if getattr(self, k) != v}
        for key, value in changed.items():
            logger.warning(
                "%soverriding the critic spec's %s: %r -> %r",
                f"{where}: " if where else "",
                key,
                getattr(self, key),
                value,
            )
        return dataclasses.replace(self, **changed) if changed else self


def spec_from_dict(data: dict[str, Any]) -> CriticSpec:
    """A spec from its JSON/YAML form (derived keys such as ``prompt_budget`` are ignored)."""
    if not isinstance(data, dict):
        raise ConfigError("a critic spec is a mapping of fields to values")
    data = {k: v for k, v in data.items() if k not in ("prompt_budget", "verdict_format")}
    return from_dict(CriticSpec, data, prefix="spec.")


BUILTIN_SPECS: dict[str, CriticSpec] = {
    # internlm/POLAR-1_8B, POLAR-7B (and their -Base): RewardModelClient's defaults (16,384 tokens in
    # all, responses cut to their last 4,096), AutoModel with the checkpoint's remote code.
    "internlm_polar": CriticSpec(
        tasks=["reference"],
        layout="internlm_polar",
        max_new_tokens=0,
        budgets=PolarBudgets(prompt=4096, reference=4096, candidate=4096),
        context_tokens=16384,
        trust_remote_code=True,
    ),
}


def find_spec(given: CriticSpec | str | Path | None = None, checkpoint: str | Path | None = None) -> CriticSpec | None:
    """The spec ``given`` (a spec, a spec file or a built-in name), else the one ``checkpoint`` (a
    folder, or a hub name) carries or implies; None when there is none."""
    if isinstance(given, CriticSpec):
        return given
    if given is not None:
        if str(given) in BUILTIN_SPECS:
            return BUILTIN_SPECS[str(given)]
        path = Path(given)
        if path.is_dir():
            path = path / SPEC_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no critic spec at {given} (built-in specs: {', '.join(BUILTIN_SPECS)})")
        data = json.loads(path.read_text(encoding="utf-8")) if path.suffix == ".json" else load_yaml(path)
        return spec_from_dict(data)
    folder = Path(checkpoint) if checkpoint is not None else None
    if folder is not None and (folder / SPEC_FILE).is_file():
        return spec_from_dict(json.loads((folder / SPEC_FILE).read_text(encoding="utf-8")))
    return _derived(folder) if folder is not None else None


def load_spec(
    given: CriticSpec | str | Path | None = None, checkpoint: str | Path | None = None, kind: str = "causal"
) -> CriticSpec:
    """The spec of a critic (the module docstring's order): ``find_spec``, else the defaults for a
    model of ``kind`` (``scalar`` models default to the ``reward`` layout), with a warning."""
    found = find_spec(given, checkpoint)
    if found is not None:
        return found
    default = CriticSpec(tasks=["pointwise"], layout="reward") if kind == "scalar" else CriticSpec()
    logger.warning(
        "%s carries no critic spec (%s): using the documented defaults (%s); give --spec FILE if it "
        "was trained to read another prompt",
        checkpoint or "the critic",
        SPEC_FILE,
        "a scalar reward model scoring question + response"
        if kind == "scalar"
        else f"pointwise, default template, {default.max_new_tokens} new tokens",
    )
    return default


def _derived(folder: Path) -> CriticSpec | None:
    """The spec of a checkpoint written before specs existed, from the files it does carry."""
    if not folder.is_dir():
        return None
    if (folder / "polar.json").is_file():
        budgets = json.loads((folder / "polar.json").read_text())["budgets"]
        return CriticSpec(tasks=["reference"], layout="polar", max_new_tokens=0, budgets=PolarBudgets(**budgets))
    if not (folder / "critics_config.yaml").is_file():
        return None
    import yaml

    config = yaml.safe_load((folder / "critics_config.yaml").read_text()) or {}
    template = config.get("template") or {}
    length = (config.get("grpo") or {}).get("max_completion_length") or (config.get("eval") or {}).get("max_new_tokens")
    task_name = (config.get("data") or {}).get("task") or "pointwise"
    return CriticSpec(
        tasks=[task_name],
        style=template.get("style", "default"),
        think=bool(template.get("think")),
        max_new_tokens=int(length or CriticSpec().max_new_tokens),
    )
