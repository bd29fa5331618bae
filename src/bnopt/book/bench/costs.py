"""The bench, part 1: the machine, the book's settings on synthetic tasks of CIFAR-10's shapes, each component's
cost in units of a plain step, FLOP counts and the matrix-product peak; `run_seconds` estimates a run from them."""
from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from bnopt.book.experiments import (DLN_ETA_MULTIPLES, DLN_RIDGE_LAYERS, VGG_ETA_MULTIPLES, VGG_RIDGE_LAYERS, at_lr,
                                    book_probes, chapter_parameters)
from bnopt.measure.catalog import build_probe
from bnopt.measure.probes import ProbeContext
from bnopt.nets.models import build_model
from bnopt.runs.cache import RunCache
from bnopt.runs.config import RunConfig, canonical_json, dln_config, vgg_config
from bnopt.runs.data import Split, Task, make_dln_data
from bnopt.runs.numerics import cpu_info, numerics
from bnopt.runs.paths import data_home
from bnopt.runs.train import LOSSES, BatchSampler, evaluate, make_optimizer, sgd_step, train

KINDS = {  # name -> (arch family, normalization)
    "vgg": ("vgg", "none"), "vgg_bn": ("vgg", "batch"), "vgg_noisy_bn": ("vgg", "noisy_batch"),
    "dln": ("dln", "none"), "dln_bn": ("dln", "batch"),
}


# --------------------------------------------------------------------------------------------------
# The machine

def machine() -> dict:
    info = cpu_info()
    return {"cpu": info["model"] or platform.processor() or "", "vendor": info["vendor"], "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkldnn": torch.backends.mkldnn.is_available(), "numerics": numerics()}


# --------------------------------------------------------------------------------------------------
# Book settings and synthetic tasks

def book_settings(profile: str) -> dict:
    """The cadence and sizes of the profile's shared VGG and DLN runs (ICS chapter parameters)."""
    p = chapter_parameters("ics", profile)
    return {k: p[k] for k in ("arch", "width", "batch_size", "steps", "probe_every", "curvature_every",
                               "eval_every", "eval_train_subset", "dln_steps", "dln_probe_every",
                               "dln_curvature_every")}


def kind_config(kind: str, s: dict) -> RunConfig:
    family, norm = KINDS[kind]
    if family == "vgg":
        cfg = vgg_config(**{"model.arch": s["arch"], "model.width": s["width"], "model.norm": norm,
                            "optim.batch_size": s["batch_size"], "optim.steps": s["steps"],
                            "eval_every": s["eval_every"], "data.eval_train_subset": s["eval_train_subset"],
                            "probes": book_probes(s["probe_every"], s["curvature_every"], VGG_RIDGE_LAYERS,
                                                  VGG_ETA_MULTIPLES)})
        return at_lr(cfg, cfg.optim.lr, VGG_ETA_MULTIPLES)
    cfg = dln_config(**{"model.norm": norm, "optim.steps": s["dln_steps"], "probes": book_probes(
        s["dln_probe_every"], s["dln_curvature_every"], DLN_RIDGE_LAYERS, DLN_ETA_MULTIPLES)})
    return at_lr(cfg, cfg.optim.lr, DLN_ETA_MULTIPLES)


def synthetic_task(cfg: RunConfig) -> Task:
    """Random data of the real task's shapes and dtypes (timings do not depend on pixel values)."""
    g = torch.Generator().manual_seed(0)
    if cfg.model.arch == "dln":
        x, y, _ = make_dln_data(cfg.data.dln_samples, seed=cfg.data.data_seed)
        return Task(Split(x, y), {}, "half_sse", "bench", full_batch=True)
    mean = torch.full((1, 3, 1, 1), 0.47)
    std = torch.full((1, 3, 1, 1), 0.25)

    def split(n):
        return Split(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                     torch.randint(0, 10, (n,), generator=g), mean, std)
    evals = {"test": split(10000)}
    if cfg.data.eval_train_subset:
        evals["train_eval"] = split(cfg.data.eval_train_subset)
    return Task(split(10000), evals, "cross_entropy", "bench")   # gather cost does not depend on N


# --------------------------------------------------------------------------------------------------
# (a) per-component costs and the instrumented/plain ratio

def _setup(kind: str, s: dict, seed: int = 0):
    """The kind's config, a fresh model in training mode, synthetic data, SGD, a batch sampler and
    the loss: what one training step needs."""
    return setup_step(kind_config(kind, s), seed)


def setup_step(cfg: RunConfig, seed: int = 0):
    """(cfg, model in training mode, synthetic task, SGD, batch sampler, loss) for one training step of `cfg`."""
    torch.manual_seed(seed)
    model = build_model(cfg.model).train()
    task = synthetic_task(cfg)
    return (cfg, model, task, make_optimizer(model, cfg.optim),
            BatchSampler(len(task.train), cfg.optim.batch_size, seed=seed), LOSSES[task.loss])


