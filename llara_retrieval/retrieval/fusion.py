"""Hybrid retrieval by fusing ranked runs (BM25 + dense): reciprocal rank fusion and linear interpolation of
per-query normalised scores.

Both work per query on the top ``depth`` documents of each run. RRF uses ranks only (k=60, as in
Cormack et al. 2009), so it needs no score calibration. Interpolation scores a document
``w * norm(dense) + (1 - w) * norm(sparse)`` where ``norm`` maps each query's list of scores to a
common scale: ``min-max`` to [0, 1], ``z-score`` to mean 0 and standard deviation 1 (from every score
of the list rather than its two extremes; Bruch et al. 2023 compare both). A document missing from
one run's list gets that run's lowest value on the scale (min-max: 0; z-score: the list's last
document's), since it ranked below all of them. The default ``w = 0.5`` weighs both runs equally: it
is a fixed, untuned choice, so a test-set figure is not fitted to the test set.
"""
from __future__ import annotations

import math
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


def z_score(scores: Mapping[str, float]) -> dict[str, float]:
    """Scores shifted to mean 0 and scaled to (population) standard deviation 1; all-equal scores all become 0."""
    if not scores:
        return {}
    values = list(scores.values())
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {d: ((s - mean) / sd if sd > 0 else 0.0) for d, s in scores.items()}


NORMALISATIONS = {"min-max": min_max, "z-score": z_score}
DEFAULT_NORMALISATION = "min-max"


def _normalised(scores: Mapping[str, float], normalisation: str) -> tuple[dict[str, float], float]:
    """The normalised scores and the value of a document missing from the list (the bottom of the scale). Under
    z-score a list of equal scores (one document, say) becomes all 0, so its documents get no credit over the
    ones it misses: such a list says nothing about their order."""
    norm = NORMALISATIONS[normalisation](scores)
    missing = 0.0 if normalisation == "min-max" or not norm else min(norm.values())
    return norm, missing


def interpolate(dense: Mapping[str, Mapping[str, float]], sparse: Mapping[str, Mapping[str, float]],
                weight: float = DENSE_WEIGHT, depth: int = 1000,
                normalisation: str = DEFAULT_NORMALISATION) -> Run:
    """``weight * norm(dense) + (1 - weight) * norm(sparse)`` over the union of both top-``depth`` lists.

    Args:
        dense, sparse: the runs to fuse (query id -> document id -> score).
        weight: the dense run's weight in [0, 1].
        depth: documents per run (each query's top ``depth``) that are normalised and fused.
        normalisation: ``min-max`` or ``z-score`` (per query and run).

    Returns:
        The fused run.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], not {weight}")
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, not {normalisation!r}")
    fused: Run = {}
    for qid in set(dense) | set(sparse):
        parts = []
        for run, w in ((dense, weight), (sparse, 1.0 - weight)):
            scores = run.get(qid, {})
            parts.append((*_normalised({d: scores[d] for d in ranked(scores, depth)}, normalisation), w))
        docs = set(parts[0][0]) | set(parts[1][0])
        fused[qid] = {d: sum(w * norm.get(d, missing) for norm, missing, w in parts) for d in docs}
    return fused
