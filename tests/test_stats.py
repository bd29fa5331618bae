"""Known answers, in closed form, for the scipy.stats-backed tests of bnopt.analysis.stats (issue 28)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bnopt.analysis.stats import adjust, fit_slope, paired_t, rank_correlation, sign_test, t_against


@pytest.mark.parametrize("agree,n", [(5, 5), (4, 5), (3, 3), (2, 3), (0, 4)])
def test_sign_test_is_the_binomial_tail(agree, n):
    assert sign_test(agree, n) == pytest.approx(sum(math.comb(n, i) for i in range(agree, n + 1)) / 2 ** n)
    with pytest.raises(ValueError, match="agree <= n"):
        sign_test(n + 1, n)


def test_paired_t_matches_the_t_distribution_with_two_degrees_of_freedom():
    """With 3 pairs (df = 2) the t distribution has closed forms: P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2 and the
    quantile t_q = (2q - 1) / sqrt(2 q (1 - q))."""
    d = np.array([0.1, 0.4, 0.3])
    m, se = d.mean(), d.std(ddof=1) / math.sqrt(3)
    t = m / se
    tail = (1 - t / math.sqrt(t * t + 2)) / 2
    r = paired_t(d, ">", level=0.95)
    assert r.mean == pytest.approx(m) and r.p_claimed == pytest.approx(tail) and r.p_other == pytest.approx(1 - tail)
    q = 0.975
    half = (2 * q - 1) / math.sqrt(2 * q * (1 - q)) * se
    assert r.ci == pytest.approx((m - half, m + half))
    assert paired_t(-d, "<").p_claimed == pytest.approx(tail)        # the claimed side is the sign of the claim
    with pytest.raises(ValueError, match="claim must be one of"):
        paired_t(d, "=")
    with pytest.raises(ValueError, match="at least 2 finite"):
        paired_t([0.3], ">")


def test_paired_t_without_spread_says_it_cannot_test():
    r = paired_t([0.2, 0.2, 0.2], ">")
    assert math.isnan(r.p_claimed) and math.isnan(r.ci[0]) and r.mean == pytest.approx(0.2)


def test_benjamini_hochberg_by_hand_and_nan_left_out():
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205]
    m = len(p)
    by_hand = np.minimum.accumulate([min(1.0, p[i] * m / (i + 1)) for i in reversed(range(m))])[::-1]
    assert adjust(p) == pytest.approx(by_hand)
    assert adjust([0.04, float("nan")])[0] == pytest.approx(0.04) and math.isnan(adjust([0.04, float("nan")])[1])


def test_rank_correlation_permutation_p_is_exact_for_few_configurations():
    r = rank_correlation([1, 2, 3, 4, 5], [5, 4, 3, 2, 1])
    assert r["rho"] == pytest.approx(-1.0) and r["p"] == pytest.approx(2 / 120) and r["n"] == 5
    r = rank_correlation([1, 2, 3, 4], [1, 3, 2, 4], alternative="greater")
    # rho = 1 - sum(d^2) / 10 >= 0.8 for the identity and the 3 adjacent swaps: 4 of the 24 orders
    assert r["rho"] == pytest.approx(0.8) and r["p"] == pytest.approx(4 / 24)


@pytest.mark.parametrize("n, ties", [(7, True), (9, False)])
def test_rank_correlation_is_scipys_spearman_permutation_test(n, ties):
    """The vectorized statistic (Pearson's r of the ranks, many orders at once) gives scipy's own test of
    `spearmanr` one order at a time: the same rho and p, exact over the 7! orders (with ties) and with the same
    random orders of 9 configurations."""
    from scipy import stats

    rng = np.random.default_rng(n)
    x, y = rng.normal(size=n), rng.normal(size=n)
    if ties:
        x[1], y[4] = x[0], y[2]
    by_scipy = stats.permutation_test((y,), lambda yy: stats.spearmanr(x, yy).statistic, permutation_type="pairings",
                                      n_resamples=9_999, rng=np.random.default_rng(0))
    r = rank_correlation(x, y)
    assert r["rho"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert r["p"] == pytest.approx(by_scipy.pvalue, abs=1e-12)
    assert 0 < r["p"] < 1


def test_a_spread_of_rounding_errors_is_no_spread():
    """0.1 - 0.5 and 0.7 - 1.1 differ in the last bits only: a t-test would call that difference certain."""
    d = [0.1 - 0.5, 0.7 - 1.1]
    assert d[0] != d[1]
    t = paired_t(d, "<")
    assert math.isnan(t.p_claimed) and math.isnan(t.ci[0]) and t.mean == pytest.approx(-0.4)
    assert paired_t([-0.4, -0.41], "<").p_claimed < 0.05          # a real spread is tested


def test_t_against_a_value_and_the_fitted_slope():
    r = t_against([0.5, 1.0, 1.5], 1.0)                       # mean 1 = the tested value: t = 0, p = 1
    assert r["mean"] == 1.0 and r["p"] == pytest.approx(1.0)
    r = t_against([2.0, 3.0, 4.0], 1.0)                       # mean 3, se 1/sqrt 3: t = 2 sqrt 3 on 2 df
    t = 2 * math.sqrt(3)
    assert r["p"] == pytest.approx(1 - t / math.sqrt(t * t + 2))
    assert fit_slope([1.0, 2.0], [3.0, 7.0]) == pytest.approx(4.0)    # two points: the line through them
