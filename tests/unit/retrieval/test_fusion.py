import pytest

from llara_retrieval.retrieval.fusion import interpolate, min_max, rrf
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


def test_min_max_edge_cases_and_queries_in_one_run_only():
    assert min_max({}) == {}
    assert min_max({"x": 3.0, "y": 3.0}) == {"x": 1.0, "y": 1.0}
    fused = interpolate({"q2": {"x": 1.0}}, SPARSE, weight=0.5)
    assert fused["q2"] == {"x": 0.5} and set(fused["q"]) == {"c", "d", "a"}
