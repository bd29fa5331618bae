"""Chapter "Is BatchNorm the only way to smooth the landscape?" (the paper's Sec. 3.3: Figs 5, 6, 12, 13):
training with the l1, l2, linf normalizations and with layer and group norm, their distributional shift,
gradient ICS and landscape, and which of these measurements predicts the speed of training.

`results` is `{(kind, norm, lr): [run result per seed]}` with kind in vgg, dln (`experiments.norms_grid`).
Standard and BN are the book's full-length reference runs; the chapter compares every normalization over
the window the new variants trained (`windowed`), so all curves and measurements cover the same steps.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bnopt.analysis import summary as S
from bnopt.analysis.correlate import rank_correlation
from bnopt.book import claims
from bnopt.book import plotting as P
from bnopt.book.chapters import ics as I
from bnopt.book.chapters import smoothness as M
from bnopt.book.chapters.common import last_fraction_mean, net_label, scale_tag, vary
from bnopt.book.report import pm_g

LP = ("l1", "l2", "linf")          # the paper's three normalizations (Sec. 3.3)
NETS = {"vgg": "VGG", "dln": "DLN"}
# The measurements set against the speed of training: (key, name in tables, name in prose).
MEASURES = (("shift", "distributional shift", "one-step input shift W2/s, median over layers 2 and up"),
            ("ics", "gradient ICS", "1 − cos(G, G′) of Definition 2.1, median over layers 2 and up"),
            ("beta", "β-smoothness", "median effective β-smoothness"),
            ("g_pred", "gradient predictiveness", "median of the largest gradient change along the gradient"),
            ("loss_width", "loss band width", "median width of the loss band along the gradient"),
            ("eig_over", "λ_max / (2/LR)", "top Hessian eigenvalue at the window's last measurement, over 2/LR"))


def windowed(results: dict, norm_steps: int, norm_dln_steps: int) -> dict:
    """Every run cut to the comparison window of its network (the first `norm_steps` VGG steps, the first
    `norm_dln_steps` DLN steps): the reference runs' later steps are left out."""
    window = {"vgg": norm_steps, "dln": norm_dln_steps}
    return {k: [S.truncate(r, window[k[0]]) for r in rs] for k, rs in results.items()}


def window_text(steps: int, dln_steps: int, norm_steps: int, norm_dln_steps: int) -> str:
    """The protocol table's comparison window in words: the paper's whole runs where the window covers them, else
    the first steps and why (a choice, the CI budget).

    >>> window_text(15000, 10000, 15000, 10000)
    'all 15,000 VGG and 10,000 DLN steps of every run, as in the paper'
    >>> window_text(700, 10000, 200, 1000)[:62]
    'the first 200 VGG and 1,000 DLN steps of every run, Standard a'
    """
    if norm_steps >= steps and norm_dln_steps >= dln_steps:
        return f"all {steps:,} VGG and {dln_steps:,} DLN steps of every run, as in the paper"
    return (f"the first {norm_steps:,} VGG and {norm_dln_steps:,} DLN steps of every run, Standard and BN included "
            f"(of {steps:,} and {dln_steps:,}) *[choice: the CI budget; `norm_steps`, `norm_dln_steps`; the `narrow` "
            f"and `paper` profiles compare whole runs]*")


def present(results: dict, kind: str, norms: list) -> list:
    return [n for n in norms if results.get((kind, n, lr_of(results, kind)))]


def lr_of(results: dict, kind: str) -> float:
    return next(k[2] for k in results if k[0] == kind)


