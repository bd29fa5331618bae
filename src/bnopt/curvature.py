"""Curvature through Hessian-vector products (double backward), with the BN mode made explicit.

PyHessian-style code silently switches the model to eval mode; for a BN network that is a different
function (running statistics instead of batch statistics). Here the caller states the mode: the
paper measures in training mode.
"""
from __future__ import annotations

import torch

from .probes import ProbeContext, RngSnapshot, full_precision, isolated, register


def hvp(loss_fn, params: list[torch.Tensor], vec: list[torch.Tensor]) -> list[torch.Tensor]:
    """H v for the Hessian of loss_fn() (a closure) with respect to params, by double backward.
    (Not grad-over-jvp: that gives wrong results through train-mode BatchNorm.)"""
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    return list(torch.autograd.grad(grads, params, vec))


def model_hvp(model, x, y, loss, vec: list[torch.Tensor], train_mode: bool = True) -> list[torch.Tensor]:
    """H v of loss(model(x), y) with respect to all parameters, BN in the stated mode; the model's
    parameters, buffers and RNG are restored exactly afterwards."""
    params = [p for p in model.parameters() if p.requires_grad]
    with isolated(model):
        model.train(train_mode)
        return hvp(lambda: loss(model(x), y), params, vec)


def top_eigenvalue(model, x, y, loss, iters: int = 20, tol: float = 1e-4, train_mode: bool = True,
                   seed: int = 0) -> tuple[float, int]:
    """Largest-magnitude Hessian eigenvalue of loss(model(x), y) w.r.t. all parameters, by power
    iteration on Hessian-vector products (BN in the stated mode; the RNG is reset before every HVP so
    in-network noise is the same draw throughout). Returns (eigenvalue, iterations used)."""
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params]
    norm = torch.sqrt(sum((u * u).sum() for u in v))
    v = [u / norm for u in v]
    eig, prev = 0.0, None
    with isolated(model):
        model.train(train_mode)
        rng = RngSnapshot()
        for it in range(1, iters + 1):
            rng.restore()
            hv = hvp(lambda: loss(model(x), y), params, v)
            eig = float(sum((a * b).sum() for a, b in zip(hv, v)))       # Rayleigh quotient
            norm = torch.sqrt(sum((h * h).sum() for h in hv))
            if float(norm) == 0.0:
                return 0.0, it
            v = [h / norm for h in hv]
            if prev is not None and abs(eig - prev) <= tol * max(abs(eig), 1e-12):
                return eig, it
            prev = eig
    return eig, iters


@register("sharpness")
class SharpnessProbe:
    """Top Hessian eigenvalue of the minibatch loss at the current step (training-mode BN), to
    compare with the edge-of-stability level 2 / lr (Cohen et al. 2021)."""

    def __init__(self, model, iters: int = 20, tol: float = 1e-3):
        self.model, self.iters, self.tol = model, iters, tol

    def __call__(self, ctx: ProbeContext) -> dict:
        eig, used = top_eigenvalue(self.model, ctx.x, ctx.y, lambda o, t: ctx.loss_fn(full_precision(o), t),
                                   self.iters, self.tol, seed=ctx.step)
        return {"top_eig": eig, "iters": used}
