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

