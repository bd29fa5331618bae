"""Curvature through Hessian-vector products (double backward), with the BN mode made explicit.

PyHessian-style code silently switches the model to eval mode; for a BN network that is a different
function (running statistics instead of batch statistics). Here the caller states the mode: the
paper measures in training mode.
"""
from __future__ import annotations

import torch

from .probes import ProbeContext, full_precision, isolated, register


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


def model_hvp(model, x, y, loss, vec: list[torch.Tensor], train_mode: bool = True) -> list[torch.Tensor]:
    """H v of loss(model(x), y) with respect to all parameters, BN in the stated mode; the model's
    parameters, buffers and RNG are restored exactly afterwards."""
    params = [p for p in model.parameters() if p.requires_grad]
    with isolated(model):
        model.train(train_mode)
        return hvp(lambda: loss(model(x), y), params, vec)


def _flat(vs: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in vs])


def _unflat(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    return [c.view_as(p) for c, p in zip(torch.split(flat, [p.numel() for p in like]), like)]


def hessian_extremes(model, x, y, loss, iters: int = 20, train_mode: bool = True, seed: int = 0,
                     tol: float = 1e-6) -> dict:
    """Largest and smallest (algebraic) Hessian eigenvalues of loss(model(x), y) w.r.t. all parameters,
    by Lanczos with full reorthogonalisation on Hessian-vector products (BN in the stated mode; all
    products share one forward pass, so in-network noise is the same draw throughout).

    Lanczos, unlike power iteration, returns the top of the spectrum even when a negative eigenvalue
    is larger in magnitude, and converges faster for the same number of HVPs. The Ritz values bound
    the spectrum from inside: top <= lambda_max and bottom >= lambda_min.
    Returns {'top', 'bottom', 'iters'}; stops early when the Krylov space is exhausted.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(sum(p.numel() for p in params), generator=gen, dtype=torch.float64)
    dtype, device = params[0].dtype, params[0].device
    q = (q / q.norm()).to(device)
    basis, alphas, betas = [], [], []
    with isolated(model):
        model.train(train_mode)
        apply_h = hvp_operator(lambda: loss(model(x), y), params)   # one forward: one noise draw
        for it in range(1, iters + 1):
            basis.append(q)
            hq = apply_h(_unflat(q.to(dtype), params))
            w = _flat(hq).detach().double()
            alpha = float(w @ q)
            alphas.append(alpha)
            for b in basis:                                   # full reorthogonalisation (twice is enough)
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
    ritz = torch.linalg.eigvalsh(t)
    return {"top": float(ritz[-1]), "bottom": float(ritz[0]), "iters": k}


def top_eigenvalue(model, x, y, loss, iters: int = 20, train_mode: bool = True, seed: int = 0) -> tuple[float, int]:
    """Largest (algebraic) Hessian eigenvalue by Lanczos; returns (eigenvalue, HVPs used)."""
    r = hessian_extremes(model, x, y, loss, iters, train_mode, seed)
    return r["top"], r["iters"]


@register("sharpness")
class SharpnessProbe:
    """Top and bottom Hessian eigenvalues of the minibatch loss at the current step (training-mode BN,
    Lanczos with `iters` HVPs), to compare with the edge-of-stability level 2 / lr (Cohen et al. 2021)."""

    def __init__(self, model, iters: int = 20):
        self.model, self.iters = model, iters

    def __call__(self, ctx: ProbeContext) -> dict:
        r = hessian_extremes(self.model, ctx.x, ctx.y, lambda o, t: ctx.loss_fn(full_precision(o), t),
                             self.iters, seed=ctx.step)
        return {"top_eig": r["top"], "min_eig": r["bottom"], "iters": r["iters"]}
