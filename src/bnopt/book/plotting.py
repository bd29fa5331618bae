"""Figures shared by the chapters: curves with seed bands, activation ridgelines, and Hessian densities."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from bnopt.measure.curvature import smoothed_density

NORM_LABELS = {"none": "Standard", "batch": "Standard + BatchNorm", "noisy_batch": "Standard + noisy BatchNorm",
               "noise_only": "Standard + noise (no BN)", "l1": "Standard + ℓ1 norm", "l2": "Standard + ℓ2 norm",
               "linf": "Standard + ℓ∞ norm", "layer": "Standard + layer norm", "group": "Standard + group norm"}
NORM_COLORS = {"none": "C0", "batch": "C3", "noisy_batch": "C2", "noise_only": "C1", "l1": "C4", "l2": "C5",
               "linf": "C6", "layer": "C8", "group": "C9"}


def setup() -> None:
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", "axes.titlesize": "medium"})


def label(norm: str, lr: float | None = None) -> str:
    base = NORM_LABELS.get(norm, f"Standard + {norm}")
    return base if lr is None else f"{base}, LR {lr:g}"


def curve_band(ax, x, ys: np.ndarray, label: str | None = None, color=None, band: str = "minmax",
               **kw):
    """Mean over seeds (rows of ys) as a line; band = min..max over seeds ('minmax') or ±1 std."""
    ys = np.atleast_2d(np.asarray(ys, dtype=float))
    with np.errstate(all="ignore"):
        mean = np.nanmean(ys, axis=0) if ys.shape[0] > 1 else ys[0]
        if band == "std":
            s = np.nanstd(ys, axis=0)
            lo, hi = mean - s, mean + s
        else:
            lo, hi = np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)
    (line,) = ax.plot(x, mean, label=label, color=color, **kw)
    if ys.shape[0] > 1:
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def _kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    v = values[np.isfinite(values)]
    if len(v) < 2 or v.std() == 0:
        return np.zeros_like(grid)
    bw = 1.06 * v.std() * len(v) ** (-1 / 5)   # Silverman's rule
    z = (grid[:, None] - v[None, :]) / bw
    return np.exp(-0.5 * z * z).sum(1) / (len(v) * bw * np.sqrt(2 * np.pi))


def ridgeline(ax, records: list[dict], layer: int, rows: int = 12, color="C0", overlap: float = 1.8,
              clip: float = 0.005, scale: str = "row"):
    """Distribution of one sampled unit over training: one KDE per measured step, later steps lower.

    records: the 'activations' probe's list of {'step', 'data': {layer: {'values', ...}}}; only the records
    that kept their samples are drawn (a run can keep them every few measurements: `values_every`).
    scale: 'row' scales each density to its own peak (shapes comparable across steps, as in
    TensorBoard histograms); 'global' uses one scale for all rows (heights comparable).
    """
    records = [r for r in records if "values" in r["data"][layer]]
    picks = np.unique(np.linspace(0, len(records) - 1, min(rows, len(records))).round().astype(int))
    chosen = [records[i] for i in picks]
    values = [np.asarray(torch.as_tensor(r["data"][layer]["values"]).double()) for r in chosen]   # bf16 too
    allv = np.concatenate(values)
    allv = allv[np.isfinite(allv)]
    lo, hi = np.quantile(allv, [clip, 1 - clip]) if len(allv) else (-1, 1)
    pad = 0.05 * (hi - lo + 1e-12)
    grid = np.linspace(lo - pad, hi + pad, 256)
    dens = [_kde(v, grid) for v in values]
    top = max((d.max() for d in dens), default=1.0) or 1.0
    cmap = sns.light_palette(color, n_colors=len(chosen) + 3)[3:]
    for k, (r, d) in enumerate(zip(chosen, dens)):
        base = -k
        peak = (d.max() or 1.0) if scale == "row" else top
        y = base + overlap * d / peak
        ax.fill_between(grid, base, y, color=cmap[k], alpha=0.85, linewidth=0, zorder=2 * k)
        ax.plot(grid, y, color="k", linewidth=0.5, zorder=2 * k + 1)
    ax.set_yticks([-k for k in range(len(chosen))], [str(r["step"]) for r in chosen])
    ax.set_ylabel("training step")
    ax.grid(False)
    return ax


def density_panel(ax, densities: list[dict], color, title: str, points: int = 800) -> None:
    """SLQ eigenvalue densities (`bnopt.measure.curvature.spectral_density`), one line each, on the panel's own
    range with each Ritz value smoothed by a Gaussian of 1/100 of that range; log density (an isolated
    eigenvalue carries a weight of about 1/n)."""
    import torch


    lo = min(float(d["nodes"].min()) for d in densities)
    hi = max(float(d["nodes"].max()) for d in densities)
    span = hi - lo
    grid = torch.linspace(lo - 0.05 * span, hi + 0.05 * span, points, dtype=torch.float64)
    for d in densities:
        ax.plot(grid, smoothed_density(d, grid, span / 100).clamp_min(1e-12), color=color, alpha=0.8, lw=1)
    ax.set(yscale="log", ylim=(1e-9, None), xlabel="eigenvalue", ylabel="density", title=title)
    ax.locator_params(axis="x", nbins=5)          # wide ranges: tick labels must not collide



VERDICT_COLORS = {"reproduced": "#2e7d32", "consistent but underpowered": "#0277bd", "not reproduced": "#ef6c00",
                  "contradicted": "#c62828", "not testable at this scale": "#757575"}


def _limits(effects: list[float], log: bool) -> tuple[float, float]:
    """Axis limits around the point estimates and "no effect" (a decade beyond them on a log axis, half their range on
    a linear one): with two seeds a t-interval can span many decades, and it is clipped there.

    >>> _limits([0.5, 20.0], log=True), _limits([-1.0, 0.5], log=False)
    ((0.01, 1000.0), (-1.75, 1.25))
    """
    v = np.asarray([x for x in effects if np.isfinite(x) and (x > 0 or not log)] + [1.0 if log else 0.0])
    if log:
        return float(10.0 ** (np.floor(np.log10(v.min())) - 1)), float(10.0 ** (np.ceil(np.log10(v.max())) + 1))
    span = max(v.max() - v.min(), 0.1)
    return float(v.min() - span / 2), float(v.max() + span / 2)


def forest(rows: list[dict], title: str = ""):
    """A forest plot of claims' effects with their intervals, grouped by chapter and coloured by verdict. rows: dicts
    with 'label', 'chapter', 'scale' ('ratio' or 'difference'), 'side' ('<' or '>'), 'effect', 'ci', 'verdict',
    'exploratory'. Ratio claims go on a log axis (left), difference claims on a linear one (right); every effect is
    drawn with the claimed side to the left of "no effect" (a '>' claim's ratio is inverted, its difference negated),
    so that a point left of the line agrees with the paper. Returns the figure."""
    panels = [s for s in ("ratio", "difference") if any(r["scale"] == s for r in rows)]
    if not panels:
        raise ValueError("forest needs at least one claim with an effect")
    heights = [sum(r["scale"] == s for r in rows) for s in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 0.26 * sum(heights) + 1.2 * len(panels)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, s in zip(axes[:, 0], panels):
        sel = sorted((r for r in rows if r["scale"] == s), key=lambda r: (r["chapter"], r["label"]))
        flip = (lambda x: 1 / x) if s == "ratio" else (lambda x: -x)
        drawn = [(flip(r["effect"]), flip(r["ci"][1]), flip(r["ci"][0])) if r["side"] == ">"
                 else (r["effect"], *r["ci"]) for r in sel]
        lim = _limits([e for e, _, _ in drawn], log=s == "ratio")
        for i, (r, (e, lo, hi)) in enumerate(zip(sel, drawn)):
            color = VERDICT_COLORS.get(r["verdict"], "k")
            if np.isfinite(lo) and np.isfinite(hi):      # an interval beyond the axis ends in an arrowhead there
                ax.plot([max(lo, lim[0]), min(hi, lim[1])], [i, i], color=color, lw=1.5)
                for end, beyond, mark in ((lim[0], lo < lim[0], "<"), (lim[1], hi > lim[1], ">")):
                    if beyond:
                        ax.plot([end], [i], mark, color=color, ms=5)
            ax.plot([e], [i], "o", color=color, ms=5, mfc="white" if r["exploratory"] else color)
        ax.axvline(1.0 if s == "ratio" else 0.0, color="k", lw=0.8)
        ax.set_yticks(range(len(sel)), [f"{r['chapter']}: {r['label']}" for r in sel], fontsize=7)
        ax.invert_yaxis()
        if s == "ratio":
            ax.set_xscale("log")
        ax.set_xlim(*lim)
        ax.set_xlabel("ratio A/B, claimed side to the left (log scale)" if s == "ratio"
                      else "difference A − B, claimed side to the left")
    handles = [plt.Line2D([], [], color=c, marker="o", lw=1.5, label=v) for v, c in VERDICT_COLORS.items()]
    handles.append(plt.Line2D([], [], color="k", marker="o", mfc="white", lw=0, label="exploratory (open)"))
    axes[0, 0].legend(handles=handles, fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig
