"""BatchNorm from first principles, and the quantities of the paper's Section 4 theorems.

`batch_norm` is a functional BN whose backward pass is written out by hand (the paper's Fact C.1) in
a custom autograd Function; the tests check it against `torch.nn.functional.batch_norm` with
float64 `gradcheck`. The theorem helpers compute both sides of Theorems 4.1, 4.2 and 4.4 on any
layer of a `bnopt` model, from autograd gradients and Hessian-vector products. `OneNeuron` and the
`lemma45_*` helpers test Lemma 4.5 in the one-neuron model of Dannemann & Junike (2025).

Notation (paper Sec. 4.1): for unit j over a batch of m values, y_j (pre-BN), sigma_j its biased
batch std, yhat_j = (y_j - mu_j) / sigma_j, z_j = gamma * yhat_j + beta, g_j = dL/dz_j (the downstream
gradient), and dL^/dy_j the gradient of the BN network's loss with respect to y_j.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .probes import isolated, observe, per_unit


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


# --------------------------------------------------------------------------------------------------
# Lemma 4.5

def lemma45_gap(w0: torch.Tensor, w_star: torch.Tensor) -> dict:
    """The identity behind Lemma 4.5's proof: with k = <W*, W0> / ||W*||^2,
    ||W0 - k W*||^2 - ||W0 - W*||^2 = -(||W*||^2 - <W*, W0>)^2 / ||W*||^2."""
    w0, ws = w0.flatten().double(), w_star.flatten().double()
    k = (ws @ w0) / (ws @ ws)
    return {"k": float(k), "lhs": float((w0 - k * ws).pow(2).sum() - (w0 - ws).pow(2).sum()),
            "rhs": float(-((ws @ ws) - ws @ w0) ** 2 / (ws @ ws))}


def lemma45_sides(w0: torch.Tensor, w_star: torch.Tensor, bn_dir: torch.Tensor) -> dict:
    """Both sides of Lemma 4.5 at initialisation(s) w0 (d,) or (n, d), when the BN network's optima
    are the line {c * bn_dir : c != 0} (a single BN unit with a free gamma, see `OneNeuron`):
      lhs = ||w0 - W^*_BN||^2, the squared distance from w0 to the nearest BN optimum;
      rhs = ||w0 - W*||^2 - (||W*||^2 - <W*, w0>)^2 / ||W*||^2, as printed. Expanding the square shows
            it is the squared distance from w0 to the line through W*.
    The lemma claims lhs <= rhs whenever <w0, W*> > 0; `holds` allows a relative rounding slack."""
    w0, ws, u = w0.double(), w_star.double(), bn_dir.double() / bn_dir.double().norm()
    n2 = w0.pow(2).sum(-1)
    lhs = n2 - (w0 @ u) ** 2
    rhs = (w0 - ws).pow(2).sum(-1) - ((ws @ ws) - w0 @ ws) ** 2 / (ws @ ws)
    return {"lhs": lhs, "rhs": rhs, "holds": lhs <= rhs + 1e-10 * (n2 + ws @ ws)}


def line_angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angle in radians, in [0, pi/2], between the lines spanned by a and b (float64, robust near 0)."""
    a, b = a.double() / a.double().norm(), b.double() / b.double().norm()
    b = b if float(a @ b) >= 0 else -b
    return float(2 * torch.atan2((a - b).norm(), (a + b).norm()))


