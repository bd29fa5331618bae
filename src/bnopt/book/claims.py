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
from dataclasses import dataclass
from pathlib import Path

from bnopt.analysis.verdict import VERDICTS, Comparison, TheoryCheck
from bnopt.runs.cache import git_commit
from bnopt.runs.paths import write_text_atomic

CLAIMS_DIR = ".claims"


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
          "rate (β ≈ 2/LR in Fig. 4c): β grows with 2/LR, a positive slope of log β against log(2/LR) (VGG)",
          "protocol §7 caveat; Cohen et al. 2021", "smoothness", "fig-lr-level", by="Cohen et al. 2021"),
    Claim("lr_beta_dln", "Edge of stability: with BN the level of the effective β-smoothness is set by the learning "
          "rate (β ≈ 2/LR in Fig. 10c): a positive slope of log β against log(2/LR) (deep linear network)",
          "protocol §7 caveat; Cohen et al. 2021", "smoothness", "fig-lr-level", by="Cohen et al. 2021"),
    Claim("lr_eig_vgg", "Edge of stability: with BN the largest Hessian eigenvalue is set by the learning rate "
          "(λ_max ≈ 2/LR): a positive slope of log λ_max against log(2/LR) (VGG)", "Cohen et al. 2021",
          "smoothness", "fig-lr-level", by="Cohen et al. 2021"),
    Claim("lr_eig_dln", "Edge of stability: with BN the largest Hessian eigenvalue is set by the learning rate "
          "(λ_max ≈ 2/LR): a positive slope of log λ_max against log(2/LR) (deep linear network)", "Cohen et al. 2021",
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


def record(claim_id: str, result: Comparison | TheoryCheck, measurement: str, scale: str,
           folder: str | Path = ".") -> dict:
    """Write one claim's record (atomically) for the ledger; return it. `measurement` is the glued
    prose of what was measured (with seeds and spread); `scale` names the profile and run size."""
    c = claim(claim_id)
    if result.verdict not in VERDICTS:
        raise ValueError(f"verdict {result.verdict!r} is not one of {VERDICTS}")
    rec = {"id": c.id, "verdict": result.verdict, "evidence": result.text(), "measurement": measurement,
           "scale": scale, "numbers": result.to_dict(), "chapter": c.chapter}
    write_text_atomic(Path(folder) / CLAIMS_DIR / f"{c.id}.json", json.dumps(rec, indent=1, default=float))
    return rec


def clear(folder: str | Path, chapter: str) -> int:
    """Delete the records a chapter wrote (before it executes again, so none of them goes stale)."""
    n = 0
    for p in (Path(folder) / CLAIMS_DIR).glob("*.json"):
        try:
            stale = json.loads(p.read_text()).get("chapter") == chapter
        except (OSError, ValueError):
            stale = True
        if stale:
            p.unlink(missing_ok=True)
            n += 1
    return n


def load(folder: str | Path = ".") -> dict[str, dict]:
    """{claim id: record} of every record under `folder`/.claims, for known claims only."""
    out = {}
    for p in sorted((Path(folder) / CLAIMS_DIR).glob("*.json")):
        rec = json.loads(p.read_text())
        if rec.get("id") in BY_ID:
            out[rec["id"]] = rec
    return out


def counts(records: dict[str, dict]) -> dict[str, int]:
    """{verdict: number of claims} over the recorded claims, in the order of VERDICTS (zeros omitted)."""
    got = Counter(r["verdict"] for r in records.values())
    return {v: got[v] for v in VERDICTS if got[v]}


def summary_line(records: dict[str, dict]) -> str:
    """e.g. '12 claims measured: 7 reproduced, 3 partly, 0 not reproduced, 0 not testable at this scale, 2 statement
    incorrect (20 in the ledger)': every verdict, zeros too, so that the line has one form in every build."""
    c = counts(records)
    parts = ", ".join(f"{c.get(v, 0)} {v}" for v in VERDICTS)
    return f"{len(records)} claims measured: {parts} ({len(CLAIMS)} in the ledger)"


def build_line(records: dict[str, dict], profile: str) -> str:
    """The build the ledger comes from: profile (the ledger's `profile` parameter, which the build sets to the build's
    description), commit and date (for the front page)."""
    import datetime


    scales = sorted({r["scale"] for r in records.values()})
    return (f"profile `{profile}`, commit `{git_commit()[:12]}`, built "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; measurements at: " + "; ".join(scales))


def ledger_rows(records: dict[str, dict]) -> list[list[str]]:
    """One compact row per claim of the catalogue (LEDGER_HEADER): the claim, where the paper (or who else) makes
    it, the verdict, the effect with its seeds, and the link to the evidence. The measurement in words and the
    scale are in `ledger_details`, one click away, so that the verdict column fits the page."""
    rows = []
    for c in CLAIMS:
        r = records.get(c.id)
        where = c.source if c.by == "paper" else f"{c.source}; {c.by}"
        link = f"{{ref}}`{c.chapter} <{c.ref}>`"
        rows.append([c.text, where, "not measured" if r is None else f"**{r['verdict']}**",
                     "—" if r is None else r["evidence"], link])
    return rows


def ledger_details(records: dict[str, dict]) -> str:
    """A collapsed block (MyST dropdown) with every measured claim's measurement in words (seeds, spread) and the
    scale of its runs: the text the compact ledger rows leave out."""
    items = [f"- **{c.text}** ({c.source}): {r['measurement']}. *Scale:* {r['scale']}."
             for c in CLAIMS if (r := records.get(c.id))]
    return (":::{dropdown} Every measurement in words, with its seeds, spread and scale\n"
            + ("\n".join(items) or "No claim was measured in this build.") + "\n:::")


LEDGER_HEADER = ["claim", "paper", "verdict", "effect (seed pairs)", "evidence"]
