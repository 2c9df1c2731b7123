"""On-policy critique data: sample an actor's solutions, label them with a verifier, balance the labels.

Critique-RL trains its critic on the solutions of the actor it will later help: 10 samples per
question at temperature 0.7, labelled by checking the final answer. ``sample_records`` does that
with any actor (``critics.actors``) and writes pointwise records (``data_pipelines.schema``) that
every recipe reads. Questions whose gold answer is missing are quarantined with the reason; a
solution with no final answer is labelled ``incorrect`` (the actor did not answer), and one the
verifier cannot decide (a timeout, an unparsable answer) is quarantined.

``balance: global`` keeps both labels equally represented by dropping random records of the
majority label; the report gives the balance before and after, the actor's pass@1, and how many
questions the actor always or never solved (they carry one label only).

With ``feedback`` set (``critics.recipes.feedback.FeedbackSettings``: a critic, the actor itself,
``indicative`` or ``with_gold``), each kept record is also critiqued and the actor refines it
(``refinements`` times); ``feedback.jsonl`` holds one row per refinement (question, response, its
label, the critique, the refinement and its verifier label), to inspect a run's feedback or to
fine-tune on it.

>>> class Scripted:  # answers 4 to every other sample
...     def solve(self, questions, n, temperature=None):
...         return [[f"\\\\boxed{{{4 + k % 2}}}" for k in range(n)] for _ in questions]
>>> records, quarantine, report = sample_records(Scripted(), [{"question": "2+2?", "gold_answer": "4"}],
...                                              SampleSettings(samples=4, balance="none"))
>>> [r.label for r in records], report["pass@1"]
(['correct', 'incorrect', 'correct', 'incorrect'], 0.5)
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from critics.actors import ActorSettings
from critics.recipes.feedback import FeedbackSettings, make_critiques, verify
from data_pipelines.files import check_writable, staged_folder, writing
from data_pipelines.schema import PointwiseRecord, RecordError


@dataclass
class SampleSettings:
    """How solutions are sampled and labelled.

    Args:
        samples: solutions per question (Critique-RL: 10).
        temperature: sampling temperature (Critique-RL: 0.7).
        verifier: the ``data_pipelines.verifiers`` name that labels a solution against the gold answer.
        balance: ``global`` drops random majority-label records until both labels are equal; ``none`` keeps all.
        batch_size: questions sent to the actor at once.
        seed: the balancing draw.
    """

    samples: int = 10
    temperature: float = 0.7
    verifier: str = "math"
    balance: Literal["global", "none"] = "global"
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")


@dataclass
class SampleConfig:
    """``critics data sample CONFIG``: questions in, labelled on-policy pointwise records out.

    Args:
        actor: the actor that solves the questions (required).
        questions: a JSON/JSONL file, a saved dataset or a built dataset folder with question rows.
        question_column, answer_column: the columns holding the question and the gold answer (a bare
            answer or a full solution in the dataset's convention, e.g. GSM8K's ``#### 18``).
        sampling: how many, how hot, how labelled and balanced.
        output_dir: where ``dataset/``, ``data.jsonl``, ``quarantine.jsonl``, ``report.json`` and ``data_card.md`` go.
        name: the dataset's name (the records' ``source``).
        limit: use at most this many questions (0: all).
        feedback: also critique each record and refine it with the actor (``feedback.jsonl``).
    """

    actor: ActorSettings
    questions: str = ""
    question_column: str = "question"
    answer_column: str = "gold_answer"
    sampling: SampleSettings = field(default_factory=SampleSettings)
    output_dir: str = "outputs/data/onpolicy"
    name: str = "onpolicy"
    limit: int = 0
    feedback: FeedbackSettings | None = None


def sample_records(
    actor,
    questions: list[dict[str, Any]],
    settings: SampleSettings,
    *,
    source: str = "onpolicy",
    question_column: str = "question",
    answer_column: str = "gold_answer",
    progress: bool = False,
) -> tuple[list[PointwiseRecord], list[dict[str, Any]], dict[str, Any]]:
    """Sample, label and balance; return ``(records, quarantine, report)``."""
    from data_pipelines.verifiers import VERIFIERS

    check = VERIFIERS.get(settings.verifier)
    quarantine: list[dict[str, Any]] = []
    usable = []
    for index, row in enumerate(questions):
        question, gold = row.get(question_column), row.get(answer_column)
        if not isinstance(question, str) or not question.strip():
            quarantine.append({"row": index, "reason": f"no question in column '{question_column}'"})
        elif not isinstance(gold, (str, int, float)) or isinstance(gold, bool) or not str(gold).strip():
            quarantine.append({"row": index, "reason": f"no gold answer in column '{answer_column}'"})
        else:
            usable.append((str(row.get("id", index)), question, str(gold)))
    records: list[PointwiseRecord] = []
    per_question: list[Counter] = []
    starts = range(0, len(usable), settings.batch_size)
    for start in tqdm(starts, desc="sampling solutions", unit=" batch", disable=not progress):
        batch = usable[start : start + settings.batch_size]
        solutions = actor.solve([q for _, q, _ in batch], settings.samples, settings.temperature)
        for (qid, question, gold), texts in zip(batch, solutions):
            labels = Counter()
            for k, text in enumerate(texts):
                label, reason = _label(check(text, gold), text)
                if label is None:
                    quarantine.append({"row": qid, "sample": k, "reason": reason, "response": text[:2000]})
                    continue
                record = PointwiseRecord(
                    id=f"{qid}-s{k}",
                    source=source,
                    question=question,
                    response=text,
                    label=label,
                    gold_answer=gold,
                    verifier=settings.verifier,
                    metadata=json.dumps({"question_id": qid, "sample": k, "check": reason}),
                )
                try:
                    record.validate()
                except RecordError as exc:
                    quarantine.append({"row": qid, "sample": k, "reason": str(exc), "response": text[:2000]})
                    continue
                records.append(record)
                labels[label] += 1
            per_question.append(labels)
    before = Counter(r.label for r in records)
    if settings.balance == "global":
        records = balance_labels(records, settings.seed)
    return records, quarantine, _report(before, records, per_question, quarantine, settings)


def _label(verdict, text: str) -> tuple[str | None, str]:
    if verdict.correct is not None:
        return ("correct" if verdict.correct else "incorrect"), verdict.reason
    if verdict.reason == "no final answer found" and text.strip():
        return "incorrect", "no final answer"
    return None, f"unverifiable: {verdict.reason}"


def balance_labels(records: list[PointwiseRecord], seed: int = 0) -> list[PointwiseRecord]:
    """Drop random records of the majority label until both labels are equally many (order kept).

    >>> recs = [PointwiseRecord(id=str(i), source="s", question="q", response="r", label=l)
    ...         for i, l in enumerate(["correct"] * 3 + ["incorrect"])]
    >>> [r.label for r in balance_labels(recs)]
    ['correct', 'incorrect']
    """
    by_label: dict[str, list[int]] = {"correct": [], "incorrect": []}
    for i, record in enumerate(records):
        by_label[record.label].append(i)
    size = min(len(v) for v in by_label.values())
    rng = random.Random(seed)
    keep = {i for indices in by_label.values() for i in rng.sample(indices, size)}
    return [r for i, r in enumerate(records) if i in keep]


def _report(
    before: Counter,
    records: list[PointwiseRecord],
    per_question: list[Counter],
    quarantine: list[dict],
    settings: SampleSettings,
) -> dict[str, Any]:
    after = Counter(r.label for r in records)
    labelled = sum(before.values())
    return {
        "questions": len(per_question),
        "samples_per_question": settings.samples,
        "temperature": settings.temperature,
        "verifier": settings.verifier,
        "pass@1": before["correct"] / labelled if labelled else float("nan"),
        "labels_before_balance": dict(before),
        "labels": dict(after),
        "correct_share": after["correct"] / len(records) if records else float("nan"),
        "questions_always_solved": sum(1 for c in per_question if c and not c["incorrect"]),
        "questions_never_solved": sum(1 for c in per_question if c and not c["correct"]),
        "quarantined": len(quarantine),
        "quarantine_reasons": dict(Counter(q["reason"] for q in quarantine).most_common()),
    }


def run(config: SampleConfig, progress: bool = True) -> dict[str, Any]:
    """Sample from the configured actor and write the records, quarantine, report and data card."""
    from critics.actors import make_actor
    from critics.judging.records import load_records

    if not config.questions:
        raise ValueError("questions is empty: give a JSON/JSONL file or a dataset of questions")
    check_writable(Path(config.output_dir).parent, "output_dir")  # before the actor loads, not after it sampled
    rows = list(load_records(config.questions, {}))
    if config.limit:
        rows = rows[: config.limit]
    actor = make_actor(config.actor)
    feedback: list[dict[str, Any]] = []
    try:
        records, quarantine, report = sample_records(
            actor,
            rows,
            config.sampling,
            source=config.name,
            question_column=config.question_column,
            answer_column=config.answer_column,
            progress=progress,
        )
        if config.feedback is not None:
            feedback = feedback_records(actor, records, config.feedback, config.sampling.batch_size, progress)
            report["feedback"] = feedback_report(feedback)
    finally:
        actor.close()
    write(Path(config.output_dir), records, quarantine, report, config, feedback)
    return report


def feedback_records(
    actor, records: list[PointwiseRecord], settings: FeedbackSettings, batch_size: int = 64, progress: bool = False
) -> list[dict[str, Any]]:
    """Critique each record (``settings.source``) and have the actor refine it; one row per refinement.

    ``critique: failed`` critiques only the incorrect records; a record whose critique could not
    be had gets no row. ``self`` critiques with the actor (its chat model, greedy).
    """
    from critics.serving import open_critic

    critic = open_critic(settings.critic) if settings.source == "critic" else None
    chosen = [r for r in records if settings.critique == "all" or r.label == "incorrect"]
    rows: list[dict[str, Any]] = []
    for start in tqdm(range(0, len(chosen), batch_size), desc="critiques and refinements", disable=not progress):
        batch = chosen[start : start + batch_size]
        items = [
            {"question": r.question, "response": r.response, "correct": r.label == "correct", "gold": r.gold_answer}
            for r in batch
        ]
        critiques = make_critiques(
            settings, items, critic=critic, generate=lambda c: [t[0] for t in actor.complete(c, 1, 0.0)]
        )
        kept = [(r, c) for r, c in zip(batch, critiques) if c]
        if not kept:
            continue
        refined = actor.refine(
            [r.question for r, _ in kept], [r.response for r, _ in kept], [c for _, c in kept], n=settings.refinements
        )
        for (record, critique), texts in zip(kept, refined):
            marks = verify(settings, texts, [record.gold_answer] * len(texts))
            for k, (text, mark) in enumerate(zip(texts, marks)):
                rows.append(
                    {
                        "id": f"{record.id}-r{k}",
                        "record_id": record.id,
                        "question": record.question,
                        "response": record.response,
                        "label": record.label,
                        "gold_answer": record.gold_answer,
                        "critique_source": settings.source,
                        "critique": critique,
                        "refinement": text,
                        "refinement_label": None if mark is None else ("correct" if mark else "incorrect"),
                    }
                )
    return rows


def feedback_report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How the refinements went: counts, accuracy, i->c and c->i shares.

    >>> feedback_report([{"label": "incorrect", "refinement_label": "correct"}, {"label": "correct", "refinement_label": "correct"}])
    {'refinements': 2, 'refinement_accuracy': 1.0, 'i->c': 1.0, 'c->i': 0.0}
    """
    wrong = [r for r in rows if r["label"] == "incorrect"]
    right = [r for r in rows if r["label"] == "correct"]
    share = lambda part, whole: len(part) / len(whole) if whole else float("nan")  # noqa: E731
    return {
        "refinements": len(rows),
        "refinement_accuracy": share([r for r in rows if r["refinement_label"] == "correct"], rows),
        "i->c": share([r for r in wrong if r["refinement_label"] == "correct"], wrong),
        "c->i": share([r for r in right if r["refinement_label"] == "incorrect"], right),
    }


