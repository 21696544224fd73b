"""Paired significance tests over queries: is run A's per-query metric higher than run B's by more
than chance would give?

Both runs are scored on the same queries (every judged query of the qrels; a query a run misses
scores 0, as in :func:`llara_retrieval.retrieval.metrics.evaluate`), so each query gives one pair and
the tests look at the per-query differences ``a - b``, two-sided:

- the paired t-test (``scipy.stats.ttest_rel``), which assumes the mean difference is roughly normal;
- the paired randomisation test (``scipy.stats.permutation_test``, ``permutation_type="samples"``): each
  query's two scores are swapped with probability 1/2, ``rounds`` times with a seeded generator (exact,
  over all ``2**n`` swaps, when ``2**n <= rounds``). It assumes nothing about the distribution of the
  differences, so it is the test verdicts use.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.retrieval.metrics import METRICS, judged_queries, per_query_scores
from llara_retrieval.retrieval.runs import Qrels, Run

ALPHA = 0.05
ROUNDS = 10_000
TIE = 1e-9  # per-query differences this small are ties (metric values are sums of floats)
T_TEST = "paired t-test (scipy.stats.ttest_rel)"
RANDOMISATION = "paired randomisation test (scipy.stats.permutation_test, two-sided)"


@dataclass(frozen=True)
class PairedTest:
    """The comparison of A against B on one metric; ``delta = mean(A) - mean(B)``."""

    metric: str
    queries: int
    delta: float
    p_t: float
    p_randomisation: float
    rounds: int
    seed: int
    wins: int  # queries where A is higher
    losses: int
    ties: int

    def to_dict(self) -> dict:
        return asdict(self)


def per_query(qrels: Qrels, run: Run, metric: str = "nDCG@10") -> dict[str, float]:
    """The metric of every judged query (a positive judgement), 0 for a query the run misses.

    Args:
        qrels: ``{qid: {doc: relevance}}``; queries without a positive judgement are left out.
        run: ``{qid: {doc: score}}``.
        metric: a name of :data:`~llara_retrieval.retrieval.metrics.METRICS` (``nDCG@10``, ``Recall@100`` ...).

    Returns:
        ``{qid: value}`` whose mean is what ``evaluate`` reports for the metric.
    """
    if metric not in METRICS:
        raise LlaraError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    if not judged_queries(qrels):
        raise LlaraError("the qrels hold no query with a positive judgement")
    return per_query_scores(qrels, run, {metric: METRICS[metric]})[metric]


def _some(queries: set[str], n: int = 5) -> str:
    return ", ".join(sorted(queries)[:n])


def mean_per_query(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per-query mean over several runs of one system (e.g. seeds): the system's expected score per query."""
    if not runs:
        raise LlaraError("no per-query scores to average")
    queries = set(runs[0])
    for r in runs[1:]:
        if set(r) != queries:
            raise LlaraError(f"the runs to average were scored on different queries (e.g. {_some(set(r) ^ queries)})")
    return {q: sum(r[q] for r in runs) / len(runs) for q in runs[0]}


def paired_test(a: Mapping[str, float], b: Mapping[str, float], metric: str = "nDCG@10", rounds: int = ROUNDS,
                seed: int = 0) -> PairedTest:
    """Both paired tests of ``a`` against ``b`` over their queries (both must cover the same ones).

    Args:
        a, b: per-query metric values (:func:`per_query`), on the same queries.
        metric: the metric's name, recorded in the result.
        rounds: random swaps of the randomisation test (exact when ``2**queries <= rounds``).
        seed: seeds the randomisation test, so a report is reproducible.

    Returns:
        :class:`PairedTest`; a p-value is 1.0 when every difference is zero.
    """
    import numpy as np
    from scipy import stats

    if set(a) != set(b):
        raise LlaraError(f"paired test: the runs cover different queries ({len(set(a) ^ set(b))} not in both, "
                         f"e.g. {_some(set(a) ^ set(b))})")
    if len(a) < 2 or rounds < 1:
        raise LlaraError("paired test: needs at least 2 queries and 1 round")
    queries = sorted(a)
    x = np.array([a[q] for q in queries], dtype=np.float64)
    y = np.array([b[q] for q in queries], dtype=np.float64)
    diff = x - y
    wins, losses = int((diff > TIE).sum()), int((diff < -TIE).sum())
    if wins + losses == 0:
        p_t = p_rand = 1.0
    else:
        p_t = float(stats.ttest_rel(x, y).pvalue)
        p_t = 0.0 if np.isnan(p_t) else p_t  # nan only when every difference is the same non-zero value

        def mean_difference(u, v, axis):
            return np.mean(u - v, axis=axis)

        p_rand = float(stats.permutation_test((x, y), mean_difference, permutation_type="samples",
                                              vectorized=True, n_resamples=rounds, alternative="two-sided",
                                              random_state=np.random.default_rng(seed)).pvalue)
    return PairedTest(metric=metric, queries=len(queries), delta=float(diff.mean()), p_t=p_t,
                      p_randomisation=p_rand, rounds=rounds, seed=seed, wins=wins, losses=losses,
                      ties=len(queries) - wins - losses)


def verdict(test: PairedTest, alpha: float = ALPHA) -> str:
    """``met`` (A higher, randomisation p < alpha), ``missed`` (A significantly lower) or ``not significant``."""
    if test.p_randomisation >= alpha or test.delta == 0:
        return "not significant"
    return "met" if test.delta > 0 else "missed"
