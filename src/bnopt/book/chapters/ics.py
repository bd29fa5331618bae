"""Chapter "Does BatchNorm reduce internal covariate shift?" (the paper's Figs 2, 3, 8, 9): noisy BN,
activation moments, the ICS of Definition 2.1, distributional shift and drift, and the claims.

`vgg` and `dln` are `{(norm, lr): [run result per seed]}`.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bnopt.analysis import summary as S
from bnopt.book import claims
from bnopt.book import plotting as P
from bnopt.book.chapters.common import net_label, scale_tag, seed_pairs
from bnopt.book.report import pm_g
from bnopt.measure.ics import unit_w2

C = P.NORM_COLORS
MOMENTS = [("dmu", "|μ(t+1) − μ(t)|"), ("dvar", "|σ²(t+1) − σ²(t)|"), ("mu0", "μ(t) − μ(0)"), ("var0", "σ²(t) − σ²(0)")]


def split(results: dict) -> tuple[dict, dict]:
    """{(kind, norm, lr): runs} -> ({(norm, lr): runs} for the VGG, the same for the DLN)."""
    vgg = {(n, lr): rs for (kind, n, lr), rs in results.items() if kind == "vgg"}
    dln = {(n, lr): rs for (kind, n, lr), rs in results.items() if kind == "dln"}
    return vgg, dln


def noisy_figure(vgg: dict, norms: list, lr0: float, steps: int, smooth_window: int):
    """Fig. 2 (left): training accuracy and loss of the standard, BN, noisy-BN and noise-only networks.
    Returns (fig, {norm: per-seed final accuracy, test accuracy, divergences})."""
    x = np.arange(1, steps + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    noisy = {}
    for n in [n for n in norms if (n, lr0) in vgg]:
        rs = vgg[(n, lr0)]
        acc = S.smooth(S.stack(rs, "train_acc"), smooth_window)
        P.curve_band(axes[0], x, 100 * acc, label=P.label(n), color=C[n])
        P.curve_band(axes[1], x, S.smooth(S.stack(rs, "train_loss"), smooth_window), color=C[n])
        noisy[n] = {"acc": [a[-1] for a in acc], "test": [S.final_eval(r, "test_acc") for r in rs],
                    "diverged": sum(r["diverged"] for r in rs), "n": len(rs)}
    axes[0].set(xlabel="step", ylabel="training accuracy (%)", title=f"training accuracy ({smooth_window}-step mean)")
    axes[1].set(xlabel="step", ylabel="training loss", yscale="log", title="training loss")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig, noisy


def noisy_table(noisy: dict) -> tuple[list, list, dict]:
    header = ["network", "training acc., last steps (batch, noise on)", "test acc. (eval mode, noise off)", "diverged"]
    rows, glued = [], {}
    for n, st in noisy.items():
        acc = f"{pm_g(100 * np.array(st['acc']), 3)} %"
        rows.append([P.label(n), acc, f"{pm_g(100 * np.array(st['test']), 3)} %", f"{st['diverged']}/{st['n']}"])
        glued[f"acc_{n}"] = acc
    glued["noisy_test"] = (f"{pm_g(100 * np.array(noisy['noisy_batch']['test']), 3)} %"
                           if "noisy_batch" in noisy else "n/a")
    return header, rows, glued


def ridges_figure(res: dict, norms: list, lr: float, layers: list, name: str = "#"):
    """Ridgelines of one sampled unit per layer (rows) and network (columns), first seed."""
    shown = [n for n in norms if (n, lr) in res]
    fig, axes = plt.subplots(len(layers), len(shown), figsize=(3.6 * len(shown), 3.1 * len(layers)), squeeze=False)
    for j, n in enumerate(shown):
        recs = res[(n, lr)][0]["probes"]["activations"]
        for i, layer in enumerate(layers):
            P.ridgeline(axes[i, j], recs, layer, color=C[n])
            axes[i, j].set_title(f"{P.label(n)}: {name}{layer}", fontsize=9)
            axes[i, j].set_xlabel("activation value")
    fig.tight_layout()
    plt.close(fig)
    return fig


def moment_series(rs: list[dict], layer: int, what: str):
    """(steps, (seeds, points)) of a sampled unit's moments: 'dmu'/'dvar' the absolute change between
    successive measurements (one point fewer), 'mu0'/'var0' the change since the first measurement."""
    steps_, mu = S.probe_series(rs, "activations", lambda d: d[layer]["mean"])
    _, var = S.probe_series(rs, "activations", lambda d: d[layer]["var"])
    return steps_, {"dmu": np.abs(np.diff(mu, axis=1)), "dvar": np.abs(np.diff(var, axis=1)),
                    "mu0": mu - mu[:, :1], "var0": var - var[:, :1]}[what]


def moments_figure(vgg: dict, norms: list, lr0: float, layers: list):
    """Fig. 8: the moments of the sampled unit. Returns (fig, {(norm, layer): {'dmu', 'dvar': per-seed means}})."""
    fig, axes = plt.subplots(len(MOMENTS), len(layers), figsize=(3.7 * len(layers), 2.5 * len(MOMENTS)),
                             squeeze=False, sharex=True)
    jumps = {}
    for n in [n for n in norms if (n, lr0) in vgg]:
        for j, layer in enumerate(layers):
            jumps[(n, layer)] = {}
            for i, (q, title) in enumerate(MOMENTS):
                st, v = moment_series(vgg[(n, lr0)], layer, q)
                P.curve_band(axes[i, j], st[1:] if q.startswith("d") else st, v, color=C[n],
                             label=P.label(n) if (i, j) == (0, 0) else None)
                axes[i, j].set_title(f"layer #{layer}: {title}", fontsize=9)
                if q in ("dmu", "dvar"):
                    jumps[(n, layer)][q] = np.nanmean(v, axis=1)
    for ax in axes[-1]:
        ax.set_xlabel("step")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig, jumps


def ics_stats(rs: list[dict], layer: int) -> dict:
    """Per-seed medians over training of ||G - G'||, its ratio to ||G||, cos(G, G'), and the smallest cosine;
    with the series themselves ('steps', 'l2_series', 'cos_series') for the figure."""
    st, l2 = S.probe_series(rs, "ics", S.at_layer("l2", layer))
    _, cos = S.probe_series(rs, "ics", S.at_layer("cos", layer))
    _, gn = S.probe_series(rs, "ics", S.at_layer("g_norm", layer))
    with np.errstate(all="ignore"):
        return {"l2": np.nanmedian(l2, 1), "cos": np.nanmedian(cos, 1), "rel": np.nanmedian(l2 / gn, 1),
                "cos_min": np.nanmin(cos, 1), "steps": st, "l2_series": l2, "cos_series": cos}


def ics_figure(res: dict, norms: list, lrs: list, layers: list, left: str, xs, smooth_window: int, cos_floor: float):
    """Fig. 3: rows = learning rates; columns = training accuracy ('acc') or loss ('loss'), then
    ||G - G'|| and cos(G, G') per layer. Returns (fig, {(norm, lr, layer): ics_stats})."""
    fig, axes = plt.subplots(len(lrs), 1 + 2 * len(layers), figsize=(3.3 * (1 + 2 * len(layers)), 3.0 * len(lrs)),
                             squeeze=False)
    stats = {}
    for r_i, lr in enumerate(lrs):
        for n in [n for n in norms if (n, lr) in res]:
            rs, ax = res[(n, lr)], axes[r_i, 0]
            if left == "acc":
                P.curve_band(ax, xs, 100 * S.smooth(S.stack(rs, "train_acc"), smooth_window), color=C[n], label=P.label(n))
                ax.set(ylabel="training accuracy (%)", xlabel="step")
            else:
                P.curve_band(ax, xs, S.stack(rs, "train_loss"), color=C[n], label=P.label(n))
                ax.set(ylabel="training loss", yscale="log", xlabel="step")
            for j, layer in enumerate(layers):
                d = stats[(n, lr, layer)] = ics_stats(rs, layer)
                P.curve_band(axes[r_i, 1 + j], d["steps"], d["l2_series"], color=C[n])
                P.curve_band(axes[r_i, 1 + len(layers) + j], d["steps"], d["cos_series"], color=C[n])
        axes[r_i, 0].set_ylabel(f"LR {lr:g}\n" + axes[r_i, 0].get_ylabel())
        for j, layer in enumerate(layers):
            axes[r_i, 1 + j].set(yscale="log", title=f"layer #{layer}: ‖G − G′‖", xlabel="step")
            a = axes[r_i, 1 + len(layers) + j]
            a.set(title=f"layer #{layer}: cos(G, G′)", xlabel="step", ylim=(cos_floor - 0.05, 1.05))
            a.axhline(1, color="k", linestyle="--", linewidth=0.8)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig, stats


def ics_rows(stats: dict, with_min: bool = False) -> tuple[list, list]:
    header = ["LR", "layer", "network", "median ‖G − G′‖", "median ‖G − G′‖ / ‖G‖", "median cos(G, G′)"]
    header += ["min cos"] if with_min else []
    rows = [[f"{lr:g}", f"#{layer}", P.label(n), pm_g(d["l2"]), pm_g(d["rel"]), pm_g(d["cos"], 3)]
            + ([pm_g(d["cos_min"], 3)] if with_min else []) for (n, lr, layer), d in stats.items()]
    return header, rows


def vgg_ics_sentence(stats: dict, lrs: list, layers: list) -> str:
    """BN against standard, per LR and layer: the ratio of ||G - G'|| (per seed), relative change and cosine."""
    parts = []
    for lr in lrs:
        for layer in layers:
            a, b = stats.get(("batch", lr, layer)), stats.get(("none", lr, layer))
            if a is None or b is None:
                continue
            parts.append(f"LR {lr:g}, layer #{layer}: ‖G − G′‖ with BN = {pm_g(np.asarray(a['l2']) / np.asarray(b['l2']))} "
                         f"× the standard network's, relative change {pm_g(a['rel'])} vs {pm_g(b['rel'])}, cosine "
                         f"{pm_g(a['cos'])} vs {pm_g(b['cos'])}")
    return "; ".join(parts) if parts else "n/a"


