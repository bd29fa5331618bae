"""Chapter "The mathematics of BatchNorm, checked numerically": the checks of BN itself, the equal-moments
demonstration, scale invariance, Theorems 4.1, 4.2, 4.4 and Lemma 4.5 on real layers (float64), the
per-unit sigma_j of trained networks, and the theory claims of the ledger.

Each function returns what the chapter shows: tables as (header, rows), prose values as {glue name: text},
figures as closed matplotlib figures. The instances (shapes, seeds, the three-point data set) are the
defaults of the functions' arguments, so that no literal in the chapter changes a result.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from .. import bnmath, claims
from .. import plotting as P
from .. import summary as S
from ..report import sci
from ..verdict import theory

F64 = torch.float64
EXACT = "float64, exact"


def rel_err(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| / |a| elementwise (|a| floored at 1e-300).

    >>> float(rel_err(torch.tensor([2.0]), torch.tensor([1.0])))
    0.5
    """
    return (a - b).abs() / a.abs().clamp_min(1e-300)


# --- 1. BatchNorm from first principles ------------------------------------------------------------

def bn_checks(shapes=((64, 5), (8, 3, 4, 4)), seed: int = 0) -> tuple[list, list, dict]:
    """Our float64 BatchNorm against torch's, forward, backward, gradcheck, running statistics, eval mode."""
    torch.manual_seed(seed)
    checks = []
    for shape in shapes:
        x = (torch.randn(shape, dtype=F64) * 3 + 1).requires_grad_()
        gamma = torch.rand(shape[1], dtype=F64).add(0.5).requires_grad_()
        beta = torch.randn(shape[1], dtype=F64).requires_grad_()
        w = torch.randn(shape, dtype=F64)          # a random downstream linear loss
        ours = bnmath.batch_norm(x, gamma, beta, eps=1e-5)
        ref = F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5)
        g_ours = torch.autograd.grad((ours * w).sum(), [x, gamma, beta])
        g_ref = torch.autograd.grad((ref * w).sum(), [x, gamma, beta])
        ours, ref = ours.detach(), ref.detach()
        ok = torch.autograd.gradcheck(lambda a, b, c: bnmath.batch_norm(a, b, c, eps=1e-5), (x, gamma, beta))
        # eval mode with running statistics, after one training-mode update of those statistics
        rm, rv = torch.zeros(shape[1], dtype=F64), torch.ones(shape[1], dtype=F64)
        rm2, rv2 = rm.clone(), rv.clone()
        bnmath.batch_norm(x.detach(), gamma, beta, rm, rv, training=True, momentum=0.1)
        F.batch_norm(x.detach(), rm2, rv2, gamma, beta, training=True, momentum=0.1)
        with torch.no_grad():
            ev = (bnmath.batch_norm(x, gamma, beta, rm, rv, training=False)
                  - F.batch_norm(x, rm2, rv2, gamma, beta, training=False)).abs().max()
        checks.append({"shape": shape, "fwd": float((ours - ref).abs().max()),
                       "bwd": max(float((a - b).abs().max()) for a, b in zip(g_ours, g_ref)),
                       "gradcheck": ok, "running": float(max((rm - rm2).abs().max(), (rv - rv2).abs().max())),
                       "eval": float(ev)})
    header = ["input shape", "max fwd diff", "max grad diff", "gradcheck", "running-stat diff", "eval-mode diff"]
    rows = [[c["shape"], sci(c["fwd"]), sci(c["bwd"]), c["gradcheck"], sci(c["running"]), sci(c["eval"])] for c in checks]
    glued = {"bn_fwd_err": sci(max(c["fwd"] for c in checks)), "bn_bwd_err": sci(max(c["bwd"] for c in checks)),
             "bn_gradcheck": "passes" if all(c["gradcheck"] for c in checks) else "FAILS"}
    return header, rows, glued


# --- 2. Equal moments are not equal distributions --------------------------------------------------

