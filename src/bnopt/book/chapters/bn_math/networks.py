"""The BN-math chapter, sections 4 and 5: the trained networks the theorems are checked on, Theorems 4.1 and 4.2,
and Observation 4.3."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from bnopt import theory as bnmath
from bnopt.analysis import summary as S
from bnopt.analysis.verdict import theory
from bnopt.book import claims
from bnopt.book.chapters.bn_math.basics import EXACT, rel_err
from bnopt.book.measurements import point
from bnopt.book.report import sci
from bnopt.runs.launch import fixed_batch
from bnopt.runs.train import model_of

# --- the networks the theorems are checked on -------------------------------------------------------

def networks(grid: dict, runs: dict, seeds: list, norm: str = "batch") -> dict:
    """{name: float64 network in train mode}: the initialisation (the first seed's) and every trained seed of the
    reference runs with normalization `norm`, rebuilt in the NCHW memory format (the float64 checks'
    path; the weights are the same numbers)."""

    cfgs = grid[norm]
    nets = {"initialisation": model_of(cfgs[0], memory_format="contiguous")}
    nets.update({f"trained, seed {s}": model_of(c, r, memory_format="contiguous") for s, c, r in zip(seeds, cfgs, runs[norm])})
    return {k: m.double().train() for k, m in nets.items()}


def theory_batch(grid: dict, n: int, seed: int = 123):
    """A fixed batch of `n` training images (float64) and labels for the checks."""

    x, y = fixed_batch(grid["batch"][0], n, seed)
    return x.double(), y


# --- 4. Theorem 4.1 ------------------------------------------------------------------------------------

def theorem41_all(nets: dict, xb, yb) -> dict:
    """{network: {'lhs', 'rhs_exact', 'rhs_printed'}} over every unit of every BN layer."""
    out = {}
    for name, net in nets.items():
        parts = {"lhs": [], "rhs_exact": [], "rhs_printed": []}
        for layer in range(1, len(net.blocks) + 1):
            for k, v in bnmath.theorem41(bnmath.layer_gradients(net, layer, xb, yb, eps=0.0)).items():
                parts[k].append(v)
        out[name] = {k: torch.cat(v) for k, v in parts.items()}
    return out


def theorem41_report(t41: dict, nets: dict, xb, yb, eps: float = 1e-5, folder=".") -> tuple[tuple, dict]:
    """The Theorem 4.1 table, glued values (incl. the g ∝ ŷ counterexample and the ε > 0 error), and the
    ledger records of the printed statement and of the 1/m identity."""
    rows = []
    for name, d in t41.items():
        ok = d["lhs"] > 1e-30
        rows.append((name, int(ok.sum()), float(rel_err(d["lhs"][ok], d["rhs_exact"][ok]).max()),
                     int((d["lhs"] > d["rhs_printed"]).sum()), len(d["lhs"])))
    vm, vs, _ = S.mean_std([r[3] / r[4] for r in rows if r[0].startswith("trained")])
    last = nets[list(nets)[-1]]
    lg = bnmath.layer_gradients(last, 1, xb, yb, eps=0.0)       # counterexample g ∝ ŷ, first layer, last network
    lg.g = lg.yhat.clone() * 0.01
    lg.grad_y = (lg.gamma / lg.sigma) * (lg.g - lg.g.mean(0) - lg.yhat * (lg.g * lg.yhat).mean(0))   # (γ/σ) Π g
    ce = bnmath.theorem41(lg)
    d_eps = bnmath.theorem41(bnmath.layer_gradients(last, len(last.blocks), xb, yb, eps=eps))
    glued = {"t41_units": f"{sum(r[1] for r in rows):,}", "t41_err": sci(max(r[2] for r in rows)),
             "t41_viol_init": f"{rows[0][3] / rows[0][4]:.1%}".replace("%", " %"),
             "t41_viol_trained": f"{100 * vm:.1f} ± {100 * vs:.1f} %",
             "ce_lhs": sci(float(ce["lhs"].abs().max())), "ce_rhs": sci(float(ce["rhs_printed"].max())),
             "t41_eps_err": sci(float(rel_err(d_eps["lhs"], d_eps["rhs_exact"]).max()))}
    viol, n = sum(r[3] for r in rows), sum(r[4] for r in rows)
    c = theory(violations=viol, n=n)
    claims.record("thm41_printed", c, f"units violating the printed inequality: {viol:,} of {n:,}", EXACT, folder)
    c2 = theory(max_rel_error=max(r[2] for r in rows))
    claims.record("thm41_identity", c2, f"1/m identity over {glued['t41_units']} units: largest relative error "
                  f"{glued['t41_err']}", EXACT, folder)
    glued["t41_verdict"] = (f"as printed (1/√m), **{c.verdict}** ({c.text()}); as an identity with 1/m, "
                            f"**{c2.verdict}** ({c2.text()})")
    table = (["network", "units", "max rel. error of the 1/m identity", "fraction of units violating the printed inequality"],
             [[nm, u, sci(e), f"{v / k:.3f}"] for nm, u, e, v, k in rows])
    return table, glued


def theorem41_figure(t41: dict):
    fig, ax = plt.subplots(figsize=(5, 4))
    name = list(t41)[-1]
    d = t41[name]
    pos = d["rhs_printed"] > 0
    ax.loglog(d["lhs"][pos], d["rhs_printed"][pos], ".", ms=3, color="C1", alpha=0.6, label="right side, 1/sqrt(m) (printed)")
    ax.loglog(d["lhs"], d["rhs_exact"], ".", ms=3, color="C0", label="right side, 1/m (proof)")
    lim = [float(d["lhs"][d["lhs"] > 0].min()), float(d["lhs"].max())]
    ax.plot(lim, lim, "k--", lw=0.8, label="equality")
    ax.set(xlabel="left side  ||dL^/dy_j||^2", ylabel="right side", title=f"Theorem 4.1, every BN unit ({name})")
    ax.legend(fontsize=8)
    plt.close(fig)
    return fig


# --- 5. Theorem 4.2 ------------------------------------------------------------------------------------

def network_runs(grid: dict, runs: dict, seeds: list, norm: str = "batch") -> dict:
    """{name: (config, result, when)}: the runs behind `networks`, in its order (the initialisation is the first
    seed's run before training)."""
    cfgs, rs = grid[norm], runs[norm]
    return {"initialisation": (cfgs[0], rs[0], "initialisation"),
            **{f"trained, seed {s}": (c, r, "trained") for s, c, r in zip(seeds, cfgs, rs)}}


def theorem42_all(grid: dict, runs: dict, seeds: list, n_batch: int, layers: list, units_per_layer: int,
                  batch_seed: int = 123) -> dict:
    """{network: {'lhs', 'rhs', 'uHu', 'gHg'}} for `units_per_layer` random units of each layer of the BN networks
    (`bnopt.book.measurements.theorem42` on `theory_batch`'s batch: read from the measurement cache, else computed)."""
    return {name: point("theorem42", c, r, when=when, layers=list(layers), units_per_layer=units_per_layer,
                        batch=n_batch, batch_seed=batch_seed)
            for name, (c, r, when) in network_runs(grid, runs, seeds).items()}


def assumption_counts(t42: dict, names: list) -> tuple[int, int]:
    """(units with uHu <= gHg, units) pooled over the named networks."""
    k = sum(int((t42[n]["uHu"] <= t42[n]["gHg"]).sum()) for n in names)
    return k, sum(len(t42[n]["uHu"]) for n in names)


def fraction_text(t42: dict, names: list) -> str:
    k, n = assumption_counts(t42, names)
    lo, hi = S.wilson(k, n)
    return f"{k} of {n} units ({k / n:.2f}; 95 % Wilson interval {lo:.2f} to {hi:.2f})"


def theorem42_report(t42: dict, layers: list, folder=".") -> tuple[tuple, dict]:
    rows = []
    for name, d in t42.items():
        err = float(rel_err(d["lhs"], d["rhs"]).max())
        k, n = assumption_counts(t42, [name])
        lo, hi = S.wilson(k, n)
        rows.append([name, n, sci(err), f"{k} of {n}", f"{lo:.2f} to {hi:.2f}", err])
    err = max(r[-1] for r in rows)
    c = theory(max_rel_error=err)
    claims.record("thm42_identity", c, f"first statement as an equality over {sum(r[1] for r in rows)} units: "
                  f"largest relative error {sci(err)}", EXACT, folder)
    glued = {"t42_units": str(sum(r[1] for r in rows)), "t42_layers": ", ".join(f"#{l}" for l in layers),
             "t42_err": sci(err), "t42_assump_init": fraction_text(t42, [list(t42)[0]]),
             "t42_assump_trained": fraction_text(t42, list(t42)[1:]) + f", pooled over {len(t42) - 1} trained seeds",
             "t42_verdict": f"**{c.verdict}** ({c.text()})"}
    header = ["network", "units", "max rel. error, first statement as equality",
              "units with uHu <= gHg (second statement's assumption)", "95 % interval"]
    return (header, [r[:-1] for r in rows]), glued


# --- 5b. Observation 4.3 -------------------------------------------------------------------------------

def observation43_all(grid: dict, runs: dict, seeds: list, n_batch: int, batch_seed: int = 123) -> dict:
    """{network: `theory.observation43` at every layer} for the standard (no BN) networks (`bnopt.book.measurements.
    observation43` on `theory_batch`'s batch: read from the measurement cache, else computed)."""
    return {name: point("observation43", c, r, when=when, batch=n_batch, batch_seed=batch_seed)
            for name, (c, r, when) in network_runs(grid, runs, seeds, norm="none").items()}


def observation43_report(obs: dict, folder=".") -> tuple[object, tuple, dict]:
    """Figure (median gradient ratio per layer), table and glued values of Observation 4.3, and the ledger
    records: the twin reproduces the standard network, and its gradient is no larger (the projection)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    rows, out_errs, g_errs, k_all, n_all = [], [], [], 0, 0
    for i, (name, d) in enumerate(obs.items()):
        live = d["ratio"].isfinite()
        r, lay = d["ratio"][live], d["layer"][live]
        k = int((r > 1 + 1e-12).sum())
        k_all, n_all = k_all + k, n_all + len(r)
        out_errs.append(d["out_err"])
        g_errs.append(d["g_err"])
        layers = sorted(set(lay.tolist()))
        ax.plot(layers, [float((1 - r[lay == l]).median()) for l in layers], marker="o", ms=3,
                color="0.5" if name == "initialisation" else f"C{i}", label=name)
        rows.append([name, f"{d['loss_std']:.4f}", sci(abs(d["loss_std"] - d["loss_twin"])), sci(d["out_err"]),
                     sci(d["g_err"]), len(r), k, f"{float(r.median()):.3f}", f"{float(r.min()):.2g}"])
    ax.set(xlabel="layer (BN inserted here, γ = σ, β = μ)", ylabel="median over units", yscale="log",
           title="1 − ‖∇_y L̂‖² / ‖∇_y L‖²: the part removed with no rescaling")
    ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    c_twin = theory(max_rel_error=max(out_errs))
    c_proj = theory(violations=k_all, n=n_all)
    claims.record("obs43_twin", c_twin, f"BN with γ = σ, β = μ at every layer of {len(obs)} standard networks "
                  f"(initialisation and trained seeds): outputs' largest relative difference {sci(max(out_errs))}",
                  EXACT, folder)
    pooled = float(torch.cat([d["ratio"][d["ratio"].isfinite()] for d in obs.values()]).median())
    claims.record("obs43_reduction", c_proj, f"at γ = σ, units whose squared BN gradient norm exceeds the standard "
                  f"network's: {k_all:,} of {n_all:,}; the median ratio is {pooled:.3f}", EXACT, folder)
    trained = [n for n in obs if n != "initialisation"]
    med = [float(obs[n]["ratio"][obs[n]["ratio"].isfinite()].median()) for n in trained]
    glued = {"o43_out_err": sci(max(out_errs)), "o43_g_err": sci(max(g_errs)), "o43_units": f"{n_all:,}",
             "o43_ratio_init": f"{float(obs['initialisation']['ratio'].nanmedian()):.3f}" if "initialisation" in obs else "n/a",
             "o43_ratio_trained": S.pm(*S.mean_std(med)[:2], 3),
             "o43_twin_verdict": f"**{c_twin.verdict}** ({c_twin.text()})",
             "o43_verdict": f"**{c_proj.verdict}** ({c_proj.text()})"}
    header = ["standard network", "loss", "|loss − twin's|", "outputs: max rel. difference",
              "downstream gradient: max rel. difference", "units", "units with ratio > 1", "median ratio", "smallest ratio"]
    return fig, (header, rows), glued