def dln_loss(dln: dict) -> dict:
    return {k: {"first": S.stack(rs, "train_loss")[:, 0], "last": S.stack(rs, "train_loss")[:, -1],
                "diverged": sum(r["diverged"] for r in rs), "n": len(rs)} for k, rs in dln.items()}


def dln_glue(dloss: dict, dics: dict, norms: list, dln_lrs: list, layer: int) -> dict:
    out = {}
    for lr_i, lr in enumerate(dln_lrs):
        for n in norms:
            if (n, lr) in dloss:
                out[f"dln_loss_{n}_{lr_i}"] = pm_g(dloss[(n, lr)]["last"], 3)
            if (n, lr, layer) in dics:
                out[f"dln_cos_{n}_{lr_i}"] = pm_g(dics[(n, lr, layer)]["cos"], 3)
                out[f"dln_l2_{n}_{lr_i}"] = pm_g(dics[(n, lr, layer)]["l2"])
    return {**out, "dln_layer": f"#{layer}", "dln_lr_a": f"{dln_lrs[0]:g}", "dln_lr_b": f"{dln_lrs[-1]:g}"}


def dln_loss_rows(dloss: dict) -> tuple[list, list]:
    header = ["LR", "network", "loss at step 1", "loss at the end", "diverged"]
    return header, [[f"{lr:g}", P.label(n), pm_g(d["first"], 3), pm_g(d["last"], 3), f"{d['diverged']}/{d['n']}"]
                    for (n, lr), d in dloss.items()]


