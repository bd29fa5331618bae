"""Normalization layers, chosen by name from a registry.

Models never import a normalization class: they call `make_norm(name, num_features, spatial)`.
A later chapter adds a scheme (noisy BN, l_p, layer/group norm) with `@register("name")`, and every
model can use it at once.

A factory takes (num_features, spatial, **kwargs) and returns an nn.Module; `spatial` is True for
conv feature maps (N, C, H, W), where statistics run over the batch *and* H, W (per channel), and
False for fully connected features (N, C).
"""
from __future__ import annotations

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


def make_norm(name: str, num_features: int, spatial: bool, **kwargs) -> nn.Module:
    check_norm(name)
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
