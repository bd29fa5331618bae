"""Chapter "Is the loss landscape smoother with BatchNorm?" (the paper's Figs 4, 10, 11): landscape
bands, gradient predictiveness, effective beta-smoothness, curvature, the learning-rate sweep, and
the claims.

`results` is `{(kind, norm, lr): [run result per seed]}` with kind in vgg, dln, vgg_sweep, dln_sweep.
"""
from __future__ import annotations

import contextlib
import warnings

import matplotlib.pyplot as plt
import numpy as np

from .. import claims
from .. import plotting as P
from .. import summary as S
from ..report import pm_g
from ..verdict import compare
from .common import last_fraction_mean, scale_tag

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


# --- the Hessian spectrum (Ghorbani, Krishnan & Xiao 2019) -------------------------------------------------

SPECTRUM_CASES = [("none", "initialisation", True), ("none", "trained", True), ("batch", "initialisation", True),
                  ("batch", "trained", True), ("batch", "trained", False)]   # (norm, when, train mode); eval mode
# only for the trained BN network: at initialisation its running statistics are still 0 and 1, not the data's


def hessian_spectra(grid: dict, results: dict, lr: float, seeds: list, point_seeds: list, iters: int, vectors: int,
                    batch: int) -> dict:
    """{(norm, when, train_mode): [SLQ density per seed in `point_seeds`]} of the VGG's minibatch Hessian
    (`bnopt.curvature.spectral_density`, float32 as trained), for the cases of SPECTRUM_CASES."""
    import torch.nn.functional as F

    from ..curvature import spectral_density
    from ..runs import fixed_batch
    from ..train import model_of

    out = {}
    for norm, when, train_mode in SPECTRUM_CASES:
        if ("vgg", norm, lr) not in grid:            # a re-execution without that normalization
            continue
        cfgs, rs = grid[("vgg", norm, lr)], results[("vgg", norm, lr)]
        x, y = fixed_batch(cfgs[0], batch)
        out[(norm, when, train_mode)] = [
            spectral_density(model_of(cfgs[seeds.index(s)], rs[seeds.index(s)] if when == "trained" else None),
                             x, y, F.cross_entropy, iters, vectors, train_mode, seed=s) for s in point_seeds]
    return out


def direction_landscape(grid: dict, results: dict, lr: float, norms: list, seeds: list, point_seeds: list,
                        eta_multiples: list, point_batches: int, batch_size: int) -> dict:
    """{(norm, when, direction): {'beta', 'loss_width', 'g_max'}: per seed in `point_seeds`, the median over
    `point_batches` training batches} of `LandscapeProbe` at one point of each VGG run (its initialisation
    and its final weights), along the gradient and along a Gaussian direction of the gradient's norm, at
    the chapter's step sizes (multiples of the LR), BN in train mode."""
    import torch.nn.functional as F

    from ..landscape import LandscapeProbe
    from ..probes import ProbeContext
    from ..runs import fixed_batch
    from ..train import model_of

    etas = [m * lr for m in eta_multiples]
    out = {}
    for norm in norms:
        cfgs, rs = grid[("vgg", norm, lr)], results[("vgg", norm, lr)]
        batches = [fixed_batch(cfgs[0], batch_size, seed=1000 + b) for b in range(point_batches)]
        for when in ("initialisation", "trained"):
            per = {d: {"beta": [], "loss_width": [], "g_max": []} for d in LandscapeProbe.DIRECTIONS}
            for s in point_seeds:
                i = seeds.index(s)
                model = model_of(cfgs[i], rs[i] if when == "trained" else None)     # built once for both directions
                for direction, per_seed in per.items():
                    probe = LandscapeProbe(model, etas, direction=direction, seed=s)
                    recs = [probe(ProbeContext(b, model, x, y, None, F.cross_entropy)) for b, (x, y) in enumerate(batches)]
                    per_seed["beta"].append(float(np.median([r["beta"] for r in recs])))
                    per_seed["loss_width"].append(float(np.median([float(r["loss"].max() - r["loss"].min()) for r in recs])))
                    per_seed["g_max"].append(float(np.median([float(r["grad_diff"].max()) for r in recs])))
            out.update({(norm, when, d): v for d, v in per.items()})
    return out