def _timed(fn, n: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def component_costs(kind: str, s: dict, reps: int, probe_reps: int, eval_fraction: float = 1.0) -> dict:
    """Median seconds per call of each component, interleaved over `reps` rounds (the expensive
    probes and the evaluation in the first `probe_reps` rounds only). With eval_fraction < 1 the
    evaluation is timed on that fraction of each split's images and scaled up (its cost is linear
    in the number of images: one forward pass per chunk)."""
    cfg, model, task, opt, sampler, loss_fn = _setup(kind, s)
    probes = {spec.record: build_probe(spec.name, model, **spec.kwargs) for spec in cfg.probes}
    x, y = sampler.batch(task.train)
    inner = 10 if cfg.model.arch == "dln" else 3

    def step():
        xb, yb = sampler.batch(task.train)
        sgd_step(model, opt, loss_fn, xb, yb)

    comps = {"step": (lambda: step(), inner), "data": (lambda: sampler.batch(task.train), inner)}
    for name, probe in probes.items():
        comps[name] = (lambda p=probe: p(ProbeContext(1, model, x, y, opt, loss_fn)), 1)
    if task.evals:
        subsets = [Split(sp.x[: max(1, int(len(sp) * eval_fraction))], sp.y[: max(1, int(len(sp) * eval_fraction))],
                         sp.mean, sp.std) for sp in task.evals.values()]
        scale = sum(len(sp) for sp in task.evals.values()) / sum(len(sp) for sp in subsets)
        comps["eval"] = (lambda: [evaluate(model, sp, loss_fn) for sp in subsets], 1)
    cheap = {"step", "data", "activations"}  # every round; the others in the first probe_reps rounds
    for _ in range(3 * inner):              # warm-up: allocator, oneDNN primitive caches
        step()
    times = {k: [] for k in comps}
    for r in range(max(reps, 3)):
        for name, (fn, n) in comps.items():
            if (name in cheap) or (r < probe_reps and r < reps) or (name in ("ics", "landscape") and r < reps):
                times[name].append(_timed(fn, n))
    med = {k: statistics.median(v) for k, v in times.items()}
    if "eval" in med:
        med["eval"] *= scale
    plain = med["step"]
    steps = cfg.optim.steps
    calls = {spec.record: len(spec.steps(steps)) for spec in cfg.probes}
    if task.evals:
        calls["eval"] = math.ceil(steps / cfg.eval_every) if cfg.eval_every else 1   # + the final one
    return {"kind": kind, "config": describe_kind(cfg), "plain_step_s": plain, "eval_fraction": eval_fraction,
            "seconds": med, "x_plain": {k: v / plain for k, v in med.items()},
            "calls_per_run": calls, "steps_per_run": steps,
            "share_of_run": {k: med[k] * n / (plain * steps) for k, n in calls.items()},
            "ratio_estimated": run_ratio(med, calls, steps)}


def saved_bench() -> dict | None:
    """This machine's saved bench (the full one if there is one, else the quick one), or None."""
    for quick in (False, True):
        if default_out(quick).exists():
            return json.loads(default_out(quick).read_text())
    return None


def run_seconds(cfg: RunConfig, b: dict | None) -> float | None:
    """A rough single-thread estimate of a run's wall time on the machine a saved bench `b` measured: the
    plain step of its kind, scaled by width² and batch size from the bench's settings, times its steps and
    the kind's instrumented/plain ratio. None without a bench (or a kind it did not measure)."""
    if not b:
        return None
    s, m = b.get("settings", {}), cfg.model
    if m.arch == "dln":
        kind = "dln" if m.norm == "none" else "dln_bn"
        scale = 1.0
    else:
        kind = {"none": "vgg", "noisy_batch": "vgg_noisy_bn"}.get(m.norm, "vgg_bn")
        scale = (m.width / s.get("width", m.width)) ** 2 * cfg.optim.batch_size / s.get("batch_size", cfg.optim.batch_size)
    c = b.get("components", {}).get(kind)
    if not c:
        return None
    x = c.get("x_plain")
    if not x:                                   # an older bench: the kind's ratio at the bench's own cadence
        return cfg.optim.steps * c["plain_step_s"] * c.get("ratio_estimated", 1.0) * scale
    steps = cfg.optim.steps                     # this run's own schedule: its probes' calls, its evaluations
    units = steps + sum(len(p.steps(steps)) * x.get(p.name, 0.0) for p in cfg.probes)
    if cfg.data.eval_test or cfg.data.eval_train_subset:
        units += (math.ceil(steps / cfg.eval_every) if cfg.eval_every else 1) * x.get("eval", 0.0)
    return units * c["plain_step_s"] * scale


def run_ratio(seconds: dict, calls: dict, steps: int) -> float:
    """Instrumented / plain wall time of a run: (steps x step + sum of calls x cost) / (steps x step).
    seconds: per call, with 'step' the plain step; calls: how many times each component runs."""
    return 1 + sum(seconds[k] * n for k, n in calls.items()) / (seconds["step"] * steps)


def describe_kind(cfg: RunConfig) -> str:
    m = cfg.model
    net = f"{m.arch} width {m.width:g}" if m.arch != "dln" else f"DLN {m.depth}x{m.dim}"
    return f"{net}, norm {m.norm}, batch {cfg.optim.batch_size}"


def measured_ratio(kind: str, s: dict, steps: int) -> dict:
    """Whole short runs with and without probes at the book's cadence (same calls per step)."""
    cfg = kind_config(kind, s).replace(**{"optim.steps": steps})
    task = synthetic_task(cfg)
    plain_task = Task(task.train, {}, task.loss, task.fingerprint, task.full_batch)
    os.environ.setdefault("BNOPT_PROGRESS", "off")
    t_plain = train(cfg.replace(probes=[], eval_every=0), task=plain_task, device="cpu")["wall_time_s"]
    t_full = train(cfg, task=task, device="cpu")["wall_time_s"]
    return {"steps": steps, "plain_s": t_plain, "instrumented_s": t_full, "ratio": t_full / t_plain}


# --------------------------------------------------------------------------------------------------
# (b) achieved FLOP/s against a measured peak

def flops_of_step(kind: str, s: dict) -> dict:
    return {"kind": kind, "flops_per_step": step_flops(kind_config(kind, s))}


def step_flops(cfg: RunConfig) -> int:
    """Floating-point operations of one plain training step (forward and backward) of `cfg`'s network at its batch
    size, as torch.utils.flop_counter counts them (matrix products and convolutions), on synthetic data. A deep linear
    network of L square layers of width d on N points: 2·N·d² per product, L forward, L weight gradients and L-1 input
    gradients (the first layer's input needs none):

    >>> from bnopt.runs.config import dln_config
    >>> L, d, N = 5, 10, 100
    >>> step_flops(dln_config(**{"model.depth": L, "model.dim": d, "data.dln_samples": N, "optim.batch_size": N}))
    280000
    >>> 2 * N * d**2 * (3 * L - 1)
    280000
    """
    from torch.utils.flop_counter import FlopCounterMode

    _, model, task, opt, sampler, loss_fn = setup_step(cfg)
    x, y = sampler.batch(task.train)
    with FlopCounterMode(display=False) as fc:
        sgd_step(model, opt, loss_fn, x, y)
    return fc.get_total_flops()


def run_throughput(peaks: dict, cache=None) -> list[dict]:
    """One row per run in the cache: steps, wall time, FLOP per plain step (`step_flops`), the FLOP/s the run
    achieved (probes and evaluations count in its wall time, not in its FLOP) and that as a fraction of the
    measured peak for its precision (`peaks`: {'fp32': FLOP/s, 'tf32': FLOP/s}; a CPU computes fp32 whatever the
    precision)."""
    cache, per_shape, rows = cache or RunCache(), {}, []
    for k in cache.entries():
        meta, cfg = cache.meta(k), RunConfig.from_dict(cache.material(k)["config"])
        shape = canonical_json([cfg.model.__dict__, cfg.optim.batch_size, cfg.data.dln_samples])
        if shape not in per_shape:
            per_shape[shape] = step_flops(cfg)
        achieved = per_shape[shape] * cfg.optim.steps / meta["wall_time_s"]
        peak = peaks["fp32" if cfg.precision == "fp32" or meta.get("device") == "cpu" else "tf32"]
        rows.append({"key": k, "run": meta.get("description"), "device": meta.get("device_name"),
                     "steps": cfg.optim.steps, "wall_s": meta["wall_time_s"], "flop_per_step": per_shape[shape],
                     "achieved_flop_s": achieved, "fraction_of_peak": achieved / peak})
    return rows


def matmul_peak(n: int = 2048, reps: int = 5, device: str = "cpu", dtype: torch.dtype = torch.float32,
                tf32: bool = False) -> float:
    """FLOP/s of the fastest of `reps` n x n matrix products on `device` (on CUDA, with TF32 when `tf32`)."""
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
        a @ b
        sync()
        t = min(_timed(lambda: (a @ b, sync())) for _ in range(reps))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    return 2 * n ** 3 / t


def default_out(quick: bool) -> Path:
    return data_home() / "bench" / ("bench-quick.json" if quick else "bench.json")