def write(
    out: Path,
    records: list[PointwiseRecord],
    quarantine: list[dict],
    report: dict[str, Any],
    config: SampleConfig,
    feedback: list[dict[str, Any]] | None = None,
) -> None:
    """Write the outputs into a staging folder and swap it in (a crash never leaves half a dataset)."""
    import datasets

    with writing(out, "output_dir"), staged_folder(out) as tmp:
        rows = [r.to_row() for r in records]
        datasets.Dataset.from_list(rows).save_to_disk(str(tmp / "dataset"))
        (tmp / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        (tmp / "quarantine.jsonl").write_text("".join(json.dumps(q, ensure_ascii=True) + "\n" for q in quarantine))
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        if config.feedback is not None:
            (tmp / "feedback.jsonl").write_text("".join(json.dumps(r) + "\n" for r in feedback or []), encoding="utf-8")
        (tmp / "data_card.md").write_text(data_card(report, config), encoding="utf-8")


def data_card(report: dict[str, Any], config: SampleConfig) -> str:
    """The markdown card of an on-policy sample."""
    actor = config.actor.model if config.actor.kind != "openai" else f"{config.actor.model} at {config.actor.base_url}"
    labels = report["labels"]
    return "\n".join(
        [
            f"# Data card: {config.name}",
            "",
            f"On-policy pointwise records: {report['samples_per_question']} solutions per question from `{actor}` "
            f"at temperature {report['temperature']}, labelled by the `{report['verifier']}` verifier against the "
            f"gold answers of `{config.questions}`.",
            "",
            "| questions | pass@1 | correct | incorrect | quarantined |",
            "|---:|---:|---:|---:|---:|",
            f"| {report['questions']:,} | {report['pass@1']:.3f} | {labels.get('correct', 0):,} | "
            f"{labels.get('incorrect', 0):,} | {report['quarantined']:,} |",
            "",
            f"Before balancing ({config.sampling.balance}): {report['labels_before_balance']}. Questions always solved: "
            f"{report['questions_always_solved']}, never solved: {report['questions_never_solved']}.",
            "",
            f"Quarantine reasons: {report['quarantine_reasons'] or 'none'}.",
            "",
        ]
    )
