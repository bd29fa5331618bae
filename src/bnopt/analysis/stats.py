"""The tests behind the verdicts, all from scipy.stats (issue 28): a paired t-test on per-seed log ratios or
differences with its confidence interval, the exact sign test beside it, Benjamini-Hochberg adjustment across a
ledger, a permutation test of a rank correlation over configurations, a least-squares slope, and a t-test of
per-seed values against a stated value (per-seed slopes against 1 for "set by the learning rate", not 0).

Each function takes plain numbers and returns plain numbers; the known answers are in the doctests and in
tests/test_stats.py.

>>> round(sign_test(5, 5), 5)          # five of five pairs agree: 1/32, the smallest p five pairs can give
0.03125
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

SIDES = {"<": "less", ">": "greater"}


@dataclass(frozen=True)
class PairedTest:
    """A one-sample t-test of the per-pair values d (log ratios or differences) against 0."""
    n: int
    mean: float                      # the mean of d (exp of it: the geometric-mean ratio)
    ci: tuple[float, float]          # the two-sided `level` interval of the mean of d
    p_claimed: float                 # one-sided p toward the claimed side
    p_other: float                   # one-sided p toward the other side


def paired_t(d, claim: str, level: float = 0.95) -> PairedTest:
    """The t-test of mean(d) = 0 against the claimed side ("<": mean(d) < 0, ">": mean(d) > 0), its assumption
    being that d is roughly normal over seeds (log ratios of positive measurements usually are). Needs n >= 2; the
    p-values and interval are NaN when d has no spread beyond rounding (relative 1e-12: the t statistic is undefined,
    and a spread of rounding errors would otherwise make any constant difference look certain).

    >>> t = paired_t([1.0, 2.0, 3.0], ">")
    >>> t.mean, round(t.p_claimed, 4), round(t.p_other, 4)   # P(T_2 > 2 sqrt 3) = (1 - sqrt(6/7)) / 2
    (2.0, 0.0371, 0.9629)
    >>> [round(x, 3) for x in t.ci]         # 2 -/+ t(0.975, 2) * 1 / sqrt(3)
    [-0.484, 4.484]
    """
    if claim not in SIDES:
        raise ValueError(f"claim must be one of {', '.join(SIDES)}, got {claim!r}")
    d = np.asarray(d, dtype=float)
    if d.ndim != 1 or len(d) < 2 or not np.all(np.isfinite(d)):
        raise ValueError(f"paired_t needs at least 2 finite per-pair values, got {d.tolist()}")
    if np.ptp(d) <= 1e-12 * np.max(np.abs(d)):     # no spread beyond rounding: the t statistic is undefined
        nan = float("nan")
        return PairedTest(len(d), float(d.mean()), (nan, nan), nan, nan)
    other = "greater" if claim == "<" else "less"
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)      # a spread near rounding: scipy warns
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(level)
        claimed = stats.ttest_1samp(d, 0.0, alternative=SIDES[claim]).pvalue
        opposite = stats.ttest_1samp(d, 0.0, alternative=other).pvalue
    return PairedTest(len(d), float(d.mean()), (float(ci.low), float(ci.high)), float(claimed), float(opposite))


def t_against(values, value: float, level: float = 0.95) -> dict:
    """The two-sided one-sample t-test of mean(values) = `value` (e.g. per-seed slopes against 1) and the mean's
    `level` t-interval: {'mean', 'ci', 'p', 'n'}; p and the interval are NaN without spread.

    >>> r = t_against([0.0, 1.0, 2.0], 1.0)
    >>> r["mean"], r["p"]                  # the mean is the tested value: t = 0
    (1.0, 1.0)
    """
    v = np.asarray(values, dtype=float)
    t = paired_t(v - value, ">", level=level)
    p = min(1.0, 2 * min(t.p_claimed, t.p_other)) if np.isfinite(t.p_claimed) else float("nan")
    return {"mean": float(v.mean()), "ci": (t.ci[0] + value, t.ci[1] + value), "p": p, "n": t.n}


def fit_slope(x, y) -> float:
    """The least-squares slope of y on x (`linregress`; two points give the line through them).

    >>> fit_slope([0.0, 1.0, 2.0], [1.0, 3.0, 5.0])
    2.0
    """
    return float(stats.linregress(np.asarray(x, dtype=float), np.asarray(y, dtype=float)).slope)


def sign_test(agree: int, n: int, two_sided: bool = False) -> float:
    """The exact sign test: p of at least `agree` of `n` pairs on the claimed side when each side has probability
    1/2 (one-sided), or of a split at least this uneven either way (two-sided). Assumption-free, and coarse: n pairs
    can never give a one-sided p below 2**-n.

    >>> sign_test(3, 3), sign_test(2, 3), sign_test(3, 3, two_sided=True)
    (0.125, 0.5, 0.25)
    """
    if not 0 <= agree <= n or n < 1:
        raise ValueError(f"sign_test needs 0 <= agree <= n and n >= 1, got agree={agree}, n={n}")
    side = "two-sided" if two_sided else "greater"
    return float(stats.binomtest(agree, n, 0.5, alternative=side).pvalue)


def adjust(pvalues, method: str = "bh") -> np.ndarray:
    """P-values adjusted across a family of claims: Benjamini-Hochberg ('bh', the false-discovery rate: the
    expected share of false 'reproduced' among the reproduced) or Benjamini-Yekutieli ('by', any dependence).
    NaN entries (claims without a test) are left out of the family and stay NaN.

    >>> adjust([0.01, 0.02, 0.03, 0.04]).round(4).tolist()
    [0.04, 0.04, 0.04, 0.04]
    >>> adjust([0.01, float("nan"), 0.04]).round(4).tolist()
    [0.02, nan, 0.04]
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    keep = ~np.isnan(p)
    if keep.any():
        out[keep] = stats.false_discovery_control(p[keep], method=method)
    return out


def spearman(x, y) -> float:
    """Spearman's rank correlation (`spearmanr`; average ranks for ties); NaN with fewer than 3 pairs or a constant
    side.

    >>> spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])     # 1 - 6 * 4 / (5 * 24)
    0.8
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"spearman needs two 1-D sequences of equal length, got {x.shape} and {y.shape}")
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return round(float(stats.spearmanr(x, y).statistic), 12)      # exact ±1 stay exact despite rounding


def rank_correlation(x, y, n_resamples: int = 9_999, seed: int = 0, alternative: str = "two-sided") -> dict:
    """Spearman's rho over configurations and the p-value of a permutation test (the labels of y shuffled
    against x; exact over all orders when there are few of them). {'rho', 'p', 'n'}.

    >>> r = rank_correlation([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    >>> round(r["rho"], 9), round(r["p"], 4)           # 2 of the 120 orders give |rho| = 1
    (1.0, 0.0167)
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError("rank_correlation needs two 1-D sequences of the same length, at least 3")
    rx = stats.rankdata(x)

    def rho(yy, axis=-1):       # Spearman's rho = Pearson's r of the ranks, over many orders of y at once
        ry = stats.rankdata(yy, axis=axis)
        return stats.pearsonr(np.broadcast_to(rx, ry.shape), ry, axis=axis).statistic

    res = stats.permutation_test((y,), rho, permutation_type="pairings", n_resamples=n_resamples, vectorized=True,
                                 alternative=alternative, rng=np.random.default_rng(seed))
    return {"rho": float(stats.spearmanr(x, y).statistic), "p": float(res.pvalue), "n": len(x)}