DIRECTION_COLUMNS = [("beta", "β"), ("g_max", "largest gradient difference"), ("loss_width", "loss-band width")]


def direction_report(land: dict, scale: str, folder=".") -> tuple[tuple, dict]:
    """The table of `direction_landscape` (mean ± std over seeds), the BN-against-standard comparisons of β
    per direction and point, glued, and the ledger record of the paper's text claim (random directions,
    trained networks)."""
    rows = [[P.label(n), when, d] + [pm_g(v[k]) for k, _ in DIRECTION_COLUMNS] for (n, when, d), v in land.items()]
    glued = {}
    for when in ("initialisation", "trained"):
        for d in ("gradient", "random"):
            a, b = land.get(("batch", when, d)), land.get(("none", when, d))
            if a is None or b is None:
                glued[f"dir_{when[:4]}_{d}"] = glued[f"dir_beta_{when[:4]}_{d}"] = "n/a (BN and standard not both run)"
                continue
            c = compare(a["beta"], b["beta"], "<")
            glued[f"dir_{when[:4]}_{d}"] = f"**{c.verdict}** ({c.text()})"
            glued[f"dir_beta_{when[:4]}_{d}"] = f"{pm_g(a['beta'])} with BN against {pm_g(b['beta'])} without"
            if when == "trained" and d == "random":
                claims.record("random_dirs", c, f"trained VGG, median β along random directions over batches: "
                              f"BN {pm_g(a['beta'])}, standard {pm_g(b['beta'])}", scale, folder)
    header = ["network", "point", "direction"] + [name for _, name in DIRECTION_COLUMNS]
    return (header, rows), glued


def point_scale(arch, width, steps, point_seeds, point_batches, batch_size) -> str:
    """The scale of the single-point landscape claim."""
    return scale_tag(f"{arch.upper()} width {width:g}", f"{steps:,} steps", f"{len(point_seeds)} seeds",
                     f"{point_batches} batches of {batch_size} at initialisation and at the end")


def spectrum_case(key) -> str:
    """'BN, trained, eval mode'."""
    norm, when, train_mode = key
    return f"{P.label(norm)}, {when}" + ("" if norm == "none" else f", {'train' if train_mode else 'eval'} mode")


