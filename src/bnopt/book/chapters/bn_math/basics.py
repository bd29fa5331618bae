"""The BN-math chapter, sections 1 to 3: BN from first principles against PyTorch, equal moments that are not
equal distributions, and scale invariance."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from bnopt import theory as bnmath
from bnopt.book.report import sci

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
