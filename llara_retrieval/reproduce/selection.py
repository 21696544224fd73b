"""What the hybrid fuses, chosen on the dev split: the dense run, the score normalisation and the
linear weight whose fusion with BM25 scores the highest dev nDCG@10. The test split plays no part;
the test hybrid is then run once."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.retrieval.fusion import DEFAULT_NORMALISATION, RRF_K, interpolate, rrf
from llara_retrieval.retrieval.metrics import evaluate
from llara_retrieval.retrieval.runs import Qrels, Run, read_qrels, read_run

NDCG10 = {"nDCG@10": "ndcg_cut_10"}


@dataclass(frozen=True)
class HybridChoice:
    """The chosen dense system, weight and normalisation, and every dev score the choice compared."""

    system: str
    weight: float
    normalisation: str
    grid: dict[str, dict]  # system -> {"dense", "rrf", "linear": {normalisation: {weight: nDCG@10}}}

    def to_dict(self) -> dict:
        return asdict(self)


def _ndcg10(qrels: Qrels, run: Run) -> float:
    return evaluate(qrels, run, NDCG10)["nDCG@10"]


def choose_hybrid(qrels: Qrels, bm25: Run, dense: Mapping[str, Run], weights: Sequence[float],
                  normalisations: Sequence[str] = (DEFAULT_NORMALISATION,), depth: int = 1000) -> HybridChoice:
    """The (dense run, normalisation, weight) whose linear fusion with ``bm25`` has the best nDCG@10 on ``qrels``.

    Args:
        qrels: the dev judgements.
        bm25, dense: dev runs; ``dense`` maps a system name to its run, in the order ties are broken.
        weights: the dense weights tried (ties go to the earlier one).
        normalisations: the per-query score normalisations tried (``min-max``, ``z-score``; ties: the earlier).
        depth: documents per run that are fused (as ``llara-beir --hybrid``).

    Returns:
        :class:`HybridChoice`; its grid also holds each run alone and its RRF fusion, for the report.
    """
    if not dense or not weights or not normalisations:
        raise LlaraError("choosing a hybrid needs at least one dense dev run, one weight and one normalisation")
    grid, best, best_score = {}, None, float("-inf")
    for system, run in dense.items():
        linear: dict[str, dict[float, float]] = {}
        for normalisation in normalisations:
            scores = linear[normalisation] = {}
            for weight in weights:
                fused = interpolate(run, bm25, weight=weight, depth=depth, normalisation=normalisation)
                scores[weight] = _ndcg10(qrels, fused)
                if scores[weight] > best_score:
                    best, best_score = (system, weight, normalisation), scores[weight]
        grid[system] = {"dense": _ndcg10(qrels, run), "rrf": _ndcg10(qrels, rrf([run, bm25], RRF_K, depth)),
                        "linear": linear}
    return HybridChoice(system=best[0], weight=best[1], normalisation=best[2], grid=grid)


def choose_hybrid_from_files(qrels_file: Path, bm25_file: Path, dense_files: Mapping[str, Path],
                             weights: Sequence[float],
                             normalisations: Sequence[str] = (DEFAULT_NORMALISATION,)) -> HybridChoice:
    """:func:`choose_hybrid` on TREC run files (the dev runs ``llara-beir`` wrote)."""
    return choose_hybrid(read_qrels(qrels_file), read_run(bm25_file),
                         {system: read_run(path) for system, path in dense_files.items()}, weights, normalisations)


def linear_by_normalisation(linear: Mapping) -> dict[str, Mapping]:
    """A recorded grid row's linear scores as ``{normalisation: {weight: nDCG@10}}``; a run recorded before
    normalisations were a choice holds ``{weight: nDCG@10}`` of the default (min-max) fusion."""
    nested = all(isinstance(v, Mapping) for v in linear.values())
    return dict(linear) if nested else {DEFAULT_NORMALISATION: linear}
