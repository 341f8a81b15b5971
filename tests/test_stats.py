import numpy as np
import pytest

from robustmix.stats import as_bool, bootstrap_ci, error_rate, paired_difference, wilson_ci


def test_bitstrings_and_arrays_agree():
    assert as_bool("0110").tolist() == [False, True, True, False]
    assert error_rate("0110") == 50.0


@pytest.mark.parametrize("ci", [bootstrap_ci, wilson_ci])
def test_intervals_contain_estimate_and_shrink_with_n(ci):
    rng = np.random.default_rng(0)
    small = rng.random(100) < 0.7
    large = rng.random(10_000) < 0.7
    lo, hi = ci(small)
    assert lo <= error_rate(small) <= hi
    lo2, hi2 = ci(large)
    assert lo2 <= error_rate(large) <= hi2
    assert (hi2 - lo2) < (hi - lo) / 5  # ~1/sqrt(100) narrower


def test_paired_difference_of_identical_predictions_is_zero_with_p_one():
    c = np.random.default_rng(1).random(500) < 0.6
    d = paired_difference(c, c)
    assert d.diff == 0 and d.p_value == 1.0 and d.lo == d.hi == 0


def test_paired_difference_detects_a_planted_large_difference():
    rng = np.random.default_rng(2)
    a = rng.random(1000) < 0.8
    b = a.copy()
    b[np.flatnonzero(a)[:200]] = False  # b gets 200 more examples wrong
    d = paired_difference(a, b)
    assert d.diff == pytest.approx(20.0)
    assert d.p_value < 1e-10 and d.lo > 0
