"""The book's one verdict rule: from per-seed measurements to the words `reproduced`, `consistent but
underpowered`, `not reproduced`, `contradicted`, `not testable at this scale` (experiments) and `statement
incorrect` (theory). The tests themselves are in `bnopt.analysis.stats` (scipy.stats).

Experimental claims have the form "A < B" (or "A > B"), where A and B are one number per seed (for example
the median effective beta-smoothness of the BN and of the standard network). Seeds are paired: seed s of A was
trained from the same seed as seed s of B. For each pair the rule takes d_s = log(A_s / B_s) (scale "ratio", for
positive quantities) or d_s = A_s - B_s (scale "difference"), then

* the effect: the geometric-mean ratio exp(mean d) or the mean difference, with its `level` t-interval;
* the test: a two-sided one-sample t-test of mean d = 0 (`scipy.stats.ttest_1samp`; its assumption: d is roughly
  normal over seeds). When every pair has the same d (no spread) the t statistic is undefined and the exact
  two-sided sign test takes its place;
* beside it, the exact one-sided sign test of the claimed side (`binomtest`), assumption-free and coarse: n pairs
  never give less than 2**-n.

The ledger adjusts the t-test p-values of one build's experimental claims together (Benjamini-Hochberg,
`Rule.correction`) and applies `decide` with the adjusted p; a chapter applies it with the raw p and says so.
`decide`, with the thresholds of `Rule` (glued into the ledger chapter by `Rule.describe`):

* `not testable at this scale`: fewer than `min_pairs` pairs have a finite value on both sides;
* `reproduced`: p < alpha, the effect on the claimed side (so the interval is too) and, where the paper states
  a magnitude ("two orders of magnitude"), at least `magnitude_fraction` of it (of its logarithm for ratios);
* `contradicted`: p < alpha and the effect on the other side;
* `consistent but underpowered`: every pair is on the claimed side, but the test does not reach alpha;
* `not reproduced`: everything else (the pairs disagree, or the effect is below the stated magnitude).

Theory claims are checked on exact quantities: `theory` calls a statement `reproduced` when its identity holds
to `theory_tol` relative error and no unit violates its inequality, and `statement incorrect` when either fails.

>>> c = compare([1.0, 2.0, 3.0], [2.0, 4.1, 6.3], claim="<")
>>> c.verdict, c.agree, round(c.effect, 3)
('reproduced', 3, 0.488)
>>> compare([1.0, 5.0, 3.0], [2.0, 4.0, 6.0], claim="<").verdict
'not reproduced'
>>> compare([3.0], [2.0], claim="<").verdict
'not testable at this scale'
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from bnopt.analysis import stats

VERDICTS = ("reproduced", "consistent but underpowered", "not reproduced", "contradicted",
            "not testable at this scale", "statement incorrect")
CLAIMS = ("<", ">")
SCALES = ("ratio", "difference")
CORRECTIONS = ("bh", "by")


class RuleError(ValueError):
    """A verdict rule with thresholds outside their ranges; the message names them."""


@dataclass(frozen=True)
class Rule:
    alpha: float = 0.05               # (adjusted) p below which a test counts
    level: float = 0.95               # confidence level of the effect's t-interval
    min_pairs: int = 2                # fewer finite pairs: `not testable at this scale`
    magnitude_fraction: float = 0.5   # share of a stated magnitude (of its log, for ratios) the effect must reach
    correction: str = "bh"            # across the ledger: Benjamini-Hochberg ('bh') or Benjamini-Yekutieli ('by')
    theory_tol: float = 1e-6          # relative error under which a theorem's identity counts as holding

    def __post_init__(self):
        if not 0 < self.alpha < 1 or not 0 < self.level < 1 or self.min_pairs < 2 or self.theory_tol <= 0:
            raise RuleError("Rule needs 0 < alpha < 1, 0 < level < 1, min_pairs >= 2 and theory_tol > 0, got "
                            f"alpha={self.alpha}, level={self.level}, min_pairs={self.min_pairs}, "
                            f"theory_tol={self.theory_tol}")
        if not 0 <= self.magnitude_fraction <= 1:
            raise RuleError(f"Rule needs 0 <= magnitude_fraction <= 1, got {self.magnitude_fraction}")
        if self.correction not in CORRECTIONS:
            raise RuleError(f"Rule.correction must be one of {CORRECTIONS}, got {self.correction!r}")

    def describe(self) -> str:
        """The rule in one paragraph of prose, from its own thresholds (glued into the ledger chapter)."""
        how = {"bh": "Benjamini-Hochberg (false-discovery rate)", "by": "Benjamini-Yekutieli"}[self.correction]
        return (f"For a claim \"A < B\" (or \"A > B\") measured on paired seeds, d is the per-seed log ratio log(A/B) "
                f"(or the difference A − B). The test is a two-sided one-sample t-test of mean d = 0 (the exact "
                f"two-sided sign test where every pair has the same d), its p-values adjusted across this build's "
                f"experimental claims by {how}. A claim is *reproduced* when the adjusted p is below {self.alpha:g}, "
                f"the effect (geometric-mean ratio, or mean difference) is on the claimed side, and, where the paper "
                f"states a magnitude, the effect reaches {self.magnitude_fraction:.0%} of it (of its logarithm for a "
                f"ratio); *contradicted* when the adjusted p is below {self.alpha:g} with the effect on the other "
                f"side; *consistent but underpowered* when every seed pair is on the claimed side but the test does "
                f"not reach {self.alpha:g}; *not reproduced* otherwise; *not testable at this scale* when fewer than "
                f"{self.min_pairs} pairs have a finite value on both sides. Intervals are {self.level:.0%} t-intervals. "
                f"A claim about every variant (\"all ℓp normalizations\") is reproduced only when each variant is "
                f"(its p is the largest of theirs, an intersection-union test). A theory statement is *reproduced* "
                f"when its identity holds to a relative error below {self.theory_tol:g} and no unit violates its "
                f"inequality, and a *statement incorrect* otherwise.").replace("%", " %")


RULE = Rule()
NAN = float("nan")


@dataclass
class Comparison:
    """The outcome of `compare`: the numbers behind a verdict, and the verdict (from `p`, or from `p_adj` once the
    ledger has set it)."""
    claim: str
    scale: str
    a: list
    b: list
    n: int                          # pairs with a finite value on both sides
    agree: int                      # of those, pairs on the claimed side
    effect: float = NAN             # geometric-mean ratio A/B, or mean difference A - B (nan when n == 0)
    ci: tuple = (NAN, NAN)          # its t-interval
    p: float = NAN                  # two-sided p of the test (t-test; sign test without spread)
    test: str = "t"                 # "t" or "sign"
    p_sign: float = NAN             # one-sided exact sign test toward the claimed side
    magnitude: float | None = None  # the paper's stated effect (a ratio, or a difference), if any
    p_adj: float | None = None      # p adjusted across the ledger (None: not yet)
    variant: str = ""               # for a claim about every variant: the one the verdict rests on
    parts: dict = field(default_factory=dict)   # ... and every variant's effect in words
    verdict: str = "not testable at this scale"
    rule: dict = field(default_factory=dict)

    def text(self, digits: int = 2) -> str:
        """e.g. 'A/B = 0.42 (95 % CI 0.31 to 0.55; t-test p = 0.004, sign test p = 0.125), 3 of 3 seed pairs agree'."""
        if self.n == 0:
            return "no seed pair with finite values on both sides"
        name = "A/B" if self.scale == "ratio" else "A − B"
        lo, hi = self.ci
        level = self.rule.get("level", RULE.level)
        test = "t-test" if self.test == "t" else "sign test (no spread)"
        ps = f"{test} p = {fmt_p(self.p)}" if math.isfinite(self.p) else "no test"
        interval = f"{level:.0%} CI {lo:.{digits}g} to {hi:.{digits}g}; " if math.isfinite(lo) else ""
        which = f"{self.variant}: " if self.variant else ""
        return (f"{which}{name} = {self.effect:.{digits}g} ({interval}{ps}, one-sided sign test p = "
                f"{fmt_p(self.p_sign)}), {self.agree} of {self.n} seed pairs agree").replace("%", " %")

    def word(self) -> str:
        """The verdict in bold, saying whether it is before the ledger's correction across claims."""
        return f"**{self.verdict}**" + (" before correction" if self.p_adj is None else "")

    def adjusted(self, p_adj: float, rule: Rule | None = None) -> "Comparison":
        """The same comparison judged with the p-value adjusted across the ledger (by `rule`, else its own)."""
        out = replace(self, p_adj=float(p_adj))
        if rule is None:
            rule = Rule(**self.rule) if self.rule else RULE
        out.verdict, out.rule = decide(out, rule), asdict(rule)
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Comparison":
        d = dict(d)
        d["ci"] = tuple(d.get("ci", (NAN, NAN)))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def fmt_p(p: float) -> str:
    """A p-value in two significant digits, small ones in powers of ten.

    >>> fmt_p(0.03125), fmt_p(2.3e-7), fmt_p(float("nan"))
    ('0.031', '2.3e-07', 'n/a')
    """
    if not math.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


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