def moments_demo(m: int = 4096, seed: int = 1):
    """Three batches (Gaussian, bimodal, exponential) after BatchNorm: same mean and variance, other shapes."""
    g = torch.Generator().manual_seed(seed)
    batches = {
        "Gaussian": torch.randn(m, 1, generator=g, dtype=F64) * 2 + 5,
        "bimodal": torch.where(torch.rand(m, 1, generator=g) < 0.5, -1.0, 1.0).double()
        + 0.15 * torch.randn(m, 1, generator=g, dtype=F64),
        "exponential": -torch.log(torch.rand(m, 1, generator=g, dtype=F64)) * 3,
    }
    one, zero = torch.ones(1, dtype=F64), torch.zeros(1, dtype=F64)
    normed = {k: bnmath.batch_norm(v, one, zero, eps=0.0).squeeze(1) for k, v in batches.items()}
    fig, ax = plt.subplots(figsize=(7, 3))
    rows = []
    for k, v in normed.items():
        ax.hist(v.numpy(), bins=80, range=(-4, 5), density=True, histtype="step", linewidth=1.5, label=k)
        rows.append([k, f"{float(v.mean()):.1e}", f"{float(v.var(unbiased=False)):.6f}",
                     f"{float((v ** 3).mean()):.2f}", f"{float((v.abs() < 0.5).double().mean()):.2f}"])
    ax.set(xlabel="BN output", ylabel="density", title="three batches after BatchNorm: same mean and variance")
    ax.legend()
    plt.close(fig)
    glued = {"skew_exp": f"{float((normed['exponential'] ** 3).mean()):.2f}",
             "frac_bimodal": f"{float((normed['bimodal'].abs() < 0.5).double().mean()):.2f}",
             "frac_gauss": f"{float((normed['Gaussian'].abs() < 0.5).double().mean()):.2f}"}
    return fig, (["batch", "mean", "variance", "skewness", "fraction in abs < 0.5"], rows), glued


# --- 3. Scale invariance --------------------------------------------------------------------------

def scale_invariance(scales=(0.1, 10.0), n: int = 256, d_in: int = 20, d_out: int = 8, seed: int = 2):
    """BN(aWx) = BN(Wx), a * grad L(aW) = grad L(W), and grad L(W) orthogonal to W, on a random layer."""
    torch.manual_seed(seed)
    X, W, T = torch.randn(n, d_in, dtype=F64), torch.randn(d_in, d_out, dtype=F64), torch.randn(n, d_out, dtype=F64)
    gam, bet = torch.ones(d_out, dtype=F64), torch.zeros(d_out, dtype=F64)

    def loss_of(w):
        return (bnmath.batch_norm(X @ w, gam, bet, eps=0.0) - T).pow(2).sum()

    W1 = W.clone().requires_grad_()
    L1 = loss_of(W1)
    (G1,) = torch.autograd.grad(L1, W1)
    rows, out_diffs, grad_ratios = [], [], []
    for a in scales:
        Wa = (a * W).requires_grad_()
        La = loss_of(Wa)
        (Ga,) = torch.autograd.grad(La, Wa)
        dz = float((bnmath.batch_norm(X @ (a * W), gam, bet, eps=0.0) - bnmath.batch_norm(X @ W, gam, bet, eps=0.0)).abs().max())
        ratio = float(Ga.norm() * a / G1.norm())
        out_diffs.append(dz)
        grad_ratios.append(ratio)
        rows.append([f"{a:g}", f"{dz:.1e}", f"{float((La - L1).detach()):.1e}", f"{ratio:.12f}"])
    cos_wg = float((W * G1).sum() / (W.norm() * G1.norm()))
    header = ["a", "max abs BN(aWx) - BN(Wx)", "L(aW) - L(W)", "a times grad norm at aW, over grad norm at W"]
    glued = {"scale_out_err": sci(max(out_diffs)),
             "scale_grad_ratio": f"{min(grad_ratios):.12f} to {max(grad_ratios):.12f}", "scale_cos": sci(abs(cos_wg))}
    return (header, rows), glued


# --- the networks the theorems are checked on -------------------------------------------------------

