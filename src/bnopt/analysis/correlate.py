"""Which measurement predicts training speed? Rank correlation across configurations (normalizations,
learning rates), with its uncertainty from a bootstrap over each configuration's seeds.

The question of the normalization chapter: across the variants, does the variant's speed of training
follow its distributional shift (the folk ICS story), its gradient ICS, or its smoothness (the paper's
thesis)? Each measurement and the speed are per-seed values of the same runs; a configuration's summary
is the mean over its seeds, and the correlation is Spearman's rho over the configurations' summaries.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def spearman(x, y) -> float:
    """Spearman's rank correlation of two equal-length sequences (average ranks for ties); NaN when
    there are fewer than 3 pairs or either side is constant.

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 40]), spearman([1, 2, 3, 4], [4, 3, 2, 1])
    (1.0, -1.0)
    >>> spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])     # 1 - 6 * 4 / (5 * 24)
    0.8
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman needs two 1-D sequences of equal length, got {x.shape} and {y.shape}")
    if len(x) < 3:
        return float("nan")
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return round(float(np.corrcoef(rx, ry)[0, 1]), 12)      # exact ±1 stay exact despite rounding


@dataclass
class RankCorrelation:
    rho: float                 # Spearman's rho over the configurations' mean values
    ci: tuple                  # percentile bootstrap interval (seeds resampled within each configuration)
    n: int                     # configurations with at least one finite seed
    level: float

    def text(self, digits: int = 2) -> str:
        """e.g. 'ρ = 0.83 (95 % CI 0.4 to 1, 7 configurations)'."""
        if not np.isfinite(self.rho):
            return f"ρ not defined ({self.n} configurations)"
        lo, hi = self.ci
        return (f"ρ = {self.rho:.{digits}g} ({100 * self.level:g} % CI {lo:.{digits}g} to {hi:.{digits}g}, "
                f"{self.n} configurations)")


def rank_correlation(measure: dict, speed: dict, n_boot: int = 2000, level: float = 0.95,
                     seed: int = 0) -> RankCorrelation:
    """Spearman's rho between a measurement and the speed across configurations, with a bootstrap interval.

    `measure` and `speed` map a configuration to its per-seed values, paired by position (value i of both
    comes from the same run). NaN marks a missing seed (dropped from both). Each bootstrap replicate
    resamples the seeds of every configuration with replacement, jointly for the measurement and the speed,
    and recomputes rho over the configuration means.

    >>> r = rank_correlation({"a": [1, 1], "b": [2, 2], "c": [3, 3]}, {"a": [5, 5], "b": [6, 6], "c": [9, 9]})
    >>> r.rho, r.ci, r.n
    (1.0, (1.0, 1.0), 3)
    """
    keys = [k for k in measure if k in speed]
    pairs = {}
    for k in keys:
        m, s = np.asarray(measure[k], dtype=float), np.asarray(speed[k], dtype=float)
        if m.shape != s.shape:
            raise ValueError(f"configuration {k!r}: {m.shape} measurement values against {s.shape} speed values")
        ok = np.isfinite(m) & np.isfinite(s)
        if ok.any():
            pairs[k] = (m[ok], s[ok])
    n = len(pairs)
    rho = spearman([m.mean() for m, _ in pairs.values()], [s.mean() for _, s in pairs.values()])
    if not np.isfinite(rho):
        return RankCorrelation(rho, (float("nan"), float("nan")), n, level)
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        mm, ss = [], []
        for m, s in pairs.values():
            i = rng.integers(0, len(m), len(m))
            mm.append(m[i].mean())
            ss.append(s[i].mean())
        reps.append(spearman(mm, ss))
    reps = np.asarray(reps)
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2]) if len(reps) else (float("nan"),) * 2
    return RankCorrelation(rho, (float(lo), float(hi)), n, level)
