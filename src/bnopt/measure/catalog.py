"""The probes a run can name (`ProbeSpec.name`), gathered here explicitly: which probes exist does not depend on
which modules happen to have been imported. A probe of your own is a class with a `name`, built as
`cls(model, **kwargs)` and called with a `ProbeContext` (bnopt.measure.probes); add it to PROBES below to let a
`RunConfig` name it."""
from __future__ import annotations

from torch import nn

from bnopt.measure.curvature import SharpnessProbe
from bnopt.measure.ics import ICSProbe
from bnopt.measure.landscape import LandscapeProbe
from bnopt.measure.probes import ActivationSampler, UnitStd, WeightNorm


def _catalog(*classes: type) -> dict[str, type]:
    out = {}
    for cls in classes:
        if cls.name in out:
            raise ValueError(f"probe {cls.name!r} is already in the catalog ({out[cls.name].__name__})")
        out[cls.name] = cls
    return out


PROBES: dict[str, type] = _catalog(ActivationSampler, WeightNorm, UnitStd, ICSProbe, LandscapeProbe, SharpnessProbe)


def build_probe(name: str, model: nn.Module, **kwargs):
    """The probe `name`, built on `model`; an unknown name is an error naming the valid ones."""
    if name not in PROBES:
        raise ValueError(f"unknown probe {name!r}; valid choices: {', '.join(sorted(PROBES))}")
    return PROBES[name](model, **kwargs)
