"""The book's measurements at single points of its runs, registered with the measurement cache
(`bnopt.runs.measured`): computed once, cached and committed beside the runs, read by every build.

    hessian_spectrum  the SLQ density of a VGG's minibatch Hessian, at initialisation or trained (smoothness chapter)
    direction_point   the landscape along the gradient and along a random direction at one point (smoothness chapter)
    theorem42         Theorem 4.2's two sides at sampled units of a BN network, float64 (BN-math chapter)
    observation43     Observation 4.3's twin of a standard network at every layer, float64 (BN-math chapter)

Each is a function of one run and its parameters; the chapters call `point(name, cfg, result, **params)`.
"""
from __future__ import annotations

import numpy as np
import torch

from bnopt import theory as bnmath
from bnopt.measure.curvature import density_moment, spectral_density
from bnopt.measure.landscape import LandscapeProbe
from bnopt.measure.probes import ProbeContext
from bnopt.runs.launch import fixed_batch
from bnopt.runs.measured import measured, register
from bnopt.runs.train import model_of


def _network(cfg, result, when: str, **model_changes):
    if when not in ("initialisation", "trained"):
        raise ValueError(f"when={when!r}: allowed: initialisation, trained")
    return model_of(cfg, result if when == "trained" else None, **model_changes)


def _theory_inputs(cfg, result, p: dict):
    """The float64 network in train mode (NCHW memory format: the float64 checks' path; the same weights) and the
    fixed float64 batch of p['batch'] training images drawn with p['batch_seed']."""
    net = _network(cfg, result, p["when"], memory_format="contiguous").double().train()
    x, y = fixed_batch(cfg, p["batch"], p["batch_seed"])
    return net, x.double(), y


def hessian_spectrum(cfg, result, p: dict) -> dict:
    """`spectral_density` of the run's network (p['when']) on a fixed training batch of p['batch'] images, with
    p['iters'] Lanczos steps from p['vectors'] start vectors drawn with p['seed'], BN in train mode or not."""
    import torch.nn.functional as F

    x, y = fixed_batch(cfg, p["batch"])
    return spectral_density(_network(cfg, result, p["when"]), x, y, F.cross_entropy, p["iters"], p["vectors"],
                            p["train_mode"], seed=p["seed"])


def spectrum_summary(v: dict) -> dict:
    return {"moment1": density_moment(v, 1), "moment2": density_moment(v, 2), "largest_node": float(v["nodes"].max())}


def direction_point(cfg, result, p: dict) -> dict:
    """{direction: {'beta', 'loss_width', 'g_max'}}: `LandscapeProbe` at the run's network (p['when']) along each of
    its directions, step sizes p['etas'], each the median over p['batches'] fixed training batches of
    p['batch_size'] images (batch b drawn with seed 1000 + b), BN in train mode."""
    import torch.nn.functional as F

    model = _network(cfg, result, p["when"])                  # built once for both directions
    batches = [fixed_batch(cfg, p["batch_size"], seed=1000 + b) for b in range(p["batches"])]
    out = {}
    for direction in LandscapeProbe.DIRECTIONS:
        probe = LandscapeProbe(model, p["etas"], direction=direction, seed=p["seed"])
        recs = [probe(ProbeContext(b, model, x, y, None, F.cross_entropy)) for b, (x, y) in enumerate(batches)]
        out[direction] = {"beta": float(np.median([r["beta"] for r in recs])),
                          "loss_width": float(np.median([float(r["loss"].max() - r["loss"].min()) for r in recs])),
                          "g_max": float(np.median([float(r["grad_diff"].max()) for r in recs]))}
    return out


def direction_summary(v: dict) -> dict:
    return {f"{d}.{k}": x for d, per in v.items() for k, x in per.items()}


def theorem42(cfg, result, p: dict) -> dict:
    """{'lhs', 'rhs', 'uHu', 'gHg'}: `theory.theorem42` (eps 0) at p['units_per_layer'] units of each layer of
    p['layers'] (drawn with the layer number as seed), concatenated in layer order."""
    net, xb, yb = _theory_inputs(cfg, result, p)
    parts = []
    for layer in p["layers"]:
        n_units = net.blocks[layer - 1].layer.weight.shape[0]
        units = torch.randperm(n_units, generator=torch.Generator().manual_seed(layer))[:p["units_per_layer"]].tolist()
        parts.append(bnmath.theorem42(net, layer, xb, yb, units, eps=0.0))
    return {k: torch.cat([q[k] for q in parts]) for k in parts[0]}


def observation43(cfg, result, p: dict) -> dict:
    """`theory.observation43` of the (standard) network at every layer."""
    net, xb, yb = _theory_inputs(cfg, result, p)
    return bnmath.observation43(net, xb, yb, range(1, len(net.blocks) + 1))


def tensor_summary(v: dict) -> dict:
    """The sum of every float tensor and every number of a flat result (what a recheck compares)."""
    return {k: float(x.double().sum()) if isinstance(x, torch.Tensor) else float(x) for k, x in v.items()
            if isinstance(x, (torch.Tensor, int, float)) and not (isinstance(x, torch.Tensor) and not x.is_floating_point())}


def trained(p: dict) -> bool:
    """Whether a measurement with params `p` reads the run's trained weights (p['when'] == 'trained'), which puts the
    result's digest in its cache key; at initialisation it reads the run's config only."""
    return p.get("when") == "trained"


def register_all() -> None:
    """Register the book's measurements (at import; again for a command that rechecks committed entries)."""
    register("hessian_spectrum", hessian_spectrum, spectrum_summary, trained)
    register("direction_point", direction_point, direction_summary, trained)
    register("theorem42", theorem42, tensor_summary, trained)
    register("observation43", observation43, tensor_summary, trained)


register_all()


def point(name: str, cfg, result: dict, **params) -> dict:
    """Measurement `name` on one run, from the measurement cache or computed now (and cached)."""
    return measured(name, cfg, result, params)
