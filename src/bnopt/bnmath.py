"""BatchNorm from first principles, and the quantities of the paper's Section 4 theorems.

`batch_norm` is a functional BN whose backward pass is written out by hand (the paper's Fact C.1) in
a custom autograd Function; the tests check it against `torch.nn.functional.batch_norm` with
float64 `gradcheck`. The theorem helpers compute both sides of Theorems 4.1, 4.2 and 4.4 on any
layer of a `bnopt` model, from autograd gradients and Hessian-vector products.

Notation (paper Sec. 4.1): for unit j over a batch of m values, y_j (pre-BN), sigma_j its biased
batch std, yhat_j = (y_j - mu_j) / sigma_j, z_j = gamma * yhat_j + beta, g_j = dL/dz_j (the downstream
gradient), and dL^/dy_j the gradient of the BN network's loss with respect to y_j.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .probes import isolated, per_unit


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


# --------------------------------------------------------------------------------------------------
# Per-unit quantities at one BN layer of a model

@dataclass
class LayerGradients:
    """At one BN layer, per unit j (columns) over the m batch(-and-spatial) positions (rows)."""
    y: torch.Tensor        # (m, C) pre-BN values
    yhat: torch.Tensor     # (m, C) normalised values (with the eps used)
    sigma: torch.Tensor    # (C,) sqrt(biased var + eps)
    gamma: torch.Tensor    # (C,)
    g: torch.Tensor        # (m, C) dL/dz: the downstream gradient at the BN output
    grad_y: torch.Tensor   # (m, C) dL^/dy: the BN network's gradient at the BN input

    @property
    def m(self) -> int:
        return self.y.shape[0]


def _as_units(t: torch.Tensor) -> torch.Tensor:
    """(N, C, *spatial) -> (N * prod(spatial), C): a column per unit."""
    return per_unit(t).T


class _ReplaceNorm:
    """Forward hook on block.norm: recompute BN from the block's pre-BN input with a chosen eps in
    float64, keeping the tensors so that gradients and HVPs can be taken with respect to them."""

    def __init__(self, eps: float, z_leaf: bool):
        self.eps, self.z_leaf, self.saved = eps, z_leaf, {}

    def __call__(self, module, inputs, _out):
        y = inputs[0].detach().requires_grad_(True)
        z = bn_autograd(y, module.weight.detach(), module.bias.detach(), self.eps)
        if self.z_leaf:
            z = z.detach().requires_grad_(True)
        self.saved.update(y=y, z=z, gamma=module.weight.detach(), beta=module.bias.detach())
        return z


def _loss_with_hook(model, layer: int, x, target, loss_fn, eps: float, z_leaf: bool):
    block = model.blocks[layer - 1]
    if not hasattr(block.norm, "weight"):
        raise ValueError(f"layer #{layer} has no BatchNorm (norm is {type(block.norm).__name__})")
    hook = _ReplaceNorm(eps, z_leaf)
    handle = block.norm.register_forward_hook(hook)
    try:
        loss = loss_fn(model(x), target)
    finally:
        handle.remove()
    return loss, hook.saved


def layer_gradients(model, layer: int, x, target, loss_fn=F.cross_entropy, eps: float = 0.0) -> LayerGradients:
    """Gradients at BN layer #layer of a model in train mode (float64 recommended; eps=0 as in the
    paper's analysis). The model's parameters, buffers and RNG are left exactly as they were."""
    with isolated(model):
        model.train()
        loss, s = _loss_with_hook(model, layer, x, target, loss_fn, eps, z_leaf=False)
        grad_y, g = torch.autograd.grad(loss, [s["y"], s["z"]])
    y = _as_units(s["y"].detach())
    var = y.var(0, unbiased=False)
    sigma = torch.sqrt(var + eps)
    return LayerGradients(y, (y - y.mean(0)) / sigma, sigma, s["gamma"], _as_units(g), _as_units(grad_y))


def theorem41(lg: LayerGradients) -> dict:
    """Both sides of Theorem 4.1 per unit: lhs = ||dL^/dy_j||^2 and the right-hand side with the
    last coefficient 1/m (the identity the proof establishes) and 1/sqrt(m) (as printed)."""
    m, g, yhat = lg.m, lg.g, lg.yhat
    scale = lg.gamma.pow(2) / lg.sigma.pow(2)
    norm2 = g.pow(2).sum(0)
    mean_term = g.sum(0).pow(2) / m
    proj = (g * yhat).sum(0).pow(2)
    return {"lhs": lg.grad_y.pow(2).sum(0),
            "rhs_exact": scale * (norm2 - mean_term - proj / m),
            "rhs_printed": scale * (norm2 - mean_term - proj / math.sqrt(m))}


def theorem44(lg: LayerGradients, lam: float = 1.0) -> dict:
    """Theorem 4.4 in its corrected form, per unit, with y_j, sigma_j and the gradients held fixed
    while maximising over inputs X with spectral norm <= lam (as the proof does). For a linear layer
    y = X w, dL/dw = X^T dL/dy and max_{||X|| <= lam} ||X^T v||^2 = lam^2 ||v||^2, so
      g_hat_j = lam^2 ||dL^/dy_j||^2,  g_j = lam^2 ||g_j||^2,  mu_g = <1, g_j> / m,
      corrected:  g_hat_j = gamma^2/sigma^2 (g_j - lam^2 m mu_g^2 - lam^2 <g_j, yhat_j>^2 / m)
      printed:    g_hat_j <= gamma^2/sigma^2 (g_j^2 - m mu_g^2 - lam^2 <g_j, yhat_j>^2 / sqrt(m))."""
    m, g, yhat = lg.m, lg.g, lg.yhat
    scale = lg.gamma.pow(2) / lg.sigma.pow(2)
    g_hat_j = lam ** 2 * lg.grad_y.pow(2).sum(0)
    g_j = lam ** 2 * g.pow(2).sum(0)
    mu = g.sum(0) / m
    proj = (g * yhat).sum(0).pow(2)
    return {"lhs": g_hat_j,
            "rhs_corrected": scale * (g_j - lam ** 2 * m * mu.pow(2) - lam ** 2 * proj / m),
            "rhs_printed": scale * (g_j.pow(2) - m * mu.pow(2) - lam ** 2 * proj / math.sqrt(m))}


def theorem42(model, layer: int, x, target, units, loss_fn=F.cross_entropy, eps: float = 0.0) -> dict:
    """Theorem 4.2 per unit j in `units`, by Hessian-vector products (double backward):
      lhs    = u^T (d^2 L^ / dy_j dy_j) u,          u = dL^/dy_j
      rhs    = gamma^2/sigma^2 u^T H_jj u - gamma/(m sigma^2) <g_j, yhat_j> ||u||^2,  H_jj = d^2 L/dz_j dz_j
    plus u^T H_jj u and g_j^T H_jj g_j, whose order decides whether the paper's second statement
    follows from the first (it does iff u^T H u <= g^T H g)."""
    out = {k: [] for k in ("unit", "lhs", "rhs", "uHu", "gHg")}
    with isolated(model):
        model.train()
        loss_y, sy = _loss_with_hook(model, layer, x, target, loss_fn, eps, z_leaf=False)
        (grad_y,) = torch.autograd.grad(loss_y, sy["y"], create_graph=True)
        loss_z, sz = _loss_with_hook(model, layer, x, target, loss_fn, eps, z_leaf=True)
        (g,) = torch.autograd.grad(loss_z, sz["z"], create_graph=True)
        y = sy["y"].detach()
        dims = _dims(y)
        m = y.numel() // y.shape[1]
        sigma = torch.sqrt(y.var(dims, unbiased=False) + eps)
        yhat = (y - y.mean(dims, keepdim=True)) / sigma.view(_bshape(y))
        gamma = sy["gamma"]
        for j in units:
            mask = torch.zeros_like(y)
            mask[:, j] = 1
            u = (grad_y.detach() * mask)
            gj = (g.detach() * mask)
            (hy_u,) = torch.autograd.grad(grad_y, sy["y"], u, retain_graph=True)
            (hz_u,) = torch.autograd.grad(g, sz["z"], u, retain_graph=True)
            (hz_g,) = torch.autograd.grad(g, sz["z"], gj, retain_graph=True)
            uHu, gHg = (u * hz_u).sum(), (gj * hz_g).sum()
            s2 = sigma[j] ** 2
            rhs = gamma[j] ** 2 / s2 * uHu - gamma[j] / (m * s2) * (gj * yhat).sum() * u.pow(2).sum()
            for k, v in (("unit", j), ("lhs", (u * hy_u).sum()), ("rhs", rhs), ("uHu", uHu), ("gHg", gHg)):
                out[k].append(float(v))
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}


# --------------------------------------------------------------------------------------------------
# Lemma 4.5

def lemma45_gap(w0: torch.Tensor, w_star: torch.Tensor) -> dict:
    """The identity behind Lemma 4.5's proof: with k = <W*, W0> / ||W*||^2,
    ||W0 - k W*||^2 - ||W0 - W*||^2 = -(||W*||^2 - <W*, W0>)^2 / ||W*||^2."""
    w0, ws = w0.flatten().double(), w_star.flatten().double()
    k = (ws @ w0) / (ws @ ws)
    return {"k": float(k), "lhs": float((w0 - k * ws).pow(2).sum() - (w0 - ws).pow(2).sum()),
            "rhs": float(-((ws @ ws) - ws @ w0) ** 2 / (ws @ ws))}


def one_neuron_losses(X: torch.Tensor, t: torch.Tensor):
    """The single-neuron, identity-activation setting of Dannemann & Junike (2025):
    standard loss L(w) = sum_i (w.x_i - t_i)^2, BN loss L^(w, gamma, beta) = sum_i (gamma BN(w.x)_i + beta - t_i)^2
    (BN over the dataset, eps = 0)."""
    def standard(w):
        return (X @ w - t).pow(2).sum()

    def bn(w, gamma, beta):
        y = X @ w
        yhat = (y - y.mean()) / y.std(unbiased=False)
        return (gamma * yhat + beta - t).pow(2).sum()

    return standard, bn