def training_figure(results: dict, norms: list, smooth_window: int):
    """Fig. 5: (a) VGG training accuracy (batch, smoothed), (b) DLN training loss; mean over seeds with
    a min-max band."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for kind, ax in zip(NETS, axes):
        lr = lr_of(results, kind)
        for n in present(results, kind, norms):
            rs = results[(kind, n, lr)]
            if kind == "vgg":
                y = 100 * S.smooth(S.stack(rs, "train_acc"), smooth_window)
            else:
                y = S.stack(rs, "train_loss")
            P.curve_band(ax, np.arange(1, y.shape[1] + 1), y, label=P.label(n), color=P.NORM_COLORS[n])
        if kind == "vgg":
            ax.set(xlabel="step", ylabel="training accuracy (%, batch)", title=f"(a) VGG, LR {lr:g}")
        else:
            ax.set(xlabel="step", ylabel="training loss", yscale="log", title=f"(b) deep linear network, LR {lr:g}")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def speed(rs: list[dict], kind: str, speed_acc: float, speed_loss_fraction: float, smooth_window: int) -> np.ndarray:
    """Per seed: steps to the threshold, np.inf where the window ended first. VGG: the smoothed batch
    training accuracy reaches `speed_acc`; DLN: the training loss falls to `speed_loss_fraction` of its
    initial value.

    >>> r = {"train_loss": np.array([10.0, 6.0, 1.5, 1.0]), "train_acc": np.array([0.1, 0.2, 0.6, 0.7])}
    >>> speed([r], "vgg", 0.5, 0.2, 1).tolist(), speed([r], "dln", 0.5, 0.2, 1).tolist()
    ([3.0], [3.0])
    >>> speed([r], "dln", 0.5, 0.01, 1).tolist()
    [inf]
    """
    out = []
    for r in rs:
        if kind == "vgg":
            hit = S.steps_to_threshold(S.smooth(np.asarray(r["train_acc"], dtype=float), smooth_window), speed_acc)
        else:
            loss = np.asarray(r["train_loss"], dtype=float)
            hit = S.steps_to_threshold(-loss, -speed_loss_fraction * loss[0])
        out.append(np.inf if hit is None else float(hit))
    return np.asarray(out)


def layer_median(rs: list[dict], field: str, transform=lambda v: v) -> np.ndarray:
    """Per seed: an ICS-probe field's median over training, then aggregated over layers 2 and up (layer 1's input
    is the data, which does not shift) as the claim fig6_lp_shift declares: the median, not the mean, since a layer
    whose input has collapsed to a near-constant (standard deviation near 0) has a shift W2/s of 1e4..1e7 and would
    decide a mean alone. A reading chosen after the data had been seen: the ledger marks it exploratory."""
    _, prof = I.layer_profile(rs, field)
    return S.over_layers(transform(prof[1:]), claims.declared("fig6_lp_shift").layers)


def measurements(results: dict, norms: list, speed_acc: float, speed_loss_fraction: float, smooth_window: int,
                 final_fraction: float) -> dict:
    """{(kind, norm): {measure: per-seed values}} for every network and normalization present: the speed
    (steps to threshold, inf = not reached), the final training loss and accuracy of the window, and the
    MEASURES."""
    out = {}
    for kind in NETS:
        lr = lr_of(results, kind)
        for n in present(results, kind, norms):
            rs = results[(kind, n, lr)]
            land = M.land_stats({n: M.landscape(rs)}, early_fraction=1.0)[n]   # the early reading is not used here
            curv = M.curvature_stats(rs, lr)
            out[(kind, n)] = {
                "speed": speed(rs, kind, speed_acc, speed_loss_fraction, smooth_window),
                "loss_end": np.array([last_fraction_mean(r["train_loss"], final_fraction) for r in rs]),
                "acc_end": np.array([last_fraction_mean(r["train_acc"], final_fraction) if r.get("train_acc")
                                     is not None else np.nan for r in rs]),
                "shift": layer_median(rs, "shift"), "ics": layer_median(rs, "cos", lambda c: 1 - c),
                "beta": land["beta_med"], "g_pred": land["g_hi_med"], "g_spikes": land["g_hi_max"],
                "loss_width": land["loss_width"],
                "eig_over": curv["eig_over"] if curv else np.full(len(rs), np.nan),
                "eig_step": int(curv["steps"][-1]) if curv else -1,
            }
    return out


def speed_text(values, window: int) -> str:
    """Per-seed steps to threshold as 'mean ± std', or a bound when some seeds did not reach it.

    >>> speed_text([100.0, 120.0], 200), speed_text([100.0, np.inf], 200), speed_text([np.inf] * 2, 200)
    ('1.1e+02 ± 14', '> 200 (1 of 2 seeds reached)', '> 200 (no seed reached)')
    """
    v = np.asarray(values, dtype=float)
    reached = np.isfinite(v).sum()
    if reached == len(v):
        return pm_g(v)
    return f"> {window:,} ({'no seed' if reached == 0 else f'{reached} of {len(v)} seeds'} reached)"


def table(meas: dict, windows: dict) -> tuple[list, list, dict]:
    """(header, rows, glue): per network and normalization, the speed and every measurement, mean ± std
    over seeds."""
    header = ["network", "steps to threshold", "final training loss"] + [name for _, name, _ in MEASURES]
    rows, glued = [], {}
    for (kind, n), m in meas.items():
        rows.append([f"{NETS[kind]}, {P.label(n)}", speed_text(m["speed"], windows[kind]), pm_g(m["loss_end"])] +
                    [pm_g(m[k]) for k, _, _ in MEASURES])
        glued.update({f"{kind}_{n}_{k}": pm_g(m[k]) for k in ("loss_end", "acc_end", "g_spikes") +
                      tuple(k for k, _, _ in MEASURES)})
        glued[f"{kind}_{n}_speed"] = speed_text(m["speed"], windows[kind])
    for kind in NETS:
        shown = [n for (k, n) in meas if k == kind]
        if shown:     # the step of the last curvature measurement in the window (the same for every run)
            step = meas[(kind, shown[0])]["eig_step"]
            glued[f"eig_step_{kind}"] = f"{step:,}" + (" (at initialisation)" if step == 0 else "")
        for key in ("speed", "loss_end", "g_spikes", "shift", "beta"):
            glued[f"{kind}_all_{key}"] = listing({n: glued[f"{kind}_{n}_{key}"] for n in shown})
    return header, rows, glued


def listing(texts: dict) -> str:
    """One value per normalization, in prose.

    >>> listing({"none": "3", "batch": "1", "l1": "2"})
    'Standard 3, BN 1, ℓ1 2'
    """
    return ", ".join(f"{SHORT[n][:1].upper() + SHORT[n][1:] if i == 0 else SHORT[n]} {t}"
                     for i, (n, t) in enumerate(texts.items()))


def correlations(meas: dict, windows: dict) -> dict:
    """{(kind, measure): RankCorrelation} of each measurement with the steps to threshold across the
    normalizations (a seed that never reached the threshold counts at the window's length, a bound)."""
    out = {}
    for kind in NETS:
        norms = [n for (k, n) in meas if k == kind]
        steps = {n: np.minimum(meas[(kind, n)]["speed"], windows[kind]) for n in norms}
        for key, _, _ in MEASURES:
            out[(kind, key)] = rank_correlation({n: meas[(kind, n)][key] for n in norms}, steps)
    return out


def correlation_table(corr: dict) -> tuple[list, list, dict]:
    header = ["measurement"] + [f"{NETS[k]}: ρ with steps to threshold (permutation p)" for k in NETS]
    rows = [[f"{name} ({prose})"] + [corr[(k, key)].text() if (k, key) in corr else "n/a" for k in NETS]
            for key, name, prose in MEASURES]
    glued = {f"rho_{k}_{key}": c.text() for (k, key), c in corr.items()}
    return header, rows, glued


def correlation_figure(meas: dict, corr: dict, windows: dict):
    """Each measurement (x, log) against the steps to threshold (y), one point per normalization (mean over
    seeds, bars: min to max); rows: networks."""
    fig, axes = plt.subplots(len(NETS), len(MEASURES), figsize=(3.0 * len(MEASURES), 2.9 * len(NETS)), squeeze=False)
    for r_i, kind in enumerate(NETS):
        for c_i, (key, name, _) in enumerate(MEASURES):
            ax = axes[r_i, c_i]
            for (k, n), m in meas.items():
                if k != kind:
                    continue
                x = np.asarray(m[key], dtype=float)
                y = np.minimum(m["speed"], windows[kind])
                if not np.isfinite(x).any():
                    continue
                xm, ym = np.nanmean(x), np.mean(y)
                ax.errorbar(xm, ym, xerr=[[xm - np.nanmin(x)], [np.nanmax(x) - xm]], yerr=[[ym - y.min()], [y.max() - ym]],
                            fmt="o", color=P.NORM_COLORS[n], markersize=5, capsize=2, label=P.label(n))
            c = corr.get((kind, key))
            rho = f"ρ = {c.rho:.2g}" if c is not None and np.isfinite(c.rho) else "ρ n/a"
            ax.set(xscale="log", title=f"{NETS[kind]}: {name}\n{rho}")
            ax.axhline(windows[kind], color="k", linestyle=":", linewidth=0.8)
            if c_i == 0:
                ax.set_ylabel("steps to threshold")
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    plt.close(fig)
    return fig


def activations_figure(results: dict, norms: list, layer: int):
    """Fig. 6: the distribution of one sampled unit of VGG layer `layer` over training (first seed), one
    panel per normalization."""
    lr = lr_of(results, "vgg")
    shown = present(results, "vgg", norms)
    cols = min(4, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.3 * rows), squeeze=False)
    for ax, n in zip(axes.flat, shown):
        P.ridgeline(ax, results[("vgg", n, lr)][0]["probes"]["activations"], layer, color=P.NORM_COLORS[n])
        ax.set(title=f"{P.label(n)}: layer #{layer}", xlabel="activation value")
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.tight_layout()
    plt.close(fig)
    return fig


