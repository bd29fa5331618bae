"""The BN-math chapter, sections 7 and 8: σ_j in trained networks, and whether γ_j / σ_j tracks the measured β."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bnopt.analysis import summary as S
from bnopt.analysis.stats import spearman
from bnopt.book import plotting as P
from bnopt.book.scales import describe, glued_at

# --- 7. sigma_j in practice -----------------------------------------------------------------------

def sigma_table(results: list[dict], step_index: int) -> np.ndarray:
    """(seeds, layers) medians of sigma_j over units, at one probe record."""
    out = []
    for r in results:
        rec = r["probes"]["unit_std"][step_index]["data"]
        out.append([float(rec[k]["sigma"].median()) for k in sorted(rec)])
    return np.array(out)


def sigma_report(runs: dict):
    """The sigma_j figure, its table, and glued values (incl. |gamma| / sigma at the end of training)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    rows, glued = [], {}
    for norm, rs in runs.items():
        first, last = sigma_table(rs, 0), sigma_table(rs, -1)
        layers = np.arange(1, first.shape[1] + 1)
        c = P.NORM_COLORS[norm]
        P.curve_band(axes[0], layers, first, label=f"{P.label(norm)}, step 0", color=c, linestyle="--", marker="o", ms=3)
        P.curve_band(axes[0], layers, last, label=f"{P.label(norm)}, step {rs[0]['probes']['unit_std'][-1]['step']}",
                     color=c, marker="o", ms=3)
        steps_rec = [rec["step"] for rec in rs[0]["probes"]["unit_std"]]
        over = np.array([[[float(rec["data"][k]["sigma"].median()) for k in sorted(rec["data"])]
                          for rec in r["probes"]["unit_std"]] for r in rs])
        P.curve_band(axes[1], steps_rec, over.max(axis=2), label=P.label(norm), color=c)
        for name, tab in (("step 0", first), ("last probe", last)):
            med = tab.mean(0)
            rows.append([P.label(norm), name, f"{med.min():.3g}", f"{med.max():.3g}", f"{med[-1]:.3g}"])
        tag = "none" if norm == "none" else "bn"
        glued[f"sigma_{tag}_first"] = f"{first.mean(0).min():.3g} to {first.mean(0).max():.3g}"
        glued[f"sigma_{tag}_last"] = f"{last.mean(0).min():.3g} to {last.mean(0).max():.3g}"
    axes[0].set(xlabel="layer", ylabel="median over units of sigma_j", yscale="log", title="per-unit std of pre-activations (pre-BN)")
    axes[1].set(xlabel="step", ylabel="largest layer median sigma_j", yscale="log", title="over training")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    gam_sig = []
    for r in runs["batch"]:
        rec = r["probes"]["unit_std"][-1]["data"]
        gam_sig.append(np.median(np.concatenate([(rec[k]["gamma"].abs() / rec[k]["sigma"]).numpy() for k in rec])))
    glued["gamma_over_sigma"] = S.pm(*S.mean_std(gam_sig)[:2], 3)
    glued["gamma_sigma_verdict"] = ("below 1: BN shrinks the gradient of the typical unit, as the paper's reading needs"
                                    if np.mean(gam_sig) < 1 else "above 1: BN *amplifies* the gradient of the typical "
                                    "unit, the opposite of the reduction the paper's reading needs")
    none_first = sigma_table(runs["none"], 0).mean(0)
    glued["sigma_depth"] = f"{none_first[0]:.3g} at layer 1 and {none_first[-1]:.3g} at layer {len(none_first)}"
    glued["sigma_depth_verdict"] = "*decays* with depth" if none_first[-1] < none_first[0] else "*grows* with depth"
    header = ["network", "when", "smallest layer median", "largest layer median", "last layer"]
    return fig, (header, rows), glued


# --- 8. Does gamma_j / sigma_j track the measured beta? ----------------------------------------------

def tracking(rhos, threshold: float = 0.5) -> str:
    """The stated rule for "a factor tracks a measurement over training", from per-seed Spearman rho:
    'tracks' when every seed has rho >= threshold, 'moves against' when every seed has rho <= -threshold,
    otherwise 'no consistent relation' ('not measured' without a finite rho).

    >>> tracking([0.8, 0.6]), tracking([-0.9, -0.7]), tracking([0.8, -0.2]), tracking([float("nan")])
    ('tracks', 'moves against', 'no consistent relation', 'not measured')
    """
    r = np.asarray([x for x in rhos if np.isfinite(x)], dtype=float)
    if len(r) == 0:
        return "not measured"
    if (r >= threshold).all():
        return "tracks"
    if (r <= -threshold).all():
        return "moves against"
    return "no consistent relation"


# what each outcome of `tracking` says about the paper's reading (a smaller factor, a smoother network)
TRACKING_MEANS = {
    "tracks": "consistent with the paper's reading: along training the factor is smallest where the network is "
              "smoothest (a co-movement, not evidence that the factor causes it)",
    "moves against": "the opposite of what the paper's reading predicts: along training the factor is largest "
                     "where the network is smoothest",
    "no consistent relation": "no support for the paper's reading: the seeds disagree on the direction",
    "not measured": "not measured: the runs record no common probe steps",
}


