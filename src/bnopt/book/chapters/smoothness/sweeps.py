"""The smoothness chapter, part 3: the landscape claims, the sweep claims, and whether the level of β is set by the
learning rate (edge of stability; protocol §7)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bnopt.analysis import stats as T
from bnopt.analysis.verdict import fmt_p
from bnopt.book import claims
from bnopt.book import plotting as P
from bnopt.book.chapters.common import last_fraction_mean
from bnopt.book.chapters.smoothness.bands import SHORT, C, quiet_nan
from bnopt.book.report import pm_g

# Figs 4 and 10 read three ways: the typical level over training (medians), the spikes the figures show
# (the largest value; the flatness of beta), and early in training (the paper's text). Every row is the
# claim "BN lower than standard", per seed pair: (claim id, network, per-seed statistic of land_stats,
# what it is, reading).
LANDSCAPE_CLAIMS = (
    ("fig4_loss_band", "vgg", "loss_width", "median loss-band width", "level"),
    ("fig4_grad_pred", "vgg", "g_hi_med", "median of the largest gradient difference", "level"),
    ("fig4_beta", "vgg", "beta_med", "median effective β-smoothness", "level"),
    ("fig10_loss_band", "dln", "loss_width", "median loss-band width", "level"),
    ("fig10_grad_pred", "dln", "g_hi_med", "median of the largest gradient difference", "level"),
    ("fig10_beta", "dln", "beta_med", "median effective β-smoothness", "level"),
    ("fig4_grad_spikes", "vgg", "g_hi_max", "largest gradient difference over training", "spikes"),
    ("fig4_beta_flat", "vgg", "beta_cv", "coefficient of variation of β over training", "spikes"),
    ("fig10_grad_spikes", "dln", "g_hi_max", "largest gradient difference over training", "spikes"),
    ("fig10_beta_flat", "dln", "beta_cv", "coefficient of variation of β over training", "spikes"),
    ("fig4_grad_early", "vgg", "g_hi_early", "median of the largest gradient difference, early window", "early"),
)
READINGS = {"level": "verdict", "spikes": "verdict_spikes", "early": "verdict_early"}


def measure_claims(stats: dict, scales: dict, folder=".") -> dict:
    """Apply the verdict rule to the claims of Figs 4 and 10 (LANDSCAPE_CLAIMS: BN lower than standard, per
    seed pair); record them; return {glue name: sentence} per reading (READINGS).
    stats = {'vgg': land_stats, 'dln': land_stats}; scales = {'vgg': .., 'dln': ..}."""
    parts = {g: [] for g in READINGS.values()}
    for cid, kind, key, name, reading in LANDSCAPE_CLAIMS:
        stt = stats.get(kind, {})
        a, b = stt.get("batch"), stt.get("none")
        if a is None or b is None:
            continue
        c = claims.compare(cid, a[key], b[key])
        m = f"{kind.upper()}: {name}, BN {pm_g(a[key])} vs standard {pm_g(b[key])}"
        claims.record(cid, c, m, scales[kind], folder)
        parts[READINGS[reading]].append(f"{m}; BN/standard {c.text()}: {c.word()}")
    return {g: "; ".join(p) if p else "n/a" for g, p in parts.items()}


def largest_usable(results: dict, kind: str, n: str, lrs: list, ref: float, final_fraction: float) -> np.ndarray:
    """Per seed: the largest learning rate of the grid at which that seed's run finished (no divergence) with
    its final loss below `ref`. A seed with no usable learning rate counts one grid step below the grid
    (lrs[0]² / lrs[1], a bound: its true value is lower); the grid's largest value is a bound the other way.

    >>> r = lambda loss, div=False: {"train_loss": np.array([loss]), "diverged": div}
    >>> res = {("s", "b", 0.1): [r(1.0), r(3.0)], ("s", "b", 1.0): [r(1.0), r(9.0, True)]}
    >>> largest_usable(res, "s", "b", [0.1, 1.0], ref=2.0, final_fraction=1.0).tolist()
    [1.0, 0.01]
    """
    lrs = sorted(lrs)
    best = None
    for l in lrs:
        rs = results.get((kind, n, l)) or []
        if best is None:
            below = lrs[0] ** 2 / lrs[1] if len(lrs) > 1 else lrs[0] / 10
            best = np.full(len(rs), float(f"{below:.12g}"))
        for i, r in enumerate(rs[:len(best)]):
            if not r["diverged"] and last_fraction_mean(r["train_loss"], final_fraction) < ref:
                best[i] = l
    return best if best is not None else np.array([])


def lr_bounds(values, lrs) -> str:
    """Per-seed largest usable learning rates as text, the censored ones as bounds.

    >>> lr_bounds([0.3, 0.001, 3.0], [0.01, 0.3, 3.0])
    '0.3, < 0.01, ≥ 3'
    """
    lo, hi = min(lrs), max(lrs)
    return ", ".join(f"< {lo:g}" if v < lo else f"≥ {hi:g}" if v >= hi else f"{v:g}" for v in values)


def sweep_claims(results: dict, sweeps: list, usable: dict, final_fraction: float, scales: dict,
                 folder=".") -> dict:
    """The claim "BN tolerates larger learning rates", per network of `sweeps` = [(kind, lrs)]: the largest
    usable learning rate per seed (largest_usable, at the figure's threshold `usable[(kind, n)]["ref"]`),
    BN higher than standard, per seed pair. Records the claims; returns {'verdict_sweep': sentence}."""
    ids = {"vgg_sweep": "sweep_lr_vgg", "dln_sweep": "sweep_lr_dln"}
    parts = []
    for kind, lrs in sweeps:
        if (kind, "batch") not in usable or (kind, "none") not in usable:
            continue
        ref = usable[(kind, "none")]["ref"]
        a, b = (largest_usable(results, kind, n, lrs, ref, final_fraction) for n in ("batch", "none"))
        c = claims.compare(ids[kind], a, b)
        net = "VGG" if kind == "vgg_sweep" else "DLN"
        m = (f"{net}: largest usable learning rate per seed, BN {lr_bounds(a, lrs)} vs standard {lr_bounds(b, lrs)} "
             f"(grid {min(lrs):g} to {max(lrs):g}; a value at an end of the grid is a bound, so is the ratio)")
        claims.record(ids[kind], c, m, scales[kind], folder)
        parts.append(f"{m}; BN/standard {c.text()}: {c.word()}")
    return {"verdict_sweep": "; ".join(parts) if parts else "n/a"}


# --- is the level of beta set by the learning rate? (edge of stability; protocol §7) --------------------

def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x over the pairs where both are finite and positive; nan
    with fewer than two such pairs (or one x only).

    >>> loglog_slope([20, 200, 2000], [4, 40, 400]), loglog_slope([2, 20], [5, 5])
    (1.0, 0.0)
    >>> import math; math.isnan(loglog_slope([2, 20, 200], [1, float("nan"), -1]))
    True
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    with np.errstate(all="ignore"):
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2 or np.ptp(np.log(x[ok])) == 0:
        return float("nan")
    return float(round(T.fit_slope(np.log(x[ok]), np.log(y[ok])), 12)) + 0.0   # + 0.0: never -0.0


def lr_levels(results: dict, kind: str, n: str, lrs: list) -> dict:
    """Per seed (rows) and learning rate (columns) of a sweep: the median effective β over the run's landscape
    measurements and λ_max at its curvature measurement; nan where the run diverged (a learning rate it does
    not train at has no level) or carries no such probe. {'lrs', 'beta', 'eig'}."""
    lrs = [l for l in sorted(lrs) if results.get((kind, n, l))]
    seeds = max((len(results[(kind, n, l)]) for l in lrs), default=0)
    out = {"lrs": lrs, "beta": np.full((seeds, len(lrs)), np.nan), "eig": np.full((seeds, len(lrs)), np.nan)}
    for j, l in enumerate(lrs):
        for i, r in enumerate(results[(kind, n, l)]):
            if r["diverged"]:
                continue
            betas = [rec["data"]["beta"] for rec in r["probes"].get("landscape", [])]
            eigs = [rec["data"]["top_eig"] for rec in r["probes"].get("sharpness", [])]
            with quiet_nan():
                out["beta"][i, j] = np.nanmedian(betas) if betas else np.nan
            out["eig"][i, j] = eigs[-1] if eigs else np.nan
    return out


def lr_slopes(lev: dict, field: str) -> np.ndarray:
    """Per seed: the slope of log(field) against log(2/LR) over the learning rates that seed trained at.
    Slope 1 with level 2/LR is the edge-of-stability prediction; slope 0 is a level the LR does not set."""
    x = 2 / np.asarray(lev["lrs"], dtype=float)
    return np.array([loglog_slope(x, row) for row in lev[field]])


def lr_figure(results: dict, sweeps: list, norms: list):
    """β (median over each run's measurements) and λ_max against 2/LR, per sweep = (kind, lrs): one point per
    seed, lines through the seed means, and the line y = 2/LR. Returns (fig, {(kind, norm): lr_levels})."""
    fig, axes = plt.subplots(1, 2 * len(sweeps), figsize=(4.2 * 2 * len(sweeps), 3.6), squeeze=False)
    levels = {}
    for k, (kind, lrs) in enumerate(sweeps):
        for field, ax, name in (("beta", axes[0][2 * k], "median effective β"), ("eig", axes[0][2 * k + 1], "λ_max")):
            for n in norms:
                lev = levels.setdefault((kind, n), lr_levels(results, kind, n, lrs))
                if not lev["lrs"]:
                    continue
                x = 2 / np.asarray(lev["lrs"])
                for row in lev[field]:
                    ax.plot(x, row, "o", color=C[n], alpha=0.5, markersize=4)
                with quiet_nan():
                    ax.plot(x, np.exp(np.nanmean(np.log(lev[field]), 0)), "-", color=C[n], label=P.label(n))
            x = 2 / np.asarray(sorted(lrs), dtype=float)
            ax.plot(x, x, "k:", linewidth=1, label="= 2 / LR")
            ax.set(xscale="log", yscale="log", xlabel="2 / learning rate", ylabel=name,
                   title=f"{'VGG' if kind == 'vgg_sweep' else 'DLN'}: {name}")
            ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig, levels


LR_CLAIMS = {("vgg_sweep", "beta"): "lr_beta_vgg", ("dln_sweep", "beta"): "lr_beta_dln",
             ("vgg_sweep", "eig"): "lr_eig_vgg", ("dln_sweep", "eig"): "lr_eig_dln"}
LR_FIELDS = {"beta": "β", "eig": "λ_max"}


def lr_report(levels: dict, norms: list, scales: dict, folder=".") -> tuple[tuple, dict]:
    """Per (sweep, norm): the per-seed slopes of β and λ_max against 2/LR and their median level in units of
    2/LR. The claims (edge of stability, for the BN networks the paper's caveat is about): the level of β, and
    of λ_max, is set by the LR: the slopes are above 0 and reach half the stated slope 1 (`claims.compare` of the
    slopes with 0, magnitude 1), and beside it the t-test of the slopes against 1.
    Returns ((header, rows), glued)."""
    header = ["network", "seeds", "slope of β", "slope of λ_max", "median β / (2/LR)", "median λ_max / (2/LR)"]
    rows, glued = [], {}
    for (kind, n), lev in levels.items():
        if not lev["lrs"]:
            continue
        net, x = "VGG" if kind == "vgg_sweep" else "DLN", 2 / np.asarray(lev["lrs"])
        slopes = {f: lr_slopes(lev, f) for f in LR_FIELDS}
        with quiet_nan():
            ratios = {f: np.nanmedian(lev[f] / x, 1) for f in LR_FIELDS}
        rows.append([f"{net}, {P.label(n)}", str(len(slopes['beta']))] + [pm_g(slopes[f]) for f in LR_FIELDS]
                    + [pm_g(ratios[f]) for f in LR_FIELDS])
        tag = f"{kind.split('_')[0]}_{n}"
        for f in LR_FIELDS:
            glued.update({f"lr_slope_{f}_{tag}": pm_g(slopes[f]), f"lr_level_{f}_{tag}": pm_g(ratios[f])})
            if n != "batch" or (kind, f) not in LR_CLAIMS:
                continue
            sl = slopes[f]
            c = claims.compare(LR_CLAIMS[(kind, f)], sl, np.zeros_like(sl))
            one = T.t_against(sl[np.isfinite(sl)], 1.0) if np.isfinite(sl).sum() >= 2 else {"p": float("nan")}
            one = (f"against the edge-of-stability slope 1, p = {fmt_p(one['p'])} (two-sided t-test; a small p "
                   f"says the slope is not 1)")
            m = (f"{net} with BN: slope of log {LR_FIELDS[f]} against log(2/LR) per seed "
                 f"{', '.join(f'{v:.2g}' for v in sl)} over {len(lev['lrs'])} learning rates {min(lev['lrs']):g} to "
                 f"{max(lev['lrs']):g} (diverged runs left out)")
            claims.record(LR_CLAIMS[(kind, f)], c, m, scales[kind], folder)
            glued[f"verdict_{LR_CLAIMS[(kind, f)]}"] = f"{m}; mean slope {c.text()}, the interval {one}: {c.word()}"
    for claim in LR_CLAIMS.values():
        glued.setdefault(f"verdict_{claim}", "n/a (no BN sweep in this build)")
    return (header, rows), glued


def lr_ratio_table(levels: dict, kind: str) -> tuple[list, list]:
    """One sweep's levels per learning rate in units of 2/LR, rows (norm, β or λ_max): the mean over the seeds
    that trained, with how many did. Where the level follows 2/LR (about 1) and where it leaves it.

    >>> lev = {"lrs": [0.1, 1.0], "beta": np.array([[18.0, np.nan], [22.0, np.nan]]), "eig": np.array([[20.0, 1.0], [20.0, 1.0]])}
    >>> lr_ratio_table({("vgg_sweep", "batch"): lev}, "vgg_sweep")[1][0]
    ['Standard + BatchNorm', 'β', '1 (2/2)', 'diverged (0/2)']
    """
    mine = {n: lev for (k, n), lev in levels.items() if k == kind and lev["lrs"]}
    lrs = sorted({l for lev in mine.values() for l in lev["lrs"]})
    rows = []
    for n, lev in mine.items():
        for f, name in LR_FIELDS.items():
            row = [P.label(n), name]
            for l in lrs:
                if l not in lev["lrs"]:
                    row.append("")
                    continue
                v = lev[f][:, lev["lrs"].index(l)] * l / 2
                ok = v[np.isfinite(v)]
                row.append(f"{np.mean(ok):.2g} ({len(ok)}/{len(v)})" if len(ok) else f"diverged (0/{len(v)})")
            rows.append(row)
    return ["network", "level / (2/LR)"] + [f"LR {l:g}" for l in lrs], rows


def on_edge_text(lev: dict, field: str, tol: float) -> str:
    """Where the seeds' mean level (geometric) lies within a factor `tol` of 2/LR, and where above or below.

    >>> lev = {"lrs": [0.01, 0.1, 1.0], "beta": np.array([[190.0, 21.0, 0.2]]), "eig": np.array([[1.0, 1.0, 1.0]])}
    >>> on_edge_text(lev, "beta", 1.5)
    'within a factor 1.5 of 2/LR at LR 0.01, 0.1; below at 1'
    """
    where = {"within": [], "below": [], "above": [], "diverged": []}
    for j, l in enumerate(lev["lrs"]):
        v = lev[field][:, j] * l / 2
        v = v[np.isfinite(v) & (v > 0)]
        r = float(np.exp(np.mean(np.log(v)))) if len(v) else np.nan
        key = "diverged" if np.isnan(r) else "within" if 1 / tol <= r <= tol else "below" if r < 1 else "above"
        where[key].append(f"{l:g}")
    parts = [f"within a factor {tol:g} of 2/LR at LR {', '.join(where['within'])}" if where["within"] else
             f"within a factor {tol:g} of 2/LR at no learning rate of the grid"]
    parts += [f"{k} at {', '.join(v)}" for k, v in where.items() if k != "within" and v]
    return "; ".join(parts)


def edge_glue(levels: dict, tol: float) -> dict:
    """{'edge_<beta|eig>_<vgg|dln>_<none|batch>': on_edge_text}, 'n/a' where that sweep was not run."""
    out = {f"edge_{f}_{k}_{n}": "n/a" for f in LR_FIELDS for k in ("vgg", "dln") for n in SHORT}
    out.update({f"edge_{f}_{k.split('_')[0]}_{n}": on_edge_text(lev, f, tol)
                for (k, n), lev in levels.items() if lev["lrs"] for f in LR_FIELDS})
    return {**out, "edge_tolerance": f"{tol:g}"}
