"""The one verdict rule (bnopt.analysis.verdict) and the claims ledger (bnopt.book.claims) on cases with known answers."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bnopt.analysis.verdict import Rule, RuleError, compare, theory
from bnopt.book import claims, report


def test_effect_is_geometric_mean_ratio_and_ci_brackets_it():
    c = compare([1.0, 2.0, 4.0], [4.0, 4.0, 4.0], claim="<")
    # log ratios: log(1/4), log(1/2), 0 -> mean -log(8)/3 -> ratio 8^(-1/3) = 0.5
    assert c.effect == pytest.approx(0.5)
    assert c.ci[0] <= c.effect <= c.ci[1]
    # the bootstrap interval of a mean lies within the range of the pairs' values
    assert c.ci[0] >= 0.25 - 1e-12 and c.ci[1] <= 1.0 + 1e-12
    assert (c.n, c.agree) == (3, 2)          # the third pair is a tie, which does not agree
    assert c.verdict == "partly"


def test_difference_scale_and_greater_claim():
    c = compare([0.9, 0.8, 0.85], [0.1, 0.1, 0.1], claim=">", scale="difference")
    assert c.effect == pytest.approx(0.75)
    assert c.verdict == "reproduced"
    assert compare([0.1, 0.1, 0.1], [0.9, 0.8, 0.85], claim=">", scale="difference").verdict == "not reproduced"


def test_all_agree_with_identical_ratios_gives_a_zero_width_interval():
    c = compare([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert c.ci == pytest.approx((0.5, 0.5))
    assert c.verdict == "reproduced"


def test_one_disagreeing_pair_of_two_is_not_reproduced():
    # 1 of 2 pairs agree: 0.5 <= partly_agree
    assert compare([1.0, 3.0], [2.0, 2.0]).verdict == "not reproduced"


def test_missing_and_censored_values():
    nan, inf = float("nan"), float("inf")
    c = compare([100.0, nan, 300.0], [200.0, 5.0, 600.0])
    assert c.n == 2 and c.verdict == "reproduced"
    # BN reached the threshold at 300 steps, the standard network never did within 700: a bound of 700
    c = compare([300.0, 400.0, inf], [inf, inf, inf], cap=700.0)
    assert c.n == 2 and c.agree == 2 and c.effect == pytest.approx(math.sqrt(300 * 400) / 700)
    assert compare([inf, inf], [inf, inf], cap=700.0).verdict == "not testable at this scale"


def test_bad_input_names_what_is_allowed():
    with pytest.raises(ValueError, match="claim must be one of"):
        compare([1.0], [2.0], claim="<=")
    with pytest.raises(ValueError, match="scale must be one of"):
        compare([1.0], [2.0], scale="log")
    with pytest.raises(ValueError, match="positive values"):
        compare([-1.0, 1.0], [2.0, 2.0])
    with pytest.raises(ValueError, match="equal length"):
        compare([1.0, 2.0], [2.0])
    with pytest.raises(RuleError, match="partly_agree"):
        Rule(partly_agree=0.9, reproduced_agree=0.8)


def test_thresholds_are_the_rules():
    a, b = [1.0, 5.0, 3.0], [2.0, 4.0, 6.0]          # 2 of 3 agree
    assert compare(a, b).verdict == "partly"
    assert compare(a, b, rule=Rule(reproduced_agree=0.6, partly_agree=0.5)).verdict == "partly"  # CI straddles 1
    assert compare(a, b, rule=Rule(partly_agree=0.7)).verdict == "not reproduced"
    assert compare([1.0, 2.0], [2.0, 4.0], rule=Rule(min_pairs=3)).verdict == "not testable at this scale"
    assert "100 %" in Rule().describe() and "95 %" in Rule().describe()


def test_theory_verdicts():
    assert theory(max_rel_error=1e-15, violations=0, n=10).verdict == "reproduced"
    assert theory(max_rel_error=1e-15, violations=1, n=10).verdict == "statement incorrect"
    assert theory(max_rel_error=1e-3, rule=Rule(theory_tol=1e-2)).verdict == "reproduced"
    assert theory(max_rel_error=float("nan")).verdict == "statement incorrect"
    assert theory().verdict == "not testable at this scale"
    assert "3 of 100" in theory(violations=3, n=100).text()
    with pytest.raises(ValueError, match="between 0 and n"):
        theory(violations=5, n=2)


def test_record_load_and_ledger(tmp_path):
    c = compare([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    rec = claims.record("fig4_beta", c, measurement="β 10 ± 1 vs 20 ± 2 (3 seeds)", scale="quick", folder=tmp_path)
    assert rec["verdict"] == "reproduced"
    claims.record("lemma45", theory(violations=2, n=10), measurement="2 of 10 fail", scale="exact",
                  folder=tmp_path)
    (tmp_path / claims.CLAIMS_DIR / "stray.json").write_text(json.dumps({"id": "not-a-claim"}))
    recs = claims.load(tmp_path)
    assert set(recs) == {"fig4_beta", "lemma45"}
    assert claims.counts(recs) == {"reproduced": 1, "statement incorrect": 1}
    assert claims.summary_line(recs).startswith("2 claims measured: 1 reproduced, 0 partly, 0 not reproduced, "
                                                "0 not testable at this scale, 1 statement incorrect")
    rows = claims.ledger_rows(recs)
    assert len(rows) == len(claims.CLAIMS)
    by_text = {r[0]: r for r in rows}
    assert all(len(r) == len(claims.LEDGER_HEADER) for r in rows)
    assert by_text[claims.claim("fig4_beta").text][2] == "**reproduced**"
    assert by_text[claims.claim("fig4_beta").text][3] == c.text()
    assert by_text[claims.claim("fig1_speed").text][2:4] == ["not measured", "—"]
    details = claims.ledger_details(recs)
    assert details.startswith(":::{dropdown}") and details.endswith(":::")
    assert "β 10 ± 1 vs 20 ± 2 (3 seeds)" in details and "*Scale:* quick" in details and "2 of 10 fail" in details
    assert claims.claim("fig1_speed").text not in details           # not measured: no line
    assert not list((tmp_path / claims.CLAIMS_DIR).glob(".tmp-*"))
    with pytest.raises(KeyError, match="the ledger knows"):
        claims.record("fig99", c, measurement="", scale="", folder=tmp_path)


def test_catalogue_is_well_formed():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    assert {c.by for c in claims.CLAIMS} <= set(claims.SOURCES)
    assert all(c.ref.startswith("fig-") or c.ref.startswith("sec-") for c in claims.CLAIMS)


def test_table_escapes_pipes_and_has_one_row_per_input():
    t = report.table(["x", "y"], [[1, 2], ["a|b", np.float64(0.5)]])
    lines = t.splitlines()
    assert len(lines) == 4 and lines[1] == "|---|---|"
    assert "a\\|b" in lines[3]
