"""Which measurement predicts training speed? Rank correlation across configurations (normalizations, learning
rates), with the p-value of a permutation test over the configurations (`bnopt.analysis.stats.rank_correlation`,
scipy's `spearmanr` and `permutation_test`).

The question of the normalization chapter: across the variants, does the variant's speed of training follow its
distributional shift (the folk ICS story), its gradient ICS, or its smoothness (the paper's thesis)? Each
measurement and the speed are per-seed values of the same runs; a configuration's summary is the mean over its
seeds, and the correlation is Spearman's rho over the configurations' summaries. With k configurations the
permutation test has k! orders, so 3 configurations can never give p below 1/3 (two-sided): the p says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnopt.analysis import stats


@dataclass
class RankCorrelation:
    rho: float                 # Spearman's rho over the configurations' mean values
    p: float                   # two-sided permutation p over the configurations
    n: int                     # configurations with at least one finite seed

    def text(self, digits: int = 2) -> str:
        """e.g. 'ρ = 0.83 (permutation p = 0.042, 7 configurations)'."""
        if not np.isfinite(self.rho):
            return f"ρ not defined ({self.n} configurations)"
        return f"ρ = {self.rho:.{digits}g} (permutation p = {self.p:.2g}, {self.n} configurations)"


def rank_correlation(measure: dict, speed: dict, n_resamples: int = 9_999, seed: int = 0) -> RankCorrelation:
    """Spearman's rho between a measurement and the speed across configurations, with its permutation p.

    `measure` and `speed` map a configuration to its per-seed values, paired by position (value i of both comes from
    the same run). NaN marks a missing seed (dropped from both). Fewer than 3 configurations, or a side without
    spread: rho is not defined (NaN).

    >>> r = rank_correlation({"a": [1, 1], "b": [2, 2], "c": [3, 3]}, {"a": [5, 5], "b": [6, 6], "c": [9, 9]})
    >>> r.rho, round(r.p, 4), r.n             # 2 of the 3! = 6 orders give |rho| = 1
    (1.0, 0.3333, 3)
    """
    means = {}
    for k in [k for k in measure if k in speed]:
        m, s = np.asarray(measure[k], dtype=float), np.asarray(speed[k], dtype=float)
        if m.shape != s.shape:
            raise ValueError(f"configuration {k!r}: {m.shape} measurement values against {s.shape} speed values")
        ok = np.isfinite(m) & np.isfinite(s)
        if ok.any():
            means[k] = (m[ok].mean(), s[ok].mean())
    n = len(means)
    x, y = np.array([v[0] for v in means.values()]), np.array([v[1] for v in means.values()])
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return RankCorrelation(float("nan"), float("nan"), n)
    r = stats.rank_correlation(x, y, n_resamples=n_resamples, seed=seed)
    return RankCorrelation(round(r["rho"], 12), r["p"], n)      # exact ±1 stay exact despite rounding
