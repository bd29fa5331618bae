"""The claims ledger: the paper's claims (and the folk internal-covariate-shift explanation it argues
against) as data, each chapter's measured verdict on them, and the ledger table of the final chapter.

A chapter measures a claim and calls `record(claim_id, result, measurement=..., scale=...)`, where
`result` comes from the one verdict rule (`bnopt.analysis.verdict.compare` or `bnopt.analysis.verdict.theory`). The record
is written atomically to `.claims/<claim_id>.json` under the folder the chapter executes in (the build's
stage), and the ledger chapter reads every record there. A claim with no record (its chapter or its runs
are absent from this build) is shown as not measured.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bnopt.analysis import stats
from bnopt.analysis import verdict as V
from bnopt.analysis.verdict import RULE, VERDICTS, Comparison, Rule, TheoryCheck
from bnopt.book.declared import TESTS, Test
from bnopt.runs.cache import git_commit
from bnopt.runs.paths import write_text_atomic

CLAIMS_DIR = ".claims"
ROBUST_DIR = ".robust"     # <stage>/.robust/<choice>=<value>/.claims/: a chapter's claims with one choice varied


@dataclass(frozen=True)
class Claim:
    id: str
    text: str          # the claim in one line, as the paper (or the folk explanation) makes it
    source: str        # where the paper shows it
    chapter: str       # the chapter that measures it
    ref: str           # label of the evidence (a figure or section) in that chapter
    by: str = "paper"  # one of SOURCES: the paper, the folk ICS explanation it argues against, or a follow-up


SOURCES = ("paper", "folk ICS", "Ghorbani et al. 2019", "Cohen et al. 2021")   # who makes a claim (the ledger's "by" column)

CLAIMS: tuple[Claim, ...] = (
    Claim("fig1_speed", "BN trains faster: fewer steps to the training-accuracy threshold at LR 0.1",
          "Fig. 1a", "training", "fig-training"),
    Claim("fig1_final_train", "BN reaches a lower training loss within the same budget at LR 0.1",
          "Fig. 1a", "training", "fig-training"),
    Claim("fig1_high_lr", "At LR 0.5 the network with BN trains and the standard network does not (test accuracy)",
          "Fig. 1b", "training", "fig-training"),
    Claim("fig1_same_drift", "Folk ICS: BN keeps a layer's activation distribution more stable over training "
          "(smaller change of a unit's std at the deepest ridgeline layer)", "Fig. 1c (argued against)",
          "training", "fig-ridges", by="folk ICS"),
    Claim("fig2_noisy_shift", "Noisy BN has larger step-to-step distributional shift than BN",
          "Figs 2, 8", "ics", "fig-act-moments"),
    Claim("fig2_noisy_trains", "Noisy BN still trains faster than the standard network (training accuracy at the end)",
          "Fig. 2", "ics", "fig-noisy"),
    Claim("folk_shift", "Folk ICS: BN reduces the one-step distributional shift of the layer inputs (VGG)",
          "Sec. 2.1 (argued against)", "ics", "fig-dist-ics", by="folk ICS"),
    Claim("fig3_vgg_ics", "With BN the gradient ICS of Definition 2.1 is not lower, rather higher: cos(G, G') is "
          "lower with BN (VGG, median over layers 2 and up and over training)", "Fig. 3a", "ics", "fig-dist-ics"),
    Claim("fig3_dln_ics", "In the deep linear network BN increases ICS: cos(G, G') is lower with BN",
          "Fig. 3b", "ics", "fig-dist-ics"),
    Claim("fig4_loss_band", "BN narrows the loss variation along the gradient (VGG; median over training)", "Fig. 4a",
          "smoothness", "fig-land-vgg"),
    Claim("fig4_grad_pred", "BN makes gradients more predictive: smaller gradient change along the gradient "
          "(VGG; median over training)", "Fig. 4b", "smoothness", "fig-land-vgg"),
    Claim("fig4_beta", "BN lowers the effective beta-smoothness (VGG; median over training)", "Fig. 4c",
          "smoothness", "fig-land-vgg"),
    Claim("fig4_grad_spikes", "Without BN the gradient change along the gradient spikes: its largest value over "
          "training is higher than with BN (VGG)", "Fig. 4b", "smoothness", "fig-land-vgg"),
    Claim("fig4_beta_flat", "With BN the effective beta-smoothness stays flat, without it spikes and dips: a lower "
          "coefficient of variation over training with BN (VGG)", "Fig. 4c", "smoothness", "fig-land-vgg"),
    Claim("fig4_grad_early", "Early in training the gradient change along the gradient is much smaller with BN "
          "(\"close to two orders of magnitude\")", "Sec. 3.2, text", "smoothness", "fig-land-vgg"),
    Claim("fig10_loss_band", "BN narrows the loss variation along the gradient (deep linear network; median over "
          "training)", "Fig. 10a", "smoothness", "fig-land-dln"),
    Claim("fig10_grad_pred", "BN makes gradients more predictive (deep linear network; median over training)",
          "Fig. 10b", "smoothness", "fig-land-dln"),
    Claim("fig10_beta", "BN lowers the effective beta-smoothness (deep linear network; median over training)",
          "Fig. 10c", "smoothness", "fig-land-dln"),
    Claim("fig10_grad_spikes", "Without BN the gradient change spikes: its largest value over training is higher "
          "than with BN (deep linear network)", "Fig. 10b", "smoothness", "fig-land-dln"),
    Claim("fig10_beta_flat", "With BN the effective beta-smoothness stays flat: a lower coefficient of variation "
          "over training (deep linear network)", "Fig. 10c", "smoothness", "fig-land-dln"),
    Claim("sweep_lr_vgg", "BN tolerates larger learning rates: the largest usable learning rate of a sweep is "
          "higher with BN (VGG)", "Sec. 3.1, text; Fig. 1b", "smoothness", "fig-sweep"),
    Claim("sweep_lr_dln", "BN tolerates larger learning rates (deep linear network)", "Sec. 3.1, text",
          "smoothness", "fig-sweep"),
    Claim("random_dirs", "Along random directions the landscape shows the same BN effect: BN lowers the effective "
          "β-smoothness (trained VGG, measured at the end of training)", "Sec. 3.2, text", "smoothness",
          "sec-directions"),
    Claim("ghorbani_outliers", "Follow-up: without BN the Hessian has large isolated outlier eigenvalues; with BN "
          "(batch statistics) they are almost absent: a smaller λ_max / RMS eigenvalue with BN (trained VGG)",
          "Ghorbani et al. 2019, Sec. 4", "smoothness", "fig-spectrum", by="Ghorbani et al. 2019"),
    Claim("ghorbani_eval", "Follow-up: the outliers come back when BN uses population statistics: a larger "
          "λ_max / RMS eigenvalue in eval mode than in train mode (trained BN VGG)", "Ghorbani et al. 2019, Sec. 4",
          "smoothness", "fig-spectrum", by="Ghorbani et al. 2019"),
    Claim("lr_beta_vgg", "Edge of stability: with BN the level of the effective β-smoothness is set by the learning "
          "rate (β ≈ 2/LR in Fig. 4c): the slope of log β against log(2/LR) is positive and at least half of 1 (VGG)",
          "protocol §7 caveat; Cohen et al. 2021", "smoothness", "fig-lr-level", by="Cohen et al. 2021"),
    Claim("lr_beta_dln", "Edge of stability: with BN the level of the effective β-smoothness is set by the learning "
          "rate (β ≈ 2/LR in Fig. 10c): a slope of log β against log(2/LR) of at least half of 1 (deep linear network)",
          "protocol §7 caveat; Cohen et al. 2021", "smoothness", "fig-lr-level", by="Cohen et al. 2021"),
    Claim("lr_eig_vgg", "Edge of stability: with BN the largest Hessian eigenvalue is set by the learning rate "
          "(λ_max ≈ 2/LR): a slope of log λ_max against log(2/LR) of at least half of 1 (VGG)", "Cohen et al. 2021",
          "smoothness", "fig-lr-level", by="Cohen et al. 2021"),
    Claim("lr_eig_dln", "Edge of stability: with BN the largest Hessian eigenvalue is set by the learning rate "
          "(λ_max ≈ 2/LR): a slope of log λ_max against log(2/LR) of at least half of 1 (deep linear network)", "Cohen et al. 2021",
          "smoothness", "fig-lr-level", by="Cohen et al. 2021"),
    Claim("matched_ics_vgg", "At matched training loss (not the same step), BN does not reduce the gradient ICS: "
          "cos(G, G′) is lower with BN (VGG)", "Fig. 3a, at matched loss", "smoothness", "sec-matched-loss"),
    Claim("matched_beta_vgg", "At matched training loss, BN lowers the effective β-smoothness (VGG)",
          "Fig. 4c, at matched loss", "smoothness", "sec-matched-loss"),
    Claim("matched_eig_vgg", "At matched training loss, BN lowers the largest Hessian eigenvalue (VGG)",
          "Sec. 3.2 (smoothness), at matched loss", "smoothness", "sec-matched-loss"),
    Claim("matched_ics_dln", "At matched training loss, BN does not reduce the gradient ICS: cos(G, G′) is lower "
          "with BN (deep linear network)", "Fig. 3b, at matched loss", "smoothness", "sec-matched-loss"),
    Claim("matched_beta_dln", "At matched training loss, BN lowers the effective β-smoothness (deep linear network)",
          "Fig. 10c, at matched loss", "smoothness", "sec-matched-loss"),
    Claim("matched_eig_dln", "At matched training loss, BN lowers the largest Hessian eigenvalue (deep linear network)",
          "Sec. 3.2 (smoothness), at matched loss", "smoothness", "sec-matched-loss"),
    Claim("fig4_loss_band_wd", "With weight decay (protocol §7's hidden-L2 question), BN still narrows the loss "
          "variation along the gradient (VGG; median over the window)", "Fig. 4a, with weight decay", "smoothness",
          "sec-hidden-l2"),
    Claim("fig5_lp_vgg", "The ℓ1, ℓ2 and ℓ∞ normalizations (no Gaussian-like control of the moments) also train "
          "the VGG faster than the standard network (steps to the training-accuracy threshold)", "Fig. 5a",
          "norms", "fig-norms-train"),
    Claim("fig5_lp_dln", "The ℓp normalizations train the deep linear network better than the standard network "
          "(lower training loss)", "Fig. 5b", "norms", "fig-norms-train"),
    Claim("fig5_l1_dln", "On the deep linear network ℓ1 normalization performs even better than BN (lower training "
          "loss)", "Sec. 3.3, text; Fig. 5b", "norms", "fig-norms-train"),
    Claim("fig6_lp_shift", "The ℓp normalizations have a larger distributional shift than the standard network, "
          "yet train faster (VGG; one-step input shift, median over layers 2 and up)", "Fig. 6; Sec. 3.3",
          "norms", "fig-norms-act"),
    Claim("fig12_lp_spikes", "With the ℓp normalizations the gradient change along the gradient does not spike as "
          "without normalization: its largest value over training is lower (VGG)", "Fig. 12c", "norms",
          "fig-norms-land-vgg"),
    Claim("fig13_lp_spikes", "With the ℓp normalizations the gradient change does not spike: its largest value over "
          "training is lower than without normalization (deep linear network)", "Fig. 13c", "norms",
          "fig-norms-land-dln"),
    Claim("thm41_printed", "Theorem 4.1 as printed (with 1/sqrt(m)) bounds the BN gradient norm", "Thm. 4.1",
          "bn_math", "fig-t41"),
    Claim("thm41_identity", "Theorem 4.1's proof identity (with 1/m) holds exactly", "Thm. 4.1, proof",
          "bn_math", "fig-t41"),
    Claim("thm42_identity", "Theorem 4.2's first statement holds (as an equality)", "Thm. 4.2", "bn_math", "fig-t41"),
    Claim("obs43_twin", "Observation 4.3: for any weights, BN with γ_j = σ_j and β_j = μ_j computes the standard "
          "network's activations, so every minimum of the standard landscape is in the BN landscape", "Obs. 4.3",
          "bn_math", "fig-obs43"),
    Claim("obs43_reduction", "BN does more than rescaling: at γ_j = σ_j (no rescaling) the BN gradient at y_j is "
          "still no larger than the standard network's (the reduction of Thm. 4.1 is additive)", "Obs. 4.3, Sec. 4.1",
          "bn_math", "fig-obs43"),
    Claim("thm44_printed", "Theorem 4.4's bound as printed holds", "Thm. 4.4", "bn_math", "fig-t41"),
    Claim("lemma45", "Lemma 4.5: BN's optimum is closer to the initialisation (for every initialisation)",
          "Lemma 4.5", "bn_math", "fig-lemma45"),
)
BY_ID = {c.id: c for c in CLAIMS}



def claim(claim_id: str) -> Claim:
    try:
        return BY_ID[claim_id]
    except KeyError:
        raise KeyError(f"unknown claim {claim_id!r}; the ledger knows: {', '.join(BY_ID)}") from None


def declared(claim_id: str) -> Test:
    """The declared test of an experimental claim."""
    claim(claim_id)
    if claim_id not in TESTS:
        raise KeyError(f"{claim_id!r} is a theory claim (checked by verdict.theory); tested claims: {', '.join(TESTS)}")
    return TESTS[claim_id]


def compare(claim_id: str, a, b, cap: float | None = None, rule: Rule = RULE) -> Comparison:
    """The verdict rule on per-seed values A, B of a claim, with its declared side, scale and magnitude."""
    t = declared(claim_id)
    return V.compare(a, b, t.side, scale=t.scale, rule=rule, cap=cap, magnitude=t.magnitude)


def compare_all(claim_id: str, parts: dict, cap: float | None = None, rule: Rule = RULE) -> Comparison:
    """A claim about every variant: {variant name: (A values, B values)}; each variant is tested on its own
    (`verdict.all_of`)."""
    return V.all_of({k: compare(claim_id, a, b, cap=cap, rule=rule) for k, (a, b) in parts.items()}, rule)


def layers_label(claim_id: str) -> str:
    """e.g. 'mean over layers 2 and up': the declared aggregation, as the chapters print it."""
    return f"{declared(claim_id).layers} over layers 2 and up"


def record(claim_id: str, result: Comparison | TheoryCheck, measurement: str, scale: str,
           folder: str | Path = ".") -> dict:
    """Write one claim's record (atomically) for the ledger; return it. `measurement` is the glued
    prose of what was measured (with seeds and spread); `scale` names the profile and run size. A comparison must
    have been made with the claim's declared side and scale."""
    c = claim(claim_id)
    if result.verdict not in VERDICTS:
        raise ValueError(f"verdict {result.verdict!r} is not one of {VERDICTS}")
    if isinstance(result, Comparison):
        t = declared(claim_id)
        if (result.claim, result.scale, result.magnitude) != (t.side, t.scale, t.magnitude):
            raise ValueError(f"{claim_id} is declared as A {t.side} B on scale {t.scale!r} (magnitude {t.magnitude}); "
                             f"the comparison was A {result.claim} B on {result.scale!r} (magnitude {result.magnitude})")
    rec = {"id": c.id, "verdict": result.verdict, "evidence": result.text(), "measurement": measurement,
           "scale": scale, "numbers": result.to_dict(), "chapter": c.chapter,
           "exploratory": TESTS[c.id].exploratory if c.id in TESTS else ""}
    write_text_atomic(Path(folder) / CLAIMS_DIR / f"{c.id}.json", json.dumps(rec, indent=1, default=float))
    return rec