def layer_shift(results: dict, norms: list, layer: int) -> dict:
    """{norm: per-seed one-step shift (W2/s) of VGG layer `layer`'s input, median over training}."""
    lr = lr_of(results, "vgg")
    out = {}
    for n in present(results, "vgg", norms):
        layers, prof = I.layer_profile(results[("vgg", n, lr)], "shift")
        out[n] = prof[list(layers).index(layer)]
    return out


# The claims of Sec. 3.3: each of the three l_p variants against the reference network with the same seed (the
# claim holds where it holds for each: `claims.compare_all`): (id, network, measure, name, against). The side is
# declared once, in bnopt.book.declared.TESTS.
NORM_CLAIMS = (
    ("fig5_lp_vgg", "vgg", "speed", "steps to the training-accuracy threshold", "none"),
    ("fig5_lp_dln", "dln", "loss_end", "final training loss of the window", "none"),
    ("fig6_lp_shift", "vgg", "shift", "one-step distributional shift (median over layers 2 and up)", "none"),
    ("fig12_lp_spikes", "vgg", "g_spikes", "largest gradient change along the gradient", "none"),
    ("fig13_lp_spikes", "dln", "g_spikes", "largest gradient change along the gradient", "none"),
)
SHORT = {"none": "standard", "batch": "BN", "l1": "ℓ1", "l2": "ℓ2", "linf": "ℓ∞", "layer": "layer norm",
         "group": "group norm"}


