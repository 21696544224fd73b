"""The paired tests against independent computations: the t-test against its textbook formula (numpy for t,
Simpson's rule over the t density for p), the randomisation test against brute force over every swap."""
import itertools
import math

import numpy as np
import pytest

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.retrieval.metrics import evaluate
from llara_retrieval.retrieval.significance import mean_per_query, paired_test, per_query, verdict

A = [0.61, 0.20, 0.95, 0.40, 0.72, 0.33, 0.88, 0.10, 0.57, 0.49, 0.66, 0.30]
B = [0.50, 0.25, 0.80, 0.41, 0.60, 0.20, 0.90, 0.00, 0.45, 0.49, 0.52, 0.31]


def scores(values):
    return {f"q{i:02d}": v for i, v in enumerate(values)}


def t_density(x, df):
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    return c * (1 + x * x / df) ** (-(df + 1) / 2)


def hand_t_test(a, b):
    """t = mean(d) / (sd(d) / sqrt(n)); two-sided p = 1 - 2 * integral of the t density from 0 to |t|."""
    d = np.array(a) - np.array(b)
    n = len(d)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(n))
    xs = np.linspace(0.0, abs(t), 20001)  # Simpson's rule, 20000 intervals
    ys = np.array([t_density(x, n - 1) for x in xs])
    h = xs[1] - xs[0]
    integral = h / 3 * (ys[0] + ys[-1] + 4 * ys[1:-1:2].sum() + 2 * ys[2:-1:2].sum())
    return t, 1.0 - 2.0 * integral


def brute_force_p(a_units, b_units):
    """Share of the 2**n within-query swaps whose |sum of differences| reaches the observed one (integers: exact)."""
    d = [x - y for x, y in zip(a_units, b_units)]
    observed = abs(sum(d))
    hits = sum(abs(sum(s * v for s, v in zip(signs, d))) >= observed
               for signs in itertools.product((1, -1), repeat=len(d)))
    return hits / 2 ** len(d)


def test_t_test_matches_the_textbook_formula():
    t, p = hand_t_test(A, B)
    result = paired_test(scores(A), scores(B), rounds=100)
    assert 0.01 < p < 0.2  # a case where the two p-values are far from the trivial 0 or 1
    assert result.p_t == pytest.approx(p, abs=1e-9)
    assert result.delta == pytest.approx(np.mean(np.array(A) - np.array(B)), abs=1e-12)
    assert (result.wins, result.losses, result.ties, result.queries) == (7, 4, 1, 12)
    reverse = paired_test(scores(B), scores(A), rounds=100)
    assert reverse.p_t == pytest.approx(p, abs=1e-9) and reverse.delta == pytest.approx(-result.delta)
    assert (reverse.wins, reverse.losses) == (4, 7)


def test_randomisation_test_is_exact_when_rounds_cover_every_swap():
    a_units = [round(x * 100) for x in A]  # the scores are hundredths: integer sums are exact
    b_units = [round(x * 100) for x in B]
    expected = brute_force_p(a_units, b_units)  # 4096 swaps
    assert 0.01 < expected < 0.2
    result = paired_test(scores([x / 100 for x in a_units]), scores([x / 100 for x in b_units]), rounds=5000)
    assert result.p_randomisation == pytest.approx(expected, abs=1e-12)


def test_randomisation_test_with_fewer_rounds_is_seeded_and_close_to_exact():
    a, b = A + [0.70, 0.15, 0.55, 0.25], B + [0.55, 0.20, 0.50, 0.10]  # 16 queries: 65536 swaps
    expected = brute_force_p([round(x * 100) for x in a], [round(x * 100) for x in b])
    first = paired_test(scores(a), scores(b), rounds=20000, seed=7)
    assert first == paired_test(scores(a), scores(b), rounds=20000, seed=7)
    assert first.p_randomisation != paired_test(scores(a), scores(b), rounds=20000, seed=8).p_randomisation
    sd = math.sqrt(expected * (1 - expected) / 20000)
    assert abs(first.p_randomisation - expected) < 5 * sd + 1e-4


def test_identical_runs_are_not_significant():
    result = paired_test(scores(A), scores(A), rounds=100)
    assert (result.p_t, result.p_randomisation, result.delta, result.ties) == (1.0, 1.0, 0.0, 12)
    assert verdict(result) == "not significant"


def test_verdicts_follow_sign_and_p():
    high = [x + 0.2 + 0.01 * i for i, x in enumerate(B)]
    better = paired_test(scores(high), scores(B), rounds=2000)
    assert better.p_randomisation < 0.05 and verdict(better) == "met"
    worse = paired_test(scores(B), scores(high), rounds=2000)
    assert verdict(worse) == "missed"
    mixed = [x + (0.1 if i % 2 else -0.09) for i, x in enumerate(B)]
    noisy = paired_test(scores(mixed), scores(B), rounds=5000)
    assert noisy.p_randomisation >= 0.05 and verdict(noisy) == "not significant"


def test_per_query_means_to_evaluate_and_counts_missing_queries_as_zero():
    qrels = {"1": {"a": 1, "b": 0}, "2": {"c": 2, "d": 1}, "3": {"e": 1}, "4": {"f": 0}}
    run = {"1": {"b": 3.0, "a": 2.0, "x": 1.0}, "2": {"d": 2.0, "c": 1.0}}
    values = per_query(qrels, run)
    assert set(values) == {"1", "2", "3"}  # query 4 has no positive judgement
    assert values["3"] == 0.0 and values["1"] == pytest.approx(1 / math.log2(3))
    assert sum(values.values()) / 3 == pytest.approx(evaluate(qrels, run)["nDCG@10"], abs=1e-6)


def test_mean_per_query_and_mismatched_queries():
    assert mean_per_query([{"a": 0.2, "b": 1.0}, {"a": 0.4, "b": 0.0}]) == pytest.approx({"a": 0.3, "b": 0.5})
    with pytest.raises(LlaraError, match=r"different queries \(e\.g\. a, b\)"):
        mean_per_query([{"a": 0.2}, {"b": 0.4}])
    with pytest.raises(LlaraError, match=r"different queries \(2 not in both, e\.g\. b, c\)"):
        paired_test({"a": 1.0, "b": 0.0}, {"a": 1.0, "c": 0.0})
