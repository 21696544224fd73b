"""Retrieval metrics with pytrec_eval (nDCG, recall, MAP, MRR) and their JSON files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from llara_retrieval._utils.atomic import atomic_write
from llara_retrieval.retrieval.runs import Qrels, Run

METRICS = {  # our name -> pytrec_eval measure (recip_rank_cut_K: ours, see _value)
    "nDCG@1": "ndcg_cut_1", "nDCG@3": "ndcg_cut_3", "nDCG@5": "ndcg_cut_5", "nDCG@10": "ndcg_cut_10",
    "nDCG@100": "ndcg_cut_100", "Recall@10": "recall_10", "Recall@100": "recall_100",
    "Recall@1000": "recall_1000", "MAP@10": "map_cut_10", "MRR@10": "recip_rank_cut_10",
}
RR_CUT = "recip_rank_cut_"


def _trec_measure(measure: str) -> str:
    return "recip_rank" if measure.startswith(RR_CUT) else measure


def _value(scores: Mapping[str, float], measure: str) -> float:
    """One query's value of ``measure``. trec_eval's ``recip_rank`` has no cutoff (1 / the rank of the first
    relevant document anywhere in the run); the first relevant document is in the top K exactly when that
    reciprocal is at least 1 / K, so the cut value is read off it, in trec_eval's own ranking order."""
    if not measure.startswith(RR_CUT):
        return scores.get(measure, 0.0)
    reciprocal = scores.get("recip_rank", 0.0)
    return reciprocal if reciprocal * int(measure[len(RR_CUT):]) >= 1 - 1e-9 else 0.0


def judged_queries(qrels: Qrels) -> Qrels:
    """The queries with at least one positive judgement: those every metric here is taken over."""
    return {q: docs for q, docs in qrels.items() if any(r > 0 for r in docs.values())}


def per_query_scores(qrels: Qrels, run: Run, metrics: Mapping[str, str] = METRICS) -> dict[str, dict[str, float]]:
    """``{metric: {qid: value}}`` over the judged queries, in qrels order; a query missing from the run
    scores 0."""
    import pytrec_eval

    judged = judged_queries(qrels)
    evaluator = pytrec_eval.RelevanceEvaluator(judged, {_trec_measure(m) for m in metrics.values()})
    scores = evaluator.evaluate({q: {d: float(s) for d, s in run.get(q, {}).items()} for q in judged})
    return {name: {q: _value(scores.get(q, {}), measure) for q in judged} for name, measure in metrics.items()}


def evaluate(qrels: Qrels, run: Run, metrics: Mapping[str, str] = METRICS) -> dict[str, float]:
    """Mean of each metric over the judged queries (queries missing from the run count as 0)."""
    return {name: round(sum(values.values()) / max(len(values), 1), 6)
            for name, values in per_query_scores(qrels, run, metrics).items()}


def write_metrics(metrics: Mapping, path: str | Path) -> Path:
    return atomic_write(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
