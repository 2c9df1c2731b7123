"""POLAR records: policy-discrimination triples for pre-training, references for fine-tuning.

POLAR (InternLM, 2025) pre-trains a reward model to score a candidate higher when it comes from
the same policy as a reference: a triple is (reference, positive, negative), reference and
positive sampled from one policy A for one prompt, the negative from another policy B. It then
fine-tunes on (reference, chosen, rejected), the reference being a human-preferred answer.

The build API turns each row into one record or one quarantined row. A triple consumes three
rows, so ``polar_triples`` plans every prompt's triples in ``prepare`` and each triple becomes
the record of its *positive* row; its reference and negative rows, and rows no triple drew, are
quarantined with a reason that says which (the triple's metadata names its reference and
negative rows). ``rows in = records + quarantined`` therefore still holds, and the quarantine
reasons account for every row.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from data_pipelines.builders.base import BUILDERS, Builder, Item, metadata, seeded_unit
from data_pipelines.schema import PolarPreferenceRecord, PolarTripleRecord, Record
from data_pipelines.sources.base import RowError

NO_MODEL = "row has no model name, so its policy is unknown"
ONE_POLICY = "only one policy answered this prompt, so there is no negative from another policy"
NO_PAIR = "no policy answered this prompt twice, so there is no same-policy reference and positive"
AS_REFERENCE = "used as the reference of a triple (named by that record's metadata.reference_id)"
AS_NEGATIVE = "used as the negative of a triple (named by that record's metadata.negative_id)"
ONLY_ANSWER = "its policy answered this prompt once, so it can only be a negative, and no triple drew it"
CAP_REACHED = "not drawn: the prompt already has triples_per_prompt triples"
LEFT_OVER = "left over: no second response of its policy (differing from the drawn negative) to pair it with"
SINGLE_PAIR = "only one pair for this question, so no other pair's chosen answer can be the reference"
NO_REFERENCE = "no other pair's chosen answer differs from this pair's answers without ranking below them"

Response = tuple[str, str, str]  # (row id, model, text)
# a positive's plan: (reference id, reference text, negative id, negative model, negative text, triple index)
Plan = tuple[str, str, str, str, str, int]


@BUILDERS.register("polar_triples")
@dataclass
class PolarTriplesBuilder(Builder):
    """Responses by named policies -> POLAR triples (reference, positive from the same policy, negative).

    Per prompt, each policy with at least two responses can serve as A: two of its responses
    become reference and positive (disjoint pairs, so A serves at most ``n // 2`` times). The
    negative's policy B is drawn uniformly among the prompt's other policies, then one of B's
    responses uniformly; a response whose text equals the negative's is never A's reference or
    positive (a triple whose negative is its positive's twin teaches nothing). A prompt gets
    ``triples_per_prompt`` triples (default: one per policy that answered twice); A is picked
    round-robin within the prompt, then by fewest triples so far over the whole build, so the
    policies serve as A about equally often as far as the data allow. All draws come from the
    seed and the row ids, not from the order rows arrive in.

    Args:
        triples_per_prompt: most triples per prompt; None means one per eligible policy.

    >>> rows = [(f"{m}{i}", {"question": "q", "solution": f"{m} says {i}", "model": m, "group": "g"})
    ...         for m in "AB" for i in range(2)]
    >>> b = PolarTriplesBuilder()
    >>> b.prepare(rows, seed=0)
    >>> out = b.build_many(rows, seed=0)
    >>> sorted((r.reference_model, r.negative_model) for r in out if isinstance(r, Record))
    [('A', 'B'), ('B', 'A')]
    >>> [str(r).split(" (")[0] for r in out if not isinstance(r, Record)]
    ['used as the reference of a triple', 'used as the reference of a triple']
    """

    triples_per_prompt: int | None = None
    _plan: dict[str, Plan | str] = field(default_factory=dict, init=False, repr=False)

    task = "polar_triple"
    shapes = ("solution", "program")

    def __post_init__(self) -> None:
        if self.triples_per_prompt is not None and self.triples_per_prompt < 1:
            raise ValueError(f"triples_per_prompt must be at least 1, got {self.triples_per_prompt}")

    def prepare(self, items: Sequence[Item], seed: int) -> None:
        groups: dict[str, dict[str, list[Response]]] = defaultdict(lambda: defaultdict(list))
        for row_id, data in items:
            if data.get("model"):
                groups[data["group"]][data["model"]].append((row_id, data["model"], _response(data)))
        usage: Counter[str] = Counter()  # triples per policy as A so far, over the whole build
        self._plan = {}
        for group in sorted(groups, key=lambda g: seeded_unit(seed, f"prompt/{g}")):
            by_model = {m: sorted(rs, key=lambda r: seeded_unit(seed, r[0])) for m, rs in groups[group].items()}
            self._plan.update(self._plan_prompt(group, by_model, usage, seed))

    def _plan_prompt(
        self, group: str, by_model: dict[str, list[Response]], usage: Counter[str], seed: int
    ) -> dict[str, Plan | str]:
        """One prompt's roles: the positives' plans, a reason for every other row."""
        rows = [r for rs in by_model.values() for r in rs]
        if len(by_model) == 1:
            return {r[0]: ONE_POLICY for r in rows}
        eligible = sorted(m for m, rs in by_model.items() if len(rs) >= 2)
        if not eligible:
            return {r[0]: NO_PAIR for r in rows}
        cap = self.triples_per_prompt or len(eligible)
        triples = self._draw(group, by_model, eligible, cap, usage, seed)
        plan: dict[str, Plan | str] = {}  # one role per row: positive, else reference, else negative
        for k, (reference, positive, negative) in enumerate(triples):
            plan[positive[0]] = (reference[0], reference[2], negative[0], negative[1], negative[2], k)
        for reference, _, _ in triples:
            plan.setdefault(reference[0], AS_REFERENCE)
        for _, _, negative in triples:
            plan.setdefault(negative[0], AS_NEGATIVE)
        for row_id, model, _ in rows:
            plan.setdefault(
                row_id, ONLY_ANSWER if len(by_model[model]) == 1 else CAP_REACHED if len(triples) >= cap else LEFT_OVER
            )
        return plan

    @staticmethod
    def _draw(
        group: str, by_model: dict[str, list[Response]], eligible: list[str], cap: int, usage: Counter[str], seed: int
    ) -> list[tuple[Response, Response, Response]]:
        """Draw one prompt's (reference, positive, negative) triples; updates ``usage``."""
        eligible = list(eligible)
        free = {m: list(by_model[m]) for m in eligible}
        here: Counter[str] = Counter()  # triples per policy as A at this prompt
        triples: list[tuple[Response, Response, Response]] = []
        while len(triples) < cap and eligible:
            k = len(triples)
            a = min(eligible, key=lambda m: (here[m], usage[m], seeded_unit(seed, f"{group}/a{k}/{m}")))
            others = sorted(m for m in by_model if m != a)
            b = others[int(seeded_unit(seed, f"{group}/b{k}") * len(others))]
            negative = by_model[b][int(seeded_unit(seed, f"{group}/n{k}") * len(by_model[b]))]
            pair = [r for r in free[a] if r[2] != negative[2]][:2]
            if len(pair) < 2:  # A's remaining responses all repeat this negative: A is done here
                eligible.remove(a)
                continue
            free[a] = [r for r in free[a] if r not in pair]
            if len(free[a]) < 2:
                eligible.remove(a)
            here[a] += 1
            usage[a] += 1
            triples.append((pair[0], pair[1], negative))
        return triples

    def build(self, row_id: str, data: dict[str, Any], seed: int) -> Record:
        if not data.get("model"):
            raise RowError(NO_MODEL)
        plan = self._plan.get(row_id)
        if plan is None:
            raise RowError("row was not seen by prepare")
        if isinstance(plan, str):
            raise RowError(plan)
        ref_id, ref_text, neg_id, neg_model, neg_text, k = plan
        return PolarTripleRecord(
            id=row_id,
            source=data.get("source_name", ""),
            question=data["question"],
            reference=ref_text,
            positive=_response(data),
            negative=neg_text,
            reference_model=data["model"],
            negative_model=neg_model,
            gold_answer=data.get("gold_answer"),
            verifier="source",
            metadata=metadata(data, reference_id=ref_id, negative_id=neg_id, group=data["group"], triple_index=k),
        )

    def summary(self, records: Sequence[Record]) -> tuple[dict[str, Any], str]:
        as_a = Counter(r.reference_model for r in records)
        as_b = Counter(r.negative_model for r in records)
        twins = sum(r.reference == r.positive for r in records)
        policies = sorted(set(as_a) | set(as_b))
        rows = [f"| {m} | {as_a[m]:,} | {as_b[m]:,} |" for m in policies]
        md = "\n".join(
            [
                "## Policies",
                "",
                f"{len(records):,} triples over {len(policies)} policies; "
                f"{twins:,} have a positive identical to its reference.",
                "",
                "| policy | as A (reference, positive) | as B (negative) |",
                "|---|---:|---:|",
                *rows,
            ]
        )
        return {
            "policy_as_a": dict(sorted(as_a.items())),
            "policy_as_b": dict(sorted(as_b.items())),
            "positive_equals_reference": twins,
        }, md


@BUILDERS.register("polar_preference")
@dataclass
class PolarPreferenceBuilder(Builder):
    """Preference pairs -> POLAR fine-tuning records (reference, chosen, rejected).

    POLAR fine-tunes on prompts with answers ranked by people: the top-ranked answer is the
    reference, the next two are chosen and rejected. From pairs, the reference of a pair is the
    chosen answer of *another* pair for the same question, with a text distinct from both of
    this pair's answers. Where the pairs rank answers, a candidate that beat this pair's chosen
    answer is preferred (that is POLAR's reference > chosen > rejected), and one that lost to
    either of this pair's answers is never used. Questions with a single pair have no such
    reference: ``reference_from: other_pair`` (the default) quarantines them;
    ``reference_from: chosen`` uses the pair's own chosen answer as the reference and keeps it
    as chosen too. That leaks the label (the chosen answer is a verbatim copy of the reference,
    so a model can learn string matching instead of preference); such records carry
    ``reference_rank: "self"`` in metadata and the data card counts them.

    >>> rows = [("p0", {"question": "q", "chosen": "best", "rejected": "good", "subset": None}),
    ...         ("p1", {"question": "q", "chosen": "good", "rejected": "bad", "subset": None})]
    >>> b = PolarPreferenceBuilder()
    >>> b.prepare(rows, seed=0)
    >>> rec = b.build("p1", rows[1][1], seed=0)
    >>> rec.reference, rec.chosen, rec.rejected
    ('best', 'good', 'bad')
    >>> b.build("p0", rows[0][1], seed=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_pipelines.sources.base.RowError: no other pair's chosen answer differs from this pair's answers...
    """

    reference_from: Literal["other_pair", "chosen"] = "other_pair"
    # per question: its pairs (row id, chosen, rejected) in id order, and the (winner, loser) texts
    _pairs: dict[str, tuple[list[tuple[str, str, str]], set[tuple[str, str]]]] = field(
        default_factory=dict, init=False, repr=False
    )

    task = "polar_preference"
    shapes = ("preference",)

    def prepare(self, items: Sequence[Item], seed: int) -> None:
        pairs: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for row_id, data in items:
            pairs[data["question"]].append((row_id, data["chosen"], data["rejected"]))
        self._pairs = {q: (sorted(ps), {(c.strip(), r.strip()) for _, c, r in ps}) for q, ps in pairs.items()}

    def build(self, row_id: str, data: dict[str, Any], seed: int) -> Record:
        chosen, rejected = data["chosen"], data["rejected"]
        pairs, beats = self._pairs.get(data["question"], ([], set()))
        reference, ref_id, rank = self._reference(row_id, chosen, rejected, pairs, beats, seed)
        source = data.get("source_name", "")
        if data.get("subset"):
            source = f"{source}/{data['subset']}"
        return PolarPreferenceRecord(
            id=row_id,
            source=source,
            question=data["question"],
            reference=reference,
            chosen=chosen,
            rejected=rejected,
            gold_answer=None,
            verifier="source",
            metadata=metadata(data, subset=data.get("subset"), reference_id=ref_id, reference_rank=rank),
        )

    def _reference(
        self,
        row_id: str,
        chosen: str,
        rejected: str,
        pairs: list[tuple[str, str, str]],
        beats: set[tuple[str, str]],
        seed: int,
    ) -> tuple[str, str, str]:
        """(reference text, its row id, its rank: ``above_chosen``, ``unranked`` or ``self``)."""
        mine = (chosen.strip(), rejected.strip())
        above: dict[str, tuple[str, str]] = {}
        unranked: dict[str, tuple[str, str]] = {}
        for other_id, text, _ in pairs:
            key = text.strip()
            if other_id == row_id or key in mine or key in above or key in unranked:
                continue
            if (mine[0], key) in beats or (mine[1], key) in beats:  # ranked below this pair's answers
                continue
            (above if (key, mine[0]) in beats else unranked)[key] = (text, other_id)
        for rank, pool in (("above_chosen", above), ("unranked", unranked)):
            if pool:
                options = sorted(pool.values(), key=lambda t: t[1])
                text, other_id = options[int(seeded_unit(seed, row_id) * len(options))]
                return text, other_id, rank
        if self.reference_from == "chosen":
            return chosen, row_id, "self"
        raise RowError(SINGLE_PAIR if len(pairs) <= 1 else NO_REFERENCE)

    def summary(self, records: Sequence[Record]) -> tuple[dict[str, Any], str]:
        ranks = Counter(json.loads(r.metadata).get("reference_rank") for r in records)
        counts = {k: ranks.get(k, 0) for k in ("above_chosen", "unranked", "self")}
        md = (
            "## References\n\n"
            f"{counts['above_chosen']:,} references beat the pair's chosen answer in another pair, "
            f"{counts['unranked']:,} are another pair's chosen answer not ranked against it, and "
            f"{counts['self']:,} are the pair's own chosen answer (`reference_from: chosen`, which "
            "leaks the label)."
        )
        return {"reference_rank": counts}, md


def _response(data: dict[str, Any]) -> str:
    return data["solution"] if "solution" in data else data["program"]