def spectrum_report(spectra: dict, scale: str, folder=".") -> tuple[object, tuple, dict]:
    """Densities (standard; BN in train mode; BN in eval mode), the table of spectral summaries per case
    (mean ± std over seeds), the glued values and the two claims of Ghorbani et al. (2019)."""
    from ..curvature import density_moment, outlier_ratio

    columns = [("none", True, "standard"), ("batch", True, "BN, batch statistics (train mode)"),
               ("batch", False, "BN, population statistics (eval mode)")]
    fig, axes = plt.subplots(2, 3, figsize=(14, 6.4))
    for row, when in enumerate(("initialisation", "trained")):
        for ax, (norm, mode, title) in zip(axes[row], columns):
            ds = spectra.get((norm, when, mode))
            if ds is None:
                ax.axis("off")
                why = ("not measured (running statistics\nare still 0 and 1)" if (norm, when, mode) ==
                       ("batch", "initialisation", False) else "not run in this build")
                ax.text(0.5, 0.5, f"{title}, {when}:\n{why}", ha="center", va="center", transform=ax.transAxes,
                        fontsize=9)
                continue
            P.density_panel(ax, ds, C[norm], f"{title}, {when}")
    fig.tight_layout()
    plt.close(fig)
    stats = {k: {"top": [float(d["nodes"].max()) for d in ds], "bottom": [float(d["nodes"].min()) for d in ds],
                 "m1": [density_moment(d, 1) for d in ds], "rms": [density_moment(d, 2) ** 0.5 for d in ds],
                 "ratio": [outlier_ratio(d) for d in ds]} for k, ds in spectra.items()}
    rows = [[spectrum_case(k)] + [pm_g(v[c]) for c in ("top", "bottom", "m1", "rms", "ratio")] for k, v in stats.items()]
    def tag(k):
        return f"{k[0]}_{k[1][:4]}_{'train' if k[2] else 'eval'}"
    glued = {}
    for k in SPECTRUM_CASES:
        v = stats.get(k)
        glued[f"spec_{tag(k)}"] = pm_g(v["ratio"]) if v else "n/a"
        glued[f"spec_top_{tag(k)}"] = pm_g(v["top"]) if v else "n/a"
        glued[f"spec_bottom_{tag(k)}"] = pm_g(v["bottom"]) if v else "n/a"
    std, bn, bn_eval = (("none", "trained", True), ("batch", "trained", True), ("batch", "trained", False))
    glued["spec_verdict_outliers"] = glued["spec_verdict_eval"] = "n/a (BN and standard not both run)"
    if std in stats and bn in stats:
        c1 = compare(stats[bn]["ratio"], stats[std]["ratio"], "<")
        claims.record("ghorbani_outliers", c1, f"trained VGG, λ_max / RMS eigenvalue of the minibatch Hessian: BN "
                      f"{pm_g(stats[bn]['ratio'])}, standard {pm_g(stats[std]['ratio'])}", scale, folder)
        glued["spec_verdict_outliers"] = f"**{c1.verdict}** ({c1.text()})"
    if bn in stats:
        c2 = compare(stats[bn_eval]["ratio"], stats[bn]["ratio"], ">")
        claims.record("ghorbani_eval", c2, f"trained BN VGG, λ_max / RMS eigenvalue: eval mode "
                      f"{pm_g(stats[bn_eval]['ratio'])}, train mode {pm_g(stats[bn]['ratio'])}", scale, folder)
        glued["spec_verdict_eval"] = f"**{c2.verdict}** ({c2.text()})"
    glued["spec_n"] = f"{next(iter(spectra.values()))[0]['n']:,}"
    header = ["network", "λ_max (top Ritz value)", "λ_min", "mean eigenvalue tr(H)/n", "RMS eigenvalue √(tr(H²)/n)",
              "outlier ratio λ_max / RMS"]
    return fig, (header, rows), glued


def sweep_points(results: dict, kind: str, n: str, lrs: list, final_fraction: float) -> list[dict]:
    """Per learning rate: the final losses of the seeds that finished (mean over the last `final_fraction`
    of steps), the number that diverged, and the mean initial loss."""
    pts = []
    for l in lrs:
        rs = results.get((kind, n, l))
        if not rs:
            continue
        finals = [last_fraction_mean(r["train_loss"], final_fraction) for r in rs if not r["diverged"]]
        pts.append({"lr": l, "final": finals, "diverged": sum(bool(r["diverged"]) for r in rs), "n": len(rs),
                    "init": float(np.mean([float(r["train_loss"][0]) for r in rs]))})
    return pts


def usable(pts: list[dict], ref: float) -> dict:
    """The usable range of a sweep: learning rates where every seed finished below `ref`; the best LR
    (lowest mean final loss among those with no divergence); where runs diverged.

    >>> u = usable([{"lr": 0.1, "final": [1.0], "diverged": 0}, {"lr": 1.0, "final": [], "diverged": 1}], ref=2.0)
    >>> u["range"], u["best"], u["diverged_at"]
    ((0.1, 0.1), 0.1, [1.0])
    """
    ok = [p["lr"] for p in pts if p["diverged"] == 0 and p["final"] and max(p["final"]) < ref]
    best = min(pts, key=lambda p: np.mean(p["final"]) if p["final"] and not p["diverged"] else np.inf)
    return {"range": (min(ok), max(ok)) if ok else None, "best": best["lr"],
            "diverged_at": [p["lr"] for p in pts if p["diverged"]]}