def unit_spread(dln: dict, norms: list, lr: float, layers: list) -> dict:
    """{(norm, layer): (seeds, points) std of the sampled unit over training}."""
    out = {}
    for n in [n for n in norms if (n, lr) in dln]:
        for layer in layers:
            _, var = S.probe_series(dln[(n, lr)], "activations", lambda d, l=layer: d[l]["var"])
            out[(n, layer)] = np.sqrt(var)
    return out


def spread_rows(spread: dict) -> tuple[list, list]:
    header = ["network", "layer", "unit std at step 0", "at the end", "largest over training"]
    return header, [[P.label(n), layer, pm_g(s[:, 0]), pm_g(s[:, -1]), pm_g(np.nanmax(s, 1))]
                    for (n, layer), s in spread.items()]


def layer_profile(rs: list[dict], field: str):
    """(layers, (layers, seeds)): the median over training of a per-layer ICS field, every layer
    (step 0 skipped: it has no history yet)."""
    layers = rs[0]["probes"]["ics"][0]["data"]["layers"]
    out = np.stack([S.probe_series(rs, "ics", S.at_layer(field, l))[1] for l in layers])   # (L, seeds, T)
    with np.errstate(all="ignore"):
        return np.asarray(layers), np.nanmedian(out[:, :, 1:], axis=2)


