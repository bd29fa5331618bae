"""The smoothness chapter, part 2: measurements at single points (the Hessian spectrum by SLQ, the landscape along
the gradient against a random direction) and the learning-rate sweep's usable range (Fig. 11)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bnopt.book import claims
from bnopt.book import plotting as P
from bnopt.book.chapters.common import last_fraction_mean, net_label, scale_tag
from bnopt.book.chapters.smoothness.bands import C
from bnopt.book.measurements import point
from bnopt.book.report import pm_g
from bnopt.measure.curvature import density_moment, outlier_ratio
from bnopt.measure.landscape import LandscapeProbe

# --- the Hessian spectrum (Ghorbani, Krishnan & Xiao 2019) -------------------------------------------------

SPECTRUM_CASES = [("none", "initialisation", True), ("none", "trained", True), ("batch", "initialisation", True),
                  ("batch", "trained", True), ("batch", "trained", False)]   # (norm, when, train mode); eval mode
# only for the trained BN network: at initialisation its running statistics are still 0 and 1, not the data's


def hessian_spectra(grid: dict, results: dict, lr: float, seeds: list, point_seeds: list, iters: int, vectors: int,
                    batch: int) -> dict:
    """{(norm, when, train_mode): [SLQ density per seed in `point_seeds`]} of the VGG's minibatch Hessian
    (`bnopt.book.measurements.hessian_spectrum`, float32 as trained), for the cases of SPECTRUM_CASES: read from the
    measurement cache (the committed measurements), else computed now."""
    out = {}
    for norm, when, train_mode in SPECTRUM_CASES:
        if ("vgg", norm, lr) not in grid:            # a re-execution without that normalization
            continue
        cfgs, rs = grid[("vgg", norm, lr)], results[("vgg", norm, lr)]
        out[(norm, when, train_mode)] = [
            point("hessian_spectrum", cfgs[seeds.index(s)], rs[seeds.index(s)], when=when, train_mode=train_mode,
                  iters=iters, vectors=vectors, batch=batch, seed=s) for s in point_seeds]
    return out


def direction_landscape(grid: dict, results: dict, lr: float, norms: list, seeds: list, point_seeds: list,
                        eta_multiples: list, point_batches: int, batch_size: int) -> dict:
    """{(norm, when, direction): {'beta', 'loss_width', 'g_max'}: per seed in `point_seeds`, the median over
    `point_batches` training batches} of `LandscapeProbe` at one point of each VGG run (its initialisation
    and its final weights), along the gradient and along a Gaussian direction of the gradient's norm, at
    the chapter's step sizes (multiples of the LR), BN in train mode (`bnopt.book.measurements.direction_point`,
    read from the measurement cache, else computed now)."""
    etas = [m * lr for m in eta_multiples]
    out = {}
    for norm in norms:
        cfgs, rs = grid[("vgg", norm, lr)], results[("vgg", norm, lr)]
        for when in ("initialisation", "trained"):
            per_seed = [point("direction_point", cfgs[seeds.index(s)], rs[seeds.index(s)], when=when, etas=etas,
                              batches=point_batches, batch_size=batch_size, seed=s) for s in point_seeds]
            out.update({(norm, when, d): {k: [v[d][k] for v in per_seed] for k in ("beta", "loss_width", "g_max")}
                        for d in LandscapeProbe.DIRECTIONS})
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
            c = claims.compare("random_dirs", a["beta"], b["beta"])   # the claim's test, at every point
            glued[f"dir_{when[:4]}_{d}"] = f"{c.word()} ({c.text()})"
            glued[f"dir_beta_{when[:4]}_{d}"] = f"{pm_g(a['beta'])} with BN against {pm_g(b['beta'])} without"
            if when == "trained" and d == "random":
                claims.record("random_dirs", c, f"trained VGG, median β along random directions over batches: "
                              f"BN {pm_g(a['beta'])}, standard {pm_g(b['beta'])}", scale, folder)
    header = ["network", "point", "direction"] + [name for _, name in DIRECTION_COLUMNS]
    return (header, rows), glued


def point_scale(profile, arch, width, steps, point_seeds, point_batches, batch_size) -> str:
    """The scale of the single-point landscape claim."""
    return scale_tag(profile, net_label(arch, width), f"{steps:,} steps", f"{len(point_seeds)} seeds",
                     f"{point_batches} batches of {batch_size} at initialisation and at the end")


def spectrum_case(key) -> str:
    """'BN, trained, eval mode'."""
    norm, when, train_mode = key
    return f"{P.label(norm)}, {when}" + ("" if norm == "none" else f", {'train' if train_mode else 'eval'} mode")


def spectrum_report(spectra: dict, scale: str, folder=".") -> tuple[object, tuple, dict]:
    """Densities (standard; BN in train mode; BN in eval mode), the table of spectral summaries per case
    (mean ± std over seeds), the glued values and the two claims of Ghorbani et al. (2019)."""

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
        c1 = claims.compare("ghorbani_outliers", stats[bn]["ratio"], stats[std]["ratio"])
        claims.record("ghorbani_outliers", c1, f"trained VGG, λ_max / RMS eigenvalue of the minibatch Hessian: BN "
                      f"{pm_g(stats[bn]['ratio'])}, standard {pm_g(stats[std]['ratio'])}", scale, folder)
        glued["spec_verdict_outliers"] = f"{c1.word()} ({c1.text()})"
    if bn in stats:
        c2 = claims.compare("ghorbani_eval", stats[bn_eval]["ratio"], stats[bn]["ratio"])
        claims.record("ghorbani_eval", c2, f"trained BN VGG, λ_max / RMS eigenvalue: eval mode "
                      f"{pm_g(stats[bn_eval]['ratio'])}, train mode {pm_g(stats[bn]['ratio'])}", scale, folder)
        glued["spec_verdict_eval"] = f"{c2.word()} ({c2.text()})"
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