def sweep_figure(results: dict, sweeps: list, norms: list, usable_fraction: float, final_fraction: float):
    """Final training loss against the learning rate; sweeps = [(kind, lrs)]. A learning rate is usable
    when every seed finished below `usable_fraction` × the lower initial loss of the networks compared.
    Returns (fig, {(kind, norm): usable(...) plus the grid})."""
    fig, axes = plt.subplots(1, len(sweeps), figsize=(5.5 * len(sweeps), 3.6), squeeze=False)
    out = {}
    for ax, (kind, lrs) in zip(axes[0], sweeps):
        pts_by = {n: sweep_points(results, kind, n, lrs, final_fraction) for n in norms}
        inits = [p["init"] for pts in pts_by.values() for p in pts]
        if not inits:
            continue
        ref = usable_fraction * min(inits)
        ax.axhline(ref, color="k", linestyle="--", linewidth=0.8, label="usable below")
        for n, pts in ((n, p) for n, p in pts_by.items() if p):
            xs = [p["lr"] for p in pts]
            stat = [[f(p["final"]) if p["final"] else np.nan for p in pts] for f in (np.mean, np.min, np.max)]
            ax.plot(xs, stat[0], marker="o", color=C[n], label=P.label(n))
            ax.fill_between(xs, stat[1], stat[2], color=C[n], alpha=0.2, linewidth=0)
            init = np.mean([p["init"] for p in pts])
            for p in (p for p in pts if p["diverged"]):
                ax.plot(p["lr"], init, "x", color=C[n], markersize=10, mew=2)
            ax.axhline(init, color=C[n], linestyle=":", linewidth=0.8)
            out[(kind, n)] = {**usable(pts, ref), "grid": list(lrs), "ref": ref}
        ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="final training loss",
               title=("VGG" if kind == "vgg_sweep" else "deep linear network") + " (dotted: initial losses; x: diverged)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig, out


def usable_text(u: dict | None) -> str:
    """e.g. '0.01 to 0.3 (lowest final loss at 0.1; diverged at: 3)'; a range that reaches an end of the
    grid says so, since the true usable range may extend beyond it.

    >>> usable_text({"range": (0.01, 3.0), "best": 0.1, "diverged_at": [], "grid": [0.01, 0.1, 3.0]})
    '0.01 to 3 (the largest of the grid: the upper end may lie beyond it; lowest final loss at 0.1; diverged at: none)'
    """
    if u is None:
        return "n/a"
    r = "no learning rate of the grid" if u["range"] is None else f"{u['range'][0]:g} to {u['range'][1]:g}"
    notes = []
    if u["range"] is not None and u.get("grid") and u["range"][1] == max(u["grid"]):
        notes.append("the largest of the grid: the upper end may lie beyond it")
    notes.append(f"lowest final loss at {u['best']:g}")
    notes.append("diverged at: " + (", ".join(f"{x:g}" for x in u["diverged_at"]) or "none"))
    return f"{r} ({'; '.join(notes)})"


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
        c = compare(a[key], b[key], "<")
        m = f"{kind.upper()}: {name}, BN {pm_g(a[key])} vs standard {pm_g(b[key])}"
        claims.record(cid, c, m, scales[kind], folder)
        parts[READINGS[reading]].append(f"{m}; BN/standard {c.text()}: **{c.verdict}**")
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
        c = compare(a, b, ">")
        net = "VGG" if kind == "vgg_sweep" else "DLN"
        m = (f"{net}: largest usable learning rate per seed, BN {lr_bounds(a, lrs)} vs standard {lr_bounds(b, lrs)} "
             f"(grid {min(lrs):g} to {max(lrs):g}; a value at an end of the grid is a bound, so is the ratio)")
        claims.record(ids[kind], c, m, scales[kind], folder)
        parts.append(f"{m}; BN/standard {c.text()}: **{c.verdict}**")
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
    return float(round(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0], 12)) + 0.0   # + 0.0: never -0.0


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
    of λ_max, is set by the LR, i.e. every seed's slope is above 0 (`verdict.compare` of the slopes with 0).
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
            c = compare(sl, np.zeros_like(sl), ">", scale="difference")
            lo, hi = c.ci
            one = "contains 1, the edge-of-stability slope" if lo <= 1 <= hi else "excludes 1"
            m = (f"{net} with BN: slope of log {LR_FIELDS[f]} against log(2/LR) per seed "
                 f"{', '.join(f'{v:.2g}' for v in sl)} over {len(lev['lrs'])} learning rates {min(lev['lrs']):g} to "
                 f"{max(lev['lrs']):g} (diverged runs left out)")
            claims.record(LR_CLAIMS[(kind, f)], c, m, scales[kind], folder)
            glued[f"verdict_{LR_CLAIMS[(kind, f)]}"] = f"{m}; mean slope {c.text()}, the interval {one}: **{c.verdict}**"
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