def drift(rs: list[dict]) -> np.ndarray:
    """(layers, seeds): mean over units of the W2 distance between each unit's Gaussian fit at the last
    and at the first measurement that kept the per-unit moments (a run may keep them every few measurements:
    `moments_every`), divided by the layer's RMS std at the first (a per-unit std would divide by zero for
    units that start dead behind a ReLU)."""
    out = []
    for r in rs:
        recs = [rec for rec in r["probes"]["ics"] if "in_mean" in rec["data"]]
        first, last = recs[0]["data"], recs[-1]["data"]
        per_layer = []
        for m0, v0, m1, v1 in zip(first["in_mean"], first["in_var"], last["in_mean"], last["in_var"]):
            m0, v0, m1, v1 = (t.double() for t in (m0, v0, m1, v1))
            w2 = unit_w2((m0, v0), (m1, v1)).mean()
            per_layer.append(float(w2 / v0.mean().sqrt().clamp_min(1e-30)))
        out.append(per_layer)
    return np.asarray(out).T


def dist_figure(panels: list, norms: list):
    """Distributional shift, drift and gradient ICS per layer; panels = [(kind, lr, results)].
    Returns (fig, {(kind, norm): {'shift', 'drift', 'cos', 'layers'}})."""
    fig, axes = plt.subplots(len(panels), 3, figsize=(13, 3.2 * len(panels)), squeeze=False)
    dist = {}
    for r_i, (kind, lr, res) in enumerate(panels):
        for n in [n for n in norms if (n, lr) in res]:
            rs = res[(n, lr)]
            layers, shift = layer_profile(rs, "shift")
            _, cos = layer_profile(rs, "cos")
            d = drift(rs)
            kw = dict(color=C[n], marker="o", markersize=3, label=P.label(n))
            P.curve_band(axes[r_i, 0], layers[1:], shift[1:].T, **kw)      # layer 1's input is the data: 0
            P.curve_band(axes[r_i, 1], layers, d.T, **kw)
            P.curve_band(axes[r_i, 2], layers[1:], (1 - cos[1:]).T, **kw)
            dist[(kind, n)] = {"shift": shift, "drift": d, "cos": cos, "layers": layers}
        axes[r_i, 0].set(yscale="log", ylabel=f"{kind.upper()}, LR {lr:g}",
                         title="one-step input shift (W2 / s), median over training")
        axes[r_i, 1].set(yscale="log", title="input drift over training (W2 / s, last vs first)")
        axes[r_i, 2].set(yscale="log", title="gradient ICS: 1 − cos(G, G′), median over training")
        for a in axes[r_i]:
            a.set_xlabel("layer #")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig, dist


def over_layers(dist: dict, kind: str, n: str, field: str, how: str) -> np.ndarray:
    """Per seed: a field aggregated (`how`: 'mean' or 'median') over layers 2 and up (layer 1's input is the data: no
    shift by definition)."""
    d = dist.get((kind, n))
    if d is None:
        return np.array([np.nan])
    return S.over_layers(d[field][1:], how)


def dist_glue(dist: dict, norms: list) -> dict:
    how = claims.declared("fig3_vgg_ics").layers
    return {f"{f}_{kind}_{n}": pm_g(over_layers(dist, kind, n, f, how))
            for kind in ("vgg", "dln") for n in norms for f in ("shift", "drift", "cos")}


