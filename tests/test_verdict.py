"""The one verdict rule (bnopt.analysis.verdict) and the claims ledger (bnopt.book.claims) on cases with known answers."""
from __future__ import annotations

import json
import math

import pytest

from bnopt.analysis.verdict import Rule, RuleError, all_of, compare, theory
from bnopt.book import claims, plotting


def test_effect_is_geometric_mean_ratio_with_its_t_test():
    c = compare([1.0, 2.0, 4.0], [4.0, 4.0, 4.0], claim="<")
    # log ratios: -2 log 2, -log 2, 0 -> mean -log 2 (ratio 0.5), sd log 2, t = -sqrt(3) on 2 degrees of freedom;
    # the t(2) CDF is 1/2 + t / (2 sqrt(2 + t^2)), so the two-sided p is 1 - sqrt(3/5)
    assert c.effect == pytest.approx(0.5)
    assert c.p == pytest.approx(1 - math.sqrt(3 / 5)) and c.test == "t"
    # the interval: exp(-log 2 -/+ t(0.975, 2) log 2 / sqrt 3), t(0.975, 2) = 4.302653
    half = 4.302653 * math.log(2) / math.sqrt(3)
    assert c.ci == pytest.approx((0.5 * math.exp(-half), 0.5 * math.exp(half)), rel=1e-6)
    assert (c.n, c.agree) == (3, 2)          # the third pair is a tie, which does not agree
    assert c.p_sign == 0.5                   # P(at least 2 of 3) = 4/8
    assert c.verdict == "not reproduced"


def test_difference_scale_greater_claim_and_the_other_side():
    c = compare([0.9, 0.8, 0.85], [0.1, 0.1, 0.1], claim=">", scale="difference")
    # d = 0.8, 0.7, 0.75: mean 0.75, sd 0.05, t = 15 sqrt 3; two-sided p = 1 - t / sqrt(2 + t^2)
    t = 15 * math.sqrt(3)
    assert c.effect == pytest.approx(0.75) and c.p == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert c.verdict == "reproduced"
    assert compare([0.1, 0.1, 0.1], [0.9, 0.8, 0.85], claim=">", scale="difference").verdict == "contradicted"


