"""The benchmarks ``critics eval`` runs: each reads its public format and turns items into critic requests.

A benchmark item becomes one or more ``Request``s: the record a critic judges (``payload``, the
fields of a pointwise, pairwise or step record) and the verdict a perfect critic gives
(``expected``, never sent; the oracle tests read it). A scalar reward model gets pointwise
requests (one per response) and its scores are compared. Scoring goes through
``critics.eval.metrics``, which follows each benchmark's official script. The shared parts live in
``critics.eval.benchmark_base``; the benchmarks in ``preference_benchmarks`` (answers compared) and
``solution_benchmarks`` (one solution judged) and ``listwise_benchmarks`` (lists of responses scored);
this module gathers them.

| name | format | requests per item |
|---|---|---|
| ``processbench`` | ``problem``, ``steps``, ``label`` (first wrong step, -1) | 1 step record |
| ``rewardbench``, ``llmbar``, ``hh_rlhf``, ``ultrafeedback``, ``pairwise`` | prompt, chosen, rejected, subset | 1 pairwise (the chosen answer at A for every other item) |
| ``vl_rewardbench`` | ``image_path``, ``query``, ``response`` x2, ``human_ranking`` | 1 pairwise record with its images |
| ``judgebench`` | ``question``, ``response_A``, ``response_B``, ``label`` in {A>B, B>A} | 2: the original order and swapped |
| ``rmbench`` | ``prompt``, ``chosen[3]``, ``rejected[3]``, ``domain`` (or the file's name: ``chat_filtered.json``...) | 9: each chosen style against each rejected style |
| ``pointwise`` | ``question``, ``response``, ``label`` (or ``is_correct``) | 1 pointwise record |
| ``refine`` | pointwise records with ``gold_answer``; an actor revises from each critique | 1 pointwise record |
| ``bestofn`` | ``question``, ``gold_answer``, ``solutions`` (N) | N pointwise records |
| ``rewardbench2`` | ``id``, ``prompt``, ``chosen`` [], ``rejected`` [], ``num_correct``, ``subset`` (Ties: ``ref:N``/``tied:N``) | 1 listwise record (Ties over 16 completions: chunks of <= 16) |
| ``listwise`` | a built listwise dataset: ``question``, ``responses`` (N <= 16), ``label``, ``best`` | 1 listwise record |

Paths: ``NAME`` reads the hub copy, ``NAME:PATH`` a local file or folder (``critics eval --bench``).
``limit`` evaluates a seeded sample stratified by subset (``benchmark_base.stratified_sample``).
"""

from __future__ import annotations

from critics.eval import listwise_benchmarks, preference_benchmarks, solution_benchmarks
from critics.eval.benchmark_base import BENCHMARKS, Benchmark, Item, Request, stratified_order, stratified_sample

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "Item",
    "Request",
    "listwise_benchmarks",
    "parse_bench",
    "preference_benchmarks",
    "solution_benchmarks",
    "stratified_order",
    "stratified_sample",
]


def parse_bench(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME:PATH`` -> ``(name, path)``; the name is checked against the registry.

    >>> parse_bench("llmbar:../shared/data/llmbar")
    ('llmbar', '../shared/data/llmbar')
    >>> parse_bench("processbenh")
    Traceback (most recent call last):
    ...
    KeyError: "unknown benchmark 'processbenh' (did you mean 'processbench'?)"
    """
    name, _, path = spec.partition(":")
    BENCHMARKS.get(name)
    return name, path or None
