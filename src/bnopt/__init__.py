"""bnopt: reproducing Santurkar et al. (2018), "How Does Batch Normalization Help Optimization?".

One concept per module:
  config    RunConfig: a run declared as data            data      CIFAR-10 / DLN data on the device
  norms     normalization registry ('none', 'batch', ..)  models    CIFAR VGG, deep linear network
  train     the SGD loop, divergence as a result          probes    measurements during training
  cache     on-disk run cache keyed by config hash        runs      run(cfg), run_seeds(cfg, seeds)
  summary   aggregation over seeds                        plotting  shared figures
  bnmath    BN from first principles, Sec. 4 theorems    curvature HVPs, Lanczos extreme eigenvalues
  landscape loss/gradient along the step (Figs 4, 10, 11)    ics   Definition 2.1 as a probe
  experiments  chapter grids as data, GPU CLI           build     the book pipeline
  report    numbers glued into the chapters' prose        progress  progress lines for a terminal
"""
__version__ = "0.1.0"

from .config import DataConfig, ModelConfig, OptimConfig, ProbeSpec, RunConfig, dln_config, vgg_config  # noqa: E402,F401
from .runs import run, run_seeds  # noqa: E402,F401
from . import curvature, ics, landscape  # noqa: E402,F401  (register their probes)
