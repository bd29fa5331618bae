"""`run(config)`: a cached training run. `run_seeds(config, seeds)`: the same config over seeds.

The cache key covers the full RunConfig (model, normalization, data, optimizer, steps, seed, probes
and their cadence, precision, cache version) plus the fingerprint of the data's pixels, so the
JPEG copy and the canonical CIFAR-10 never share an entry.
"""
from __future__ import annotations

import time

import torch

from bnopt.runs.cache import RunCache, provenance
from bnopt.runs.config import RunConfig, canonical_json
from bnopt.runs.data import Task, prepare
from bnopt.runs.progress import message
from bnopt.runs.train import Checkpoints, resolve_device, train

# When a run checkpoints (bnopt.runs.train.Checkpoints): at the first multiple of CHECKPOINT_EVERY steps after each
# CHECKPOINT_INTERVAL_S seconds of training. A killed run resumes from its last checkpoint and loses at most about a
# minute; a run shorter than that (every quick run but a few) never writes one. A save of a DLN run's state with all
# its probe records (1.7 MB) takes a few tens of milliseconds.
CHECKPOINT_EVERY = 100
CHECKPOINT_INTERVAL_S = 60.0

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
        cache: RunCache | None = None, checkpoint_every: int | None = CHECKPOINT_EVERY,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S, stop_at: float | None = None) -> dict:
    """Return the run's result from the cache, or train it and cache it. result['meta'] holds its
    provenance (config key, git commit, versions, device, wall time, whether it came from cache). While it
    trains, the run checkpoints at the first multiple of `checkpoint_every` steps (None: never) after each
    `checkpoint_interval_s` seconds, and resumes from its checkpoint when an earlier attempt was killed. At `stop_at` (time.time()) it checkpoints and raises train.RunStopped."""
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
    every = checkpoint_every or (cfg.optim.steps if stop_at is not None else None)   # a stop needs a checkpoint
    ckpt = Checkpoints(cache.checkpoint_path(key), every, checkpoint_interval_s) if every else None
    resumed = " (resuming from its checkpoint)" if ckpt and ckpt.path.is_file() else ""
    message(f"training {describe(cfg)} [{key}] on {device}{resumed}")
    t0 = time.time()
    result = train(cfg, task=task, device=device, label=describe(cfg), checkpoints=ckpt, stop_at=stop_at)
    meta = provenance(describe(cfg), t0, result["wall_time_s"], device=result["device"],
                      device_name=result["device_name"])
    result["meta"] = {**cache.save(key, material, result, meta), "from_cache": False}
    if ckpt:
        ckpt.path.unlink(missing_ok=True)
    return result


def run_seeds(cfg: RunConfig, seeds, **kwargs) -> list[dict]:
    return [run(cfg.replace(seed=int(s)), **kwargs) for s in seeds]


def fixed_batch(cfg: RunConfig, n: int, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random pick of `n` training inputs and targets of the run's data (on the CPU): the same
    batch for every network a chapter compares at one point."""
    task = get_task(cfg, torch.device("cpu"))
    idx = torch.randperm(len(task.train), generator=torch.Generator().manual_seed(seed))[:n]
    return task.train.inputs(idx), task.train.y[idx]