def _sign(claim: str) -> float:
    return -1.0 if claim == "<" else 1.0          # the claimed side of d


def decide(c: Comparison, rule: Rule = RULE) -> str:
    """The verdict word from a comparison's numbers: its adjusted p when set, else its raw p (see the module).

    >>> c = Comparison("<", "ratio", [], [], n=3, agree=3, effect=0.5, p=0.2)
    >>> decide(c), decide(replace(c, p=0.01)), decide(replace(c, p=0.01, magnitude=0.01))
    ('consistent but underpowered', 'reproduced', 'not reproduced')
    """
    if c.n < rule.min_pairs:
        return "not testable at this scale"
    p = c.p if c.p_adj is None else c.p_adj
    sign = _sign(c.claim)
    d = math.log(c.effect) if c.scale == "ratio" else c.effect
    on_side = sign * d > 0
    big_enough = True
    if c.magnitude is not None:
        stated = math.log(c.magnitude) if c.scale == "ratio" else c.magnitude
        big_enough = sign * d >= rule.magnitude_fraction * abs(stated)
    if p < rule.alpha and on_side and big_enough:
        return "reproduced"
    if p < rule.alpha and sign * d < 0:
        return "contradicted"
    if c.agree == c.n and big_enough:
        return "consistent but underpowered"
    return "not reproduced"


