"""Chapter "Training with and without BatchNorm" (the paper's Fig. 1): per-configuration statistics,
the figures, the results table and the claims it measures.

`results` is `{(norm, lr): [run result per seed]}` as `experiments.run_grid(training_grid(...))` returns.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from bnopt.analysis import summary as S
from bnopt.book import claims
from bnopt.book import plotting as P
from bnopt.book.chapters.common import PAPER_STEPS, net_label, scale_tag, vary
from bnopt.nets.models import build_model
from bnopt.runs.config import ModelConfig

CHANCE = 0.1   # accuracy of a 10-class guess: what a diverged run is counted at in the high-LR claim


def n_params(arch: str, width: float) -> int:
    """Parameters of the BN network of this size."""

    return sum(p.numel() for p in build_model(ModelConfig(arch=arch, width=width, norm="batch")).parameters())


def scale_text(arch, width, steps, batch_size, seeds, precision, device) -> str:
    epochs = steps * batch_size / 50000
    return (f"{arch.upper()} at width {width:g} ({n_params(arch, width) / 1e6:.3g} M parameters with BN; "
            f"the paper's full width has {n_params(arch, 1.0) / 1e6:.3g} M), {steps:,} steps of batch {batch_size} "
            f"({epochs:.1f} epochs; the paper: 15,000 steps, 38.4 epochs), {len(seeds)} seeds per "
            f"configuration, {precision} precision, on `{device}`")


def scale_caveat(width: float, steps: int) -> str:
    """What the chapter's scale lets a reader compare with the paper, from its width and budget.

    >>> scale_caveat(1.0, 15000)[:40]
    "This build runs the paper's protocol at "
    >>> scale_caveat(0.125, 700).split(". ")[0]
    "The network has 1/8 of the paper's channels and trains for 700 of its 15,000 steps"
    """
    if width >= 1 and steps >= PAPER_STEPS:
        return ("This build runs the paper's protocol at the paper's width: its absolute accuracies are comparable "
                "with the paper's, whose curves are single runs")
    frac = f"1/{1 / width:g}" if width < 1 and float(1 / width).is_integer() else f"{width:g}×"
    parts = ([f"has {frac} of the paper's channels"] if width < 1 else []) + \
        ([f"trains for {steps:,} of its {PAPER_STEPS:,} steps" if width < 1 else
          f"trains for {steps:,} of the paper's {PAPER_STEPS:,} steps"] if steps < PAPER_STEPS else
         ["trains for the paper's full budget"])
    return (f"The network {' and '.join(parts)}. The absolute accuracies are therefore not the paper's. The "
            "comparison that carries over is the *ordering*: BN against no BN at the same budget, and whether the "
            "large learning rate trains at all. The `paper` profile runs the paper's full protocol")


def key_name(norm: str, lr: float, lrs: list) -> str:
    """Glue-name prefix of a configuration: 'bn_lo', 'std_hi', ...

    >>> key_name("batch", 0.1, [0.1, 0.5]), key_name("none", 0.5, [0.1, 0.5])
    ('bn_lo', 'std_hi')
    """
    return f"{'bn' if norm == 'batch' else 'std' if norm == 'none' else norm}_{'lo' if lr == lrs[0] else 'hi'}"


def config_stats(rs: list[dict], smooth_window: int, acc_threshold: float) -> dict:
    """Per-seed and summary statistics of one configuration's runs."""
    acc = S.smooth(S.stack(rs, "train_acc"), smooth_window)
    reach = [S.steps_to_threshold(a, acc_threshold) for a in acc]
    test = [S.final_eval(r, "test_acc") for r in rs]
    return {
        "acc": acc,
        "test_seeds": test,
        "test": S.mean_std(test),
        "train_eval": S.mean_std([S.final_eval(r, "train_eval_acc") for r in rs]),
        "train_batch": S.mean_std([a[-1] for a in acc]),
        "reach_seeds": [np.inf if s is None else float(s) for s in reach],
        "reach": S.mean_std(reach), "n_reach": sum(s is not None for s in reach),
        "loss_end": list(S.smooth(S.stack(rs, "train_loss"), smooth_window)[:, -1]),
        "diverged_seeds": [bool(r["diverged"]) for r in rs],
        "diverged": sum(r["diverged"] for r in rs), "n": len(rs),
    }


def all_stats(results: dict, smooth_window: int, acc_threshold: float) -> dict:
    return {k: config_stats(rs, smooth_window, acc_threshold) for k, rs in results.items()}


