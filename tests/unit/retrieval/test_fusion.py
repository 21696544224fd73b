import numpy as np
import pytest
from scipy import stats

from llara_retrieval.retrieval.fusion import interpolate, min_max, rrf, z_score
from llara_retrieval.retrieval.runs import ranked

DENSE = {"q": {"a": 0.9, "b": 0.5, "c": 0.1}}
SPARSE = {"q": {"c": 12.0, "d": 8.0, "a": 4.0}}


def test_rrf_matches_hand_computation():
    fused = rrf([DENSE, SPARSE], k=60)["q"]
    assert fused == pytest.approx({"a": 1 / 61 + 1 / 63, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 62})


def test_rrf_depth_cuts_each_run_before_fusing():
    assert set(rrf([DENSE, SPARSE], depth=1)["q"]) == {"a", "c"}


def test_interpolation_matches_hand_computation():
    fused = interpolate(DENSE, SPARSE, weight=0.25)["q"]
    dense = {"a": 1.0, "b": 0.5, "c": 0.0}  # (s - 0.1) / 0.8
    sparse = {"c": 1.0, "d": 0.5, "a": 0.0}  # (s - 4) / 8
    expected = {d: 0.25 * dense.get(d, 0.0) + 0.75 * sparse.get(d, 0.0) for d in "abcd"}
    assert fused == pytest.approx(expected)
    assert ranked(fused) == ["c", "d", "a", "b"]


def test_interpolation_extremes_follow_one_run_and_bad_weight_fails():
    assert ranked(interpolate(DENSE, SPARSE, weight=1.0)["q"])[:3] == ["a", "b", "c"]
    assert ranked(interpolate(DENSE, SPARSE, weight=0.0)["q"])[:3] == ["c", "d", "a"]
    with pytest.raises(ValueError):
        interpolate(DENSE, SPARSE, weight=1.5)
    with pytest.raises(ValueError, match="normalisation must be one of min-max, z-score"):
        interpolate(DENSE, SPARSE, normalisation="rank")


def test_z_score_matches_scipy_and_fused_scores_match_numpy():
    """z-score against ``scipy.stats.zscore``; the fusion against numpy, a document missing from a run taking
    that run's lowest z-score."""
    assert z_score(DENSE["q"]) == pytest.approx(dict(zip("abc", stats.zscore([0.9, 0.5, 0.1]))))
    assert z_score({}) == {} and z_score({"x": 2.0, "y": 2.0}) == {"x": 0.0, "y": 0.0}
    dense = dict(zip("abc", stats.zscore(np.array([0.9, 0.5, 0.1]))))
    sparse = dict(zip("cda", stats.zscore(np.array([12.0, 8.0, 4.0]))))
    expected = {d: 0.3 * dense.get(d, min(dense.values())) + 0.7 * sparse.get(d, min(sparse.values()))
                for d in "abcd"}
    fused = interpolate(DENSE, SPARSE, weight=0.3, normalisation="z-score")["q"]
    assert fused == pytest.approx(expected)
    assert fused["d"] == pytest.approx(0.3 * dense["c"] + 0.7 * sparse["d"])  # d: missing from the dense run


def test_min_max_edge_cases_and_queries_in_one_run_only():
    assert min_max({}) == {}
    assert min_max({"x": 3.0, "y": 3.0}) == {"x": 1.0, "y": 1.0}
    fused = interpolate({"q2": {"x": 1.0}}, SPARSE, weight=0.5)
    assert fused["q2"] == {"x": 0.5} and set(fused["q"]) == {"c", "d", "a"}