# --- BN and standard at matched training loss ----------------------------------------------------------------

def ics_cos(d: dict) -> float:
    """One ICS record's median cos(G, G') over layers 2 and up (the ICS chapter's statistic; layer 1's input
    never shifts)."""
    return float(np.nanmedian([c for l, c in zip(d["layers"], d["cos"]) if l >= 2]))


# quantity: (probe, value of a record, name, verdict scale: cosines can be negative, so their differences)
MATCHED = {"ics": ("ics", ics_cos, "cos(G, G′), median over layers 2 and up", "difference"),
           "beta": ("landscape", lambda d: d["beta"], "effective β-smoothness", "ratio"),
           "eig": ("sharpness", lambda d: d["top_eig"], "λ_max", "ratio")}


def matched_pair(std: dict, bn: dict, probe: str, fn, window: int, tol: float) -> dict:
    """One seed pair at matched training loss, for one probe. Every pair of measurements after step 0 (one
    of each run) whose training losses (trailing mean over `window` steps) differ by at most a relative `tol`
    is a match [choice]; per run, the value is the median over its matched measurements. nan when nothing
    matches (the runs never had the same loss at measured steps).

    >>> run = lambda loss, vals: {"train_loss": np.array(loss), "diverged": False,
    ...                           "probes": {"p": [{"step": s, "data": v} for s, v in vals]}}
    >>> std = run([2.3, 2.2, 2.1, 2.0], [(0, 5.0), (2, 4.5), (3, 4.0)])
    >>> bn = run([2.5, 2.01, 1.5, 1.0], [(0, 9.0), (1, 3.0), (3, 1.0)])
    >>> m = matched_pair(std, bn, "p", float, window=1, tol=0.05)
    >>> (m["pairs"], m["steps_std"], m["steps_bn"], m["std"], m["bn"])
    (2, [2, 3], [1], 4.25, 3.0)
    """
    out = {"pairs": 0, "steps_std": [], "steps_bn": [], "loss": np.nan, "std": np.nan, "bn": np.nan}
    rs = [r for r in std["probes"].get(probe, []) if r["step"] > 0]
    rb = [r for r in bn["probes"].get(probe, []) if r["step"] > 0]
    if std["diverged"] or bn["diverged"] or not rs or not rb:
        return out
    ls, lb = S.smooth(std["train_loss"], window), S.smooth(bn["train_loss"], window)
    pairs = [(a, b) for a in rs for b in rb
             if abs(float(ls[a["step"]]) - float(lb[b["step"]])) <= tol * abs(float(lb[b["step"]]))]
    if not pairs:
        return out
    sa = sorted({a["step"] for a, _ in pairs})
    sb = sorted({b["step"] for _, b in pairs})
    pick = lambda recs, steps: [float(fn(r["data"])) for r in recs if r["step"] in steps]
    out.update(pairs=len(pairs), steps_std=sa, steps_bn=sb, loss=float(np.median([lb[t] for t in sb])),
               std=float(np.median(pick(rs, sa))), bn=float(np.median(pick(rb, sb))))
    return out