def networks(grid: dict, runs: dict, seeds: list, norm: str = "batch") -> dict:
    """{name: float64 network in train mode}: the initialisation (the first seed's) and every trained seed of the
    reference runs with normalization `norm`, rebuilt in the NCHW memory format (the float64 checks'
    path; the weights are the same numbers)."""
    from ..train import model_of

    cfgs = grid[norm]
    nets = {"initialisation": model_of(cfgs[0], memory_format="contiguous")}
    nets.update({f"trained, seed {s}": model_of(c, r, memory_format="contiguous") for s, c, r in zip(seeds, cfgs, runs[norm])})
    return {k: m.double().train() for k, m in nets.items()}


def theory_batch(grid: dict, n: int, seed: int = 123):
    """A fixed batch of `n` training images (float64) and labels for the checks."""
    from ..runs import fixed_batch

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

def theorem42_all(nets: dict, xb, yb, layers: list, units_per_layer: int) -> dict:
    """{network: {'lhs', 'rhs', 'uHu', 'gHg'}} for `units_per_layer` random units of each layer."""
    out = {}
    for name, net in nets.items():
        parts = []
        for layer in layers:
            n_units = net.blocks[layer - 1].layer.weight.shape[0]
            units = torch.randperm(n_units, generator=torch.Generator().manual_seed(layer))[:units_per_layer].tolist()
            parts.append(bnmath.theorem42(net, layer, xb, yb, units, eps=0.0))
        out[name] = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return out


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

def observation43_all(std_nets: dict, xb, yb) -> dict:
    """{network: bnmath.observation43 at every layer} for the standard (no BN) networks."""
    return {name: bnmath.observation43(net, xb, yb, range(1, len(net.blocks) + 1)) for name, net in std_nets.items()}


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


# --- 6. Theorem 4.4 and Lemma 4.5 ----------------------------------------------------------------

def theorem44_at_inputs(nets: dict, xb, yb, t41: dict) -> dict:
    """{network: {'lhs', 'rhs', 'lam'}} of the corrected Theorem 4.4 at every BN layer's actual input: the left
    side from `bnmath.weight_gradient_at_input` (autograd's weight gradient, not Theorem 4.1's identity), the
    bound lam^2 times Theorem 4.1's right side, read from `theorem41_all`'s result (layers in order)."""
    out = {}
    for name, net in nets.items():
        parts = [bnmath.weight_gradient_at_input(net, layer, xb, yb) for layer in range(1, len(net.blocks) + 1)]
        lam2 = torch.cat([torch.full((len(p["lhs"]),), p["lam"] ** 2, dtype=F64) for p in parts])
        out[name] = {"lhs": torch.cat([p["lhs"] for p in parts]), "rhs": lam2 * t41[name]["rhs_exact"],
                     "lam": torch.tensor([p["lam"] for p in parts], dtype=F64)}
    return out