def measure_claims(meas: dict, windows: dict, scales: dict, folder=".") -> dict:
    """Apply the verdict rule to the Sec. 3.3 claims (NORM_CLAIMS, and l1 against BN on the DLN); record them;
    return {glue name: sentence}."""
    out = {}
    for cid, kind, key, name, against in NORM_CLAIMS:
        lp = [n for n in LP if (kind, n) in meas]
        if not lp or (kind, against) not in meas:
            continue
        cap = windows[kind] if key == "speed" else None
        b1 = meas[(kind, against)][key]
        c = claims.compare_all(cid, {SHORT[n]: (meas[(kind, n)][key], b1) for n in lp}, cap=cap)
        fmt = (lambda v: speed_text(v, windows[kind])) if key == "speed" else pm_g
        m = (f"{NETS[kind]}: {name}, " + ", ".join(f"{SHORT[n]} {fmt(meas[(kind, n)][key])}" for n in lp) +
             f" vs {SHORT[against]} {fmt(b1)} (each of the {len(lp)} variants against the {SHORT[against]} network of the "
             f"same seed, {len(b1)} pairs; the claim holds only where it holds for each)")
        claims.record(cid, c, m, scales[kind], folder)
        out[f"verdict_{cid}"] = f"{m}; ℓp/{SHORT[against]} {c.text()}: {c.word()}"
    if ("dln", "l1") in meas and ("dln", "batch") in meas:
        a, b = meas[("dln", "l1")]["loss_end"], meas[("dln", "batch")]["loss_end"]
        c = claims.compare("fig5_l1_dln", a, b)
        m = f"DLN: final training loss of the window, ℓ1 {pm_g(a)} vs BN {pm_g(b)}"
        claims.record("fig5_l1_dln", c, m, scales["dln"], folder)
        out["verdict_fig5_l1_dln"] = f"{m}; ℓ1/BN {c.text()}: {c.word()}"
    return out