def matched_loss(results: dict, kind: str, lr: float, window: int, tol: float) -> dict:
    """{quantity: {field: per-seed array}} for the quantities of MATCHED (matched_pair per seed pair)."""
    std, bn = results.get((kind, "none", lr)) or [], results.get((kind, "batch", lr)) or []
    out = {}
    for q, (probe, fn, _, _) in MATCHED.items():
        pairs = [matched_pair(a, b, probe, fn, window, tol) for a, b in zip(std, bn)]
        out[q] = {k: [p[k] for p in pairs] if k.startswith("steps") else np.array([p[k] for p in pairs], dtype=float)
                  for k in (pairs[0] if pairs else {})}
    return out


MATCHED_CLAIMS = {("vgg", "ics"): "matched_ics_vgg", ("vgg", "beta"): "matched_beta_vgg",
                  ("vgg", "eig"): "matched_eig_vgg", ("dln", "ics"): "matched_ics_dln",
                  ("dln", "beta"): "matched_beta_dln", ("dln", "eig"): "matched_eig_dln"}


def matched_report(matched: dict, scales: dict, folder=".") -> tuple[tuple, dict]:
    """The table of matched measurements and the six claims: at matched training loss BN has the lower value
    (cos(G, G'): the paper's Fig. 3 reading, BN does not reduce ICS; β and λ_max: Fig. 4c's), per seed pair.
    A pair with no matched measurements is left out (`not testable` when fewer than the rule's minimum remain)."""
    header = ["network", "quantity", "matched pairs per seed", "standard: steps", "BN: steps", "loss",
              "standard", "BN", "verdict"]
    rows, glued = [], {}
    span = lambda steps: ", ".join(f"{s[0]}–{s[-1]}" if len(s) > 1 else f"{s[0]}" if s else "–" for s in steps)
    for (kind, q), cid in MATCHED_CLAIMS.items():
        m = matched.get(kind, {}).get(q)
        if m is None or not len(m.get("std", [])):
            glued[f"verdict_{cid}"] = "n/a (not run in this build)"
            continue
        c = compare(m["bn"], m["std"], "<", scale=MATCHED[q][3])
        pairs = ", ".join(str(int(p)) for p in m["pairs"])
        text = (f"{kind.upper()}: {MATCHED[q][2]} at matched training loss {pm_g(m['loss'])} ({pairs} matched pairs "
                f"per seed; standard steps {span(m['steps_std'])}, BN steps {span(m['steps_bn'])}): BN {pm_g(m['bn'])} "
                f"vs standard {pm_g(m['std'])}")
        claims.record(cid, c, text, scales[kind], folder)
        glued[f"verdict_{cid}"] = f"{text}; BN/standard {c.text()}: **{c.verdict}**"
        rows.append([kind.upper(), MATCHED[q][2], pairs, span(m["steps_std"]), span(m["steps_bn"]), pm_g(m["loss"]),
                     pm_g(m["std"]), pm_g(m["bn"]), c.verdict])
    return (header, rows), glued


def how_far(results: dict, kind: str, lr: float, window: int) -> dict:
    """How far each network trained: the last trailing-mean training loss and (VGG) batch accuracy, mean ± std
    over seeds. {'far_<kind>_<norm>_loss', 'far_<kind>_<norm>_acc'}."""
    out = {}
    for n in SHORT:
        rs = results.get((kind, n, lr)) or []
        loss = [float(S.smooth(r["train_loss"], window)[-1]) for r in rs if not r["diverged"]]
        acc = [float(S.smooth(r["train_acc"], window)[-1]) for r in rs if r.get("train_acc") is not None and not r["diverged"]]
        out[f"far_{kind}_{n}_loss"] = pm_g(np.array(loss)) if loss else "n/a"
        out[f"far_{kind}_{n}_acc"] = f"{100 * np.mean(acc):.0f} ± {100 * np.std(acc, ddof=1) if len(acc) > 1 else 0:.0f} %" \
            if acc else "n/a"
    return out