class OneNeuron:
    """One neuron with the identity activation on a dataset (X: m x d, targets t: m), squared loss.

    standard:  L(w[, b])          = sum_i (w.x_i [+ b] - t_i)^2      (bias only if `bias=True`)
    with BN:   L^(w, gamma, beta) = sum_i (gamma yhat_i + beta - t_i)^2,  yhat = BN(Xw) over the m
               points (batch mean, biased std, eps = 0), gamma and beta free.
    This is the setting of Dannemann & Junike (2025). Closed forms (for a non-constant Xw):
      * for fixed w the best affine is beta = mean(t), gamma = <yhat, t> / m, leaving
        L^ = ||t - mean(t)||^2 (1 - rho^2), rho the correlation of Xw with t; so L^ depends on the
        direction of w only, and its optima are the line through w_c = argmin ||Xc w - tc||
        (the centred least-squares fit, i.e. the fit *with* an intercept), w != 0;
      * the standard optimum W* is the least-squares fit without an intercept (with `bias=True`:
        with one, and then W* = w_c)."""

    def __init__(self, X: torch.Tensor, t: torch.Tensor, bias: bool = False):
        self.X, self.t, self.bias = X.double(), t.double().flatten(), bias
        m, d = self.X.shape
        if m != len(self.t):
            raise ValueError(f"X has {m} rows but t has {len(self.t)} targets")
        if torch.linalg.matrix_rank(self.X - self.X.mean(0)) < d:
            raise ValueError(f"the centred inputs have rank < d = {d} (need at least d + 1 points "
                             "in general position): the BN optimum is not a single line")

    def standard_loss(self, w: torch.Tensor, b=0.0) -> torch.Tensor:
        """L at weights w (d,), or at each row of w (n, d)."""
        return (w @ self.X.T + (b if self.bias else 0.0) - self.t).pow(2).sum(-1)

    def yhat(self, w: torch.Tensor) -> torch.Tensor:
        """BN(Xw) over the m points, eps = 0."""
        return _normalize((self.X @ w).unsqueeze(1), 0.0)[0].squeeze(1)

    def bn_loss(self, w: torch.Tensor, gamma, beta) -> torch.Tensor:
        return (gamma * self.yhat(w) + beta - self.t).pow(2).sum()

    def best_affine(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta) minimising the BN loss at fixed w."""
        return (self.yhat(w) * self.t).mean(), self.t.mean()

    @cached_property
    def _standard_optimum(self) -> torch.Tensor:
        A = torch.cat([self.X, torch.ones(len(self.t), 1, dtype=self.X.dtype)], 1) if self.bias else self.X
        return torch.linalg.lstsq(A, self.t.unsqueeze(1)).solution.squeeze(1)[: self.X.shape[1]]

    @cached_property
    def _bn_direction(self) -> torch.Tensor:
        Xc, tc = self.X - self.X.mean(0), self.t - self.t.mean()
        w = torch.linalg.lstsq(Xc, tc.unsqueeze(1)).solution.squeeze(1)
        return w / w.norm()

    def standard_optimum(self) -> torch.Tensor:
        """W*: the weights (not the bias) of the least-squares fit of the standard neuron."""
        return self._standard_optimum.clone()

    def bn_direction(self) -> torch.Tensor:
        """Unit vector u: the BN optima are {c u : c != 0} (c > 0 exactly when the best gamma > 0)."""
        return self._bn_direction.clone()

    def bn_min_loss(self) -> float:
        """The BN network's optimal loss, from the closed form at u."""
        u = self.bn_direction()
        return float(self.bn_loss(u, *self.best_affine(u)))

    def bn_gradient(self, w: torch.Tensor) -> torch.Tensor:
        """d L^ / d w at w, with gamma and beta at their best values for this w (the gradient in
        gamma and beta is then zero, so this is the whole gradient)."""
        w = w.detach().double().clone().requires_grad_(True)
        gamma, beta = self.best_affine(w.detach())
        (g,) = torch.autograd.grad(self.bn_loss(w, gamma, beta), w)
        return g

    def descend_bn(self, w0: torch.Tensor, steps: int = 3000, lr: float = 0.05) -> dict:
        """Plain gradient descent on L^ in (w, gamma, beta) jointly, from (w0, gamma=1, beta=0):
        an independent, numerical check of the closed-form optimum."""
        w = w0.detach().double().clone().requires_grad_(True)
        gb = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([w, gb], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            loss = self.bn_loss(w, gb[0], gb[1]) / len(self.t)
            loss.backward()
            opt.step()
        w, (gamma, beta) = w.detach(), gb.detach()
        return {"w": w, "gamma": float(gamma), "beta": float(beta),
                "loss": float(self.bn_loss(w, gamma, beta)), "angle_to_bn_line": line_angle(w, self.bn_direction())}


def lemma45_random_inits(problem: OneNeuron, n: int, generator: torch.Generator) -> dict:
    """Lemma 4.5 at n isotropic random initialisations w0 ~ N(0, I), each reflected so that
    <w0, W*> > 0 (the lemma's hypothesis). Returns per-draw lhs, rhs and whether the lemma holds."""
    ws = problem.standard_optimum()
    W0 = torch.randn(n, len(ws), generator=generator, dtype=torch.float64)
    return lemma45_sides(W0 * torch.sign(W0 @ ws).unsqueeze(1), ws, problem.bn_direction())


def random_one_neuron(m: int, d: int, generator: torch.Generator, input_mean: float = 1.0,
                      target_bias: float = 1.0, noise: float = 0.5, bias: bool = False) -> OneNeuron:
    """A random instance: inputs x ~ N(input_mean, I_d) (a non-zero mean, as after a ReLU), targets from
    a random linear teacher with an intercept, t = x.a + target_bias + noise * N(0, 1), a ~ N(0, I_d / d)."""
    X = torch.randn(m, d, generator=generator, dtype=torch.float64) + input_mean
    a = torch.randn(d, generator=generator, dtype=torch.float64) / math.sqrt(d)
    t = X @ a + target_bias + noise * torch.randn(m, generator=generator, dtype=torch.float64)
    return OneNeuron(X, t, bias=bias)


def lemma45_sweep(m: int, d: int, n_datasets: int, n_inits: int, seed: int = 0, **kw) -> dict:
    """Lemma 4.5 over `n_datasets` random instances (`random_one_neuron(m, d, **kw)`) and `n_inits`
    random initialisations each. Per dataset: the fraction of initialisations at which the lemma
    fails, and the angle between the line of W* and the line of BN optima (the lemma's proof needs 0).
    For isotropic w0 the failure probability is exactly 1/2 whenever that angle is not 0: the lemma
    holds iff |cos(w0, u)| >= |cos(w0, W*)|, and the projection of w0 on the plane of u and W* is
    isotropic, so the two bisectors of the lines split its directions in half."""
    gen = torch.Generator().manual_seed(seed)
    fail, angle = [], []
    for _ in range(n_datasets):
        p = random_one_neuron(m, d, gen, **kw)
        r = lemma45_random_inits(p, n_inits, gen)
        fail.append(1.0 - float(r["holds"].double().mean()))
        angle.append(line_angle(p.standard_optimum(), p.bn_direction()))
    return {"fail": torch.tensor(fail, dtype=torch.float64), "angle": torch.tensor(angle, dtype=torch.float64)}
