"""RLAC's checks and rewards: the critic's prompt, the validator with its call counters, the two
rewards, and the audit (``critics.recipes.rlac`` drives them)."""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any

from critics.rewards.base import completion_text, reward_rows

if TYPE_CHECKING:
    from critics.recipes.rlac import RLACConfig


def critic_prompt(prompt: str, output: str, validator: str) -> list[dict[str, str]]:
    """The critic's chat prompt: the task, the output, and the request for one check in ``\\boxed{}``."""
    if validator == "synthetic_sums":
        return [{"role": "user", "content": f"{prompt}\n{output}\nWrong item?"}]
    kind = {"code": "one test input (the call's arguments) on which the program most likely fails",
            "factual": "the one claim of the answer most likely to be false"}.get(validator, "one check most likely to fail")
    return [{"role": "user", "content": f"## Task\n{prompt}\n\n## Answer\n{output}\n\nPropose {kind}. Think first, "
                                        "then put exactly one check in \\boxed{} at the end."}]


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
        from critics.rlac_checks import parse_check, resolve_check

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
        return {"validator_calls": self.calls, "exhaustive_calls": self.exhaustive, "invalid_checks": self.invalid,
                "fallback_checks": self.fallbacks}


def generate(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int, temperature: float) -> list[str]:
    """Completions of chat prompts with no gradients (the frozen side of a round)."""
    from critics.eval.heldout import generate as batched

    was_training = model.training
    try:
        return batched(model, tokenizer, conversations, max_new_tokens=max_new_tokens, batch_size=128,
                       temperature=temperature, progress=False)
    finally:
        model.train(was_training)


class GeneratorReward:
    """1.0 when the critic's check passes on the completion, 0.0 when it fails; ``None`` when no check
    could be run (fallback ``none``) or the validator calls the check invalid.

    With ``config.explore`` > 0 that share of completions is scored by one uniformly random check
    instead (still one validator call), so no part of an output goes unchecked for long: a critic
    that settles on a few checks otherwise leaves the rest of the output free to drift."""

    __name__ = "rlac_generator_reward"

    def __init__(self, checker: Checker, critic_model, critic_tokenizer, config: RLACConfig):
        self.checker, self.model, self.tokenizer, self.config = checker, critic_model, critic_tokenizer, config
        self.rng = random.Random(config.seed + 7)
        self.explored = 0

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        rows = reward_rows(len(completions), kwargs)
        outputs = [completion_text(c) for c in completions]
        specs = [json.loads(row["spec"]) for row in rows]
        explored = [self._random_check(output, spec) for output, spec in zip(outputs, specs)]
        asked = [i for i, check in enumerate(explored) if check is None]  # the critic writes only these checks
        critiques = dict(zip(asked, generate(
            self.model, self.tokenizer,
            [critic_prompt(rows[i]["prompt_text"], outputs[i], self.config.validator) for i in asked],
            self.config.critic.grpo.max_completion_length, self.config.critic_temperature)))
        out: list[float | None] = []
        for i, (output, spec) in enumerate(zip(outputs, specs)):
            check = explored[i] if i not in critiques else self.checker.check(critiques[i], output, spec)[0]
            if check is None:
                self.checker.exhaustive += len(self.checker.validator.all_checks(output, spec))
            outcome = self.checker.validate(output, check, spec, generator=True) if check is not None else "invalid"
            out.append({"pass": 1.0, "fail": 0.0}.get(outcome))
        return out

    def _random_check(self, output: str, spec: dict[str, Any]) -> str | None:
        """With probability ``config.explore``, one uniformly random check for ``output``; else None."""
        checks = self.checker.validator.all_checks(output, spec) if self.config.explore else []
        if not checks or self.rng.random() >= self.config.explore:
            return None
        self.explored += 1
        return self.rng.choice(checks)


class CriticReward:
    """1.0 when the critic's check fails the output (an error found), 0.0 when it passes;
    ``critic_invalid_reward`` for a missing, malformed or invalid check (never a pass, never a find)."""

    __name__ = "rlac_critic_reward"

    def __init__(self, checker: Checker, config: RLACConfig):
        self.checker, self.config = checker, config

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        from critics.rlac_checks import parse_check

        rows = reward_rows(len(completions), kwargs)
        out = []
        for row, completion in zip(rows, completions):
            spec, output = json.loads(row["spec"]), row["output"]
            parsed = parse_check(completion_text(completion), self.config.validator, quoted=[output])
            if parsed.check is None:
                self.checker.invalid += 1
                out.append(self.config.critic_invalid_reward)
                continue
            outcome = self.checker.validate(output, parsed.check, spec)
            out.append({"fail": 1.0, "pass": 0.0}.get(outcome, self.config.critic_invalid_reward))
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