def chapter_files(folder: str | Path, chapter: str, unreadable: bool = False) -> list[Path]:
    """The record files a chapter wrote under `folder`, its varied-choice records too, sorted (`unreadable`: with
    every file that cannot be read as a record)."""
    out = []
    for p in [*(Path(folder) / CLAIMS_DIR).glob("*.json"), *(Path(folder) / ROBUST_DIR).glob(f"*/{CLAIMS_DIR}/*.json")]:
        try:
            mine = json.loads(p.read_text()).get("chapter") == chapter
        except (OSError, ValueError):
            mine = unreadable
        if mine:
            out.append(p)
    return sorted(out)


def clear(folder: str | Path, chapter: str) -> int:
    """Delete the records a chapter wrote, its varied-choice records too, and every unreadable record (before it
    executes again, so none of them goes stale)."""
    files = chapter_files(folder, chapter, unreadable=True)
    for p in files:
        p.unlink(missing_ok=True)
    return len(files)


def variant_folder(folder: str | Path, choice: str, value) -> Path:
    """Where a chapter writes its claims re-derived with one analysis choice varied."""
    return Path(folder) / ROBUST_DIR / f"{choice}={value:g}"


def load_variants(folder: str | Path = ".") -> dict[str, dict[str, dict]]:
    """{'<choice>=<value>': {claim id: record}} of every varied-choice folder under `folder`."""
    root = Path(folder) / ROBUST_DIR
    return {p.name: load(p) for p in sorted(root.iterdir()) if p.is_dir()} if root.is_dir() else {}