def curves_figure(results: dict, stats: dict, lrs: list, steps: int, smooth_window: int):
    """Fig. 1a-b (and the training loss): curves with seed bands; solid = reference LR, dashed = the other."""
    x = np.arange(1, steps + 1)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for (norm, lr), rs in results.items():
        style = dict(color=P.NORM_COLORS.get(norm), linestyle="-" if lr == lrs[0] else "--", label=P.label(norm, lr))
        P.curve_band(axes[0], x, 100 * stats[(norm, lr)]["acc"], **style)
        est, test = S.eval_curve(rs, "test_acc")
        P.curve_band(axes[1], est, 100 * test, marker="o", markersize=3, **style)
        P.curve_band(axes[2], x, S.smooth(S.stack(rs, "train_loss"), smooth_window), **style)
        for r in rs:
            if r["diverged"]:
                axes[2].plot(r["diverged_at"], 1, "x", color=style["color"], markersize=9)
    axes[0].set(xlabel="step", ylabel="training accuracy (%)", title=f"(a) training accuracy ({smooth_window}-step mean)")
    axes[1].set(xlabel="step", ylabel="test accuracy (%)", title="(b) test accuracy")
    axes[2].set(xlabel="step", ylabel="training loss", yscale="log", title="(c) training loss (x: diverged)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def pct(ms) -> str:
    """'mean ± std %' of a fraction's (mean, std, n); 'n/a' with no value.

    >>> pct((0.5, 0.01, 3))
    '50.0 ± 1.0 %'
    """
    m, s, n = ms
    return S.pm(m, s, 1, 100) + " %" if n else "n/a"


def steps_text(st: dict, steps: int) -> str:
    m, s, _ = st["reach"]
    if st["n_reach"] == 0:
        return f"not reached in {steps:,} steps (0/{st['n']} seeds)"
    return f"{m:,.0f} ± {s:,.0f} steps ({st['n_reach']}/{st['n']} seeds)"


def results_table(stats: dict, lrs: list, steps: int, acc_threshold: float) -> tuple[list, list, dict]:
    """(header, rows, {glue name: text}) of the Fig. 1 results table."""
    header = ["configuration", "training acc., last steps (batch)", "training acc. (eval mode)", "test acc.",
              f"steps to {100 * acc_threshold:g} % training acc.", "diverged"]
    rows, glued = [], {}
    for (norm, lr), st in stats.items():
        k = key_name(norm, lr, lrs)
        vals = {"train": pct(st["train_batch"]), "train_eval": pct(st["train_eval"]), "test": pct(st["test"]),
                "steps": steps_text(st, steps), "diverged": f"{st['diverged']}/{st['n']}"}
        glued.update({f"{k}_{name}": v for name, v in vals.items()})
        rows.append([P.label(norm, lr), vals["train"], vals["train_eval"], vals["test"], vals["steps"], vals["diverged"]])
    return header, rows, glued


def ridges_figure(results: dict, lr0: float, norms: list, ridge_layers: list):
    """Fig. 1c: ridgelines of one sampled unit per layer (first seed), and its moments' table rows."""
    shown = [n for n in norms if (n, lr0) in results]
    fig, axes = plt.subplots(len(ridge_layers), len(shown), figsize=(4.2 * len(shown), 3.4 * len(ridge_layers)),
                             squeeze=False)
    rows = []
    for j, norm in enumerate(shown):
        recs = results[(norm, lr0)][0]["probes"]["activations"]
        for i, layer in enumerate(ridge_layers):
            P.ridgeline(axes[i, j], recs, layer, color=P.NORM_COLORS.get(norm, "C2"))
            axes[i, j].set_title(f"{P.label(norm)}: layer #{layer}")
            axes[i, j].set_xlabel("activation value")
        for layer in ridge_layers:
            first = [r["probes"]["activations"][0]["data"][layer] for r in results[(norm, lr0)]]
            last = [r["probes"]["activations"][-1]["data"][layer] for r in results[(norm, lr0)]]
            mu0, mu1 = S.mean_std([f["mean"] for f in first]), S.mean_std([f["mean"] for f in last])
            sd0, sd1 = S.mean_std([f["var"] ** 0.5 for f in first]), S.mean_std([f["var"] ** 0.5 for f in last])
            rows.append([P.label(norm), f"#{layer}", f"{S.pm(mu0[0], mu0[1], 3)} → {S.pm(mu1[0], mu1[1], 3)}",
                         f"{S.pm(sd0[0], sd0[1], 3)} → {S.pm(sd1[0], sd1[1], 3)}"])
    fig.tight_layout()
    plt.close(fig)
    header = ["network", "layer", "unit mean, first → last sample", "unit std, first → last sample"]
    return fig, header, rows


def std_change(rs: list[dict], layer: int) -> np.ndarray:
    """Per seed: the factor by which the sampled unit's std changed between the first and the last probe,
    exp(|log(std_last / std_first)|) (1 is no change; a halving and a doubling both give 2)."""
    f = [abs(np.log((r["probes"]["activations"][-1]["data"][layer]["var"] + 1e-30) /
                    (r["probes"]["activations"][0]["data"][layer]["var"] + 1e-30))) / 2 for r in rs]
    return np.exp(np.asarray(f, dtype=float))


def test_or_chance(st: dict) -> list[float]:
    """Per-seed final test accuracy, a diverged run counted at chance (it no longer predicts anything).

    >>> test_or_chance({"test_seeds": [0.8, float("nan")], "diverged_seeds": [False, True]})
    [0.8, 0.1]
    """
    return [CHANCE if d else a for a, d in zip(st["test_seeds"], st["diverged_seeds"])]


def measure_claims(results: dict, stats: dict, lrs: list, steps: int, acc_threshold: float,
                   ridge_layers: list, scales: dict, folder=".") -> dict:
    """Apply the verdict rule to the chapter's claims, record them for the ledger, and return
    {glue name: sentence} for the prose. `scales` (`claim_scales`): the scale of the claims at the reference learning
    rate ("ref") and at the other one ("other"), whose seeds may be fewer."""
    lo, hi = lrs[0], lrs[-1]
    out = {}
    bn, std = stats.get(("batch", lo)), stats.get(("none", lo))
    if bn and std:
        c = claims.compare("fig1_speed", bn["reach_seeds"], std["reach_seeds"], cap=float(steps))
        m = (f"steps to {100 * acc_threshold:g} % training accuracy: BN {steps_text(bn, steps)}, standard "
             f"{steps_text(std, steps)} (not reached: counted at the budget, {steps:,})")
        claims.record("fig1_speed", c, m, scales["ref"], folder)
        out["verdict_speed"] = f"{m}; BN/standard {c.text()}: {c.word()}"
        c = claims.compare("fig1_final_train", bn["loss_end"], std["loss_end"])
        m = (f"training loss at the end, BN {S.pm(*S.mean_std(bn['loss_end'])[:2], 3)} vs standard "
             f"{S.pm(*S.mean_std(std['loss_end'])[:2], 3)}")
        claims.record("fig1_final_train", c, m, scales["ref"], folder)
        out["verdict_final_loss"] = f"{m}; BN/standard {c.text()}: {c.word()}"
        deep = max(ridge_layers)
        f_bn, f_std = std_change(results[("batch", lo)], deep), std_change(results[("none", lo)], deep)
        c = claims.compare("fig1_same_drift", f_bn, f_std)
        m = (f"at layer #{deep}, the sampled unit's std changed over training by a factor of "
             f"{S.pm(*S.mean_std(f_std)[:2], 3)} without BN and {S.pm(*S.mean_std(f_bn)[:2], 3)} with it "
             f"(mean ± std over {len(f_bn)} seeds; 1 is no change)")
        claims.record("fig1_same_drift", c, m, scales["ref"], folder)
        out["drift_sentence"] = f"{m}; BN/standard {c.text()}: the folk-ICS claim that BN keeps it more stable is {c.word()}"
    bn, std = stats.get(("batch", hi)), stats.get(("none", hi))
    if bn and std and hi != lo:
        c = claims.compare("fig1_high_lr", test_or_chance(bn), test_or_chance(std))
        m = (f"test accuracy at LR {hi:g}: BN {pct(bn['test'])} ({bn['diverged']}/{bn['n']} diverged), standard "
             f"{pct(std['test'])} ({std['diverged']}/{std['n']} diverged; a diverged run counts at chance, "
             f"{100 * CHANCE:g} %)")
        claims.record("fig1_high_lr", c, m, scales["other"], folder)
        out["verdict_high_lr"] = f"{m}; BN − standard {c.text()}: {c.word()}"
    for k in ("verdict_speed", "verdict_final_loss", "drift_sentence", "verdict_high_lr"):
        out.setdefault(k, "n/a (both networks are needed for this comparison)")
    return out


def claim_scales(profile, arch, width, steps, seeds, other_seeds) -> dict[str, str]:
    """The scale of the claims at the reference learning rate ("ref", `seeds`) and at the other one ("other",
    `other_seeds`): each names the seeds its comparison pairs."""
    def tag(s):
        return scale_tag(profile, net_label(arch, width), f"{steps:,} steps", f"{len(s)} seeds")
    return {"ref": tag(seeds), "other": tag(other_seeds)}


def vary_choices(results: dict, lrs: list, steps: int, ridge_layers: list, scales: dict, acc_threshold: float,
                 smooth_window: int, folder=".") -> list[str]:
    """The chapter's claims re-derived with its threshold and its averaging window varied alone over their stated
    ranges (the ledger's robustness column). Returns the variations done."""
    def derive(folder, acc_threshold, smooth_window):
        measure_claims(results, all_stats(results, smooth_window, acc_threshold), lrs, steps, acc_threshold,
                       ridge_layers, scales, folder)

    return vary({"acc_threshold": acc_threshold, "smooth_window": smooth_window}, derive, folder)
