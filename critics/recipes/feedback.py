r"""Critiques as feedback for a policy: the method of Critique-GRPO, on ``trl.GRPOTrainer``.

One home for the feedback path of ``critique_grpo`` and of ``policy_grpo`` (its ``feedback`` key);
the equations, defaults and their source are in ``critics.recipes.critique_grpo``'s docstring.
Each training step, after TRL has sampled and scored the on-policy group of every prompt:

1. a verifier (``data_pipelines.verifiers``) marks each response right or wrong;
2. the responses chosen (``critique: failed`` or ``all``) get a critique from the ``source``:
   ``critic`` (a ``Critic`` or ``RemoteCritic``, read by its spec), ``self`` (the policy judges
   its own response with the pointwise template), ``indicative`` (a rule: "your answer is wrong")
   or ``with_gold`` (the rule plus the reference answer);
3. the policy writes ``refinements`` revisions of each critiqued response (the conversation:
   prompt, response, critique as the next user turn), scored by the same reward functions;
4. the kept refinements (``keep``) join their prompt's group as off-policy samples **of the
   original prompt**: their ``prompt_ids`` are the original prompt's tokens, so the critique is never
   in what is trained; advantages are recomputed over the mixed group;
5. the loss: TRL's own GRPO loss on the whole batch with the refinements' advantages set to zero
   (so they count in its normalisation but not in its clipped ratio term), plus the shaped term
   ``-A * f(p)``, ``f(p) = p / (p + gamma)`` on each refinement token's probability, no clipping,
   normalised as TRL normalises that ``loss_type``.

The mixin overrides three ``GRPOTrainer`` hooks and calls each ``super()`` first:
``_calculate_rewards`` (keeps the last scores), ``_generate_and_score_completions`` (appends the
refinements) and ``_compute_loss`` (adds the shaped term). ``test_feedback_hooks_exist`` fails if
TRL renames them. Limits: one process, text-only policies without tools, ``loss_type`` grpo, bnpo,
dr_grpo or dapo, ``sum_then_normalize`` rewards; ``check_trainer`` refuses the rest by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from critics.actors import refine_messages
from critics.judging.tasks import render
from critics.rewards.base import completion_text
from critics.serving.adapters import message_text
from critics.serving.remote import UNREACHABLE

SOURCES = ("critic", "self", "indicative", "with_gold")
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
# per-completion tensors the mixin knows how to extend with refinement rows, and their padding value
COMPLETION_KEYS = {"old_per_token_logps": 0.0, "sampling_per_token_logps": 0.0, "ref_per_token_logps": 0.0}
KNOWN_KEYS = {"prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages", "num_items_in_batch"}


@dataclass
class FeedbackSettings:
    """Where critiques come from and what is done with the refinements.

    Args:
        source: ``critic`` (``critic`` is a checkpoint or a ``critics serve`` URL), ``self``,
            ``indicative`` or ``with_gold``.
        critic: the critic for ``source: critic``.
        api_key, timeout: for a served critic.
        critique: ``failed``: only responses the verifier rejects; ``all``: every response.
        refinements: m, revisions per critiqued response.
        keep: ``best``: one refinement per prompt, a correct one if any, else the highest reward
            (the paper's rule); ``correct``: every correct one; ``all``: every one.
        gamma: the shaping constant of f(p) = p / (p + gamma) (paper: 0.1).
        verifier, verifier_options: what marks a response or refinement right (against the
            data's answer column).
        style: ``default`` (the conversation replayed, as Critique-RL's actors) or ``compact``
            (one short user turn, for tiny models); also the self-critique template's style.
        wrong_text, right_text, gold_text: the rule critiques; ``{gold}`` is the reference answer.
        max_critique_chars: a longer critique is cut (bounded input to the refinement prompt).
    """

    source: Literal["critic", "self", "indicative", "with_gold"] = "indicative"
    critic: str = ""
    api_key: str = ""
    timeout: float = 60.0
    critique: Literal["failed", "all"] = "failed"
    refinements: int = 1
    keep: Literal["best", "correct", "all"] = "best"
    gamma: float = 0.1
    verifier: str = "math"
    verifier_options: dict[str, Any] = field(default_factory=dict)
    style: Literal["default", "compact"] = "default"
    wrong_text: str = "Your answer is wrong."
    right_text: str = "Your answer is correct."
    gold_text: str = "Your answer is wrong. The correct answer is {gold}."
    max_critique_chars: int = 4000

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"feedback.source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.source == "critic" and not self.critic:
            raise ValueError("feedback.critic is empty: source 'critic' needs a checkpoint or a URL")
        if self.refinements < 1:
            raise ValueError(f"feedback.refinements must be at least 1, got {self.refinements}")
        if not self.gamma > 0:
            raise ValueError(f"feedback.gamma must be positive, got {self.gamma}")
        if self.source == "with_gold" and "{gold}" not in self.gold_text:
            raise ValueError("feedback.gold_text must contain {gold}: source 'with_gold' gives the reference answer")


def shaping_weight(p, gamma: float = 0.1):
    """Critique-GRPO's policy shaping f(p) = p / (p + gamma), on a refinement token's probability.

    It is near 1 for tokens the policy already finds likely and small for unlikely ones; its
    gradient, gamma / (p + gamma)^2 * p * grad log p, is largest relative to p for unlikely tokens.

    >>> shaping_weight(0.1), shaping_weight(0.9), round(shaping_weight(0.01, gamma=0.1), 4)
    (0.5, 0.9, 0.0909)
    """
    return p / (p + gamma)


def mixed_group_advantages(rewards, groups, scale: str = "none"):
    """Advantages over mixed groups: r_i minus the mean reward of the group (its prompt's on-policy
    samples and kept refinements), divided by the group's std (``group``) or the batch's (``batch``);
    NaN rewards stay out of the baselines and get advantage 0.

    >>> import torch
    >>> mixed_group_advantages(torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]), torch.tensor([0, 0, 0, 0, 1, 1])).tolist()
    [-0.25, -0.25, -0.25, 0.75, 0.0, 0.0]
    """
    import torch

    means = torch.zeros_like(rewards)
    stds = torch.zeros_like(rewards)
    for group in groups.unique():
        rows = groups == group
        means[rows] = torch.nanmean(rewards[rows])
        stds[rows] = _nanstd(rewards[rows])
    advantages = rewards - means
    if scale == "group":
        advantages = advantages / (stds + 1e-4)
    elif scale == "batch":
        advantages = advantages / (_nanstd(rewards) + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0)


def _nanstd(values):
    import torch

    kept = values[~torch.isnan(values)]
    return kept.std() if kept.numel() > 1 else torch.zeros((), dtype=values.dtype)


def select_refinements(groups: Sequence[int], rewards: Sequence[float], correct: Sequence[bool | None], keep: str):
    """The indices of the refinements that join their groups.

    >>> select_refinements([0, 0, 1, 1], [0.0, 1.0, 0.2, 0.5], [False, True, False, False], "best")
    [1, 3]
    >>> select_refinements([0, 0, 1, 1], [0.0, 1.0, 0.2, 0.5], [False, True, False, False], "correct")
    [1]
    """
    if keep == "all":
        return list(range(len(groups)))
    if keep == "correct":
        return [i for i, c in enumerate(correct) if c]
    best: dict[int, int] = {}
    for i, group in enumerate(groups):
        j = best.get(group)
        if j is None or (bool(correct[i]), _num(rewards[i])) > (bool(correct[j]), _num(rewards[j])):
            best[group] = i
    return sorted(best.values())


def _num(value: float) -> float:
    return float("-inf") if value != value else float(value)  # NaN ranks last


def rule_critique(settings: FeedbackSettings, correct: bool, gold: Any) -> str:
    """The ``indicative`` or ``with_gold`` critique of a response the verifier marked ``correct``.

    >>> rule_critique(FeedbackSettings(source="with_gold"), False, "052")
    'Your answer is wrong. The correct answer is 052.'
    >>> rule_critique(FeedbackSettings(source="indicative"), False, "052")
    'Your answer is wrong.'
    """
    if correct:
        return settings.right_text
    if settings.source == "with_gold":
        return settings.gold_text.replace("{gold}", str(gold))
    return settings.wrong_text


def make_critiques(
    settings: FeedbackSettings,
    items: Sequence[dict[str, Any]],
    *,
    critic: Any = None,
    generate: Callable[[list[list[dict]]], list[str]] | None = None,
) -> list[str | None]:
    """A critique of each item (``question``, ``response``, ``correct``, ``gold``), None where the
    source gave none (a critic that could not be reached, or a prompt over its budget).

    ``critic`` serves ``source: critic``; ``generate`` (conversations -> texts) is the policy for ``self``.
    """
    if not items:
        return []
    if settings.source in ("indicative", "with_gold"):
        texts: list[str | None] = [rule_critique(settings, bool(i["correct"]), i.get("gold")) for i in items]
    elif settings.source == "critic":
        judged = critic.critique(
            [{"task": "pointwise", "question": i["question"], "response": i["response"]} for i in items]
        )
        texts = [
            None if c.verdict.reason == UNREACHABLE or c.prompt == "too_long" or not c.text else c.text for c in judged
        ]
    else:
        rows = [{"task": "pointwise", "question": i["question"], "response": i["response"]} for i in items]
        texts = list(generate([render(r, style=settings.style) for r in rows]))
    return [t[: settings.max_critique_chars] if t else None for t in texts]


def refinement_conversation(prompt: Any, response: str, critique: str, style: str) -> list[dict[str, str]]:
    """The conversation that asks the policy to revise ``response``: the original prompt, the
    response, then the critique as the next user turn (``compact``: one short user turn)."""
    question = message_text(prompt, "user")
    if style == "compact":
        return refine_messages(question, response, critique, "compact")
    opening = prompt if isinstance(prompt, list) else [{"role": "user", "content": question}]
    return [*opening, {"role": "assistant", "content": response}, refine_messages(question, response, critique)[-1]]


def verify(settings: FeedbackSettings, texts: Sequence[str], golds: Sequence[Any]) -> list[bool | None]:
    """The verifier's mark of each text against its gold answer (None without a gold answer)."""
    from critics.rewards.answer import AnswerReward

    check = AnswerReward(verifier=settings.verifier, answer_column="gold", options=settings.verifier_options)
    return [None if s is None else s == 1.0 for s in check(None, list(texts), gold=list(golds))]


def check_trainer(trainer) -> None:
    """Refuse, by name, a trainer setup the feedback mixin does not handle."""
    problems = []
    if trainer.loss_type not in LOSS_TYPES:
        problems.append(f"grpo.loss_type {trainer.loss_type!r} (use one of {', '.join(LOSS_TYPES)})")
    if getattr(trainer, "multi_objective_aggregation", "sum_then_normalize") != "sum_then_normalize":
        problems.append("multi_objective_aggregation other than sum_then_normalize")
    if trainer.accelerator.num_processes > 1:
        problems.append("more than one process (refinements join groups that must sit on one process)")
    if getattr(trainer, "tools", None) or getattr(trainer, "environment_factories", None):
        problems.append("tools or environments")
    if trainer.beta != 0.0 and trainer.ref_model is None:
        problems.append("grpo.beta != 0 with a LoRA adapter (no separate reference model)")
    if problems:
        raise NotImplementedError("feedback does not support " + "; ".join(problems))


class FeedbackHooks:
    """``GRPOTrainer`` mixin (list it before ``GRPOTrainer``): critiques, refinements, shaped loss.

    Set ``feedback`` (``FeedbackSettings``), ``answer_column`` and, for ``source: critic``,
    ``feedback_critic`` (a ``Critic`` or ``RemoteCritic``) on the instance.
    """

    feedback: FeedbackSettings | None = None
    feedback_critic: Any = None
    answer_column: str = "answer"

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_scored = (inputs, prompts, completions, rewards)
        return rewards

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        if self.feedback is None or not self.model.training:
            return out
        rows, prompts, completions, rewards = self._last_scored
        return self._with_refinements(out, rows, prompts, completions, rewards)

    def _compute_loss(self, model, inputs):
        flags = inputs.get("refinement")
        base = {k: v for k, v in inputs.items() if k != "refinement"}
        if flags is None or not bool(flags.any()):
            return super()._compute_loss(model, base)
        base["advantages"] = inputs["advantages"].masked_fill(flags, 0.0)
        return super()._compute_loss(model, base) + self._shaped_loss(model, inputs, flags)

    # -- the refinements ---------------------------------------------------------------------

    def _weighted(self, rewards):
        import torch

        total = (rewards * self.reward_weights.to(rewards.device).unsqueeze(0)).nansum(dim=1)
        total[torch.isnan(rewards).all(dim=1)] = torch.nan
        return total

    def _quiet_generate(self, conversations: list[list[dict]]):
        """TRL's own generation (vLLM where configured) for critiques and refinements, keeping its
        per-step completion metrics about the on-policy samples only."""
        metrics = self._metrics["train"]
        saved = {k: list(v) for k, v in metrics.items()}
        try:
            _, ids, _, completions, _, _, _, _ = self._generate(conversations)
        finally:
            metrics.clear()
            metrics.update(saved)
        return ids, [completion_text(c) for c in completions]

    def _with_refinements(self, out, rows, prompts, completions, rewards):
        fb, n = self.feedback, self.num_generations
        texts = [completion_text(c) for c in completions]
        golds = [row.get(self.answer_column) for row in rows]
        correct = verify(fb, texts, golds)
        chosen = [i for i, c in enumerate(correct) if c is not None and (fb.critique == "all" or not c)]
        items = [
            {
                "question": message_text(prompts[i], "user"),
                "response": texts[i],
                "correct": correct[i],
                "gold": golds[i],
            }
            for i in chosen
        ]
        critiques = make_critiques(
            fb, items, critic=self.feedback_critic, generate=lambda c: self._quiet_generate(c)[1]
        )
        pairs = [(i, c) for i, c in zip(chosen, critiques) if c]
        sources = [i for i, _ in pairs for _ in range(fb.refinements)]
        stats = {
            "on_policy_accuracy": _mean([c for c in correct if c is not None]),
            "critiqued": len(chosen) / len(texts),
        }
        stats["critique_missing"] = (len(chosen) - len(pairs)) / len(chosen) if chosen else 0.0
        if not sources:
            return self._log_feedback(out, stats)
        conversations = [
            refinement_conversation(prompts[i], texts[i], c, fb.style) for i, c in pairs for _ in range(fb.refinements)
        ]
        ids, refined = self._quiet_generate(conversations)
        shown = [[{"role": "assistant", "content": t}] for t in refined]
        ref_rewards = self._weighted(
            self._calculate_rewards([rows[i] for i in sources], [prompts[i] for i in sources], shown, ids)
        )
        ref_correct = verify(fb, refined, [golds[i] for i in sources])
        kept = select_refinements([i // n for i in sources], ref_rewards.tolist(), ref_correct, fb.keep)
        kept = kept[: len(kept) - (len(texts) + len(kept)) % self.args.steps_per_generation]  # equal micro-batches
        stats.update(_transitions([correct[i] for i in sources], ref_correct))
        stats.update(kept_share=len(kept) / len(sources), refinement_length=_mean([len(x) for x in ids]))
        self._log_feedback(out, stats)
        if not kept:
            return out
        # one process (check_trainer): the gathered rewards are this process's
        total = self._weighted(rewards)
        return self._append(out, [sources[k] for k in kept], [ids[k] for k in kept], total, ref_rewards[kept])

    def _append(self, out, sources: list[int], ids: list[list[int]], total, ref_total):
        import torch
        import torch.nn.functional as F

        unknown = sorted(set(out) - KNOWN_KEYS - set(COMPLETION_KEYS))
        if unknown:
            raise NotImplementedError(f"feedback cannot extend the batch key(s) {', '.join(unknown)}")
        device, pad = out["completion_ids"].device, self._tokenizer.pad_token_id
        width = max(out["completion_ids"].size(1), max(len(x) for x in ids))
        completion = torch.full((len(ids), width), pad, dtype=out["completion_ids"].dtype, device=device)
        mask = torch.zeros((len(ids), width), dtype=out["completion_mask"].dtype, device=device)
        for k, seq in enumerate(ids):
            completion[k, : len(seq)] = torch.tensor(seq, device=device)
            truncated = self.mask_truncated_completions and seq and seq[-1] not in (*self.eos_token_ids, pad)
            mask[k, : len(seq)] = 0 if truncated else 1
        src = torch.tensor(sources, device=device)

        def widen(t, fill):
            return F.pad(t, (0, width - t.size(1)), value=fill)

        new = {
            "prompt_ids": torch.cat([out["prompt_ids"], out["prompt_ids"][src]]),  # the ORIGINAL prompt
            "prompt_mask": torch.cat([out["prompt_mask"], out["prompt_mask"][src]]),
            "completion_ids": torch.cat([widen(out["completion_ids"], pad), completion]),
            "completion_mask": torch.cat([widen(out["completion_mask"], 0), mask]),
            "num_items_in_batch": out["num_items_in_batch"] + mask.sum(),
        }
        for key, fill in COMPLETION_KEYS.items():
            if key in out:
                extra = torch.full((len(ids), width), fill, device=device)
                if key == "ref_per_token_logps":
                    extra = self._reference_logps(new, len(ids), width)
                new[key] = torch.cat([widen(out[key], fill), extra])
        groups = torch.cat([torch.arange(len(total)) // self.num_generations, src.cpu() // self.num_generations])
        rewards = torch.cat([total.cpu(), ref_total.cpu()])
        new["advantages"] = mixed_group_advantages(rewards, groups, self.scale_rewards).to(out["advantages"].device)
        new["refinement"] = torch.cat(
            [torch.zeros(len(total), dtype=torch.bool), torch.ones(len(ids), dtype=torch.bool)]
        ).to(device)
        return new

    def _reference_logps(self, new, k: int, width: int):
        import torch

        ids = torch.cat([new["prompt_ids"][-k:], new["completion_ids"][-k:]], dim=1)
        attention = torch.cat([new["prompt_mask"][-k:], new["completion_mask"][-k:]], dim=1)
        with torch.no_grad():
            logps, _, _ = self._get_per_token_logps_and_entropies(self.ref_model, ids, attention, width)
        return logps

    def _log_feedback(self, out, stats: dict[str, float]):
        for name, value in stats.items():
            self._metrics["train"][f"feedback/{name}"].append(float(value))
        return out

    # -- the loss ----------------------------------------------------------------------------

    def _shaped_loss(self, model, inputs, flags):
        """-A * f(p) on the refinement rows' tokens, normalised as TRL normalises ``loss_type``."""
        import torch

        rows = flags.nonzero(as_tuple=True)[0]
        completion, mask = inputs["completion_ids"][rows], inputs["completion_mask"][rows]
        ids = torch.cat([inputs["prompt_ids"][rows], completion], dim=1)
        attention = torch.cat([inputs["prompt_mask"][rows], mask], dim=1)
        logps, _, _ = self._get_per_token_logps_and_entropies(model, ids, attention, completion.size(1))
        p = torch.exp(logps)
        per_token = -shaping_weight(p, self.feedback.gamma) * inputs["advantages"][rows].unsqueeze(1) * mask
        self._metrics["train"]["feedback/refinement_token_prob"].append(
            ((p.detach() * mask).sum() / mask.sum().clamp(min=1)).item()
        )
        accumulation = self.current_gradient_accumulation_steps
        batch = flags.numel()
        if self.loss_type == "grpo":
            return (per_token.sum(-1) / mask.sum(-1).clamp(min=1)).sum() / batch / accumulation
        if self.loss_type == "bnpo":
            return per_token.sum() / inputs["completion_mask"].sum().clamp(min=1) / accumulation
        if self.loss_type == "dr_grpo":
            return per_token.sum() / (batch * self.max_completion_length) / accumulation
        normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
        return per_token.sum() / (normalizer * accumulation / self.args.steps_per_generation)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _transitions(before: Sequence[bool | None], after: Sequence[bool | None]) -> dict[str, float]:
    """Refinement success: the share correct, i->c among refinements of wrong responses, c->i of right ones.

    >>> _transitions([False, False, True], [True, False, False])
    {'refinement_accuracy': 0.3333333333333333, 'i->c': 0.5, 'c->i': 1.0}
    """
    wrong = [a for b, a in zip(before, after) if b is False]
    right = [a for b, a in zip(before, after) if b is True]
    return {
        "refinement_accuracy": _mean([bool(a) for a in after]),
        "i->c": _mean([bool(a) for a in wrong]),
        "c->i": _mean([not a for a in right]),
    }
