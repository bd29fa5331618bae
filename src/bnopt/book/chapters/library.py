"""Page "Measuring your own model": the package's measurements applied to a network it did not define
(a torchvision classifier), through the public functions a reader would call on their own model.

`measure` runs every measurement once and checks that the model came back bit-identical; the page
shows the code that calls it, the tables, and the rendered docstrings of the functions it uses.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from bnopt.book import plotting as P
from bnopt.measure import (DIRECTIONS, density_moment, gradient_ics, hessian_extremes, landscape, model_state_equal,
                           outlier_ratio, spectral_density, with_population_statistics)
from bnopt.runs.config import DataConfig, RunConfig
from bnopt.runs.launch import fixed_batch


def torchvision_model(name: str, num_classes: int = 10, seed: int = 0) -> torch.nn.Module:
    """torchvision.models.<name>(num_classes=...) with seeded initial weights; a clear error otherwise."""
    import torchvision.models as tvm

    builders = sorted(n for n in tvm.list_models(module=tvm))
    if name not in builders:
        raise ValueError(f"unknown torchvision classifier {name!r}; valid choices include "
                         f"{', '.join(b for b in builders if b.startswith(('resnet', 'shufflenet', 'vgg')))}")
    torch.manual_seed(seed)
    return tvm.get_model(name, weights=None, num_classes=num_classes)


def cifar_batch(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` standardized CIFAR-10 training images (the book's data) and their labels, a fixed random pick."""

    return fixed_batch(RunConfig(data=DataConfig(eval_train_subset=0)), n, seed)


def measure(model, x, y, lr: float, layers: list[str], etas: list[float], hessian_iters: int, slq_iters: int,
            slq_vectors: int, calibration) -> dict:
    """Every measurement of the page on (model, x, y): gradient ICS at `layers` for an SGD step of `lr`;
    the landscape along the gradient and along a random direction at step sizes `etas`; the extreme
    Hessian eigenvalues and the SLQ density in train mode and, on a copy with population statistics from
    `calibration` (a list of batches), in eval mode. 'unchanged' says whether the model's state dict is
    bit-identical afterwards."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss_fn = F.cross_entropy
    out = {"ics": gradient_ics(model, x, y, loss_fn, layers, lr=lr)}
    out["landscape"] = {d: landscape(model, x, y, loss_fn, etas, direction=d) for d in DIRECTIONS}
    population = with_population_statistics(model, calibration)
    out["curvature"], out["density"] = {}, {}
    for mode, net, train_mode in (("train", model, True), ("eval", population, False)):
        out["curvature"][mode] = hessian_extremes(net, x, y, loss_fn, hessian_iters, train_mode=train_mode)
        out["density"][mode] = spectral_density(net, x, y, loss_fn, slq_iters, slq_vectors, train_mode=train_mode)
    out["unchanged"] = model_state_equal(before, model.state_dict())
    return out


def tables(m: dict) -> dict:
    """{name: (header, rows)} of the page: ICS per layer, landscape per direction, curvature per mode."""
    ics = m["ics"]
    t_ics = (["layer", "‖G − G′‖", "cos(G, G′)", "input shift (W2/σ)"],
             [[n, f"{float(a):.3g}", f"{float(c):.4f}", f"{float(s):.3g}"]
              for n, a, c, s in zip(ics["layers"], ics["l2"], ics["cos"], ics["shift"])])
    t_land = (["direction", "loss at w", "loss range over η", "largest ‖∇L(w) − ∇L(w − ηd)‖", "β"],
              [[d, f"{r['loss0']:.4f}", f"{float(r['loss'].min()):.4f} to {float(r['loss'].max()):.4f}",
                f"{float(r['grad_diff'].max()):.3g}", f"{r['beta']:.3g}"] for d, r in m["landscape"].items()])
    t_curv = (["BN statistics", "λ_max", "λ_min", "RMS eigenvalue (SLQ)", "λ_max / RMS"],
              [[f"{mode} mode ({'batch' if mode == 'train' else 'population'})", f"{c['top']:.4g}", f"{c['bottom']:.4g}",
                f"{density_moment(m['density'][mode], 2) ** 0.5:.3g}", f"{outlier_ratio(m['density'][mode]):.3g}"]
               for mode, c in m["curvature"].items()])
    return {"ics": t_ics, "landscape": t_land, "curvature": t_curv}


def density_figure(m: dict, title: str):
    """The SLQ densities in train and eval mode, each on its own range (log density)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, (mode, d) in zip(axes, m["density"].items()):
        P.density_panel(ax, [d], "C0" if mode == "train" else "C3", f"{title}: {mode} mode")
    fig.tight_layout()
    plt.close(fig)
    return fig


def glued(m: dict, model, x) -> dict:
    """Prose values: parameter count, batch shape, the bit-identical check, the ratios the text quotes."""
    cur = m["curvature"]
    land = m["landscape"]
    return {"lib_params": f"{sum(p.numel() for p in model.parameters()):,}",
            "lib_batch": " × ".join(str(s) for s in x.shape),
            "lib_unchanged": "bit-identical" if m["unchanged"] else "**changed (a defect: please report it)**",
            "lib_eval_over_train": f"{cur['eval']['top'] / cur['train']['top']:.3g}",
            "lib_beta_ratio": f"{land['gradient']['beta'] / land['random']['beta']:.3g}",
            "lib_ics_cos_min": f"{float(np.min(m['ics']['cos'].numpy())):.4f}"}
