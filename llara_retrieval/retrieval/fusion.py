"""Hybrid retrieval by fusing ranked runs (BM25 + dense): reciprocal rank fusion and min-max
normalised linear interpolation.

Both work per query on the top ``depth`` documents of each run. RRF uses ranks only (k=60, as in
Cormack et al. 2009), so it needs no score calibration. Interpolation scores a document
``w * norm(dense) + (1 - w) * norm(sparse)`` where ``norm`` maps each query's scores to [0, 1] by
min-max; a document missing from one run gets 0 for that run. The default ``w = 0.5`` weighs both
runs equally: it is a fixed, untuned choice, so a test-set figure is not fitted to the test set.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from llara_retrieval.retrieval.runs import Run, ranked

RRF_K = 60
DENSE_WEIGHT = 0.5


def rrf(runs: Sequence[Mapping[str, Mapping[str, float]]], k: int = RRF_K, depth: int = 1000) -> Run:
    """Reciprocal rank fusion: ``sum over runs of 1 / (k + rank)``, ranks from 1."""
    fused: Run = {}
    for run in runs:
        for qid, scores in run.items():
            out = fused.setdefault(qid, {})
            for rank, doc in enumerate(ranked(scores, depth), 1):
                out[doc] = out.get(doc, 0.0) + 1.0 / (k + rank)
    return fused


def min_max(scores: Mapping[str, float]) -> dict[str, float]:
    """Scores mapped to [0, 1]; all-equal scores all become 1 (every document is equally the best)."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    span = high - low
    return {d: ((s - low) / span if span > 0 else 1.0) for d, s in scores.items()}


def interpolate(dense: Mapping[str, Mapping[str, float]], sparse: Mapping[str, Mapping[str, float]],
                weight: float = DENSE_WEIGHT, depth: int = 1000) -> Run:
    """``weight * norm(dense) + (1 - weight) * norm(sparse)`` over the union of both top-``depth`` lists."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], not {weight}")
    fused: Run = {}
    for qid in set(dense) | set(sparse):
        parts = []
        for run, w in ((dense, weight), (sparse, 1.0 - weight)):
            scores = run.get(qid, {})
            parts.append((min_max({d: scores[d] for d in ranked(scores, depth)}), w))
        docs = set(parts[0][0]) | set(parts[1][0])
        fused[qid] = {d: sum(w * norm.get(d, 0.0) for norm, w in parts) for d in docs}
    return fused