# --- the hidden-L2 question (protocol §7) -------------------------------------------------------------------

def init_l2(arch: str, width: float, norm: str, wd: float, seed: int = 0) -> dict:
    """(wd/2) x the squared norms (`probes.squared_norms`) of the seeded initial network at any width, e.g. the
    paper's full-width VGG: the size of the L2 term a regularised loss starts with. No training."""
    from ..config import vgg_config
    from ..probes import squared_norms
    from ..train import model_of
    sq = squared_norms(model_of(vgg_config(**{"model.arch": arch, "model.width": width, "model.norm": norm,
                                              "seed": seed})))
    return {k: wd / 2 * v for k, v in sq.items()}


def hidden_l2(results: dict, lr: float, norms: list, seeds: list, wd_seeds: list, wd: float, wd_steps: int,
              window: int) -> dict:
    """Per norm, per seed of the weight-decay runs: the training loss at the end of the window (trailing mean
    over `window` steps) without and with weight decay, the L2 term (wd/2)||θ||² there, the loss SGD minimises
    (their sum), and the median loss-band width along the gradient without and with weight decay. The run
    without weight decay is the reference run of the same seed cut to `wd_steps` (`summary.truncate`: exactly
    the shorter run). {norm: {field: per-seed array, 'steps', 'l2_series', 'ce_wd', 'ce_ref'}}"""
    out = {}
    for n in norms:
        wd_rs, ref = results.get(("vgg_wd", n, lr)) or [], results.get(("vgg", n, lr)) or []
        if not wd_rs or len(ref) != len(seeds):
            continue
        refs = [S.truncate(ref[list(seeds).index(s)], wd_steps) for s in wd_seeds]
        end = lambda r: float(S.smooth(r["train_loss"], window)[-1])
        st, l2 = S.probe_series(wd_rs, "weight_norm", lambda d: wd / 2 * d["all"])
        def width(rs):
            _, lo, hi = band_series(rs, "loss")
            with quiet_nan():
                return np.nanmedian(hi - lo, 1)
        ce_wd, ce_ref = np.array([end(r) for r in wd_rs]), np.array([end(r) for r in refs])
        out[n] = {"ce_ref": ce_ref, "ce_wd": ce_wd, "l2_end": l2[:, -1], "l2_start": l2[:, 0],
                  "objective": ce_wd + l2[:, -1], "width_ref": width(refs), "width_wd": width(wd_rs),
                  "steps": st, "l2_series": l2,
                  "curve_ref": np.stack([S.smooth(r["train_loss"], window) for r in refs]),
                  "curve_wd": np.stack([S.smooth(r["train_loss"], window) for r in wd_rs])}
    return out


def _l2_curves(axes, n: str, d: dict, wd: float) -> None:
    """One network's curves of hidden_l2_figure (a diverged seed is NaN in the means)."""
    x = np.arange(1, d["curve_ref"].shape[1] + 1)
    with quiet_nan():
        axes[0].plot(x, np.nanmean(d["curve_ref"], 0), color=C[n], label=f"{P.label(n)}, no weight decay")
        axes[0].plot(x, np.nanmean(d["curve_wd"], 0), color=C[n], linestyle="--", label=f"{P.label(n)}, weight decay {wd:g}")
        obj = d["curve_wd"][:, d["steps"]] + d["l2_series"]
        axes[0].plot(d["steps"], np.nanmean(obj, 0), color=C[n], linestyle=":", marker=".", label=f"{P.label(n)}, loss + L2 term")
        P.curve_band(axes[1], d["steps"], d["l2_series"], color=C[n], label=P.label(n))


