"""Measurements on any PyTorch model: one signature shape, (model, x, y, loss_fn, ...), BN mode stated explicitly,
and the model (weights, gradients, modes, RNG) left exactly as it was (`isolated`).

    gradient_ics(model, x, y, loss_fn, layers, lr=0.1)         Definition 2.1: G against G' after the earlier layers step
    landscape(model, x, y, loss_fn, etas, direction="gradient", train_mode=True)   loss and gradient along the step
    hessian_extremes(model, x, y, loss_fn, iters=20, train_mode=True)   top and bottom Hessian eigenvalues (Lanczos)
    spectral_density(model, x, y, loss_fn, iters=80, vectors=4, train_mode=True)   the Hessian's density (SLQ)
    with_population_statistics(model, batches)                  a copy whose BN statistics average `batches`
    isolated(model)                                             a block after which the model is as it was

The probes that record these during training (`bnopt.measure.catalog`) are adapters over the same functions.
"""
from bnopt.measure.curvature import density_moment, hessian_extremes, outlier_ratio, spectral_density
from bnopt.measure.ics import gradient_ics
from bnopt.measure.landscape import DIRECTIONS, landscape
from bnopt.measure.probes import isolated, model_state_equal, with_population_statistics

__all__ = ["gradient_ics", "landscape", "hessian_extremes", "spectral_density", "with_population_statistics",
           "isolated", "density_moment", "outlier_ratio", "model_state_equal", "DIRECTIONS"]