def load(folder: str | Path = ".") -> dict[str, dict]:
    """{claim id: record} of every record under `folder`/.claims, for known claims only."""
    out = {}
    for p in sorted((Path(folder) / CLAIMS_DIR).glob("*.json")):
        rec = json.loads(p.read_text())
        if rec.get("id") in BY_ID:
            out[rec["id"]] = rec
    return out


def corrected(records: dict[str, dict], rule: Rule = RULE) -> dict[str, dict]:
    """The records with the ledger's correction: every experimental claim's p adjusted across this build's experimental
    claims (`rule.correction`; exploratory rows included, which only makes the others' adjustment stricter), and its
    verdict decided again with the adjusted p. Theory records are returned unchanged. Each corrected record keeps
    the chapter's uncorrected word as `verdict_raw`."""
    tested = [k for k, r in records.items() if "p" in r["numbers"]]
    adj = stats.adjust([r["numbers"]["p"] for k, r in records.items() if k in tested], method=rule.correction)
    out = dict(records)
    for k, pa in zip(tested, adj):
        c = Comparison.from_dict(records[k]["numbers"])
        c = c.adjusted(pa, rule) if np.isfinite(pa) else c
        out[k] = {**records[k], "verdict_raw": records[k]["verdict"], "verdict": c.verdict, "numbers": c.to_dict(),
                  "evidence": c.text()}
    return out


