"""`run(config)`: a cached training run. `run_seeds(config, seeds)`: the same config over seeds.

The cache key covers the full RunConfig (model, normalization, data, optimizer, steps, seed, probes
and their cadence, precision, cache version) plus the fingerprint of the data's pixels, so the
JPEG copy and the canonical CIFAR-10 never share an entry.
"""
from __future__ import annotations

import time

import torch

from .cache import RunCache, git_commit, library_versions, numerics
from .config import RunConfig, canonical_json
from .data import Task, prepare
from .progress import message
from .train import resolve_device, train

_TASKS: dict[str, Task] = {}   # data already on a device, per process


def get_task(cfg: RunConfig, device: torch.device) -> Task:
    """The config's data on the device, prepared once per process. Up to two datasets stay
    resident (CIFAR-10 and the DLN's 1000 points alternate within one chapter's grid)."""
    k = canonical_json([cfg.data.__dict__, str(device)])
    if k not in _TASKS:
        if len(_TASKS) >= 2:
            _TASKS.pop(next(iter(_TASKS)))
        _TASKS[k] = prepare(cfg.data, device)
    return _TASKS[k]


def describe(cfg: RunConfig) -> str:
    m, o = cfg.model, cfg.optim
    size = f"w{m.width:g}" if m.arch != "dln" else f"d{m.depth}"
    return f"{m.arch}-{size} norm={m.norm} lr={o.lr:g} seed={cfg.seed}"


def run(cfg: RunConfig, *, device: str | torch.device | None = None, force: bool = False,
        cache: RunCache | None = None) -> dict:
    """Return the run's result from the cache, or train it and cache it. result['meta'] holds its
    provenance (config key, git commit, versions, device, wall time, whether it came from cache)."""
    device = resolve_device(device)
    cache = cache or RunCache()
    task = get_task(cfg, device)
    material = {"config": cfg.key_dict(), "data_fingerprint": task.fingerprint}
    key = cache.key(material)
    if not force:
        hit = cache.load(key)
        if hit is not None:
            hit["meta"]["from_cache"] = True
            return hit
    message(f"training {describe(cfg)} [{key}] on {device}")
    t0 = time.time()
    result = train(cfg, task=task, device=device, label=describe(cfg))
    meta = {"git_commit": git_commit(), "versions": library_versions(), "device": result["device"],
            "device_name": result["device_name"], "wall_time_s": result["wall_time_s"],
            "threads": torch.get_num_threads(), "numerics": numerics(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t0)),
            "description": describe(cfg)}
    result["meta"] = {**cache.save(key, material, result, meta), "from_cache": False}
    return result


def run_seeds(cfg: RunConfig, seeds, **kwargs) -> list[dict]:
    return [run(cfg.replace(seed=int(s)), **kwargs) for s in seeds]


def fixed_batch(cfg: RunConfig, n: int, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random pick of `n` training inputs and targets of the run's data (on the CPU): the same
    batch for every network a chapter compares at one point."""
    task = get_task(cfg, torch.device("cpu"))
    idx = torch.randperm(len(task.train), generator=torch.Generator().manual_seed(seed))[:n]
    return task.train.inputs(idx), task.train.y[idx]