def test_no_spread_falls_back_to_the_exact_sign_test():
    c = compare([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert c.ci == pytest.approx((0.5, 0.5)) and c.test == "sign"
    assert c.p == pytest.approx(0.25) and c.p_sign == pytest.approx(0.125)
    assert c.verdict == "consistent but underpowered"          # every pair agrees; 3 pairs cannot reach 0.05
    five = compare([1.0] * 5, [2.0] * 5)
    assert five.p_sign == pytest.approx(1 / 32) and five.p == pytest.approx(1 / 16)
    assert five.verdict == "consistent but underpowered"


def test_two_disagreeing_pairs_are_not_reproduced():
    assert compare([1.0, 3.0], [2.0, 2.0]).verdict == "not reproduced"


def test_a_stated_magnitude_must_be_reached():
    a, b = [1.0, 2.1, 3.0, 4.2], [2.0, 4.0, 6.1, 8.0]          # about half, in every pair, tight
    assert compare(a, b).verdict == "reproduced"
    assert compare(a, b, magnitude=0.5).verdict == "reproduced"
    # "two orders of magnitude": log 0.5 is far from half of log 0.01
    assert compare(a, b, magnitude=0.01).verdict == "not reproduced"
    assert compare(a, b, magnitude=0.01, rule=Rule(magnitude_fraction=0.1)).verdict == "reproduced"
    with pytest.raises(ValueError, match="positive"):
        compare(a, b, magnitude=-1.0)


def test_missing_and_censored_values():
    nan, inf = float("nan"), float("inf")
    c = compare([100.0, nan, 300.0], [200.0, 5.0, 600.0])
    assert c.n == 2 and c.verdict == "consistent but underpowered"
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
    with pytest.raises(RuleError, match="magnitude_fraction"):
        Rule(magnitude_fraction=2.0)
    with pytest.raises(RuleError, match="'bh', 'by'"):
        Rule(correction="holm")


def test_thresholds_are_the_rules():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.3, 5.9]
    c = compare(a, b)
    assert 0.001 < c.p < 0.05 and c.verdict == "reproduced"
    assert compare(a, b, rule=Rule(alpha=c.p / 2)).verdict == "consistent but underpowered"
    assert compare([1.0, 2.0], [2.0, 4.0], rule=Rule(min_pairs=3)).verdict == "not testable at this scale"
    text = Rule().describe()
    assert "0.05" in text and "95 %" in text and "Benjamini-Hochberg" in text


def test_every_variant_must_pass_on_its_own():
    good = compare([1.0, 2.0, 3.0], [2.0, 4.3, 5.9])
    weak = compare([1.0, 2.0, 3.0], [1.1, 2.3, 3.1])
    bad = compare([2.0, 4.3, 5.9], [1.0, 2.0, 3.0])
    both = all_of({"l1": good, "l2": good})
    assert both.verdict == "reproduced" and both.p == good.p
    one = all_of({"l1": good, "l2": weak})
    assert one.variant == "l2" and one.p == weak.p and one.verdict == weak.verdict != "reproduced"
    against = all_of({"l1": good, "l2": bad})                  # Bonferroni over the 2 variants
    assert against.variant == "l2" and against.p == pytest.approx(min(1.0, 2 * bad.p))
    assert set(against.parts) == {"l1", "l2"}
    assert all_of({"l1": good, "l2": compare([1.0], [2.0])}).verdict == "not testable at this scale"


def test_theory_verdicts():
    assert theory(max_rel_error=1e-15, violations=0, n=10).verdict == "reproduced"
    assert theory(max_rel_error=1e-15, violations=1, n=10).verdict == "statement incorrect"
    assert theory(max_rel_error=1e-3, rule=Rule(theory_tol=1e-2)).verdict == "reproduced"
    assert theory(max_rel_error=float("nan")).verdict == "statement incorrect"
    assert theory().verdict == "not testable at this scale"
    assert "3 of 100" in theory(violations=3, n=100).text()
    with pytest.raises(ValueError, match="between 0 and n"):
        theory(violations=5, n=2)


def test_record_load_correct_and_ledger(tmp_path):
    strong = claims.compare("fig4_beta", [1.0, 2.0, 3.0], [2.0, 4.3, 5.9])
    weaker = claims.compare("fig4_loss_band", [1.0, 2.0, 3.0], [1.6, 3.7, 4.4])
    assert strong.word() == "**reproduced** before correction"
    rec = claims.record("fig4_beta", strong, measurement="β 10 ± 1 vs 20 ± 2 (3 seeds)", scale="quick", folder=tmp_path)
    assert rec["verdict"] == "reproduced" and rec["exploratory"] == ""
    claims.record("fig4_loss_band", weaker, measurement="w", scale="quick", folder=tmp_path)
    claims.record("fig4_grad_spikes", claims.compare("fig4_grad_spikes", [1.0, 2.0], [3.0, 6.5]), "s", "quick", tmp_path)
    claims.record("lemma45", theory(violations=2, n=10), measurement="2 of 10 fail", scale="exact", folder=tmp_path)
    (tmp_path / claims.CLAIMS_DIR / "stray.json").write_text(json.dumps({"id": "not-a-claim"}))
    raw = claims.load(tmp_path)
    assert set(raw) == {"fig4_beta", "fig4_loss_band", "fig4_grad_spikes", "lemma45"}
    recs = claims.corrected(raw)
    # Benjamini-Hochberg over the three tested claims: the largest p stays, the others become min(p * 3 / rank, next)
    ps = sorted((raw[k]["numbers"]["p"], k) for k in ("fig4_beta", "fig4_loss_band", "fig4_grad_spikes"))
    adj3 = ps[2][0]
    adj2 = min(ps[1][0] * 3 / 2, adj3)
    assert recs[ps[2][1]]["numbers"]["p_adj"] == pytest.approx(adj3)
    assert recs[ps[1][1]]["numbers"]["p_adj"] == pytest.approx(adj2)
    assert recs[ps[0][1]]["numbers"]["p_adj"] == pytest.approx(min(ps[0][0] * 3, adj2))
    assert recs["lemma45"] == raw["lemma45"] and recs["fig4_beta"]["verdict_raw"] == "reproduced"
    assert recs["fig4_grad_spikes"]["exploratory"]                   # declared exploratory: out of the headline
    assert sum(claims.counts(recs).values()) == 3 and claims.counts(recs)["statement incorrect"] == 1
    assert sum(claims.counts(recs, exploratory=True).values()) == 1
    line = claims.summary_line(recs)
    assert line.startswith("3 claims measured: ") and "; 1 exploratory readings: " in line
    rows = claims.ledger_rows(recs, claims.robustness(raw))
    assert len(rows) == len(claims.CLAIMS) and all(len(r) == len(claims.LEDGER_HEADER) for r in rows)
    by_text = {r[0].split(" ({ref}")[0]: r for r in rows}
    row = by_text[claims.claim("fig4_beta").text]
    assert row[2] == claims.badge(recs["fig4_beta"]["verdict"]) and row[4] == "3"
    assert row[3].startswith("× 0.") and "[" in row[3] and " → " in row[5]
    assert "{ref}`smoothness <fig-land-vgg>`" in row[0]
    spikes = by_text[claims.claim("fig4_grad_spikes").text]
    assert "{bdg-light}`exploratory`" in spikes[2]
    assert by_text[claims.claim("fig1_speed").text][2:4] == ["not measured", "—"]
    assert by_text[claims.claim("lemma45").text][3] == "exact"
    details = claims.ledger_details(recs)
    assert details.startswith(":::{dropdown}") and details.endswith(":::")
    assert "β 10 ± 1 vs 20 ± 2 (3 seeds)" in details and "*Scale:* quick" in details and "2 of 10 fail" in details
    assert "*Exploratory:*" in details and "*Test:* A < B" in details
    assert claims.claim("fig1_speed").text not in details           # not measured: no line
    assert not list((tmp_path / claims.CLAIMS_DIR).glob(".tmp-*"))
    with pytest.raises(KeyError, match="the ledger knows"):
        claims.record("fig99", strong, measurement="", scale="", folder=tmp_path)
    with pytest.raises(ValueError, match="declared as A > B"):         # a comparison with the wrong side
        claims.record("ghorbani_eval", strong, measurement="", scale="", folder=tmp_path)


def test_robustness_names_the_choice_that_moves_a_verdict(tmp_path):
    c = claims.compare("fig4_beta", [1.0, 2.0, 3.0], [2.0, 5.0, 5.2])       # 0.01 < p < 0.05
    assert 0.01 < c.p < 0.05
    claims.record("fig4_beta", c, "m", "quick", tmp_path)
    robust = claims.robustness(claims.load(tmp_path))
    assert robust["fig4_beta"] == "alpha=0.01: consistent but underpowered"
    tight = claims.compare("fig4_beta", [1.0, 2.0, 3.0, 4.0], [2.0, 4.01, 5.99, 8.0])
    claims.record("fig4_beta", tight, "m", "quick", tmp_path)
    assert claims.robustness(claims.load(tmp_path)) == {"fig4_beta": ""}


def test_forest_plot_draws_every_tested_claim(tmp_path):
    claims.record("fig4_beta", claims.compare("fig4_beta", [1.0, 2.0, 3.0], [2.0, 4.3, 5.9]), "m", "q", tmp_path)
    claims.record("fig3_vgg_ics", claims.compare("fig3_vgg_ics", [0.5, 0.6], [0.9, 0.95]), "m", "q", tmp_path)
    claims.record("lemma45", theory(violations=2, n=10), "m", "exact", tmp_path)
    rows = claims.forest_rows(claims.corrected(claims.load(tmp_path)))
    assert {r["label"] for r in rows} == {"fig4_beta", "fig3_vgg_ics"}
    fig = plotting.forest(rows)
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log"
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["smoothness: fig4_beta"]
    with pytest.raises(ValueError, match="at least one claim"):
        plotting.forest([])


def test_catalogue_is_well_formed():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    assert {c.by for c in claims.CLAIMS} <= set(claims.SOURCES)
    assert all(c.ref.startswith("fig-") or c.ref.startswith("sec-") for c in claims.CLAIMS)
    theory_ids = {c.id for c in claims.CLAIMS if c.chapter == "bn_math"}
    assert set(claims.TESTS) == set(ids) - theory_ids            # every experimental claim declares its test
    with pytest.raises(KeyError, match="theory claim"):
        claims.declared("lemma45")
    with pytest.raises(ValueError, match="layers must be one of"):
        claims.Test("<", "ratio", "x", layers="max")


def test_the_choices_the_ledger_names_are_chapter_parameters():
    from bnopt.book import declared, params
    from bnopt.runs.paths import repo_root

    names = set()
    for nb in params.chapters(repo_root()):
        names |= set(params.notebook_parameters(nb))
    assert set(declared.ANALYSIS_CHOICES + declared.RUN_CHOICES) <= names
    assert all(f"`{n}`" in declared.untested_choices() for n in declared.RUN_CHOICES)
    with pytest.raises(KeyError, match="choices with one"):
        declared.variations("eta_multiples", 1.0)


def test_a_varied_analysis_choice_that_moves_a_verdict_is_named(tmp_path):
    from bnopt.book.chapters.common import vary

    a, b = [1.0, 2.0, 3.0], [2.0, 4.3, 5.9]
    claims.record("fig4_beta", claims.compare("fig4_beta", a, b), "m", "q", tmp_path)
    claims.record("fig4_loss_band", claims.compare("fig4_loss_band", a, b), "m", "q", tmp_path)
    calls = []

    def derive(folder, early_fraction, match_window):
        calls.append((early_fraction, match_window))
        worse = [2.0, 1.9, 3.5] if early_fraction > 0.1 else b              # a wider window loses the effect
        claims.record("fig4_beta", claims.compare("fig4_beta", a, worse), "m", "q", folder)

    done = vary({"early_fraction": 0.1, "match_window": 50}, derive, tmp_path)
    assert done == ["early_fraction=0.05", "early_fraction=0.2", "match_window=25", "match_window=100"]
    assert calls == [(0.05, 50), (0.2, 50), (0.1, 25), (0.1, 100)]          # one choice at a time
    variants = claims.load_variants(tmp_path)
    assert set(variants) == set(done) and set(variants["early_fraction=0.2"]) == {"fig4_beta"}
    robust = claims.robustness(claims.load(tmp_path), variants)
    assert robust["fig4_beta"].startswith("early_fraction=0.2: not reproduced")
    assert "early_fraction" not in robust["fig4_loss_band"]                    # not re-derived: not moved
    assert claims.clear(tmp_path, "smoothness") == 2 + 4                       # the variants' records go too
    assert claims.load_variants(tmp_path)["early_fraction=0.2"] == {}