def claim_scales(profile, arch, width, steps, seeds, dln_steps, dln_seeds, norm_steps, norm_dln_steps) -> dict:
    net = net_label(arch, width)
    return {"vgg": scale_tag(profile, net, f"first {norm_steps:,} of {steps:,} steps", f"{len(seeds)} seeds"),
            "dln": scale_tag(profile, "DLN 25 layers", f"first {norm_dln_steps:,} of {dln_steps:,} steps",
                             f"{len(dln_seeds)} initialisations")}


SMOOTHNESS = ("beta", "g_pred", "loss_width", "eig_over")   # the paper's thesis: these predict speed


def reading(c, alpha: float = 0.05) -> str:
    """One correlation in words, by its permutation p: 'predicts' (p < alpha and rho > 0: a larger value goes with
    more steps, i.e. slower training), 'predicts inversely' (p < alpha, rho < 0), 'no evidence' (p >= alpha, or rho
    undefined). Uncorrected across the table's measurements: an exploratory reading.

    >>> from bnopt.analysis.correlate import RankCorrelation
    >>> [reading(RankCorrelation(r, p, 7)) for r, p in [(0.9, 0.001), (-0.8, 0.02), (0.3, 0.4)]]
    ['predicts', 'predicts inversely', 'no evidence']
    """
    if not (np.isfinite(c.rho) and np.isfinite(c.p)) or c.p >= alpha:
        return "no evidence"
    return "predicts" if c.rho > 0 else "predicts inversely"


def thesis_reading(corr: dict, kind: str) -> str:
    """What the correlations of one network say about the paper's thesis, by a stated rule: *supports* when
    at least one smoothness measurement (SMOOTHNESS) predicts the steps to threshold (p < 0.05, rho > 0) and
    the distributional shift does not; *contradicts* when the shift predicts them and no smoothness
    measurement does; *inconclusive* otherwise.

    >>> from bnopt.analysis.correlate import RankCorrelation as RC
    >>> yes, no = RC(0.9, 0.001, 7), RC(0.1, 0.8, 7)
    >>> corr = {("vgg", "beta"): yes, ("vgg", "shift"): no, ("vgg", "ics"): no}
    >>> thesis_reading(corr, "vgg").split(":")[0]
    'supports the paper'
    >>> thesis_reading({("vgg", "beta"): no, ("vgg", "shift"): yes}, "vgg").split(":")[0]
    'contradicts the paper'
    """
    words = {key: reading(c) for (k, key), c in corr.items() if k == kind}
    names = {key: name for key, name, _ in MEASURES}
    smooth = [names[k] for k in SMOOTHNESS if words.get(k) == "predicts"]
    shift = words.get("shift") == "predicts"
    verdict = ("supports the paper" if smooth and not shift else "contradicts the paper" if shift and not smooth
               else "inconclusive")
    groups = {w: [names[k] for k, _, _ in MEASURES if words.get(k) == w]
              for w in ("predicts", "predicts inversely", "no evidence")}
    detail = "; ".join(f"{w}: {', '.join(v)}" for w, v in groups.items() if v)
    return f"{verdict}: {detail}"


def vary_choices(results: dict, norms: list, windows: dict, scales: dict, speed_acc: float, speed_loss_fraction: float,
                 smooth_window: int, final_fraction: float, folder=".") -> list[str]:
    """The chapter's claims re-derived with each speed threshold and the final-loss window varied alone over their
    stated ranges (the ledger's robustness column). Returns the variations done."""
    def derive(folder, speed_acc, speed_loss_fraction, final_fraction):
        measure_claims(measurements(results, norms, speed_acc, speed_loss_fraction, smooth_window, final_fraction),
                       windows, scales, folder)

    return vary({"speed_acc": speed_acc, "speed_loss_fraction": speed_loss_fraction, "final_fraction": final_fraction},
                derive, folder)
