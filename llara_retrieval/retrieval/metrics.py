"""Retrieval metrics with pytrec_eval (nDCG, recall, MAP, MRR) and their JSON files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from llara_retrieval._utils.atomic import atomic_write
from llara_retrieval.retrieval.runs import Qrels, Run

METRICS = {  # our name -> pytrec_eval measure
    "nDCG@1": "ndcg_cut_1", "nDCG@3": "ndcg_cut_3", "nDCG@5": "ndcg_cut_5", "nDCG@10": "ndcg_cut_10",
    "nDCG@100": "ndcg_cut_100", "Recall@10": "recall_10", "Recall@100": "recall_100",
    "Recall@1000": "recall_1000", "MAP@10": "map_cut_10", "MRR@10": "recip_rank",
}


def evaluate(qrels: Qrels, run: Run, metrics: Mapping[str, str] = METRICS) -> dict[str, float]:
    """Mean of each metric over the judged queries (queries missing from the run count as 0)."""
    import pytrec_eval

    judged = {q: docs for q, docs in qrels.items() if any(r > 0 for r in docs.values())}
    evaluator = pytrec_eval.RelevanceEvaluator(judged, set(metrics.values()))
    per_query = evaluator.evaluate({q: {d: float(s) for d, s in run.get(q, {}).items()} for q in judged})
    n = max(len(judged), 1)
    return {name: round(sum(per_query.get(q, {}).get(measure, 0.0) for q in judged) / n, 6)
            for name, measure in metrics.items()}


def write_metrics(metrics: Mapping, path: str | Path) -> Path:
    return atomic_write(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