def gamma_sigma_series(result: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, per-layer median |gamma_j|/sigma_j (steps, layers), the median over every unit of the network
    (steps,), beta at the same steps) of one BN run, at the steps where both probes were recorded."""
    beta = {r["step"]: r["data"]["beta"] for r in result["probes"]["landscape"]}
    steps, per_layer, whole, b = [], [], [], []
    for rec in result["probes"]["unit_std"]:
        if rec["step"] not in beta:
            continue
        ratios = [(rec["data"][k]["gamma"].abs() / rec["data"][k]["sigma"]).numpy() for k in sorted(rec["data"])]
        steps.append(rec["step"])
        per_layer.append([np.median(r) for r in ratios])
        whole.append(np.median(np.concatenate(ratios)))
        b.append(beta[rec["step"]])
    return np.array(steps), np.array(per_layer), np.array(whole), np.array(b, dtype=float)


def gamma_sigma_report(runs_bn: list[dict], seeds: list, threshold: float = 0.5) -> tuple[object, tuple, dict]:
    """Spearman rho over training, per seed, between beta and the median |gamma_j|/sigma_j of the whole network
    and of each layer; the figure, the table (one row per layer, and the whole network), the glued verdict."""

    series = [gamma_sigma_series(r) for r in runs_bn]
    n_layers = series[0][1].shape[1]
    rho_all = [spearman(w, b) for _, _, w, b in series]
    rho_layer = np.array([[spearman(pl[:, i], b) for i in range(n_layers)] for _, pl, _, b in series])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    ax2 = axes[0].twinx()
    for k, (st, _, w, b) in enumerate(series):
        axes[0].plot(st, b, color="C0", alpha=0.8, label="β (effective smoothness)" if k == 0 else None)
        ax2.plot(st, w, color="C3", ls="--", alpha=0.8, label="median |γ_j|/σ_j" if k == 0 else None)
    axes[0].set(xlabel="step", ylabel="β", yscale="log", title=f"BN network, {len(series)} seeds")
    ax2.set(ylabel="median |γ_j| / σ_j", yscale="log")
    axes[0].legend(loc="upper left", fontsize=7)
    ax2.legend(loc="upper right", fontsize=7)
    layers = np.arange(1, n_layers + 1)
    for k, s in enumerate(seeds):
        axes[1].plot(layers, rho_layer[k], "o", ms=4, label=f"seed {s}")
    axes[1].plot(layers, np.nanmean(rho_layer, 0), "k-", lw=1, label="mean")
    for t in (threshold, -threshold):
        axes[1].axhline(t, color="0.6", lw=0.6, ls="--")
    axes[1].set(xlabel="layer", ylabel="Spearman ρ over training", ylim=(-1.05, 1.05),
                title="ρ(β, layer median |γ_j|/σ_j)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    verdicts = [tracking(r, threshold) for r in rho_layer.T]
    rows = [["whole network", *(f"{r:.2f}" for r in rho_all), f"{np.nanmean(rho_all):.2f}", tracking(rho_all, threshold)]]
    rows += [[f"layer {i + 1}", *(f"{r:.2f}" for r in rho_layer[:, i]), f"{np.nanmean(rho_layer[:, i]):.2f}", verdicts[i]]
             for i in range(n_layers)]
    counts = {v: verdicts.count(v) for v in ("tracks", "moves against", "no consistent relation") if verdicts.count(v)}
    glued = {"gs_rho": ", ".join(f"{r:.2f} (seed {s})" for r, s in zip(rho_all, seeds)),
             "gs_verdict": f"**{tracking(rho_all, threshold)}**",
             "gs_layers": "; ".join(f"{n} layer{'s' if n != 1 else ''}: {v}" for v, n in counts.items()),
             "gs_meaning": TRACKING_MEANS[tracking(rho_all, threshold)],
             "gs_threshold": f"{threshold:g}", "gs_points": str(len(series[0][0]))}
    header = ["factor", *(f"ρ, seed {s}" for s in seeds), "mean ρ", f"rule (|ρ| ≥ {threshold:g} in every seed)"]
    return fig, (header, rows), glued


def gs_other_scale(snap: dict | None, profile: str) -> str:
    """The γ/σ-tracks-β reading of a committed snapshot of the book at another profile (`bnopt.book.scales`),
    beside this build's: what the same rule said on runs whose first steps these runs share."""
    if not snap:
        return "No snapshot of the book at another profile is committed, so this reading has nothing to compare with"
    if snap["profile"] == profile:                  # BN math is told the plain profile it executes at
        return f"This build is at the profile of the committed snapshot ({describe(snap)}): nothing to compare"
    rho, word = glued_at(snap, "bn_math", "gs_rho"), glued_at(snap, "bn_math", "gs_verdict")
    if rho is None or word is None:
        return f"The committed snapshot ({describe(snap)}) has no γ/σ reading to compare with"
    return (f"At {describe(snap)}, whose runs are the first steps of these (the ledger's *What moved with scale*), "
            f"the same rule "
            f"gave ρ = {rho}: the factor {word} β there. The two readings differ only in how much of training they "
            f"cover and in how many seeds they rest on")
