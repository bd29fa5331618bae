"""Normalization layers, chosen by name from a registry.

Models never import a normalization class: they call `make_norm(name, num_features, spatial)`.
A later chapter adds a scheme (noisy BN, l_p, layer/group norm) with `@register("name")`, and every
model can use it at once.

A factory takes (num_features, spatial, **kwargs) and returns an nn.Module; `spatial` is True for
conv feature maps (N, C, H, W), where statistics run over the batch *and* H, W (per channel), and
False for fully connected features (N, C).
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn

NORMS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def deco(factory: Callable[..., nn.Module]):
        if name in NORMS:
            raise ValueError(f"normalization {name!r} is already registered")
        NORMS[name] = factory
        return factory
    return deco


def available() -> list[str]:
    return sorted(NORMS)


def check_norm(name: str) -> None:
    if name not in NORMS:
        raise ValueError(f"unknown normalization {name!r}; valid choices: {', '.join(available())}")


def check_norm_kwargs(name: str, kwargs: dict) -> None:
    """Options a normalization does not take are errors that list the options it does take.

    >>> check_norm_kwargs("l2", {"centred": True})
    Traceback (most recent call last):
    ...
    ValueError: normalization 'l2' has no option 'centred'; its options: eps, momentum, affine, centered
    """
    check_norm(name)
    params = inspect.signature(NORMS[name]).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return                                           # a wrapper passing options on (checked where they land)
    options = [n for n in params if n not in ("num_features", "spatial")]
    for k in kwargs:
        if k not in options:
            raise ValueError(f"normalization {name!r} has no option {k!r}; its options: {', '.join(options) or 'none'}")


def make_norm(name: str, num_features: int, spatial: bool, **kwargs) -> nn.Module:
    check_norm_kwargs(name, kwargs)
    return NORMS[name](num_features, spatial, **kwargs)


@register("none")
def _none(num_features: int, spatial: bool) -> nn.Module:
    return nn.Identity()


@register("batch")
def _batch(num_features: int, spatial: bool, eps: float = 1e-5, momentum: float = 0.1,
           affine: bool = True) -> nn.Module:
    """torch BatchNorm: batch statistics in training, running statistics in eval.

    eps and momentum are PyTorch's defaults (the paper does not give them; TF's are 1e-3 and 0.99,
    i.e. momentum 0.01 in PyTorch's convention). affine=True: learnable gamma, beta.
    """
    cls = nn.BatchNorm2d if spatial else nn.BatchNorm1d
    return cls(num_features, eps=eps, momentum=momentum, affine=affine)


def _noise_like(a: torch.Tensor, sample) -> torch.Tensor:
    """i.i.d. noise shaped like `a`, drawn into a contiguous buffer in a's own memory layout.
    (torch fills only contiguous tensors with its vectorised generator: drawing straight into a
    channels-last tensor took the slow element-by-element path, 1.8x a whole noisy-BN training step.)"""
    if a.dim() == 4 and not a.is_contiguous() and a.is_contiguous(memory_format=torch.channels_last):
        n, c, h, w = a.shape
        return sample((n, h, w, c), device=a.device, dtype=a.dtype).permute(0, 3, 1, 2)
    return sample(a.shape, device=a.device, dtype=a.dtype)


class NoisyNorm(nn.Module):
    """A norm followed by the paper's "noisy BN" noise (App. A.2.1, Algorithm 1), in training only.

    At every forward pass in training mode, per channel j: mu_j ~ U(-n_mu, n_mu) and
    sigma_j ~ U(1, n_sigma); per element: m ~ U(mu_j - r_mu, mu_j + r_mu) and s ~ N(sigma_j, r_sigma)
    (r_sigma read as the std) [choice]; then a <- s * a + m, applied to the inner norm's output (after
    BN's affine) [choice]. The noise comes from torch's global RNG, so a probe that restores the RNG
    state before a forward pass sees the same draw as the training step it measures.
    """

    def __init__(self, inner: nn.Module, n_mu: float = 0.5, n_sigma: float = 1.25, r_mu: float = 0.1,
                 r_sigma: float = 0.1):
        super().__init__()
        self.inner = inner
        self.n_mu, self.n_sigma, self.r_mu, self.r_sigma = n_mu, n_sigma, r_mu, r_sigma

    def forward(self, x):
        a = self.inner(x)
        if not self.training:
            return a
        c, shape = a.shape[1], [1, a.shape[1], *([1] * (a.dim() - 2))]
        mu = (torch.rand(c, device=a.device, dtype=a.dtype) * 2 - 1) * self.n_mu
        sigma = 1 + torch.rand(c, device=a.device, dtype=a.dtype) * (self.n_sigma - 1)
        m = _noise_like(a, torch.rand).mul_(2 * self.r_mu).add_(mu.view(shape) - self.r_mu)  # U(mu - r, mu + r)
        s = _noise_like(a, torch.randn).mul_(self.r_sigma).add_(sigma.view(shape))           # N(sigma, r_sigma)
        return torch.addcmul(m, s, a)                                                         # s * a + m


@register("noisy_batch")
def _noisy_batch(num_features: int, spatial: bool, n_mu: float = 0.5, n_sigma: float = 1.25,
                 r_mu: float = 0.1, r_sigma: float = 0.1, **bn_kwargs) -> nn.Module:
    """BatchNorm, then the paper's noise (the paper's "Standard + Noisy BatchNorm")."""
    return NoisyNorm(_batch(num_features, spatial, **bn_kwargs), n_mu, n_sigma, r_mu, r_sigma)


@register("noise_only")
def _noise_only(num_features: int, spatial: bool, n_mu: float = 0.5, n_sigma: float = 1.25,
                r_mu: float = 0.1, r_sigma: float = 0.1) -> nn.Module:
    """The same noise without BN: the control the paper mentions only in its text."""
    return NoisyNorm(nn.Identity(), n_mu, n_sigma, r_mu, r_sigma)


class LpNorm(nn.Module):
    """The paper's l_p normalizations (Sec. 3.3, App. A): per channel j, over the batch and the spatial
    positions (m values y_b),

        y_hat = (y - mu_B) / (N_p + eps),   N_p = (1/m sum_b |y_b|^p)^(1/p),   N_inf = max_b |y_b|,

    then the learnable affine gamma * y_hat + beta, as in BN.

    centered=False [choice]: N_p of the *uncentred* y, the paper's wording ("the average l_p norm of the
    activations computed before mean-shifting"); then l_2 divides by the root-mean-square sqrt(var + mu^2),
    not the std. centered=True: N_p of y - mu_B; l_2 is then BatchNorm with eps added to the std instead of
    the variance. eps is added to N_p [choice: the paper gives none]. Training uses batch statistics and
    updates running averages of mu_B and N_p with `momentum` (as BatchNorm's running statistics, PyTorch's
    convention); evaluation mode uses the running averages [choice: the paper does not say].
    """

    P_VALUES = (1.0, 2.0, float("inf"))

    def __init__(self, num_features: int, p: float, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, centered: bool = False):
        super().__init__()
        p = float(p)
        if p not in self.P_VALUES:
            raise ValueError(f"LpNorm p={p:g}: valid choices: 1, 2, inf")
        if not (eps >= 0 and 0 < momentum <= 1):
            raise ValueError(f"LpNorm needs eps >= 0 and 0 < momentum <= 1, got eps={eps}, momentum={momentum}")
        self.num_features, self.p, self.eps, self.momentum, self.centered = num_features, p, eps, momentum, centered
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_norm", torch.ones(num_features))

    def extra_repr(self) -> str:
        return f"{self.num_features}, p={self.p:g}, eps={self.eps:g}, momentum={self.momentum:g}, centered={self.centered}"

    def batch_norm_p(self, y: torch.Tensor, dims: list[int]) -> torch.Tensor:
        """N_p per channel of y over `dims`: the l_p norm over the m values / m^(1/p) (one fused reduction)."""
        m = y.numel() // y.shape[1]
        norm = torch.linalg.vector_norm(y, self.p, dims)
        return norm if self.p == float("inf") else norm / m ** (1 / self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims, shape = [0, *range(2, x.dim())], [1, x.shape[1], *([1] * (x.dim() - 2))]
        if self.training:
            mean = x.mean(dims)
            norm = self.batch_norm_p(x - mean.view(shape) if self.centered else x, dims)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_norm.lerp_(norm.detach(), self.momentum)
        else:
            mean, norm = self.running_mean, self.running_norm
        scale = 1 / (norm + self.eps)                       # per channel: y = x * scale + shift, one pass over x
        if self.weight is not None:
            scale = scale * self.weight
        shift = -mean * scale if self.bias is None else self.bias - mean * scale
        return torch.addcmul(shift.view(shape), x, scale.view(shape))


def _lp(p: float):
    def factory(num_features: int, spatial: bool, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                centered: bool = False) -> nn.Module:
        return LpNorm(num_features, p, eps=eps, momentum=momentum, affine=affine, centered=centered)
    factory.__doc__ = f"The paper's l_{p:g} normalization (LpNorm)."
    return factory


register("l1")(_lp(1))
register("l2")(_lp(2))
register("linf")(_lp(float("inf")))


def group_count(num_features: int, groups: int = 32, min_group_size: int = 2) -> int:
    """The number of groups of group norm for `num_features` channels: the largest divisor of the channel
    count that is at most `groups` (Wu & He's default 32) and leaves at least `min_group_size` channels per
    group [choice: the book's narrow networks have 8 to 64 channels, and a group of one channel would be
    instance norm].

    >>> [group_count(c) for c in (8, 10, 16, 64, 512)]
    [4, 5, 8, 32, 32]
    """
    if groups < 1 or min_group_size < 1:
        raise ValueError(f"group norm needs groups >= 1 and min_group_size >= 1, got {groups}, {min_group_size}")
    return max(g for g in range(1, min(groups, max(1, num_features // min_group_size)) + 1) if num_features % g == 0)


@register("layer")
def _layer(num_features: int, spatial: bool, eps: float = 1e-5, affine: bool = True) -> nn.Module:
    """Layer norm (Ba et al. 2016) as PyTorch's GroupNorm with one group: per sample, statistics over every
    channel and position; a per-channel affine (as BN's). For (N, C) features it equals nn.LayerNorm(C)."""
    return nn.GroupNorm(1, num_features, eps=eps, affine=affine)


@register("group")
def _group(num_features: int, spatial: bool, groups: int = 32, min_group_size: int = 2, eps: float = 1e-5,
           affine: bool = True) -> nn.Module:
    """Group norm (Wu & He 2018), PyTorch's GroupNorm with `group_count(...)` groups."""
    return nn.GroupNorm(group_count(num_features, groups, min_group_size), num_features, eps=eps, affine=affine)
