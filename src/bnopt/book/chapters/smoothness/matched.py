"""The smoothness chapter, part 4: BN and standard networks compared at matched training loss, the hidden-L2
question (protocol §7), and the scale tags of its claims."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bnopt.analysis import summary as S
from bnopt.book import claims
from bnopt.book import plotting as P
from bnopt.book.chapters.common import PAPER_STEPS, net_label, scale_tag
from bnopt.book.chapters.smoothness.bands import SHORT, C, band_series, quiet_nan
from bnopt.book.report import pm_g
from bnopt.measure.probes import squared_norms
from bnopt.runs.config import vgg_config
from bnopt.runs.train import model_of

# --- BN and standard at matched training loss ----------------------------------------------------------------

def ics_cos(d: dict) -> float:
    """One ICS record's cos(G, G') over layers 2 and up, aggregated as the matched-ICS claims declare (layer 1's
    input never shifts)."""
    return float(S.over_layers([c for l, c in zip(d["layers"], d["cos"]) if l >= 2],
                               claims.declared("matched_ics_vgg").layers))


# quantity: (probe, value of a record, name, verdict scale: cosines can be negative, so their differences)
MATCHED = {"ics": ("ics", ics_cos, f"cos(G, G′), {claims.layers_label('matched_ics_vgg')}", "difference"),
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
        c = claims.compare(cid, m["bn"], m["std"])
        pairs = ", ".join(str(int(p)) for p in m["pairs"])
        text = (f"{kind.upper()}: {MATCHED[q][2]} at matched training loss {pm_g(m['loss'])} ({pairs} matched pairs "
                f"per seed; standard steps {span(m['steps_std'])}, BN steps {span(m['steps_bn'])}): BN {pm_g(m['bn'])} "
                f"vs standard {pm_g(m['std'])}")
        claims.record(cid, c, text, scales[kind], folder)
        glued[f"verdict_{cid}"] = f"{text}; BN/standard {c.text()}: {c.word()}"
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


PAPER_FLOOR = (0.6, 0.7)   # the loss band's floor in the paper's Fig. 4a, read off the figure


def floor_reading(l2: dict, lr: float, wd: float, wd_steps: int, settled: float = 0.5) -> str:
    """Whether the weight-decay runs are long enough to show Fig. 4a's floor, and what they show there. Weight decay
    alone shrinks the weights by 1 - (1 - lr·wd)^steps; below `settled` (our choice: half) the L2 term has not
    settled and the runs cannot show a floor. Otherwise, the loss SGD minimises at the end (cross-entropy + L2 term,
    mean over seeds) against the figure's 0.6-0.7. A description, not a ledger claim.

    >>> floor_reading({}, 0.1, 5e-4, 200)[:60]
    'The runs are too short to show the floor itself: over 200 st'
    >>> d = {"none": {"objective": np.array([0.64, 0.66])}, "batch": {"objective": np.array([0.9, 1.1])}}
    >>> floor_reading(d, 0.1, 5e-4, 15000).split("is ")[-1]
    'Standard 0.65 ± 0.014 (inside it); Standard + BatchNorm 1 ± 0.14 (above it)'
    """
    shrink = 1 - (1 - lr * wd) ** wd_steps
    alone = f"over {wd_steps:,} steps at LR {lr:g} weight decay alone would shrink the weights by {100 * shrink:.2g} %"
    if shrink < settled:
        return (f"The runs are too short to show the floor itself: {alone}, so it barely changes the cross-entropy "
                f"(we call the L2 term settled once that shrinkage reaches {100 * settled:g} %); the floor needs "
                f"longer runs (the `narrow` and `paper` profiles declare {PAPER_STEPS:,} steps)")
    lo, hi = PAPER_FLOOR

    def where(x):
        m = float(np.nanmean(x))
        return "inside" if lo <= m <= hi else "above" if m > hi else "below"
    parts = [f"{P.label(n)} {pm_g(d['objective'])} ({where(d['objective'])} it)" for n, d in l2.items()]
    return (f"These runs are long enough for the L2 term to settle ({alone}; we call it settled from "
            f"{100 * settled:g} %). At the end, against the {lo:g}–{hi:g} of Fig. 4a, the loss SGD minimises is "
            f"{'; '.join(parts) or 'not measured'}")


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
        c = claims.compare("fig4_loss_band_wd", l2["batch"]["width_wd"], l2["none"]["width_wd"])
        m = (f"VGG with weight decay: median loss-band width, BN {pm_g(l2['batch']['width_wd'])} vs standard "
             f"{pm_g(l2['none']['width_wd'])}")
        claims.record("fig4_loss_band_wd", c, m, scale, folder)
        glued["verdict_wd_band"] = f"{m}; BN/standard {c.text()}: {c.word()}"
    else:
        glued["verdict_wd_band"] = "n/a (the weight-decay runs are not in this build)"
    return (header, rows), glued


def spectrum_scale(profile, arch, width, steps, point_seeds, slq_iters, slq_vectors, slq_batch) -> str:
    """The scale of the Hessian-spectrum claims, e.g. 'quick: VGG16 width 0.125, 700 steps, 2 seeds, ...'."""
    return scale_tag(profile, net_label(arch, width), f"{steps:,} steps", f"{len(point_seeds)} seeds",
                     f"Hessian of {slq_batch} images, SLQ {slq_iters} steps × {slq_vectors} start "
                     f"vector{'' if slq_vectors == 1 else 's'}")


def claim_scales(profile, arch, width, steps, seeds, dln_steps, dln_seeds, sweep_steps, sweep_seeds, sweep_lrs,
                 dln_sweep_steps, dln_sweep_lrs, wd_steps=0, wd_seeds=()) -> dict:
    net = net_label(arch, width)
    return {"wd": scale_tag(profile, net, f"{wd_steps:,} steps", f"{len(wd_seeds)} seeds"),
            "vgg": scale_tag(profile, net, f"{steps:,} steps", f"{len(seeds)} seeds"),
            "dln": scale_tag(profile, "DLN 25 layers", f"{dln_steps:,} steps", f"{len(dln_seeds)} initialisations"),
            "vgg_sweep": scale_tag(profile, net, f"{len(sweep_lrs)} LRs × {sweep_steps:,} steps", f"{len(sweep_seeds)} seeds"),
            "dln_sweep": scale_tag(profile, "DLN 25 layers", f"{len(dln_sweep_lrs)} LRs × {dln_sweep_steps:,} steps",
                                   f"{len(dln_seeds)} initialisations")}