def compare(a, b, claim: str = "<", scale: str = "ratio", rule: Rule = RULE, cap: float | None = None,
            magnitude: float | None = None) -> Comparison:
    """Apply the rule to the claim "A <claim> B" on paired per-seed values `a`, `b`.

    NaN marks a missing value (the pair is dropped). +inf marks a censored value (e.g. steps to a threshold
    that was never reached): with `cap` it becomes `cap` (the budget, a bound on the true value), and a pair
    censored on both sides is dropped. `magnitude` is the paper's stated effect (a ratio A/B or a difference).

    >>> compare([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], claim="<", scale="difference").verdict
    'not reproduced'
    >>> compare([5.0, 6.0, 7.0], [1.0, 2.0, 3.0], claim="<").verdict
    'contradicted'
    >>> compare([300.0, float("inf")], [float("inf"), float("inf")], claim="<", cap=700.0).n
    1
    """
    if claim not in CLAIMS:
        raise ValueError(f"claim must be one of {CLAIMS}, got {claim!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if magnitude is not None and scale == "ratio" and not magnitude > 0:
        raise ValueError(f"a stated magnitude on the ratio scale must be positive, got {magnitude}")
    a_raw, b_raw = list(map(float, a)), list(map(float, b))
    a, b = _finite_pairs(a_raw, b_raw, cap)
    if scale == "ratio" and (np.any(a <= 0) or np.any(b <= 0)):
        raise ValueError("scale='ratio' needs positive values; use scale='difference'")
    d = np.log(a / b) if scale == "ratio" else a - b
    sign = _sign(claim)
    out = Comparison(claim=claim, scale=scale, a=a_raw, b=b_raw, n=len(d), agree=int(np.sum(sign * d > 0)),
                     magnitude=magnitude, rule=asdict(rule))
    if len(d) == 0:
        return out
    back = math.exp if scale == "ratio" else float
    out.effect = back(float(d.mean()))
    out.p_sign = stats.sign_test(out.agree, len(d))
    if len(d) >= 2:
        t = stats.paired_t(d, claim, level=rule.level)
        if math.isfinite(t.p_claimed):
            out.ci = (back(t.ci[0]), back(t.ci[1]))
            out.p = min(1.0, 2 * min(t.p_claimed, t.p_other))
        else:                                     # every pair the same: the exact two-sided sign test
            out.ci, out.test = (out.effect, out.effect), "sign"
            out.p = stats.sign_test(len(d), len(d), two_sided=True) if d[0] != 0 else 1.0
    out.verdict = decide(out, rule)
    return out


def all_of(parts: dict[str, Comparison], rule: Rule = RULE) -> Comparison:
    """A claim about every variant ("the l1, l2 and l-inf normalizations all ..."): reproduced only when each is.
    The intersection-union test: its p is the largest of the variants' p when all are on the claimed side; when
    some are on the other side, the smallest of theirs times the number of variants (Bonferroni) for
    `contradicted`. The effect shown is the variant the verdict rests on.

    >>> v = all_of({"l1": compare([1.0, 2.0, 3.0], [2.0, 4.1, 6.3]), "l2": compare([1.0, 5.0, 3.0], [2.0, 4.0, 6.0])})
    >>> v.variant, v.verdict
    ('l2', 'not reproduced')
    """
    if not parts:
        raise ValueError("all_of needs at least one variant")
    tested = {k: c for k, c in parts.items() if c.n >= rule.min_pairs and math.isfinite(c.p)}
    if len(tested) < len(parts):                  # a variant without a test: the claim about all is not testable
        name = next(k for k in parts if k not in tested)
        pick, p = parts[name], NAN
    else:
        side = {k: _sign(c.claim) * (math.log(c.effect) if c.scale == "ratio" else c.effect) for k, c in tested.items()}
        wrong = [k for k in tested if side[k] < 0]
        if wrong:
            name = min(wrong, key=lambda k: tested[k].p)
            p = min(1.0, tested[name].p * len(tested))
        else:
            name = max(tested, key=lambda k: (tested[k].p, -side[k]))
            p = tested[name].p
        pick = tested[name]
    out = replace(pick, p=p, variant=name, parts={k: c.text() for k, c in parts.items()})
    out.verdict = decide(out, rule) if math.isfinite(p) else "not testable at this scale"
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

    def word(self) -> str:
        return f"**{self.verdict}**"

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
