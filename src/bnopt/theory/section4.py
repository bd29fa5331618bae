"""The quantities of the paper's Section 4 theorems (4.1, 4.2, 4.4) and Observation 4.3, both sides computed on any
layer of a `bnopt` model from autograd gradients and Hessian-vector products.

Notation (paper Sec. 4.1): for unit j over a batch of m values, y_j (pre-BN), sigma_j its biased
batch std, yhat_j = (y_j - mu_j) / sigma_j, z_j = gamma * yhat_j + beta, g_j = dL/dz_j (the downstream
gradient), and dL^/dy_j the gradient of the BN network's loss with respect to y_j.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bnopt.measure.probes import isolated, observe, per_unit
from bnopt.theory.bn import _bshape, _dims, bn_autograd

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



def weight_layer_input_matrix(layer: torch.nn.Module, x_in: torch.Tensor) -> torch.Tensor:
    """The matrix X with y_j = X w_j for the weight layer (rows: the m positions of a unit; columns: the
    inputs of one unit): x_in itself for a linear layer, its unfolded patches (im2col) for a conv layer."""
    if isinstance(layer, torch.nn.Conv2d):
        cols = F.unfold(x_in, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    if isinstance(layer, torch.nn.Linear):
        return x_in.reshape(-1, x_in.shape[-1])
    raise TypeError(f"weight layer {type(layer).__name__} is not a Conv2d or Linear")


def weight_gradient_at_input(model, layer: int, x, target, loss_fn=F.cross_entropy) -> dict:
    """The left side of the corrected Theorem 4.4 at the layer's *actual* input X, independently of
    Theorem 4.1's identity: per unit j, lhs_j = ||dL^/dW_j||^2, autograd's weight gradient through the BN
    network (BN recomputed in float64 with eps = 0), and lam = ||X||_2 of the layer's input matrix
    (`weight_layer_input_matrix`). Returns {'lhs', 'lam', 'm'}; the model is left exactly as it was."""
    block = model.blocks[layer - 1]
    if not hasattr(block.norm, "weight"):
        raise ValueError(f"layer #{layer} has no BatchNorm (norm is {type(block.norm).__name__})")
    saved = {}

    def keep_input(_module, inputs):
        saved["x"] = inputs[0].detach()

    def float64_bn(module, inputs, _out):                     # differentiable: the weight gradient flows
        return bn_autograd(inputs[0], module.weight.detach(), module.bias.detach(), 0.0)

    with isolated(model):
        model.train()
        hooks = [block.layer.register_forward_pre_hook(keep_input), block.norm.register_forward_hook(float64_bn)]
        try:
            loss = loss_fn(model(x), target)
        finally:
            for h in hooks:
                h.remove()
        (grad_w,) = torch.autograd.grad(loss, block.layer.weight)
    big_x = weight_layer_input_matrix(block.layer, saved["x"])
    return {"lhs": grad_w.detach().reshape(grad_w.shape[0], -1).pow(2).sum(1),
            "lam": float(torch.linalg.matrix_norm(big_x, ord=2)), "m": big_x.shape[0]}


def theorem44_at_input(model, layer: int, x, target, loss_fn=F.cross_entropy) -> dict:
    """Corrected Theorem 4.4 at the layer's actual input X (no maximisation): the left side from
    `weight_gradient_at_input`, and the bound::

        rhs_j = lam^2 gamma^2/sigma_j^2 (||g_j||^2 - <1, g_j>^2 / m - <g_j, yhat_j>^2 / m),  lam = ||X||_2

    so lhs_j <= rhs_j must hold for every unit (||X^T v|| <= ||X||_2 ||v||); equality needs dL^/dy_j along
    X's top left singular vector. Returns {'lhs', 'rhs', 'lam', 'm'}; the model is left exactly as it was."""
    r = weight_gradient_at_input(model, layer, x, target, loss_fn)
    rhs = r["lam"] ** 2 * theorem41(layer_gradients(model, layer, x, target, loss_fn, eps=0.0))["rhs_exact"]
    return {**r, "rhs": rhs}


# --------------------------------------------------------------------------------------------------
# Observation 4.3

