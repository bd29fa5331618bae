"""How each experimental claim of the ledger is tested, declared in one place before its data (issue 28): the
per-seed statistic, its aggregation over layers, the claimed side and scale, the effect the paper states, and whether
the reading was added after the data had been seen (exploratory). Also the analysis choices the ledger names as not
varied. `bnopt.book.claims` applies these declarations; the chapters never pass a side or a scale themselves."""
from __future__ import annotations

from dataclasses import dataclass

from bnopt.analysis import verdict as V
from bnopt.analysis.summary import LAYER_AGGREGATES


@dataclass(frozen=True)
class Test:
    """How an experimental claim is tested, declared before its data: per seed, A and B are `statistic` of the two
    networks, aggregated over layers by `layers` where the statistic is per layer; "A `side` B" is the claim, read on
    `scale`. `magnitude` is the effect the paper states (a ratio A/B or a difference), if it states one.
    `exploratory` says why a reading was added after the data had been seen ('' for a reading declared before):
    such rows stay out of the ledger's headline counts."""
    side: str
    scale: str
    statistic: str
    layers: str | None = None
    magnitude: float | None = None
    exploratory: str = ""

    def __post_init__(self):
        if self.side not in V.CLAIMS or self.scale not in V.SCALES:
            raise ValueError(f"a Test needs side in {V.CLAIMS} and scale in {V.SCALES}, got {self.side!r}, {self.scale!r}")
        if self.layers is not None and self.layers not in LAYER_AGGREGATES:
            raise ValueError(f"layers must be one of {LAYER_AGGREGATES} or None, got {self.layers!r}")

AFTER = "read this way after the quick runs had been seen"     # the reason shared by the exploratory rows
_ACC, _LOSS = "steps until the smoothed batch training accuracy reaches the threshold", "final training loss"
_MED = "median over the landscape measurements of training"
TESTS: dict[str, Test] = {
    "fig1_speed": Test("<", "ratio", _ACC + " (censored at the budget)"),
    "fig1_final_train": Test("<", "ratio", _LOSS + " (mean over the last fraction of steps)"),
    "fig1_high_lr": Test(">", "difference", "test accuracy at LR 0.5 (chance for a diverged run)"),
    "fig1_same_drift": Test("<", "ratio", "change of the sampled unit's std over training, deepest ridgeline layer"),
    "fig2_noisy_shift": Test(">", "ratio", "mean |Δμ| between measurements at the deep layer"),
    "fig2_noisy_trains": Test(">", "difference", "batch training accuracy at the end"),
    "folk_shift": Test("<", "ratio", "one-step input shift (W2/s), median over training", layers="mean"),
    "fig3_vgg_ics": Test("<", "difference", "cos(G, G′), median over training", layers="mean"),
    "fig3_dln_ics": Test("<", "difference", "cos(G, G′), median over training", layers="mean"),
    "fig4_loss_band": Test("<", "ratio", "loss band width, " + _MED),
    "fig4_grad_pred": Test("<", "ratio", "largest gradient difference along the gradient, " + _MED),
    "fig4_beta": Test("<", "ratio", "effective β-smoothness, " + _MED),
    "fig4_grad_spikes": Test("<", "ratio", "largest gradient difference, maximum over training", exploratory=AFTER),
    "fig4_beta_flat": Test("<", "ratio", "coefficient of variation of β over training", exploratory=AFTER),
    "fig4_grad_early": Test("<", "ratio", "gradient difference, median over the early measurements", magnitude=0.01,
                            exploratory="the early window was chosen after the quick runs had been seen"),
    "fig10_loss_band": Test("<", "ratio", "loss band width, " + _MED),
    "fig10_grad_pred": Test("<", "ratio", "largest gradient difference along the gradient, " + _MED),
    "fig10_beta": Test("<", "ratio", "effective β-smoothness, " + _MED),
    "fig10_grad_spikes": Test("<", "ratio", "largest gradient difference, maximum over training", exploratory=AFTER),
    "fig10_beta_flat": Test("<", "ratio", "coefficient of variation of β over training", exploratory=AFTER),
    "sweep_lr_vgg": Test(">", "ratio", "largest usable LR of the sweep",
                         exploratory="the usable-LR reference was fixed after the sweep had been seen"),
    "sweep_lr_dln": Test(">", "ratio", "largest usable LR of the sweep",
                         exploratory="the usable-LR reference was fixed after the sweep had been seen"),
    "random_dirs": Test("<", "ratio", "median β along random directions at the end of training"),
    "ghorbani_outliers": Test("<", "ratio", "λ_max / RMS eigenvalue of the minibatch Hessian"),
    "ghorbani_eval": Test(">", "ratio", "λ_max / RMS eigenvalue, eval mode (A) against train mode (B)"),
    "lr_beta_vgg": Test(">", "difference", "slope of log β on log(2/LR) against 0", magnitude=1.0),
    "lr_beta_dln": Test(">", "difference", "slope of log β on log(2/LR) against 0", magnitude=1.0),
    "lr_eig_vgg": Test(">", "difference", "slope of log λ_max on log(2/LR) against 0", magnitude=1.0),
    "lr_eig_dln": Test(">", "difference", "slope of log λ_max on log(2/LR) against 0", magnitude=1.0),
    "matched_ics_vgg": Test("<", "difference", "cos(G, G′) at matched training loss", layers="median"),
    "matched_beta_vgg": Test("<", "ratio", "β at matched training loss"),
    "matched_eig_vgg": Test("<", "ratio", "λ_max at matched training loss"),
    "matched_ics_dln": Test("<", "difference", "cos(G, G′) at matched training loss", layers="median"),
    "matched_beta_dln": Test("<", "ratio", "β at matched training loss"),
    "matched_eig_dln": Test("<", "ratio", "λ_max at matched training loss"),
    "fig4_loss_band_wd": Test("<", "ratio", "loss band width with weight decay, median over the window"),
    "fig5_lp_vgg": Test("<", "ratio", _ACC + ", each ℓp variant against the standard network"),
    "fig5_lp_dln": Test("<", "ratio", _LOSS + ", each ℓp variant against the standard network"),
    "fig5_l1_dln": Test("<", "ratio", _LOSS + ", ℓ1 against BN", magnitude=0.2),
    "fig6_lp_shift": Test(">", "ratio", "one-step input shift, median over training, each ℓp variant",
                          layers="median", exploratory="the median over layers was chosen after the data had been seen"),
    "fig12_lp_spikes": Test("<", "ratio", "largest gradient difference over training, each ℓp variant",
                            exploratory=AFTER),
    "fig13_lp_spikes": Test("<", "ratio", "largest gradient difference over training, each ℓp variant",
                            exploratory=AFTER),
}


