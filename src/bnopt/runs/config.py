"""Experiment configuration: one dataclass tree declares a run completely.

A run is declared as data (cifar10-fast style): everything that can change its result lives in
`RunConfig`, and the run cache (`bnopt.runs.cache`) is keyed by a hash of `RunConfig.key_dict()`.
Defaults follow the paper's protocol (Santurkar et al. 2018, Appendix A.1) where it is explicit,
and are marked [choice] where the paper is silent and this project chose.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from bnopt.measure.catalog import PROBES
from bnopt.nets.models import ARCHS
from bnopt.nets.norms import available, check_norm_kwargs


class ConfigError(ValueError):
    """A configuration value is out of its allowed range or of the wrong type; the message names the
    field, the bad value and what is allowed."""


def _int(where: str, v, lo: int | None = None) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{where} must be an integer{f' >= {lo}' if lo is not None else ''}, got {v!r}")
    if lo is not None and v < lo:
        raise ConfigError(f"{where} must be >= {lo}, got {v!r}")


def _num(where: str, v, *, gt: float | None = None, ge: float | None = None, lt: float | None = None) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{where} must be a finite number, got {v!r}")
    if gt is not None and not v > gt:
        raise ConfigError(f"{where} must be > {gt:g}, got {v!r}")
    if ge is not None and not v >= ge:
        raise ConfigError(f"{where} must be >= {ge:g}, got {v!r}")
    if lt is not None and not v < lt:
        raise ConfigError(f"{where} must be < {lt:g}, got {v!r}")


def _choice(where: str, v, choices) -> None:
    if v not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(str, choices))}; got {v!r}")


def _type(where: str, v, t, what: str) -> None:
    if not isinstance(v, t):
        raise ConfigError(f"{where} must be {what}, got {v!r}")

# Bump when a change to the code alters results of an existing config (invalidates the run cache).
PRECISIONS = ("fp32", "tf32", "bf16")   # 'tf32' and 'bf16' act on CUDA only (bnopt.runs.train.precision)
CACHE_VERSION = 2   # 2: feature-major DLN layers (same maths, other rounding)


@dataclass
class ModelConfig:
    arch: str = "vgg16"          # 'vgg11' | 'vgg13' | 'vgg16' (CIFAR VGG) | 'dln' (deep linear net)
    norm: str = "none"           # normalization layer, a name in bnopt.nets.norms (e.g. 'none', 'batch')
    norm_kwargs: dict = field(default_factory=dict)  # passed to the norm factory, e.g. {'eps': 1e-5}
    width: float = 1.0           # VGG channel multiplier: 1.0 = 64..512 channels [paper: full width]
    head: str = "linear"         # VGG classifier: 'linear' = Linear(C, 10) | 'mlp' = C-512-512-10 [choice]
    conv_bias: bool = True       # bias on conv/linear layers of the VGG (zero-initialised, as in TF) [choice]
    depth: int = 25              # DLN: number of square linear layers [paper: 25]
    dim: int = 10                # DLN: width of every layer [paper: 10]
    num_classes: int = 10
    memory_format: str = "channels_last"  # VGG tensors: 'channels_last' (NHWC; 14-15 % faster steps and
                                 # 1.4-2x faster evaluation with oneDNN on a 2-core AVX2 CPU, `make bench`)
                                 # | 'contiguous' (NCHW). Same maths, other rounding: part of the key.

    def __post_init__(self):
        _choice("model.arch", self.arch, ARCHS)
        _choice("model.norm", self.norm, available())
        _type("model.norm_kwargs", self.norm_kwargs, dict, "a dict")
        try:
            check_norm_kwargs(self.norm, self.norm_kwargs)
        except ValueError as e:
            raise ConfigError(f"model.norm_kwargs: {e}") from None
        _num("model.width", self.width, gt=0)
        _choice("model.head", self.head, ("linear", "mlp"))
        _type("model.conv_bias", self.conv_bias, bool, "true or false")
        _int("model.depth", self.depth, 1)
        _int("model.dim", self.dim, 1)
        _int("model.num_classes", self.num_classes, 2)
        _choice("model.memory_format", self.memory_format, ("channels_last", "contiguous"))


@dataclass
class DataConfig:
    dataset: str = "cifar10"     # 'cifar10' | 'dln' (synthetic Gaussian regression, paper App. A.1)
    train_subset: int = 0        # use only the first N (seeded shuffle) training images; 0 = all 50k
    augment: bool = False        # random crop (pad 4) + horizontal flip [paper: none]
    standardize: bool = True     # per-channel mean/std from the training set [choice]
    eval_train_subset: int = 10000  # images of the training set re-evaluated in eval mode at eval steps
    dln_samples: int = 1000      # DLN: fixed dataset size [paper: 1000]
    data_seed: int = 0           # seed of the synthetic DLN data (x ~ N(0, I), A_ij ~ N(0, 1))
    eval_test: bool = True       # evaluate on the test set at eval steps (False: runs read for their training loss only)

    def __post_init__(self):
        _choice("data.dataset", self.dataset, ("cifar10", "dln"))
        _int("data.train_subset", self.train_subset, 0)
        _type("data.augment", self.augment, bool, "true or false")
        _type("data.standardize", self.standardize, bool, "true or false")
        _int("data.eval_train_subset", self.eval_train_subset, 0)
        _int("data.dln_samples", self.dln_samples, 1)
        _int("data.data_seed", self.data_seed, 0)
        _type("data.eval_test", self.eval_test, bool, "true or false")


@dataclass
class OptimConfig:
    lr: float = 0.1              # fixed learning rate [paper: 0.1 VGG, 1e-6 DLN]
    momentum: float = 0.0        # SGD momentum [paper: plain SGD]
    weight_decay: float = 0.0    # L2 coefficient added by the optimizer [paper: not mentioned]
    batch_size: int = 128        # examples per step [paper: 128; DLN: full batch]
    steps: int = 15000           # optimizer steps [paper: 15k VGG, 10k DLN]

    def __post_init__(self):
        _num("optim.lr", self.lr, gt=0)
        _num("optim.momentum", self.momentum, ge=0, lt=1)
        _num("optim.weight_decay", self.weight_decay, ge=0)
        _int("optim.batch_size", self.batch_size, 1)
        _int("optim.steps", self.steps, 1)


@dataclass
class ProbeSpec:
    name: str                    # a name in bnopt.measure.probes (e.g. 'activations')
    every: int = 100             # run before every `every`-th optimizer step after `start`
    kwargs: dict = field(default_factory=dict)
    start: int = 0               # the first step measured (0: before any update)
    extra: list = field(default_factory=list)   # further steps measured besides the cadence (e.g. densely early)
    label: str = ""              # the name its records go under (default: `name`); two probes of one kind need two

    def __post_init__(self):
        _choice("probe name", self.name, sorted(PROBES))
        _int(f"probes[{self.name}].every", self.every, 1)
        _type(f"probes[{self.name}].kwargs", self.kwargs, dict, "a dict")
        _int(f"probes[{self.name}].start", self.start, 0)
        _type(f"probes[{self.name}].extra", self.extra, list, "a list of steps")
        for i, s in enumerate(self.extra):
            _int(f"probes[{self.name}].extra[{i}]", s, 0)
        self.extra = sorted(set(int(s) for s in self.extra))
        _type(f"probes[{self.name}].label", self.label, str, "a string")

    @property
    def record(self) -> str:
        """The key of this probe's records in a run's result ('probes')."""
        return self.label or self.name

    def steps(self, total: int) -> list[int]:
        """The steps measured in a run of `total` steps (each before that step's update).

        >>> ProbeSpec("ics", every=40).steps(120), ProbeSpec("ics", every=40, start=30).steps(120)
        ([0, 40, 80], [30, 70, 110])
        >>> ProbeSpec("sharpness", every=500, extra=[50, 25, 100, 1000]).steps(1200)     # dense early, then the cadence
        [0, 25, 50, 100, 500, 1000]
        """
        return sorted(set(range(self.start, total, self.every)) | {s for s in self.extra if s < total})

    def due(self, step: int) -> bool:
        """Whether step `step` is measured (the membership test of `steps`, without a run length)."""
        return step >= self.start and (step - self.start) % self.every == 0 or step in self.extra


# Fields added after cache version 2, left out of the cache key while at these defaults (RunConfig.key_dict).
KEY_DEFAULTS = (("probes", "start", 0), ("data", "eval_test", True), ("probes", "extra", []), ("probes", "label", ""))


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    probes: list = field(default_factory=list)   # list[ProbeSpec]
    seed: int = 0                # initialisation, data order and any in-network noise
    eval_every: int = 500        # steps between test-set evaluations (the last step is always evaluated)
    divergence_factor: float = 1e4   # diverged when loss > factor * max(initial loss, 1), or non-finite
    precision: str = "fp32"      # 'fp32' | 'tf32' (CUDA matmul/conv in TF32) | 'bf16' (CUDA autocast)
    save_state: bool = False     # keep the final weights and buffers (state_dict) in the result
    cache_version: int = CACHE_VERSION

    def __post_init__(self):
        for name, t in (("model", ModelConfig), ("data", DataConfig), ("optim", OptimConfig)):
            _type(name, getattr(self, name), t, f"a {t.__name__}")
        _type("probes", self.probes, list, "a list of ProbeSpec")
        for p in self.probes:
            _type("probes[...]", p, ProbeSpec, "a ProbeSpec")
        records = [p.record for p in self.probes]
        if len(records) != len(set(records)):
            raise ConfigError(f"probes: two probes record under one name {sorted(r for r in set(records) if records.count(r) > 1)}"
                              f"; give one a label (ProbeSpec(..., label='...'))")
        _int("seed", self.seed, 0)
        _int("eval_every", self.eval_every, 0)
        _num("divergence_factor", self.divergence_factor, gt=1)
        _choice("precision", self.precision, PRECISIONS)
        _type("save_state", self.save_state, bool, "true or false")
        if self.optim.batch_size > 0 and self.data.dataset == "dln" and self.optim.batch_size > self.data.dln_samples:
            raise ConfigError(f"optim.batch_size must be <= data.dln_samples ({self.data.dln_samples}), "
                              f"got {self.optim.batch_size}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key_dict(self) -> dict:
        """What the run cache hashes: `to_dict()` without the fields added after cache version 2 while
        they hold their defaults (`KEY_DEFAULTS`), so that adding a field never renames existing runs."""
        d = self.to_dict()
        for section, name, default in KEY_DEFAULTS:
            for node in (d["probes"] if section == "probes" else [d[section]]):
                if node.get(name, default) == default:
                    node.pop(name, None)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        d = dict(d)
        return cls(
            model=ModelConfig(**d.pop("model", {})),
            data=DataConfig(**d.pop("data", {})),
            optim=OptimConfig(**d.pop("optim", {})),
            probes=[p if isinstance(p, ProbeSpec) else ProbeSpec(**p) for p in d.pop("probes", [])],
            **d,
        )

    def replace(self, **changes: Any) -> "RunConfig":
        """Copy with dotted-path changes: cfg.replace(**{'optim.lr': 0.5, 'seed': 1})."""
        d = self.to_dict()
        for key, value in changes.items():
            *parents, leaf = key.split(".")
            node = d
            for p in parents:
                if p not in node or not isinstance(node[p], dict):
                    raise KeyError(f"unknown config section {key!r}; sections: model, data, optim")
                node = node[p]
            if leaf not in node:
                raise KeyError(f"unknown config field {key!r}; valid here: {sorted(node)}")
            node[leaf] = value
        return RunConfig.from_dict(d)


def canonical_json(obj: Any) -> str:
    """Stable JSON text: sorted keys, no whitespace, floats by repr (so 0.1 and 1e-1 hash alike)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(d: dict, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(d).encode()).hexdigest()[:length]


def vgg_config(**changes: Any) -> RunConfig:
    """The paper's VGG/CIFAR-10 protocol (15k steps of plain SGD, batch 128, LR 0.1), with changes."""
    return RunConfig().replace(**changes)


def dln_config(**changes: Any) -> RunConfig:
    """The paper's deep-linear-network protocol (full-batch GD, LR 1e-6, 10k steps), with changes."""
    base = RunConfig(
        model=ModelConfig(arch="dln"),
        data=DataConfig(dataset="dln", standardize=False, eval_train_subset=0),
        optim=OptimConfig(lr=1e-6, batch_size=1000, steps=10000),
        eval_every=0,
    )
    return base.replace(**changes)