def bn_twin(standard, x, layers=None, eps: float = 1e-5) -> torch.nn.Module:
    """Observation 4.3: a copy of `standard` (a network of `Block`s without normalization) with a BN layer
    inserted after the weight layer of each block in `layers` (1-based; default all), with
    gamma_j = sqrt(sigma_j^2 + eps) and beta_j = mu_j from the batch x. On x in train mode it computes the
    same activations as `standard`, so every point (and every minimum) of the standard landscape is a
    point of the BN landscape. `standard` is not changed."""
    import copy

    layers = list(range(1, len(standard.blocks) + 1)) if layers is None else list(layers)
    stats, hooks = {}, []
    for i in layers:
        if not isinstance(standard.blocks[i - 1].norm, torch.nn.Identity):
            raise ValueError(f"layer #{i} already has a normalization ({type(standard.blocks[i - 1].norm).__name__})")
        hooks.append(standard.blocks[i - 1].layer.register_forward_hook(
            lambda _m, _i, out, i=i: stats.__setitem__(i, (out.detach().mean(_dims(out)),
                                                           out.detach().var(_dims(out), unbiased=False)))))
    observe(standard, x, hooks)
    twin = copy.deepcopy(standard)
    for i, (mean, var) in stats.items():
        weight = twin.blocks[i - 1].layer.weight
        kind = torch.nn.BatchNorm2d if isinstance(twin.blocks[i - 1].layer, torch.nn.Conv2d) else torch.nn.BatchNorm1d
        norm = kind(len(mean), eps=eps).to(weight.device, weight.dtype)
        with torch.no_grad():
            norm.weight.copy_(torch.sqrt(var + eps))
            norm.bias.copy_(mean)
        twin.blocks[i - 1].norm = norm
    return twin.train(standard.training)


def observation43(standard, x, target, layers, loss_fn=F.cross_entropy, eps: float = 1e-5) -> dict:
    """Observation 4.3 on a standard network at batch x. Returns:

    - 'out_err': the largest relative difference of the outputs of `standard` and of its twin with BN at
      every layer (`bn_twin`), in train mode; 'loss_std' and 'loss_twin': the two losses;
    - 'ratio': per unit of each layer in `layers`, ||dL^/dy_j||^2 / ||dL/dy_j||^2, the BN twin's gradient
      (BN at that layer only, so that everything downstream is the same function) over the standard
      network's. With gamma_j = sigma_j there is no rescaling, and the ratio is ||Pi g_j||^2 / ||g_j||^2 <= 1:
      the reduction of Theorem 4.1 is the projection, not the factor gamma/sigma. NaN for a unit whose
      gradient is 0 (e.g. behind dead ReLUs); 'layer': each ratio's layer;
    - 'g_err': the largest relative difference between the standard dL/dy_j and the twin's dL/dz_j."""
    def grad_at(model, layer):
        saved = {}

        def leaf(_m, _i, out):
            saved["y"] = out.detach().requires_grad_(True)
            return saved["y"]
        with isolated(model):
            model.train()
            h = model.blocks[layer - 1].layer.register_forward_hook(leaf)
            try:
                (g,) = torch.autograd.grad(loss_fn(model(x), target), saved["y"])
            finally:
                h.remove()
        return _as_units(g)

    full = bn_twin(standard, x, eps=eps)
    with isolated(standard), torch.no_grad():
        standard.train()
        out_s, out_t = standard(x), full(x)
    ratios, which, g_err = [], [], 0.0
    for layer in layers:
        twin = bn_twin(standard, x, [layer], eps)
        g_std = grad_at(standard, layer)
        lg = layer_gradients(twin, layer, x, target, loss_fn, eps=eps)
        g_err = max(g_err, float((g_std - lg.g).abs().max() / g_std.abs().max()))
        norm2 = g_std.pow(2).sum(0)
        ratios.append(torch.where(norm2 > 0, lg.grad_y.pow(2).sum(0) / norm2, torch.nan))
        which.append(torch.full((len(norm2),), layer))
    return {"layer": torch.cat(which), "out_err": float((out_s - out_t).abs().max() / out_s.abs().max()), "g_err": g_err,
            "ratio": torch.cat(ratios), "loss_std": float(loss_fn(out_s, target)),
            "loss_twin": float(loss_fn(out_t, target))}