def measure_claims(noisy: dict, jumps: dict, dist: dict, deep_layer: int, scales: dict, folder=".") -> dict:
    """Apply the verdict rule to the chapter's claims; record them; return {glue name: sentence}. `scales`
    (`claim_scales`): "vgg", "noisy" (the noisy norms' seeds, which may be fewer) and "dln"."""
    out = {}
    if all(n in noisy for n in ("none", "batch", "noisy_batch")):
        a, b, s = (np.asarray(noisy[n]["acc"]) for n in ("noisy_batch", "batch", "none"))
        c = claims.compare("fig2_noisy_trains", *seed_pairs(a, s))        # noisy BN may have fewer seeds (other_seeds)
        m = (f"training accuracy at the end: noisy BN {pm_g(100 * a, 3)} %, BN {pm_g(100 * b, 3)} %, standard "
             f"{pm_g(100 * s, 3)} %")
        if "noise_only" in noisy:
            st = noisy["noise_only"]
            m += f"; the same noise without BN {pm_g(100 * np.asarray(st['acc']), 3)} % ({st['diverged']}/{st['n']} diverged)"
        claims.record("fig2_noisy_trains", c, m, scales["noisy"], folder)
        out["verdict_noisy"] = f"{m}; noisy BN − standard {c.text()}: {c.word()}"
    if ("noisy_batch", deep_layer) in jumps and ("batch", deep_layer) in jumps:
        a, b = jumps[("noisy_batch", deep_layer)]["dmu"], jumps[("batch", deep_layer)]["dmu"]
        c = claims.compare("fig2_noisy_shift", *seed_pairs(a, b))
        m = f"mean |Δμ| between measurements at layer #{deep_layer}: noisy BN {pm_g(a)}, BN {pm_g(b)}"
        claims.record("fig2_noisy_shift", c, m, scales["noisy"], folder)
        out["verdict_noisy_shift"] = f"{m}; noisy BN / BN {c.text()}: {c.word()}"
    parts = []
    for kind, scale in (("vgg", scales["vgg"]), ("dln", scales["dln"])):
        if (kind, "batch") not in dist or (kind, "none") not in dist:
            continue
        cid = f"fig3_{kind}_ics"
        how = claims.declared(cid).layers
        ca, cb = over_layers(dist, kind, "batch", "cos", how), over_layers(dist, kind, "none", "cos", how)
        c = claims.compare(cid, ca, cb)
        m = (f"{kind.upper()}: cos(G, G′), median over training, {claims.layers_label(cid)}, BN {pm_g(ca)} vs "
             f"standard {pm_g(cb)}")
        claims.record(cid, c, m, scale, folder)
        parts.append(f"{m}; BN − standard {c.text()}: {c.word()} (the paper's claim that BN does not lower ICS)")
        if kind == "vgg":
            how = claims.declared("folk_shift").layers
            sa, sb = over_layers(dist, kind, "batch", "shift", how), over_layers(dist, kind, "none", "shift", how)
            c = claims.compare("folk_shift", sa, sb)
            m = (f"VGG: one-step input shift, median over training, {claims.layers_label('folk_shift')}, BN "
                 f"{pm_g(sa)} vs standard {pm_g(sb)}")
            claims.record("folk_shift", c, m, scale, folder)
            parts.append(f"{m}; BN / standard {c.text()}: the folk claim that BN reduces it is {c.word()}")
    out["verdict_overall"] = "; ".join(parts) if parts else "n/a"
    for k in ("verdict_noisy", "verdict_noisy_shift"):
        out.setdefault(k, "n/a (needs the standard, BN and noisy-BN runs)")
    return out


def claim_scales(profile, arch, width, steps, seeds, other_seeds, dln_steps, dln_seeds) -> dict[str, str]:
    """The scale of the chapter's claims, each naming the seeds its comparison pairs: "vgg" (the reference pair,
    `seeds`), "noisy" (the noisy norms, `other_seeds`) and "dln"."""
    def vgg(s):
        return scale_tag(profile, net_label(arch, width), f"{steps:,} steps", f"{len(s)} seeds")
    return {"vgg": vgg(seeds), "noisy": vgg(other_seeds),
            "dln": scale_tag(profile, "DLN 25 layers", f"{dln_steps:,} steps", f"{len(dln_seeds)} initialisations")}