def theorem44_report(nets: dict, at_inputs: dict, xb, yb, lams=(0.5, 2.0), n_random: int = 200, x_cols: int = 16,
                     seed: int = 0, folder=".") -> tuple[tuple, tuple, dict]:
    """Theorem 4.4: the corrected bound at every layer's actual input (per network: units, violations,
    tightness lhs/rhs); at the last BN layer of the last network, the printed bound against the worst case
    over ||X|| <= lam (rank one) for each lam in `lams`, and that maximiser against `n_random` random X
    (`x_cols` columns) of the same spectral norm. Returns (actual-input table, printed table, glued)."""
    net = nets[list(nets)[-1]]
    lg = bnmath.layer_gradients(net, len(net.blocks), xb, yb, eps=0.0)
    rows, viol, n = [], 0, 0
    for lam in lams:
        d = bnmath.theorem44(lg, lam)
        v = int((d["lhs"] > d["rhs_printed"]).sum())
        viol, n = viol + v, n + len(d["lhs"])
        rows.append([f"{lam:g}", f"{float(d['lhs'].median()):.3e}", f"{float(d['rhs_printed'].median()):.3e}",
                     f"{v / len(d['lhs']):.3f}"])
    v = lg.grad_y[:, 0]
    lam = lams[-1]
    X_best = lam * torch.outer(v / v.norm(), torch.nn.functional.one_hot(torch.tensor(0), x_cols).double())
    best = float((X_best.T @ v).pow(2).sum() / (lam ** 2 * v.pow(2).sum()))
    gen = torch.Generator().manual_seed(seed)
    ratios = []
    for _ in range(n_random):
        Xr = torch.randn(len(v), x_cols, generator=gen, dtype=F64)
        Xr = lam * Xr / torch.linalg.matrix_norm(Xr, ord=2)
        ratios.append(float((Xr.T @ v).pow(2).sum() / (lam ** 2 * v.pow(2).sum())))
    actual, a_viol, a_n = [], 0, 0
    for name, d in at_inputs.items():
        live = d["rhs"] > 0
        tight = (d["lhs"][live] / d["rhs"][live])
        k = int((d["lhs"] > d["rhs"] * (1 + 1e-10)).sum())
        a_viol, a_n = a_viol + k, a_n + len(d["lhs"])
        actual.append([name, len(d["lhs"]), k, f"{float(tight.median()):.2g}", f"{float(tight.max()):.2g}",
                       f"{float(d['lam'].min()):.3g} to {float(d['lam'].max()):.3g}"])
    c = theory(violations=viol, n=n)
    c_actual = theory(violations=a_viol, n=a_n)
    tight_all = torch.cat([d["lhs"][d["rhs"] > 0] / d["rhs"][d["rhs"] > 0] for d in at_inputs.values()])
    claims.record("thm44_printed", c, f"units violating the printed bound: {viol:,} of {n:,} "
                  f"(λ = {', '.join(f'{x:g}' for x in lams)}); the corrected bound at each layer's actual input "
                  f"(weight gradients by autograd): {a_viol:,} violations of {a_n:,} units", EXACT, folder)
    glued = {"t44_viol": rows[-1][-1], "t44_units": f"{a_n:,}", "t44_actual_verdict": f"**{c_actual.verdict}** "
             f"({c_actual.text()})", "t44_tight_med": f"{float(tight_all.median()):.2g}",
             "t44_tight_max": f"{float(tight_all.max()):.2g}", "t44_best": f"{best:.12f}",
             "t44_random": f"{max(ratios):.3f}", "t44_verdict": f"as printed, **{c.verdict}** ({c.text()})"}
    header = ["lambda", "median lhs (worst case over X)", "median printed rhs", "fraction of units violating the printed bound"]
    header_actual = ["network", "units (all BN layers)", "violations of the corrected bound", "median lhs / rhs",
                     "largest lhs / rhs", "λ = ‖X‖₂ over layers"]
    return (header_actual, actual), (header, rows), glued


def vec(v) -> str:
    """'(1.0000, 2.0000)'."""
    return "(" + ", ".join(f"{float(x):.4f}" for x in v) + ")"