def hidden_l2_figure(l2: dict, wd: float):
    """Left: training loss without weight decay (solid), with it (dashed) and the loss SGD minimises with it,
    loss + L2 (dotted), means over seeds. Right: the L2 term over training."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for n, d in l2.items():
        _l2_curves(axes, n, d, wd)
    axes[0].set(xlabel="step", ylabel="training loss (trailing mean)", title="cross-entropy, and with the L2 term")
    axes[1].set(xlabel="step", ylabel="(wd/2) ‖θ‖²", title="the L2 term of the weight-decay runs")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def hidden_l2_report(l2: dict, paper_l2: dict, scale: str, folder=".") -> tuple[tuple, dict]:
    """Table and glue of the weight-decay comparison; the ledger row: with weight decay, BN still narrows the
    loss band along the gradient (Fig. 4a's claim under weight decay), per seed pair."""
    header = ["network", "loss, no weight decay", "loss, weight decay", "L2 term at the start", "L2 term at the end",
              "loss + L2 term", "loss-band width, no wd", "loss-band width, wd"]
    fields = ["ce_ref", "ce_wd", "l2_start", "l2_end", "objective", "width_ref", "width_wd"]
    rows = [[P.label(n)] + [pm_g(d[f]) for f in fields] for n, d in l2.items()]
    glued = {f"wd_{f}_{n}": pm_g(l2[n][f]) if n in l2 else "n/a" for n in SHORT for f in fields}
    glued.update({f"paper_l2_{n}_{k}": f"{v:.2f}" for n, d in paper_l2.items() for k, v in d.items()})
    if "batch" in l2 and "none" in l2:
        c = compare(l2["batch"]["width_wd"], l2["none"]["width_wd"], "<")
        m = (f"VGG with weight decay: median loss-band width, BN {pm_g(l2['batch']['width_wd'])} vs standard "
             f"{pm_g(l2['none']['width_wd'])}")
        claims.record("fig4_loss_band_wd", c, m, scale, folder)
        glued["verdict_wd_band"] = f"{m}; BN/standard {c.text()}: **{c.verdict}**"
    else:
        glued["verdict_wd_band"] = "n/a (the weight-decay runs are not in this build)"
    return (header, rows), glued


def spectrum_scale(arch, width, steps, point_seeds, slq_iters, slq_vectors, slq_batch) -> str:
    """The scale of the Hessian-spectrum claims, e.g. 'quick: VGG16 width 0.125, 700 steps, 2 seeds, ...'."""
    return scale_tag(f"{arch.upper()} width {width:g}", f"{steps:,} steps", f"{len(point_seeds)} seeds",
                     f"Hessian of {slq_batch} images, SLQ {slq_iters} steps × {slq_vectors} start "
                     f"vector{'' if slq_vectors == 1 else 's'}")


def claim_scales(arch, width, steps, seeds, dln_steps, dln_seeds, sweep_steps, sweep_seeds, sweep_lrs,
                 dln_sweep_steps, dln_sweep_lrs, wd_steps=0, wd_seeds=()) -> dict:
    net = f"{arch.upper()} width {width:g}"
    return {"wd": scale_tag(net, f"{wd_steps:,} steps", f"{len(wd_seeds)} seeds"),"vgg": scale_tag(net, f"{steps:,} steps", f"{len(seeds)} seeds"),
            "dln": scale_tag("DLN 25 layers", f"{dln_steps:,} steps", f"{len(dln_seeds)} initialisations"),
            "vgg_sweep": scale_tag(net, f"{len(sweep_lrs)} LRs × {sweep_steps:,} steps", f"{len(sweep_seeds)} seeds"),
            "dln_sweep": scale_tag("DLN 25 layers", f"{len(dln_sweep_lrs)} LRs × {dln_sweep_steps:,} steps",
                                   f"{len(dln_seeds)} initialisations")}
