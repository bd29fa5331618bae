"""Rank correlation across configurations with a seed bootstrap (bnopt.analysis.correlate), on known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bnopt.analysis.correlate import rank_correlation, spearman


def test_spearman_known_values_and_ties():
    assert spearman([1, 2, 3], [3, 2, 1]) == -1.0
    # ties get average ranks: x ranks [1, 2.5, 2.5, 4] against y ranks [1, 2, 3, 4]
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4])
    expect = np.corrcoef(rx, ry)[0, 1]
    assert spearman([1, 5, 5, 9], [1, 2, 3, 4]) == pytest.approx(expect)
    assert spearman([1, 2, 3], [1, 2, 1e9]) == 1.0            # ranks only: monotone is enough
    assert math.isnan(spearman([1, 2], [1, 2])) and math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2, 3], [1, 2])


def test_perfect_and_reversed_predictors():
    speed = {k: [v, v + 0.1, v - 0.1] for k, v in zip("abcde", (1.0, 2.0, 3.0, 4.0, 5.0))}
    same = rank_correlation(speed, speed)
    assert same.rho == 1.0 and same.ci == (1.0, 1.0) and same.n == 5
    rev = rank_correlation({k: [-x for x in v] for k, v in speed.items()}, speed)
    assert rev.rho == -1.0 and rev.ci == (-1.0, -1.0)
    assert "ρ = -1 (95 % CI -1 to -1, 5 configurations)" == rev.text()


def test_noise_widens_the_interval_and_nan_seeds_drop():
    rng = np.random.default_rng(0)
    speed = {k: list(v + 0.01 * rng.standard_normal(3)) for k, v in zip("abcdef", range(6))}
    noisy = {k: list(rng.standard_normal(3) * 10) for k in speed}          # unrelated to speed
    r = rank_correlation(noisy, speed, n_boot=500)
    assert r.ci[0] < 0 < r.ci[1]                                            # no evidence either way
    with_nan = {k: v[:2] + [float("nan")] for k, v in speed.items()}
    assert rank_correlation(with_nan, speed).rho == 1.0                    # the NaN seed is dropped from both sides
    assert math.isnan(rank_correlation({"a": [1.0]}, {"a": [2.0]}).rho)    # one configuration: not defined
    with pytest.raises(ValueError, match="configuration 'a'"):
        rank_correlation({"a": [1.0, 2.0]}, {"a": [1.0]})
