import numpy as np
import pytest

from robustmix.evaluation.records import as_bool, error_rate
from robustmix.analysis.stats import bootstrap_ci, paired_difference, wilson_ci


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


def test_every_error_rate_reads_the_same_in_every_table():
    """955 wrong of 10,000: a float32 mean of the correctness gives 9.549… ("9.5") and a float64
    one 9.550…02 ("9.6"); the attack table and the report once printed the same model's error
    differently. Every path now uses the integer count, so all agree to the last bit."""
    import torch

    from robustmix.models.predict import topk_error
    from robustmix.models.predict import percent_wrong

    correct = np.zeros(10_000, dtype=bool)
    correct[:9_045] = True
    assert 100.0 * (1 - torch.from_numpy(correct).float().mean().item()) != 9.55  # the trap is real
    logits = torch.zeros(10_000, 10)
    y = torch.where(torch.from_numpy(correct), 0, 1)
    logits[:, 0] = 1.0
    rates = {error_rate(correct), error_rate("".join("1" if c else "0" for c in correct)), topk_error(logits, y, 1),
             percent_wrong(955, 10_000)}
    assert rates == {955 / 100}, rates
    assert percent_wrong(0, 0) != percent_wrong(0, 0)  # NaN for no examples
