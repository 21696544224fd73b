"""Metrics against hand-computed values: MRR@10 is cut at 10, unlike trec_eval's recip_rank."""
import math

import pytest

from llara_retrieval.retrieval.metrics import evaluate, per_query_scores


def _run(relevant_rank: int, depth: int = 20) -> dict[str, float]:
    """A run of ``depth`` documents whose only relevant one, ``rel``, sits at ``relevant_rank``."""
    docs = [f"n{i:02d}" for i in range(depth - 1)]
    docs.insert(relevant_rank - 1, "rel")
    return {d: float(depth - i) for i, d in enumerate(docs)}


@pytest.mark.parametrize("rank, expected", [(1, 1.0), (3, 1 / 3), (10, 0.1), (11, 0.0), (20, 0.0)])
def test_mrr_at_10_counts_only_the_top_ten(rank, expected):
    scores = per_query_scores({"q": {"rel": 1}}, {"q": _run(rank)})
    assert scores["MRR@10"]["q"] == pytest.approx(expected, abs=1e-12)


def test_means_over_judged_queries_with_a_missing_query_as_zero():
    qrels = {"a": {"rel": 1}, "b": {"rel": 2}, "c": {"rel": 1}, "unjudged": {"x": 0}}
    run = {"a": _run(2), "b": _run(12)}  # c is missing from the run
    got = evaluate(qrels, run)
    assert got["MRR@10"] == pytest.approx(round((1 / 2 + 0 + 0) / 3, 6))
    # one relevant document at rank r: nDCG@10 = 1 / log2(r + 1) when r <= 10
    assert got["nDCG@10"] == pytest.approx(round((1 / math.log2(3) + 0 + 0) / 3, 6))
    assert got["Recall@10"] == pytest.approx(round(1 / 3, 6)) and got["Recall@100"] == pytest.approx(round(2 / 3, 6))
