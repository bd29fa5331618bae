"""BatchNorm from first principles: `batch_norm`, a functional BN whose backward pass is written out by hand
(the paper's Fact C.1) in a custom autograd Function; the tests check it against `torch.nn.functional.batch_norm`
with float64 `gradcheck`."""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


def _dims(x: torch.Tensor) -> list[int]:
    """Statistics run over the batch and any spatial dims: all but the channel dim 1."""
    return [0, *range(2, x.dim())]


def _bshape(x: torch.Tensor) -> list[int]:
    return [1, x.shape[1], *([1] * (x.dim() - 2))]


def _normalize(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (xhat, 1/sqrt(var + eps)) with the batch mean and *biased* variance (the paper's)."""
    dims = _dims(x)
    mean = x.mean(dims, keepdim=True)
    inv_std = torch.rsqrt((x - mean).pow(2).mean(dims, keepdim=True) + eps)
    return (x - mean) * inv_std, inv_std


class _BatchNormTrain(torch.autograd.Function):
    """Training-mode BN with the backward pass of Fact C.1, per channel:
    dL/dx = gamma / (m sigma) * (m g - sum(g) - xhat * sum(g * xhat)),  g = dL/dz."""

    @staticmethod
    def forward(ctx, x, gamma, beta, eps):
        xhat, inv_std = _normalize(x, eps)
        ctx.save_for_backward(xhat, inv_std, gamma)
        shape = _bshape(x)
        return xhat * gamma.view(shape) + beta.view(shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        xhat, inv_std, gamma = ctx.saved_tensors
        dims, shape = _dims(g), _bshape(g)
        m = g.numel() // g.shape[1]
        dgamma = (g * xhat).sum(dims)
        dbeta = g.sum(dims)
        gx = g * gamma.view(shape)                                  # dL/dxhat
        dx = inv_std / m * (m * gx - gx.sum(dims, keepdim=True)
                            - xhat * (gx * xhat).sum(dims, keepdim=True))
        return dx, dgamma, dbeta, None


def batch_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
               running_mean: torch.Tensor | None = None, running_var: torch.Tensor | None = None,
               training: bool = True, momentum: float = 0.1, eps: float = 1e-5) -> torch.Tensor:
    """BN of x (N, C) or (N, C, *spatial), per channel.

    Training: normalise with the batch mean and *biased* variance; update the running statistics
    in place (exponential average with `momentum`, the running variance *unbiased*, as PyTorch does).
    Eval: normalise with the running statistics (a fixed affine map).
    """
    if training:
        if running_mean is not None:
            with torch.no_grad():
                dims = _dims(x)
                running_mean.mul_(1 - momentum).add_(momentum * x.mean(dims))
                running_var.mul_(1 - momentum).add_(momentum * x.var(dims, unbiased=True))
        return _BatchNormTrain.apply(x, gamma, beta, eps)
    shape = _bshape(x)
    return (x - running_mean.view(shape)) * torch.rsqrt(running_var.view(shape) + eps) \
        * gamma.view(shape) + beta.view(shape)


def bn_autograd(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Training-mode BN from primitive ops: differentiable to any order (for Hessians), eps = 0 allowed
    (F.batch_norm refuses eps = 0 in training)."""
    shape = _bshape(x)
    return _normalize(x, eps)[0] * gamma.view(shape) + beta.view(shape)