THREE_POINTS = ([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [2.0, 0.0, 5.0])   # the chapter's counterexample


def lemma45_instance(points=THREE_POINTS, starts: int = 3, steps: int = 3000, lr: float = 0.05, seed: int = 1) -> dict:
    """The three-point one-neuron instance: standard optimum W*, BN direction, gradients, and an independent
    check by gradient descent on the BN loss."""
    X3, t3 = torch.tensor(points[0], dtype=F64), torch.tensor(points[1], dtype=F64)
    neuron = bnmath.OneNeuron(X3, t3)                      # the standard neuron has no bias, as in D&J
    w_star, u_bn = neuron.standard_optimum(), neuron.bn_direction()
    w = w_star.clone().requires_grad_()
    (grad_std,) = torch.autograd.grad(neuron.standard_loss(w), w)
    grad_bn = neuron.bn_gradient(w_star)
    s0 = torch.randn(starts, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)
    descents = [neuron.descend_bn(s, steps=steps, lr=lr) for s in s0]
    at_wstar = bnmath.lemma45_sides(w_star, w_star, u_bn)  # D&J's argument: W0 = W*
    gen = torch.Generator().manual_seed(0)
    ident = bnmath.lemma45_gap(torch.randn(50, generator=gen, dtype=F64), torch.randn(50, generator=gen, dtype=F64))
    glued = {"l45_identity": f"{ident['lhs']:.10f} vs {ident['rhs']:.10f}", "l45_wstar": vec(w_star),
             "l45_grad_std": sci(float(grad_std.norm())), "l45_bn_dir": vec(u_bn),
             "l45_ray_err": sci(abs(float(3 * u_bn[0] - 5 * u_bn[1]))),
             "l45_gd_angle": sci(max(d["angle_to_bn_line"] for d in descents)),
             "l45_gd_loss": sci(max(d["loss"] for d in descents)), "l45_gd_n": str(len(descents)),
             "l45_std_loss": f"{float(neuron.standard_loss(w_star)):.4f}", "l45_bn_loss": sci(neuron.bn_min_loss()),
             "l45_grad_bn": f"{float(grad_bn.norm()):.4f}", "l45_angle": f"{np.degrees(bnmath.line_angle(w_star, u_bn)):.2f}°",
             "l45_lhs": f"{float(at_wstar['lhs']):.4f}", "l45_rhs": sci(float(at_wstar['rhs']))}
    return {"neuron": neuron, "X": X3, "t": t3, "w_star": w_star, "u_bn": u_bn, "grad_bn": grad_bn, "glued": glued}


def lemma45_report(inst: dict, n_inits: int, n_datasets: int, shapes=((3, 2), (32, 10), (256, 100)),
                   folder=".") -> tuple[tuple, dict, dict]:
    """Lemma 4.5 with a bias in the standard neuron, on random initialisations of the instance, and over
    random instances of several shapes; the ledger record. Returns (table, glue, sweep)."""
    neuron_b = bnmath.OneNeuron(inst["X"], inst["t"], bias=True)
    inits_b = bnmath.lemma45_random_inits(neuron_b, n_inits, torch.Generator().manual_seed(2))
    inits_3 = bnmath.lemma45_random_inits(inst["neuron"], n_inits, torch.Generator().manual_seed(3))
    fails3 = int((~inits_3["holds"]).sum())
    glued = {"l45_bias_wstar": vec(neuron_b.standard_optimum()),
             "l45_bias_angle": sci(bnmath.line_angle(neuron_b.standard_optimum(), neuron_b.bn_direction())),
             "l45_bias_holds": f"{float(inits_b['holds'].double().mean()):.3f}",
             "l45_bias_gap": sci(float((inits_b['lhs'] - inits_b['rhs']).abs().max())),
             "l45_inst_fail": f"{fails3 / len(inits_3['holds']):.3f}", "l45_inst_n": f"{n_inits:,} random initialisations"}
    rows, sweep = [], {}
    for bias in (False, True):
        for m_pts, d_in in shapes:
            r = bnmath.lemma45_sweep(m_pts, d_in, n_datasets, n_inits, seed=m_pts, bias=bias)
            f = r["fail"].numpy()
            se = f.std(ddof=1) / np.sqrt(len(f))
            sweep[(bias, m_pts, d_in)] = (f.mean(), se)
            rows.append(["yes" if bias else "no", m_pts, d_in, f"{np.degrees(float(r['angle'].median())):.3g}°",
                         f"{f.mean():.3f} ± {se:.3f}", f"{f.min():.3f} to {f.max():.3f}"])
    nobias = [sweep[(False, m_, d_)] for m_, d_ in shapes]
    glued.update({"l45_sweep_fail": ", ".join(f"{f:.3f} ± {s:.3f}" for f, s in nobias),
                  "l45_sweep_shapes": "(m, d) = " + ", ".join(f"({m_}, {d_})" for m_, d_ in shapes[:-1]) + f" and {shapes[-1]}",
                  "l45_sweep_n": f"{n_datasets} random datasets per shape and {n_inits:,} initialisations per dataset",
                  "l45_sweep_bias": f"{max(sweep[(True, m_, d_)][0] for m_, d_ in shapes):.3f}"})
    c = theory(violations=fails3, n=len(inits_3["holds"]))
    claims.record("lemma45", c, f"three-point instance: the lemma fails at {fails3:,} of {len(inits_3['holds']):,} "
                  f"random initialisations; random instances without a bias: {glued['l45_sweep_fail']}", EXACT, folder)
    glued["l45_verdict"] = f"**{c.verdict}** ({c.text()} of the three-point instance)"
    header = ["bias in the standard neuron", "points m", "inputs d", "median angle, line of W* to BN line",
              "fraction of initialisations where the lemma fails (± s.e. over datasets)", "range over datasets"]
    return (header, rows), glued, sweep


def lemma45_figure(inst: dict, sweep: dict, shapes=((3, 2), (32, 10), (256, 100)), grid_points: int = 281):
    """Left: the weight plane of the three-point instance (where the lemma fails); right: the sweep."""
    neuron, w_star, u_bn, grad_bn = inst["neuron"], inst["w_star"], inst["u_bn"], inst["grad_bn"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.15, 1]})
    g1, g2 = np.meshgrid(np.linspace(-1.5, 5.5, grid_points), np.linspace(-2.5, 4.5, grid_points))
    W = torch.tensor(np.stack([g1.ravel(), g2.ravel()], 1))
    sides = bnmath.lemma45_sides(W, w_star, u_bn)
    fails = (~sides["holds"] & (W @ w_star > 0)).numpy().reshape(g1.shape)
    ax.contourf(g1, g2, fails, levels=[0.5, 1.5], colors=["C3"], alpha=0.15)
    cs = ax.contour(g1, g2, neuron.standard_loss(W).numpy().reshape(g1.shape), levels=[4, 8, 16, 32, 64],
                    colors="0.55", linewidths=0.8)
    ax.clabel(cs, fontsize=7)
    s_ = np.linspace(-2, 7, 2)
    ax.plot(s_ * float(u_bn[0]), s_ * float(u_bn[1]), color="C3", lw=2, label="BN optima (line through (5, 3))")
    ax.plot(s_ * float(w_star[0]) / float(w_star.norm()), s_ * float(w_star[1]) / float(w_star.norm()),
            color="C0", lw=1.2, ls="--", label="line through W*")
    ax.plot(*w_star.numpy(), "o", color="C0", ms=7, label="W* (standard optimum)")
    step = -grad_bn / grad_bn.norm() * 1.2
    ax.annotate("", xy=(float(w_star[0] + step[0]), float(w_star[1] + step[1])), xytext=tuple(w_star.numpy()),
                arrowprops=dict(arrowstyle="->", color="C3", lw=1.5))
    ax.text(float(w_star[0] + step[0]) - 0.15, float(w_star[1] + step[1]) + 0.2, "−∇L̂ at W* (BN)", color="C3",
            fontsize=8, ha="right")
    ax.set(xlim=(-1.5, 5.5), ylim=(-2.5, 4.5), xlabel="$w_1$", ylabel="$w_2$", aspect="equal",
           title="three points: shaded = initialisations where Lemma 4.5 fails")
    ax.legend(fontsize=7, loc="lower right")
    xs = np.arange(len(shapes))
    for k, (bias, color) in enumerate(((False, "C3"), (True, "C0"))):
        f = np.array([sweep[(bias, m_, d_)] for m_, d_ in shapes])
        ax2.bar(xs + (k - 0.5) * 0.38, f[:, 0], 0.38, yerr=2 * f[:, 1], color=color, alpha=0.8,
                label="standard neuron with a bias" if bias else "standard neuron without a bias")
        for x_, v_ in zip(xs + (k - 0.5) * 0.38, f[:, 0]):
            ax2.text(x_, v_ + 0.015, f"{v_:.3f}", ha="center", fontsize=7)
    ax2.axhline(0.5, color="k", lw=0.8, ls=":", label="1/2 (closed form)")
    ax2.set(xticks=xs, xticklabels=[f"m={m_}, d={d_}" for m_, d_ in shapes], ylim=(0, 0.65),
            ylabel="fraction of initialisations", title="random instances: how often the lemma fails")
    ax2.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    plt.close(fig)
    return fig


