"""The smoothness chapter, part 1: the landscape bands along the step (Figs 4, 10), their statistics, and the
curvature records (λ_max, λ_min against the edge-of-stability level 2 / lr)."""
from __future__ import annotations

import contextlib
import warnings

import matplotlib.pyplot as plt
import numpy as np

from bnopt.analysis import summary as S
from bnopt.book import plotting as P
from bnopt.book.report import pm_g


@contextlib.contextmanager
def quiet_nan():
    """NaN statistics without warnings: a seed that diverged, or a learning rate no seed trained at, is a
    NaN entry, and a mean or median over only NaNs is NaN by design here."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


C = P.NORM_COLORS
SHORT = {"none": "standard", "batch": "BN"}
STAT_COLUMNS = [("loss_hi_max", "loss band: largest max"), ("loss_width", "median width"),
                ("g_hi_max", "gradient diff.: largest"), ("g_hi_med", "median max"),
                ("g_hi_early", "early median max"), ("beta_med", "β: median"), ("beta_min", "min"),
                ("beta_max", "max"), ("beta_cv", "coeff. of variation")]


def band_series(rs: list[dict], field: str):
    """(steps, per-seed min over eta, per-seed max over eta) of a landscape field."""
    st, lo = S.probe_series(rs, "landscape", lambda d: d[field].min())
    _, hi = S.probe_series(rs, "landscape", lambda d: d[field].max())
    return st, lo, hi


def landscape(rs: list[dict]) -> dict:
    """The three panels' series for one configuration: loss band, gradient-difference band, beta."""
    st, lo, hi = band_series(rs, "loss")
    _, l0 = S.probe_series(rs, "landscape", lambda d: d["loss0"])
    _, glo, ghi = band_series(rs, "grad_diff")
    _, beta = S.probe_series(rs, "landscape", lambda d: d["beta"])
    return {"steps": st, "loss_lo": lo, "loss_hi": hi, "loss0": l0, "g_lo": glo, "g_hi": ghi, "beta": beta}


def landscape_figure(results: dict, kind: str, norms: list, lr: float, title: str):
    """Fig. 4 (VGG) or Fig. 10 (DLN). Returns (fig, {norm: landscape(...)})."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.7))
    out = {}
    for n in [n for n in norms if results.get((kind, n, lr))]:
        d = out[n] = landscape(results[(kind, n, lr)])
        st = d["steps"]
        axes[0].fill_between(st, np.nanmean(d["loss_lo"], 0), np.nanmean(d["loss_hi"], 0), color=C[n], alpha=0.3,
                             linewidth=0, label=P.label(n))
        axes[0].plot(st, np.nanmean(d["loss0"], 0), color=C[n], linewidth=0.8)
        axes[1].fill_between(st, np.nanmean(d["g_lo"], 0), np.nanmean(d["g_hi"], 0), color=C[n], alpha=0.3, linewidth=0)
        for row in d["g_hi"]:
            axes[1].plot(st, row, color=C[n], linewidth=0.5, alpha=0.6)
        P.curve_band(axes[2], st, d["beta"], color=C[n])
    axes[0].set(yscale="log", xlabel="step", ylabel="loss", title="(a) loss landscape: L(w − ηg) over η")
    axes[1].set(yscale="log", xlabel="step", ylabel="‖∇L(w) − ∇L(w − ηg)‖", title="(b) gradient predictiveness")
    axes[2].set(yscale="log", xlabel="step", ylabel="max over η of ‖Δ∇L‖ / ‖ηg‖", title="(c) effective β-smoothness")
    axes[2].axhline(2 / lr, color="k", linestyle=":", linewidth=1, label=f"2 / LR = {2 / lr:g}")
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    fig.suptitle(title, y=1.02)
    fig.tight_layout()
    plt.close(fig)
    return fig, out


def land_stats(land: dict, early_fraction: float) -> dict:
    """Per network, per-seed summaries of the three panels; 'early' is the first `early_fraction` of
    the measurements (at least one)."""
    out = {}
    for n, d in land.items():
        early = max(1, int(d["beta"].shape[1] * early_fraction + 1e-9))
        with np.errstate(all="ignore"):
            out[n] = {
                "loss_hi_max": np.nanmax(d["loss_hi"], 1),
                "loss_width": np.nanmedian(d["loss_hi"] - d["loss_lo"], 1),
                "loss_hi_last": d["loss_hi"][:, -1], "loss_lo_last": d["loss_lo"][:, -1],
                "g_hi_max": np.nanmax(d["g_hi"], 1), "g_hi_med": np.nanmedian(d["g_hi"], 1),
                "g_hi_early": np.nanmedian(d["g_hi"][:, :early], 1),
                "beta_med": np.nanmedian(d["beta"], 1), "beta_max": np.nanmax(d["beta"], 1),
                "beta_min": np.nanmin(d["beta"], 1),
                "beta_cv": np.nanstd(d["beta"], 1) / np.nanmean(d["beta"], 1),
            }
    return out


def stats_table(by_kind: dict) -> tuple[list, list, dict]:
    """(header, rows, glue) of the landscape summaries; by_kind = {'vgg': land_stats, 'dln': land_stats}."""
    header = ["network"] + [name for _, name in STAT_COLUMNS]
    rows, glued = [], {}
    for kind, stt in by_kind.items():
        for n, s in stt.items():
            rows.append([f"{kind.upper()}, {P.label(n)}"] + [pm_g(s[k]) for k, _ in STAT_COLUMNS])
            glued.update({f"{kind}_{n}_{k}": pm_g(v) for k, v in s.items()})
    return header, rows, glued


def eta_figure(results: dict, panels: list):
    """Fig. 11: gradient difference against eta, one line per measured step (first seed); panels =
    [(kind, norm, lr)]. Returns (fig, {(kind, norm): per-seed largest difference at the largest eta})."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.75 * len(panels), 3.4), squeeze=False)
    cmap = plt.get_cmap("coolwarm")
    ymax = {}
    for ax, (kind, n, l) in zip(axes[0], panels):
        recs = results[(kind, n, l)][0]["probes"]["landscape"]
        last = max(r["step"] for r in recs) or 1
        for r in recs[1:]:
            d = r["data"]
            ax.plot(d["etas"].numpy(), d["grad_diff"].numpy(), color=cmap(r["step"] / last), linewidth=0.8, marker=".")
        ax.set(xscale="log", yscale="log", xlabel="η", title=f"{kind.upper()}: {P.label(n)}")
        etas = recs[0]["data"]["etas"].numpy()
        ax.set_xticks(etas, [f"{e:g}" for e in etas], rotation=45)
        ax.minorticks_off()
        ymax[(kind, n)] = [max(float(r["data"]["grad_diff"][-1]) for r in rs["probes"]["landscape"][1:]
                               or rs["probes"]["landscape"]) for rs in results[(kind, n, l)]]
    axes[0, 0].set_ylabel("‖∇L(w) − ∇L(w − ηg)‖")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes[0], label="fraction of training", fraction=0.02)
    plt.close(fig)
    return fig, ymax


