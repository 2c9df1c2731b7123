"""RLAC's checks and rewards: the critic's prompt, the validator with its call counters, the two
rewards, and the audit (``critics.recipes.rlac`` drives them)."""

from __future__ import annotations

import json
import random
from typing import Any

from critics.judging.checks import parse_check, resolve_check
from critics.judging.generation import LoadedModel
from critics.judging.generation import generate as engine_generate
from critics.judging.tasks import render
from critics.rewards.base import completion_text, reward_rows


def critic_prompt(prompt: str, output: str, validator: str) -> list[dict[str, str]]:
    """The critic's chat prompt (the ``adversarial`` task's template): the task, the output, and the
    request for one check in ``\\boxed{}``."""
    return render({"task": "adversarial", "question": prompt, "output": output, "validator": validator})


class Checker:
    """The validator and the counters of one run: parse a critique's check, fall back, validate."""

    def __init__(self, validator: str, fallback: str, seed: int):
        from data_pipelines.verifiers.validators import VALIDATORS

        self.name, self.fallback = validator, fallback
        self.validator = VALIDATORS.get(validator)()
        self.rng = random.Random(seed)
        self.calls = self.exhaustive = self.invalid = self.fallbacks = 0

    def check(self, critique: str, output: str, spec: dict[str, Any]) -> tuple[str | None, str]:
        """The check to run for one critique (None: none, with fallback ``none``) and how it was chosen."""
        parsed = parse_check(critique, self.name, quoted=[output])
        check, extra, how = resolve_check(parsed, output, spec, self.validator, self.rng, self.fallback)
        self.calls += extra
        self.invalid += parsed.check is None
        self.fallbacks += bool(extra)
        return check, how

    def validate(self, output: str, check: str, spec: dict[str, Any], generator: bool = False) -> str:
        """``pass``, ``fail`` or ``invalid``: one validator call. For a generator output (``generator``)
        also count what checking it exhaustively would have cost, the baseline of the accounting."""
        self.calls += 1
        if generator:
            self.exhaustive += len(self.validator.all_checks(output, spec))
        return self.outcome(output, check, spec)

    def truly_correct(self, output: str, spec: dict[str, Any]) -> bool:
        """Exhaustive validation (the audit): every check passes."""
        checks = self.validator.all_checks(output, spec)
        return bool(checks) and all(self.outcome(output, c, spec) == "pass" for c in checks)

    def outcome(self, output: str, check: str, spec: dict[str, Any]) -> str:
        result = self.validator.validate(output, check, spec).outcome
        return str(getattr(result, "value", result))

    def counters(self) -> dict[str, int]:
        return {
            "validator_calls": self.calls,
            "exhaustive_calls": self.exhaustive,
            "invalid_checks": self.invalid,
            "fallback_checks": self.fallbacks,
        }


def generate(lm: LoadedModel, conversations: list[list[dict]], max_new_tokens: int, temperature: float) -> list[str]:
    """Completions of chat prompts with no gradients (the frozen side of a round)."""
    return engine_generate(lm, conversations, max_new_tokens=max_new_tokens, temperature=temperature, batch_size=128)


class GeneratorReward:
    """1.0 when the critic's check passes on the completion, 0.0 when it fails; ``None`` when no check
    could be run (fallback ``none``) or the validator calls the check invalid.

    With ``config.explore`` > 0 that share of completions is scored by one uniformly random check
    instead (still one validator call), so no part of an output goes unchecked for long: a critic
    that settles on a few checks otherwise leaves the rest of the output free to drift."""

    __name__ = "rlac_generator_reward"

    def __init__(
        self,
        checker: Checker,
        critic: LoadedModel,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        explore: float = 0.0,
        seed: int = 0,
    ):
        self.checker, self.critic, self.explore = checker, critic, explore
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.rng = random.Random(seed + 7)
        self.explored = 0

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        rows = reward_rows(len(completions), kwargs)
        outputs = [completion_text(c) for c in completions]
        specs = [json.loads(row["spec"]) for row in rows]
        explored = [self._random_check(output, spec) for output, spec in zip(outputs, specs)]
        asked = [i for i, check in enumerate(explored) if check is None]  # the critic writes only these checks
        critiques = dict(
            zip(
                asked,
                generate(
                    self.critic,
                    [critic_prompt(rows[i]["prompt_text"], outputs[i], self.checker.name) for i in asked],
                    self.max_new_tokens,
                    self.temperature,
                ),
            )
        )
        out: list[float | None] = []
        for i, (output, spec) in enumerate(zip(outputs, specs)):
            check = explored[i] if i not in critiques else self.checker.check(critiques[i], output, spec)[0]
            if check is None:
                self.checker.exhaustive += len(self.checker.validator.all_checks(output, spec))
            outcome = self.checker.validate(output, check, spec, generator=True) if check is not None else "invalid"
            out.append({"pass": 1.0, "fail": 0.0}.get(outcome))
        return out

    def _random_check(self, output: str, spec: dict[str, Any]) -> str | None:
        """With probability ``explore``, one uniformly random check for ``output``; else None."""
        checks = self.checker.validator.all_checks(output, spec) if self.explore else []
        if not checks or self.rng.random() >= self.explore:
            return None
        self.explored += 1
        return self.rng.choice(checks)


class CriticReward:
    """1.0 when the critic's check fails the output (an error found), 0.0 when it passes;
    ``invalid_reward`` for a missing, malformed or invalid check (never a pass, never a find)."""

    __name__ = "rlac_critic_reward"

    def __init__(self, checker: Checker, invalid_reward: float = 0.0):
        self.checker, self.invalid_reward = checker, invalid_reward

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        rows = reward_rows(len(completions), kwargs)
        out = []
        for row, completion in zip(rows, completions):
            spec, output = json.loads(row["spec"]), row["output"]
            parsed = parse_check(completion_text(completion), self.checker.name, quoted=[output])
            if parsed.check is None:
                self.checker.invalid += 1
                out.append(self.invalid_reward)
                continue
            outcome = self.checker.validate(output, parsed.check, spec)
            out.append({"fail": 1.0, "pass": 0.0}.get(outcome, self.invalid_reward))
        return out


def audit(checker: Checker, rows, outputs: list[str], critiques: list[str]) -> dict[str, float]:
    """Validator pass rate (one critic check per output) against true correctness (all checks)."""
    passed = truly = 0
    for row, output, critique in zip(rows, outputs, critiques):
        check, _ = checker.check(critique, output, row["spec"])
        passed += check is not None and checker.outcome(output, check, row["spec"]) == "pass"
        truly += checker.truly_correct(output, row["spec"])
    n = max(len(outputs), 1)
    return {"validator_pass_rate": passed / n, "true_correctness": truly / n}
