"""bnopt: reproducing Santurkar et al. (2018), "How Does Batch Normalization Help Optimization?".

The package is in layers whose imports only point down (tests/test_layout.py enforces it):

  bnopt.nets       normalizations and the networks (VGG for CIFAR-10, deep linear networks)
  bnopt.measure    measurements on any model: gradient ICS, the landscape, Hessian extremes and density
  bnopt.theory     BN from first principles and the paper's Section 4 results, checked numerically
  bnopt.analysis   summaries over seeds, verdicts, correlations (numbers only, no torch)
  bnopt.runs       a run declared as data (RunConfig), training, the run cache, workers, Slurm, bundles
  bnopt.book       the report: parameters, grids, claims, figures, the build, one module per chapter

This module is the public surface: the measurement API and the run API, flat.
"""
from bnopt._version import __version__
from bnopt.measure import (density_moment, gradient_ics, hessian_extremes, isolated, landscape, outlier_ratio,
                           spectral_density, with_population_statistics)
from bnopt.runs.config import DataConfig, ModelConfig, OptimConfig, ProbeSpec, RunConfig, dln_config, vgg_config
from bnopt.runs.launch import run, run_seeds

__all__ = ["__version__",
           # measurements on any model
           "gradient_ics", "landscape", "hessian_extremes", "spectral_density", "with_population_statistics",
           "isolated", "density_moment", "outlier_ratio",
           # runs declared as data
           "RunConfig", "ModelConfig", "DataConfig", "OptimConfig", "ProbeSpec", "vgg_config", "dln_config",
           "run", "run_seeds"]
