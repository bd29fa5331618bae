"""The BN-math chapter, section 6: Theorem 4.4 at the layers' inputs and Lemma 4.5 (its counterexample, the sweep
over random data sets and starts, and the figure)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from bnopt import theory as bnmath
from bnopt.analysis.verdict import theory
from bnopt.book import claims
from bnopt.book.chapters.bn_math.basics import EXACT, F64
from bnopt.book.report import sci

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
