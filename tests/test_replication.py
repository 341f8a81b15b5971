"""Seed-level intervals (robustmix.analysis.replication) on simulated studies with a known spread between
training seeds: they cover at the stated rate, and they are wider than an interval over test
examples alone when seeds disagree."""

import numpy as np
import pytest

from robustmix.runtime.errors import RobustmixError
from robustmix.analysis.replication import AT_EDGE, EXAMPLES_ONLY, TWO_WAY, difference_interval, error_interval
from robustmix.analysis.stats import bootstrap_ci

N, S, REPS = 500, 3, 400


def expected_error(mu: float, sd: float) -> float:
    """E[sigmoid(mu + sd·Z)], Z ~ N(0, 1), by Gauss–Hermite quadrature: the true error of a method
    over random seeds and random test examples (logit = mu + seed effect + example effect)."""
    z, w = np.polynomial.hermite_e.hermegauss(80)
    return float(np.sum(w / np.sqrt(2 * np.pi) / (1 + np.exp(-(mu + sd * z)))))


def simulate(rng, mu: float, seed_sd: float, example_logits: np.ndarray, seeds: int = S) -> np.ndarray:
    """seeds × N correctness: each seed shifts the logit of every example by its own N(0, seed_sd)."""
    a = rng.normal(0.0, seed_sd, size=(seeds, 1))
    p_wrong = 1 / (1 + np.exp(-(mu + a + example_logits[None, :])))
    return rng.random(p_wrong.shape) >= p_wrong  # correct


@pytest.mark.parametrize("seed_sd", [0.0, 0.6])
def test_error_interval_covers_at_stated_rate(seed_sd):
    rng = np.random.default_rng(7)
    mu, ex_sd = -1.0, 1.5
    truth = 100 * expected_error(mu, np.hypot(seed_sd, ex_sd))
    hits = 0
    for _ in range(REPS):
        b = rng.normal(0.0, ex_sd, size=N)  # a fresh test set each time
        iv = error_interval(list(simulate(rng, mu, seed_sd, b)))
        hits += iv.lo <= truth <= iv.hi
    coverage = hits / REPS
    assert 0.91 <= coverage <= 0.995, coverage  # nominal 95%; ±2 binomial SE at 400 reps is ±2.2 pp


def test_difference_interval_covers_at_stated_rate_and_pairs_seeds():
    rng = np.random.default_rng(11)
    mu_a, mu_b, seed_sd, ex_sd = -0.6, -0.9, 0.5, 1.5
    truth = 100 * (expected_error(mu_b, np.hypot(seed_sd, ex_sd)) - expected_error(mu_a, np.hypot(seed_sd, ex_sd)))
    hits = {True: 0, False: 0}
    for _ in range(REPS):
        b = rng.normal(0.0, ex_sd, size=N)
        a_bits, b_bits = simulate(rng, mu_a, seed_sd, b), simulate(rng, mu_b, seed_sd, b)
        for paired in (True, False):
            iv = difference_interval(list(a_bits), list(b_bits), paired_seeds=paired)
            hits[paired] += iv.lo <= truth <= iv.hi
    for paired, h in hits.items():
        assert 0.91 <= h / REPS <= 0.995, (paired, h / REPS)


def test_example_only_interval_undercovers_when_seeds_disagree():
    """Why the seed matters: a bootstrap over the pooled test examples ignores seed-to-seed spread."""
    rng = np.random.default_rng(3)
    mu, seed_sd, ex_sd = -1.0, 0.6, 1.5
    truth = 100 * expected_error(mu, np.hypot(seed_sd, ex_sd))
    seed_hits = example_hits = 0
    for r in range(200):
        bits = simulate(rng, mu, seed_sd, rng.normal(0.0, ex_sd, size=N))
        iv = error_interval(list(bits))
        lo, hi = bootstrap_ci(bits.ravel(), n_boot=500, seed=r)
        seed_hits += iv.lo <= truth <= iv.hi
        example_hits += lo <= truth <= hi
        assert iv.hi - iv.lo > hi - lo  # wider whenever seeds disagree this much
    assert example_hits / 200 < 0.85 < seed_hits / 200


def test_agreeing_seeds_give_an_interval_close_to_the_example_one():
    rng = np.random.default_rng(5)
    bits = simulate(rng, -1.0, 0.0, rng.normal(0.0, 1.5, size=2000))
    same = [bits[0]] * 3  # three identical seeds: nothing varies between them
    iv = error_interval(same)
    one = error_interval([bits[0]])
    assert iv.estimate == pytest.approx(one.estimate)
    assert iv.hi - iv.lo == pytest.approx(one.hi - one.lo, rel=1e-6)


def test_one_seed_says_it_covers_test_set_noise_only():
    bits = ["0110", "1111"]  # 4 examples: at the edge, so the intervals are exact too (AT_EDGE)
    assert error_interval(bits[:1]).method == EXAMPLES_ONLY + AT_EDGE
    assert error_interval(bits).method == TWO_WAY + AT_EDGE
    d = difference_interval(["0110"], ["1110"])
    assert d.method.startswith(EXAMPLES_ONLY) and d.estimate == pytest.approx(-25.0)


def test_bit_strings_and_p_value():
    a = ["1" * 80 + "0" * 20] * 3  # 20% error, every seed
    b = ["1" * 60 + "0" * 40, "1" * 62 + "0" * 38, "1" * 58 + "0" * 42]  # about 40%
    d = difference_interval(a, b)
    assert d.estimate == pytest.approx(20.0)
    assert d.lo > 0 and d.p_value < 0.05
    same = difference_interval(a, a)
    assert same.estimate == 0 and same.p_value == 1.0


def test_bad_inputs_are_refused():
    with pytest.raises(RobustmixError, match="no seeds"):
        error_interval([])
    with pytest.raises(RobustmixError, match="different numbers of examples"):
        error_interval(["01", "011"])
    with pytest.raises(RobustmixError, match="different examples"):
        difference_interval(["01"], ["011"])
    with pytest.raises(RobustmixError, match="as many seeds"):
        difference_interval(["01", "11"], ["01"])
