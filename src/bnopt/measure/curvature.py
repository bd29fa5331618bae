"""Curvature through Hessian-vector products (double backward), with the BN mode made explicit.

PyHessian-style code silently switches the model to eval mode; for a BN network that is a different
function (running statistics instead of batch statistics). Here the caller states the mode: the
paper measures in training mode.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bnopt.measure.probes import ProbeContext, full_precision, isolated


def hvp_operator(loss_fn, params: list[torch.Tensor]):
    """v -> H v for the Hessian of loss_fn() (a closure) with respect to params, by double backward
    on one retained graph: the forward pass and the first backward run once, each product is one
    backward through the gradient's graph. (Not grad-over-jvp: that gives wrong results through
    train-mode BatchNorm.) The closure is called once, so in-network noise is one draw throughout."""
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True)

    def apply(vec: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(torch.autograd.grad(grads, params, vec, retain_graph=True))
    return apply


def hvp(loss_fn, params: list[torch.Tensor], vec: list[torch.Tensor]) -> list[torch.Tensor]:
    """H v for the Hessian of loss_fn() with respect to params (one product; see hvp_operator)."""
    return hvp_operator(loss_fn, params)(vec)


def model_hvp(model, x, y, loss_fn, vec: list[torch.Tensor], train_mode: bool = True) -> list[torch.Tensor]:
    """H v of loss_fn(model(x), y) with respect to all parameters, BN in the stated mode; the model's
    parameters, buffers and RNG are restored exactly afterwards."""
    params = [p for p in model.parameters() if p.requires_grad]
    with isolated(model):
        model.train(train_mode)
        return hvp(lambda: loss_fn(model(x), y), params, vec)


def _flat(vs: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in vs])


def _unflat(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    return [c.view_as(p) for c, p in zip(torch.split(flat, [p.numel() for p in like]), like)]


def lanczos(apply_h, q: torch.Tensor, iters: int, tol: float = 1e-6) -> torch.Tensor:
    """The k x k tridiagonal Lanczos matrix T of a symmetric operator (flat float64 vector -> flat
    float64 vector) from the start vector q, with full reorthogonalisation (twice). Stops early when
    the Krylov space is exhausted (k < iters). T's eigenvalues are the Ritz values; with the squared
    first components of its eigenvectors they are the Gauss quadrature of q's spectral measure."""
    q = q / q.norm()
    basis, alphas, betas = [], [], []
    for it in range(1, iters + 1):
        basis.append(q)
        w = apply_h(q)
        alpha = float(w @ q)
        alphas.append(alpha)
        for b in basis:
            w = w - (w @ b) * b
        for b in basis:
            w = w - (w @ b) * b
        beta = float(w.norm())
        scale = max(abs(a) for a in alphas) or 1.0
        if beta <= tol * scale or it == iters:
            break
        betas.append(beta)
        q = w / beta
    k = len(alphas)
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if k > 1:
        off = torch.tensor(betas[: k - 1], dtype=torch.float64)
        t = t + torch.diag(off, 1) + torch.diag(off, -1)
    return t


def _model_operator(model, x, y, loss_fn, train_mode: bool):
    """(apply, n) for the Hessian of loss_fn(model(x), y) on flat float64 vectors; call inside `isolated`."""
    params = [p for p in model.parameters() if p.requires_grad]
    dtype, device = params[0].dtype, params[0].device
    model.train(train_mode)
    apply_h = hvp_operator(lambda: loss_fn(model(x), y), params)   # one forward: one noise draw

    def apply(q: torch.Tensor) -> torch.Tensor:
        return _flat(apply_h(_unflat(q.to(device, dtype), params))).detach().double().cpu()
    return apply, sum(p.numel() for p in params)


def hessian_extremes(model, x, y, loss_fn, iters: int = 20, train_mode: bool = True, seed: int = 0,
                     tol: float = 1e-6) -> dict:
    """Largest and smallest (algebraic) Hessian eigenvalues of loss_fn(model(x), y) w.r.t. all parameters,
    by Lanczos with full reorthogonalisation on Hessian-vector products (BN in the stated mode; all
    products share one forward pass, so in-network noise is the same draw throughout).

    Lanczos, unlike power iteration, returns the top of the spectrum even when a negative eigenvalue
    is larger in magnitude, and converges faster for the same number of HVPs. The Ritz values bound
    the spectrum from inside: top <= lambda_max and bottom >= lambda_min.
    Returns {'top', 'bottom', 'iters'}; stops early when the Krylov space is exhausted.
    """
    with isolated(model):
        apply, n = _model_operator(model, x, y, loss_fn, train_mode)
        q = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        t = lanczos(apply, q, iters, tol)
    ritz = torch.linalg.eigvalsh(t)
    return {"top": float(ritz[-1]), "bottom": float(ritz[0]), "iters": t.shape[0]}