# The chapters' analysis-time choices, each with its stated range: re-read from the same runs, every one is varied
# alone to each of these values relative to the chapter's own ("times": a factor, "plus": a step), clipped to its
# valid interval (None: unbounded), and the ledger's robustness column says which move a verdict. Windows stay
# whole numbers of steps. The run-time choices would need new runs; the ledger names them as not varied.
VARIATIONS: dict[str, tuple] = {
    "acc_threshold": ("plus", (-0.1, 0.1), (0.05, 0.995)),         # training: Fig. 1's accuracy threshold
    "smooth_window": ("times", (0.5, 2.0), (1, None)),              # training: steps of the accuracy average
    "speed_acc": ("plus", (-0.1, 0.1), (0.05, 0.995)),              # norms: VGG speed threshold
    "speed_loss_fraction": ("times", (0.5, 2.0), (0.01, 0.95)),     # norms: DLN speed threshold
    "final_fraction": ("times", (0.5, 2.0), (0.01, 1.0)),           # norms, smoothness: the final-loss window
    "early_fraction": ("times", (0.5, 2.0), (0.01, 1.0)),           # smoothness: "early in training"
    "usable_fraction": ("plus", (-0.1, 0.05), (0.05, 0.99)),        # smoothness: a usable learning rate
    "match_window": ("times", (0.5, 2.0), (1, None)),               # smoothness: the matched-loss average
    "match_tolerance": ("times", (0.5, 2.0), (0.001, 1.0)),         # smoothness: matched within this
}
ANALYSIS_CHOICES = tuple(VARIATIONS)
RUN_CHOICES = ("eta_multiples", "probe_every", "hessian_iters", "point_batches", "curvature_extra", "weight_decay")


def variations(name: str, value: float) -> list:
    """The values a choice is varied to around the chapter's `value` (its stated range; never the value itself).

    >>> variations("acc_threshold", 0.5), variations("acc_threshold", 0.99), variations("smooth_window", 25)
    ([0.4, 0.6], [0.89, 0.995], [12, 50])
    """
    if name not in VARIATIONS:
        raise KeyError(f"{name!r} has no stated range; choices with one: {', '.join(VARIATIONS)}")
    how, steps, (lo, hi) = VARIATIONS[name]
    out = []
    for st in steps:
        v = value * st if how == "times" else value + st
        v = max(v, lo) if lo is not None else v
        v = min(v, hi) if hi is not None else v
        v = int(v) if isinstance(value, int) else round(float(v), 12)
        if v != value and v not in out:
            out.append(v)
    return out


def untested_choices() -> str:
    """The sentence the ledger glues: which choices the robustness column does not vary."""
    code = lambda names: ", ".join(f"`{n}`" for n in names)
    return (f"the run-time choices, which would need new runs ({code(RUN_CHOICES)}), and each claim's aggregation over "
            f"layers (declared with the claim)")