# --- 7. sigma_j in practice -----------------------------------------------------------------------

def sigma_table(results: list[dict], step_index: int) -> np.ndarray:
    """(seeds, layers) medians of sigma_j over units, at one probe record."""
    out = []
    for r in results:
        rec = r["probes"]["unit_std"][step_index]["data"]
        out.append([float(rec[k]["sigma"].median()) for k in sorted(rec)])
    return np.array(out)


def sigma_report(runs: dict):
    """The sigma_j figure, its table, and glued values (incl. |gamma| / sigma at the end of training)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    rows, glued = [], {}
    for norm, rs in runs.items():
        first, last = sigma_table(rs, 0), sigma_table(rs, -1)
        layers = np.arange(1, first.shape[1] + 1)
        c = P.NORM_COLORS[norm]
        P.curve_band(axes[0], layers, first, label=f"{P.label(norm)}, step 0", color=c, linestyle="--", marker="o", ms=3)
        P.curve_band(axes[0], layers, last, label=f"{P.label(norm)}, step {rs[0]['probes']['unit_std'][-1]['step']}",
                     color=c, marker="o", ms=3)
        steps_rec = [rec["step"] for rec in rs[0]["probes"]["unit_std"]]
        over = np.array([[[float(rec["data"][k]["sigma"].median()) for k in sorted(rec["data"])]
                          for rec in r["probes"]["unit_std"]] for r in rs])
        P.curve_band(axes[1], steps_rec, over.max(axis=2), label=P.label(norm), color=c)
        for name, tab in (("step 0", first), ("last probe", last)):
            med = tab.mean(0)
            rows.append([P.label(norm), name, f"{med.min():.3g}", f"{med.max():.3g}", f"{med[-1]:.3g}"])
        tag = "none" if norm == "none" else "bn"
        glued[f"sigma_{tag}_first"] = f"{first.mean(0).min():.3g} to {first.mean(0).max():.3g}"
        glued[f"sigma_{tag}_last"] = f"{last.mean(0).min():.3g} to {last.mean(0).max():.3g}"
    axes[0].set(xlabel="layer", ylabel="median over units of sigma_j", yscale="log", title="per-unit std of pre-activations (pre-BN)")
    axes[1].set(xlabel="step", ylabel="largest layer median sigma_j", yscale="log", title="over training")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    gam_sig = []
    for r in runs["batch"]:
        rec = r["probes"]["unit_std"][-1]["data"]
        gam_sig.append(np.median(np.concatenate([(rec[k]["gamma"].abs() / rec[k]["sigma"]).numpy() for k in rec])))
    glued["gamma_over_sigma"] = S.pm(*S.mean_std(gam_sig)[:2], 3)
    glued["gamma_sigma_verdict"] = ("below 1: BN shrinks the gradient of the typical unit, as the paper's reading needs"
                                    if np.mean(gam_sig) < 1 else "above 1: BN *amplifies* the gradient of the typical "
                                    "unit, the opposite of the reduction the paper's reading needs")
    none_first = sigma_table(runs["none"], 0).mean(0)
    glued["sigma_depth"] = f"{none_first[0]:.3g} at layer 1 and {none_first[-1]:.3g} at layer {len(none_first)}"
    glued["sigma_depth_verdict"] = "*decays* with depth" if none_first[-1] < none_first[0] else "*grows* with depth"
    header = ["network", "when", "smallest layer median", "largest layer median", "last layer"]
    return fig, (header, rows), glued


# --- 8. Does gamma_j / sigma_j track the measured beta? ----------------------------------------------

def tracking(rhos, threshold: float = 0.5) -> str:
    """The stated rule for "a factor tracks a measurement over training", from per-seed Spearman rho:
    'tracks' when every seed has rho >= threshold, 'moves against' when every seed has rho <= -threshold,
    otherwise 'no consistent relation' ('not measured' without a finite rho).

    >>> tracking([0.8, 0.6]), tracking([-0.9, -0.7]), tracking([0.8, -0.2]), tracking([float("nan")])
    ('tracks', 'moves against', 'no consistent relation', 'not measured')
    """
    r = np.asarray([x for x in rhos if np.isfinite(x)], dtype=float)
    if len(r) == 0:
        return "not measured"
    if (r >= threshold).all():
        return "tracks"
    if (r <= -threshold).all():
        return "moves against"
    return "no consistent relation"


def gamma_sigma_series(result: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, per-layer median |gamma_j|/sigma_j (steps, layers), the median over every unit of the network
    (steps,), beta at the same steps) of one BN run, at the steps where both probes were recorded."""
    beta = {r["step"]: r["data"]["beta"] for r in result["probes"]["landscape"]}
    steps, per_layer, whole, b = [], [], [], []
    for rec in result["probes"]["unit_std"]:
        if rec["step"] not in beta:
            continue
        ratios = [(rec["data"][k]["gamma"].abs() / rec["data"][k]["sigma"]).numpy() for k in sorted(rec["data"])]
        steps.append(rec["step"])
        per_layer.append([np.median(r) for r in ratios])
        whole.append(np.median(np.concatenate(ratios)))
        b.append(beta[rec["step"]])
    return np.array(steps), np.array(per_layer), np.array(whole), np.array(b, dtype=float)