def counts(records: dict[str, dict], exploratory: bool = False) -> dict[str, int]:
    """{verdict: number of claims} over the recorded claims that are (not) exploratory, in the order of VERDICTS
    (zeros omitted)."""
    got = Counter(r["verdict"] for r in records.values() if bool(r.get("exploratory")) == exploratory)
    return {v: got[v] for v in VERDICTS if got[v]}


def summary_line(records: dict[str, dict]) -> str:
    """e.g. '40 claims measured: 7 reproduced, 3 consistent but underpowered, ... (49 in the ledger), and 9
    exploratory readings: ...': every verdict, zeros too, so that the line has one form in every build. The
    headline counts leave the exploratory readings out."""
    def line(c):
        return ", ".join(f"{c.get(v, 0)} {v}" for v in VERDICTS)
    n_exp = sum(bool(r.get("exploratory")) for r in records.values())
    return (f"{len(records) - n_exp} claims measured: {line(counts(records))} ({len(CLAIMS)} in the ledger); "
            f"{n_exp} exploratory readings: {line(counts(records, exploratory=True))}")


def build_line(records: dict[str, dict], profile: str) -> str:
    """The build the ledger comes from: profile (the ledger's `profile` parameter, which the build sets to the build's
    description), commit and date (for the front page)."""
    import datetime


    scales = sorted({r["scale"] for r in records.values()})
    return (f"profile `{profile}`, commit `{git_commit()[:12]}`, built "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; measurements at: " + "; ".join(scales))


RULE_CHOICES = {"correction": ("bh", "by"), "magnitude_fraction": (0.25, 0.75), "alpha": (0.01, 0.1)}   # [choice]s


def robustness(records: dict[str, dict], variants: dict[str, dict[str, dict]] | None = None,
               choices: dict = RULE_CHOICES, rule: Rule = RULE) -> dict[str, str]:
    """{claim id: '' when its verdict stays under every variation, else which variations move it and to what}, e.g.
    'correction=by: consistent but underpowered; early_fraction=0.2: not reproduced'. The rule's own choices are
    varied one at a time (the others at `rule`'s values); `variants` ({'<choice>=<value>': records}, from
    `load_variants`) are the chapters' claims re-derived with one analysis choice varied, judged with the rest of the
    ledger as it is; a claim counts as moved by a variant only where its own measurement changed (not where only the
    correction moved because another claim changed). Only experimental claims."""
    base = corrected(records, rule)
    moved: dict[str, list[str]] = {k: [] for k, r in base.items() if "p" in r["numbers"]}
    alternatives = [(f"{name}={v:g}" if not isinstance(v, str) else f"{name}={v}", records, replace(rule, **{name: v}))
                    for name, values in choices.items() for v in values]
    alternatives += [(label, {**records, **recs}, rule) for label, recs in (variants or {}).items()]
    for label, recs, r in alternatives:
        alt = corrected(recs, r)
        for k in moved:
            if k in alt and alt[k]["verdict"] != base[k]["verdict"] and (recs is records or _remeasured(k, recs, records)):
                moved[k].append(f"{label}: {alt[k]['verdict']}")
    return {k: "; ".join(m) for k, m in moved.items()}


def _remeasured(k: str, variant: dict[str, dict], records: dict[str, dict]) -> bool:
    """Whether a variant re-derived claim k with other numbers than the build's own."""
    if k not in variant or k not in records:
        return False
    a, b = variant[k]["numbers"], records[k]["numbers"]
    return (a.get("a"), a.get("b"), a.get("variant")) != (b.get("a"), b.get("b"), b.get("variant"))


def forest_rows(records: dict[str, dict]) -> list[dict]:
    """The experimental claims with an effect, as `plotting.forest` draws them (from corrected records)."""
    out = []
    for c in CLAIMS:
        r = records.get(c.id)
        if r is None or "p" not in r["numbers"] or not np.isfinite(r["numbers"]["effect"]):
            continue
        n = r["numbers"]
        out.append({"label": c.id, "chapter": c.chapter, "scale": n["scale"], "side": n["claim"], "effect": n["effect"],
                    "ci": tuple(n["ci"]), "verdict": r["verdict"], "exploratory": bool(r.get("exploratory"))})
    return out


BADGES = {"reproduced": "success", "consistent but underpowered": "info", "not reproduced": "warning",
          "contradicted": "danger", "not testable at this scale": "secondary", "statement incorrect": "danger"}


def badge(verdict: str) -> str:
    """The verdict as a coloured badge (sphinx-design's `bdg-*` roles)."""
    return f"{{bdg-{BADGES[verdict]}}}`{verdict}`"


def effect_text(numbers: dict) -> str:
    """The effect with its interval, compactly: e.g. '0.44 [0.43, 0.44]' (a ratio A/B) or '−0.24 [−0.46, −0.02]'."""
    e, (lo, hi) = numbers.get("effect", float("nan")), numbers.get("ci", (float("nan"),) * 2)
    if not np.isfinite(e):
        return "—"
    f = lambda x: f"{x:.2g}".replace("-", "−")
    name = "×" if numbers.get("scale") == "ratio" else "Δ"
    return f"{name} {f(e)}" + (f" [{f(lo)}, {f(hi)}]" if np.isfinite(lo) else "")


def ledger_rows(records: dict[str, dict], robust: dict[str, str] | None = None) -> list[list[str]]:
    """One compact row per claim of the catalogue (LEDGER_HEADER), from corrected records: the claim with the link to
    its evidence, where the paper (or who else) makes it, the verdict badge (and an `exploratory` badge), the effect
    with its interval, n, the raw and the adjusted p, and the rule's choices that move the verdict (`robustness`).
    The measurement in words is in `ledger_details`, one click away."""
    rows = []
    for c in CLAIMS:
        r = records.get(c.id)
        where = c.source if c.by == "paper" or c.by in c.source else f"{c.source}; {c.by}"
        text = f"{c.text} ({{ref}}`{c.chapter} <{c.ref}>`)"
        if r is None:
            rows.append([text, where, "not measured", "—", "—", "—", "—"])
            continue
        n = r["numbers"]
        word = badge(r["verdict"]) + (" {bdg-light}`exploratory`" if r.get("exploratory") else "")
        p = "—"
        if "p" in n:
            p = V.fmt_p(n["p"]) + (f" → {V.fmt_p(n['p_adj'])}" if n.get("p_adj") is not None else "")
        moves = "—" if robust is None or c.id not in robust else \
            ("stable" if not robust[c.id] else "moves: " + ", ".join(m.split(":")[0] for m in robust[c.id].split("; ")))
        rows.append([text, where, word, effect_text(n) if "p" in n else "exact", str(n.get("n", "—")), p,
                     moves if "p" in n else "exact"])
    return rows


def ledger_details(records: dict[str, dict], robust: dict[str, str] | None = None) -> str:
    """A collapsed block (MyST dropdown) with every measured claim's measurement in words (seeds, spread), its test
    in full and the scale of its runs: the text the compact ledger rows leave out."""
    items = []
    for c in CLAIMS:
        if not (r := records.get(c.id)):
            continue
        how = ""
        if c.id in TESTS:
            t = TESTS[c.id]
            how = f" *Test:* A {t.side} B on {t.statistic}" + (f", {t.layers} over layers 2 and up" if t.layers else "")
            how += (f", stated magnitude {t.magnitude:g}" if t.magnitude is not None else "") + f"; {r['evidence']}."
            how += f" *Exploratory:* {t.exploratory}." if t.exploratory else ""
            if robust and robust.get(c.id):
                how += f" *Moves with the rule's choices:* {robust[c.id]}."
        items.append(f"- **{c.text}** ({c.source}): {r['measurement']}.{how} *Scale:* {r['scale']}.")
    return (":::{dropdown} Every measurement in words, with its seeds, spread, test and scale\n"
            + ("\n".join(items) or "No claim was measured in this build.") + "\n:::")



LEDGER_HEADER = ["claim (evidence)", "paper", "verdict", "effect [95 % CI]", "n", "p → adjusted p",
                 "robust to the choices"]
