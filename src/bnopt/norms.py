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


def is_norm_layer(module: nn.Module) -> bool:
    """True for the modules make_norm returns for every name except 'none'."""
    return getattr(module, "_bnopt_norm", False)


def _tag(m: nn.Module) -> nn.Module:
    m._bnopt_norm = True
    return m


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
    return _tag(cls(num_features, eps=eps, momentum=momentum, affine=affine))
