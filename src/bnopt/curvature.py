"""Curvature through Hessian-vector products (double backward), with the BN mode made explicit.

PyHessian-style code silently switches the model to eval mode; for a BN network that is a different
function (running statistics instead of batch statistics). Here the caller states the mode: the
paper measures in training mode.
"""
from __future__ import annotations

import torch

from .probes import isolated


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
