"""The book's one verdict rule: from per-seed measurements to the words `reproduced`, `partly`,
`not reproduced`, `not testable at this scale` (experiments) and `statement incorrect` (theory).

Experimental claims have the form "A < B" (or "A > B"), where A and B are one number per seed
(for example the median effective beta-smoothness of the BN and of the standard network). Seeds are
paired: seed s of A was trained from the same seed as seed s of B. For each pair the rule takes
the log ratio log(A_s / B_s) (scale "ratio", for positive quantities) or the difference A_s - B_s
(scale "difference"), then

* the fraction of pairs on the claimed side (`agree`),
* the effect: the geometric mean ratio exp(mean log ratio) or the mean difference,
* a percentile bootstrap confidence interval of the effect, resampling pairs (Rule.level, n_boot;
  with 3 seeds there are only 10 distinct resamples, so the interval is coarse and says so by its width).

Verdict, with the thresholds of `Rule` (stated once here and glued into the ledger chapter):

* `not testable at this scale`: fewer than `min_pairs` pairs have a finite value on both sides;
* `reproduced`: at least `reproduced_agree` of the pairs agree AND the whole interval is on the
  claimed side of "no effect" (ratio 1, difference 0);
* `not reproduced`: at most `partly_agree` of the pairs agree, or the whole interval is on the wrong side;
* `partly`: everything in between (most seeds agree, but not all, or the interval straddles no effect).

Theory claims are checked on exact quantities: `theory` calls a statement `reproduced` when its
identity holds to `theory_tol` relative error and no unit violates its inequality, and
`statement incorrect` when either fails.

>>> c = compare([1.0, 2.0, 3.0], [2.0, 4.0, 6.0], claim="<")
>>> c.verdict, c.agree, round(c.effect, 3)
('reproduced', 3, 0.5)
>>> compare([1.0, 5.0, 3.0], [2.0, 4.0, 6.0], claim="<").verdict
'partly'
>>> compare([3.0], [2.0], claim="<").verdict
'not testable at this scale'
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

VERDICTS = ("reproduced", "partly", "not reproduced", "not testable at this scale", "statement incorrect")
CLAIMS = ("<", ">")
SCALES = ("ratio", "difference")


class RuleError(ValueError):
    """A verdict rule with thresholds outside their ranges; the message names them."""


@dataclass(frozen=True)
class Rule:
    reproduced_agree: float = 1.0   # fraction of seed pairs on the claimed side needed for `reproduced`
    partly_agree: float = 0.5       # at or below this fraction of agreeing pairs: `not reproduced`
    level: float = 0.95             # confidence level of the bootstrap interval
    n_boot: int = 10_000            # bootstrap resamples of the seed pairs
    min_pairs: int = 2              # fewer finite pairs: `not testable at this scale`
    boot_seed: int = 0              # generator seed of the bootstrap (the verdict is deterministic)
    theory_tol: float = 1e-6        # relative error under which a theorem's identity counts as holding

    def __post_init__(self):

        if not 0 <= self.partly_agree < self.reproduced_agree <= 1:
            raise RuleError(f"Rule needs 0 <= partly_agree < reproduced_agree <= 1, got "
                              f"{self.partly_agree} and {self.reproduced_agree}")
        if not 0 < self.level < 1 or self.n_boot < 100 or self.min_pairs < 1 or self.theory_tol <= 0:
            raise RuleError("Rule needs 0 < level < 1, n_boot >= 100, min_pairs >= 1 and theory_tol > 0")

    def describe(self) -> str:
        """The rule in one paragraph of prose, from its own thresholds (glued into the ledger chapter)."""
        return (f"For a claim \"A < B\" (or \"A > B\") measured on paired seeds: a claim is *reproduced* when at "
                f"least {self.reproduced_agree:.0%} of the seed pairs are on the claimed side and the whole "
                f"{self.level:.0%} bootstrap interval ({self.n_boot:,} resamples of the pairs) of the effect "
                f"(geometric-mean ratio A/B, or mean difference) excludes no effect; *not reproduced* when at most "
                f"{self.partly_agree:.0%} of the pairs agree or the whole interval is on the wrong side; *partly* "
                f"otherwise; *not testable at this scale* when fewer than {self.min_pairs} pairs have a finite value "
                f"on both sides. A theory statement is *reproduced* when its identity holds to a relative error "
                f"below {self.theory_tol:g} and no unit violates its inequality, and a *statement incorrect* "
                f"otherwise.").replace("%", " %")


RULE = Rule()


@dataclass
class Comparison:
    """The outcome of `compare`: the numbers behind a verdict, and the verdict."""
    claim: str
    scale: str
    a: list
    b: list
    n: int                          # pairs with a finite value on both sides
    agree: int                      # of those, pairs on the claimed side
    effect: float                   # geometric-mean ratio A/B, or mean difference A - B (nan when n == 0)
    ci: tuple = (float("nan"), float("nan"))
    verdict: str = "not testable at this scale"
    rule: dict = field(default_factory=dict)

    def text(self, digits: int = 2) -> str:
        """e.g. 'A/B = 0.42 (95 % CI 0.31 to 0.55), 3 of 3 seed pairs agree'."""
        if self.n == 0:
            return "no seed pair with finite values on both sides"
        name = "A/B" if self.scale == "ratio" else "A − B"
        lo, hi = self.ci
        level = self.rule.get("level", RULE.level)
        return (f"{name} = {self.effect:.{digits}g} ({level:.0%} CI {lo:.{digits}g} to {hi:.{digits}g}), "
                f"{self.agree} of {self.n} seed pairs agree").replace("%", " %")

    def to_dict(self) -> dict:
        return asdict(self)


def _finite_pairs(a, b, cap):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"compare needs two 1-D sequences of per-seed values of equal length, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b)) & (np.isfinite(a) | np.isfinite(b))   # nan: missing; both inf: censored both
    a, b = a[keep], b[keep]
    if cap is not None:                       # censored values (inf: e.g. a threshold never reached) at the budget
        a, b = np.where(np.isinf(a), cap, a), np.where(np.isinf(b), cap, b)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def compare(a, b, claim: str = "<", scale: str = "ratio", rule: Rule = RULE, cap: float | None = None) -> Comparison:
    """Apply the rule to the claim "A <claim> B" on paired per-seed values `a`, `b`.

    NaN marks a missing value (the pair is dropped). +inf marks a censored value (e.g. steps to a threshold
    that was never reached): with `cap` it becomes `cap` (the budget, a bound on the true value), and a pair
    censored on both sides is dropped.

    >>> compare([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], claim="<", scale="difference").verdict
    'partly'
    >>> compare([5.0, 6.0, 7.0], [1.0, 2.0, 3.0], claim="<").verdict
    'not reproduced'
    >>> compare([300.0, float("inf")], [float("inf"), float("inf")], claim="<", cap=700.0).n
    1
    """
    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {CLAIMS}, got {claim!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    a_raw, b_raw = list(map(float, a)), list(map(float, b))
    a, b = _finite_pairs(a_raw, b_raw, cap)
    if scale == "ratio" and (np.any(a <= 0) or np.any(b <= 0)):
        raise ValueError("scale='ratio' needs positive values; use scale='difference'")
    d = np.log(a / b) if scale == "ratio" else a - b
    sign = -1.0 if claim == "<" else 1.0          # the claimed side of d
    out = Comparison(claim=claim, scale=scale, a=a_raw, b=b_raw, n=len(d), agree=int(np.sum(sign * d > 0)),
                     effect=float("nan"), rule=asdict(rule))
    if len(d) == 0:
        return out
    boot = np.random.default_rng(rule.boot_seed).integers(0, len(d), size=(rule.n_boot, len(d)))
    means = d[boot].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - rule.level) / 2, (1 + rule.level) / 2])
    back = np.exp if scale == "ratio" else (lambda x: x)
    out.effect, out.ci = float(back(d.mean())), (float(back(lo)), float(back(hi)))
    if len(d) < rule.min_pairs:
        return out
    frac = out.agree / len(d)
    on_side = sign * lo > 0 if sign > 0 else sign * hi > 0          # the whole interval on the claimed side
    wrong_side = sign * hi < 0 if sign > 0 else sign * lo < 0       # the whole interval on the other side
    if frac >= rule.reproduced_agree and on_side:
        out.verdict = "reproduced"
    elif frac <= rule.partly_agree or wrong_side:
        out.verdict = "not reproduced"
    else:
        out.verdict = "partly"
    return out


@dataclass
class TheoryCheck:
    """The outcome of `theory`: measured errors and violations, and the verdict."""
    max_rel_error: float | None
    violations: int
    n: int
    verdict: str

    def text(self) -> str:
        parts = []
        if self.max_rel_error is not None:
            parts.append(f"largest relative error {self.max_rel_error:.1e}")
        if self.n:
            parts.append(f"{self.violations:,} of {self.n:,} cases violate it")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


def theory(max_rel_error: float | None = None, violations: int = 0, n: int = 0, rule: Rule = RULE) -> TheoryCheck:
    """Verdict on a theory statement from measured quantities: the largest relative error of its identity
    (None when it has none) and the number of violations of its inequality among `n` checked cases.

    >>> theory(max_rel_error=1e-14).verdict
    'reproduced'
    >>> theory(violations=3, n=100).verdict
    'statement incorrect'
    >>> theory(max_rel_error=0.2).verdict
    'statement incorrect'
    """
    if max_rel_error is None and n == 0:
        return TheoryCheck(None, 0, 0, "not testable at this scale")
    if not 0 <= violations <= max(n, 0):
        raise ValueError(f"violations must be between 0 and n={n}, got {violations}")
    bad = (max_rel_error is not None and not max_rel_error <= rule.theory_tol) or violations > 0
    return TheoryCheck(None if max_rel_error is None else float(max_rel_error), int(violations), int(n),
                       "statement incorrect" if bad else "reproduced")