def spectral_density(model, x, y, loss_fn, iters: int = 80, vectors: int = 4, train_mode: bool = True,
                     seed: int = 0) -> dict:
    """The Hessian's eigenvalue density by stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019):
    `vectors` Gaussian start vectors, `iters` Lanczos steps each; per vector the Ritz values (nodes) and
    the squared first components of T's eigenvectors (weights, summing to 1). BN in the stated mode;
    the model is left exactly as it was.

    The density is the average of the vectors' node-weight measures. Its p-th moment (the weighted sum
    of nodes to the power p, averaged over vectors) estimates tr(H^p) / n without bias for p < 2 iters:
    each vector's quadrature is exact for those p. `density_moment` computes it.
    Returns {'nodes', 'weights': (vectors, k) tensors, 'n': parameters, 'train_mode'}."""
    gen = torch.Generator().manual_seed(seed)
    nodes, weights = [], []
    with isolated(model):
        apply, n = _model_operator(model, x, y, loss_fn, train_mode)
        for _ in range(vectors):
            t = lanczos(apply, torch.randn(n, generator=gen, dtype=torch.float64), iters)
            theta, u = torch.linalg.eigh(t)
            nodes.append(theta)
            weights.append(u[0].pow(2))
    k = max(len(v) for v in nodes)                       # early-stopped vectors: zero-weight padding
    return {"nodes": torch.stack([F.pad(v, (0, k - len(v))) for v in nodes]),
            "weights": torch.stack([F.pad(w, (0, k - len(w))) for w in weights]), "n": n, "train_mode": train_mode}


def density_moment(density: dict, p: int) -> float:
    """The p-th moment of an SLQ density: the estimate of tr(H^p) / n.

    >>> d = {"nodes": torch.tensor([[1.0, 3.0]]), "weights": torch.tensor([[0.5, 0.5]])}
    >>> density_moment(d, 1), density_moment(d, 2)
    (2.0, 5.0)
    """
    return float((density["weights"] * density["nodes"].pow(p)).sum(1).mean())


def smoothed_density(density: dict, grid: torch.Tensor, width: float) -> torch.Tensor:
    """The SLQ density on `grid`, each node a Gaussian of standard deviation `width` (for plots).

    >>> d = {"nodes": torch.tensor([[0.0]]), "weights": torch.tensor([[1.0]])}
    >>> round(float(smoothed_density(d, torch.tensor([0.0]), 1.0)[0]), 4)    # 1 / sqrt(2 pi)
    0.3989
    """
    z = (grid.view(1, 1, -1) - density["nodes"].unsqueeze(-1)) / width
    kern = torch.exp(-0.5 * z.pow(2)) / (width * math.sqrt(2 * math.pi))
    return (density["weights"].unsqueeze(-1) * kern).sum(1).mean(0)


def outlier_ratio(density: dict) -> float:
    """lambda_max / sqrt(tr(H^2) / n): how far the top eigenvalue stands above the spectrum's typical scale
    (root mean square eigenvalue). Large for a spectrum with isolated outliers over a bulk near zero.

    >>> d = {"nodes": torch.tensor([[0.1, 10.0]]), "weights": torch.tensor([[0.99, 0.01]])}
    >>> round(outlier_ratio(d), 2)            # 10 / sqrt(0.99 * 0.01 + 0.01 * 100)
    9.95
    """
    return float(density["nodes"].max() / math.sqrt(density_moment(density, 2)))


def top_eigenvalue(model, x, y, loss_fn, iters: int = 20, train_mode: bool = True, seed: int = 0) -> tuple[float, int]:
    """Largest (algebraic) Hessian eigenvalue by Lanczos; returns (eigenvalue, HVPs used)."""
    r = hessian_extremes(model, x, y, loss_fn, iters, train_mode, seed)
    return r["top"], r["iters"]


class SharpnessProbe:
    """Top and bottom Hessian eigenvalues of the minibatch loss at the current step (training-mode BN,
    Lanczos with `iters` HVPs), to compare with the edge-of-stability level 2 / lr (Cohen et al. 2021)."""
    name = "sharpness"   # the name a ProbeSpec gives (bnopt.measure.catalog)

    def __init__(self, model, iters: int = 20):
        self.model, self.iters = model, iters

    def __call__(self, ctx: ProbeContext) -> dict:
        r = hessian_extremes(self.model, ctx.x, ctx.y, lambda o, t: ctx.loss_fn(full_precision(o), t),
                             self.iters, seed=ctx.step)
        return {"top_eig": r["top"], "min_eig": r["bottom"], "iters": r["iters"]}