def curvature_stats(rs: list[dict], lr: float) -> dict | None:
    """Per seed: last and largest lambda_max, last lambda_min, last lambda_max / (2/LR), and the median over
    training of beta / lambda_max and of beta / max(lambda_max, -lambda_min) at the same steps."""
    if not rs or not rs[0]["probes"].get("sharpness"):
        return None
    st, eig = S.probe_series(rs, "sharpness", lambda d: d["top_eig"])
    _, lmin = S.probe_series(rs, "sharpness", lambda d: d["min_eig"])
    bst, beta = S.probe_series(rs, "landscape", lambda d: d["beta"])
    at = np.searchsorted(bst, st)                     # beta at the same steps
    with np.errstate(all="ignore"):
        b_at = beta[:, np.clip(at, 0, beta.shape[1] - 1)]
        return {"steps": st, "eig": eig, "eig_last": eig[:, -1], "eig_max": np.nanmax(eig, 1), "min_last": lmin[:, -1],
                "eig_over": eig[:, -1] / (2 / lr), "beta_over_eig": np.nanmedian(b_at / eig, 1),
                "beta_over_abs": np.nanmedian(b_at / np.maximum(np.abs(eig), np.abs(lmin)), 1)}


CURV_COLUMNS = [("eig_last", "λ_max at the last measurement"), ("min_last", "λ_min there"),
                ("eig_max", "largest λ_max"), ("eig_over", "last λ_max / (2/LR)"),
                ("beta_over_eig", "median β / λ_max"), ("beta_over_abs", "median β / max(λ_max, −λ_min)")]


def curvature_figure(results: dict, panels: list, norms: list):
    """Top Hessian eigenvalue over training, with 2/LR; panels = [(kind, lr)]. Returns (fig, {(kind, norm): stats})."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.6), squeeze=False)
    curv = {}
    for ax, (kind, l) in zip(axes[0], panels):
        for n in norms:
            d = curvature_stats(results.get((kind, n, l)), l)
            if d is None:
                continue
            P.curve_band(ax, d["steps"], d["eig"], color=C[n], marker="o", markersize=3, label=P.label(n))
            curv[(kind, n)] = {k: d[k] for k, _ in CURV_COLUMNS}
        ax.axhline(2 / l, color="k", linestyle=":", linewidth=1, label=f"2 / LR = {2 / l:g}")
        ax.set(yscale="log", xlabel="step", ylabel="λ_max", title=f"{kind.upper()}, LR {l:g}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig, curv


def curvature_table(curv: dict, norms: list) -> tuple[list, list, dict]:
    header = ["network"] + [name for _, name in CURV_COLUMNS]
    rows = [[f"{kind.upper()}, {P.label(n)}"] + [pm_g(d[k]) for k, _ in CURV_COLUMNS] for (kind, n), d in curv.items()]
    glued = {f"curv_{kind}_{n}_{k}": pm_g(curv[(kind, n)][k]) if (kind, n) in curv else "n/a"
             for kind in ("vgg", "dln") for n in norms for k, _ in CURV_COLUMNS}
    return header, rows, glued


def beta_reading(curv: dict) -> str:
    """Which networks' effective beta exceeded the largest Hessian eigenvalue in magnitude (median over training)."""
    if not curv:
        return "n/a"
    above = [f"the {SHORT.get(k[1], k[1])} {k[0].upper()}" for k, v in curv.items() if np.nanmean(v["beta_over_abs"]) > 1]
    if not above:
        return ("in every network the effective β-smoothness stayed below the largest Hessian eigenvalue in "
                "magnitude, as the local (small-η) picture predicts")
    return ("for " + " and ".join(above) + " the effective β-smoothness exceeded the largest Hessian eigenvalue in "
            "magnitude (median over training): over the probed distances the gradient does not change linearly "
            "in η, so there the landscape is not locally quadratic at the scale of a training step")


def eos_text(curv: dict, norms: list) -> str:
    parts = [f"{SHORT.get(n, n)} {kind.upper()}: {pm_g(curv[(kind, n)]['eig_over'])}"
             for kind in ("vgg", "dln") for n in norms if (kind, n) in curv]
    return "; ".join(parts) if parts else "n/a"