def gamma_sigma_report(runs_bn: list[dict], seeds: list, threshold: float = 0.5) -> tuple[object, tuple, dict]:
    """Spearman rho over training, per seed, between beta and the median |gamma_j|/sigma_j of the whole network
    and of each layer; the figure, the table (one row per layer, and the whole network), the glued verdict."""
    from ..correlate import spearman

    series = [gamma_sigma_series(r) for r in runs_bn]
    n_layers = series[0][1].shape[1]
    rho_all = [spearman(w, b) for _, _, w, b in series]
    rho_layer = np.array([[spearman(pl[:, i], b) for i in range(n_layers)] for _, pl, _, b in series])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    ax2 = axes[0].twinx()
    for k, (st, _, w, b) in enumerate(series):
        axes[0].plot(st, b, color="C0", alpha=0.8, label="β (effective smoothness)" if k == 0 else None)
        ax2.plot(st, w, color="C3", ls="--", alpha=0.8, label="median |γ_j|/σ_j" if k == 0 else None)
    axes[0].set(xlabel="step", ylabel="β", yscale="log", title=f"BN network, {len(series)} seeds")
    ax2.set(ylabel="median |γ_j| / σ_j", yscale="log")
    axes[0].legend(loc="upper left", fontsize=7)
    ax2.legend(loc="upper right", fontsize=7)
    layers = np.arange(1, n_layers + 1)
    for k, s in enumerate(seeds):
        axes[1].plot(layers, rho_layer[k], "o", ms=4, label=f"seed {s}")
    axes[1].plot(layers, np.nanmean(rho_layer, 0), "k-", lw=1, label="mean")
    for t in (threshold, -threshold):
        axes[1].axhline(t, color="0.6", lw=0.6, ls="--")
    axes[1].set(xlabel="layer", ylabel="Spearman ρ over training", ylim=(-1.05, 1.05),
                title="ρ(β, layer median |γ_j|/σ_j)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    verdicts = [tracking(r, threshold) for r in rho_layer.T]
    rows = [["whole network", *(f"{r:.2f}" for r in rho_all), f"{np.nanmean(rho_all):.2f}", tracking(rho_all, threshold)]]
    rows += [[f"layer {i + 1}", *(f"{r:.2f}" for r in rho_layer[:, i]), f"{np.nanmean(rho_layer[:, i]):.2f}", verdicts[i]]
             for i in range(n_layers)]
    counts = {v: verdicts.count(v) for v in ("tracks", "moves against", "no consistent relation") if verdicts.count(v)}
    glued = {"gs_rho": ", ".join(f"{r:.2f} (seed {s})" for r, s in zip(rho_all, seeds)),
             "gs_verdict": f"**{tracking(rho_all, threshold)}**",
             "gs_layers": "; ".join(f"{n} layers: {v}" for v, n in counts.items()),
             "gs_threshold": f"{threshold:g}", "gs_points": str(len(series[0][0]))}
    header = ["factor", *(f"ρ, seed {s}" for s in seeds), "mean ρ", f"rule (|ρ| ≥ {threshold:g} in every seed)"]
    return fig, (header, rows), glued

