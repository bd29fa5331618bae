"""Rank correlation across configurations with a permutation test (bnopt.analysis.correlate), on known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bnopt.analysis.correlate import rank_correlation


def test_perfect_and_reversed_predictors_have_the_exact_permutation_p():
    speed = {k: [v, v + 0.1, v - 0.1] for k, v in zip("abcde", (1.0, 2.0, 3.0, 4.0, 5.0))}
    same = rank_correlation(speed, speed)
    assert same.rho == 1.0 and same.n == 5
    assert same.p == pytest.approx(2 / 120)          # 2 of the 5! orders give |rho| = 1
    rev = rank_correlation({k: [-x for x in v] for k, v in speed.items()}, speed)
    assert rev.rho == -1.0 and rev.p == pytest.approx(2 / 120)
    assert rev.text() == "ρ = -1 (permutation p = 0.017, 5 configurations)"


def test_ties_get_average_ranks_and_monotone_is_enough():
    # x ranks [1, 2.5, 2.5, 4] against y ranks [1, 2, 3, 4]: Pearson's r of the ranks
    r = rank_correlation({k: [x] for k, x in zip("abcd", (1, 5, 5, 9))}, {k: [y] for k, y in zip("abcd", (1, 2, 3, 4))})
    assert r.rho == pytest.approx(np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1])
    assert rank_correlation({"a": [1], "b": [2], "c": [1e9]}, {"a": [1], "b": [2], "c": [3]}).rho == 1.0


def test_unrelated_has_a_large_p_and_nan_seeds_drop():
    speed = {k: [float(v), v + 0.1, v - 0.1] for k, v in zip("abcdefgh", range(8))}
    unrelated = {k: [float(v)] * 3 for k, v in zip(speed, (2, 4, 6, 8, 7, 5, 3, 1))}    # rho = -4/21
    r = rank_correlation(unrelated, speed)
    assert r.rho == pytest.approx(-4 / 21) and r.p > 0.5
    with_nan = {k: v[:2] + [float("nan")] for k, v in speed.items()}
    assert rank_correlation(with_nan, speed).rho == 1.0                    # the NaN seed is dropped from both sides
    assert math.isnan(rank_correlation({"a": [1.0]}, {"a": [2.0]}).rho)    # one configuration: not defined
    flat = rank_correlation({k: [1.0] for k in "abc"}, {k: [float(i)] for i, k in enumerate("abc")})
    assert math.isnan(flat.rho) and math.isnan(flat.p)
    with pytest.raises(ValueError, match="configuration 'a'"):
        rank_correlation({"a": [1.0, 2.0]}, {"a": [1.0]})
