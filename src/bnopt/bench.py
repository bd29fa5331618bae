"""`make bench`: what a run of the book costs on the machine at hand, and where the time goes.

    python -m bnopt.bench [--quick] [--profile quick] [--out data/bench/bench.json]

Writes a JSON file and prints a short table:
  (a) the wall time of a plain training step (data gather + forward + backward + SGD update) and, as
      multiples of it, of the data gather, each probe (activations, ICS, landscape, sharpness) and
      the evaluation; then the instrumented/plain ratio of a whole run at the book's cadence, for the
      VGG without BN, with BN, with noisy BN, and the deep linear network (DLN) without and with BN.
      `estimated` composes the per-call costs with the cadence; the full bench also `measured` it
      by training a short run with and without probes at the same cadence (every probe fires the
      same number of times per step as in the book).
  (b) the FLOP/s a training step achieves (torch.utils.flop_counter.FlopCounterMode) against the
      machine's measured peak: a large matmul, same precision, same thread count;
  (c) throughput of one process using every core against N single-threaded processes side by side
      (N = cores), in training steps per second;
  (d) `make book` wall time per stage, cold and warm, from the build's own log (data/build-times.jsonl).

All timings run in one process with the repetitions of every component interleaved (so a slow
spell of the machine hits all of them alike), medians reported; the thread count is set explicitly.
The models are the book's (the profile's VGG width and the paper's 25 x 10 DLN) on synthetic data
of CIFAR-10's shapes, so the bench needs no dataset. `--quick` (what the book's cost page and
`make bench QUICK=1` run) uses one round, times the evaluation on a fifth of the images (scaled up),
skips the measured whole runs and takes under a minute on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import torch

from .config import RunConfig, canonical_json
from .data import Split, Task
from .experiments import (DLN_ETA_MULTIPLES, DLN_RIDGE_LAYERS, VGG_ETA_MULTIPLES, VGG_RIDGE_LAYERS, at_lr, book_probes,
                          chapter_parameters, dln_config, vgg_config)
from .models import build_model
from .numerics import cpu_info, numerics
from .paths import write_text_atomic
from .probes import ProbeContext, build_probe
from .report import table as md_table
from .train import LOSSES, BatchSampler, evaluate, make_optimizer, sgd_step, train

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
        from .data import make_dln_data
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

    >>> from bnopt.config import dln_config
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
    from .cache import RunCache
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


# --------------------------------------------------------------------------------------------------
# (c) one process with every thread against N single-threaded processes

def _steps_per_s(kind: str, s: dict, seconds: float, barrier=None) -> float:
    """Plain training steps per second of one process, over `seconds` (after a warm-up)."""
    _, model, task, opt, sampler, loss_fn = _setup(kind, s)

    def step():
        x, y = sampler.batch(task.train)
        sgd_step(model, opt, loss_fn, x, y)
    for _ in range(3):
        step()
    if barrier is not None:
        barrier.wait()                     # every worker starts timing together
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - t0)


def _throughput_worker(kinds, s, seconds, barrier, queue) -> None:
    torch.set_num_threads(1)
    queue.put({k: _steps_per_s(k, s, seconds, barrier) for k in kinds})


def throughput(kinds, s: dict, seconds: float) -> dict:
    """Steps/s of one process with every core's thread, against the sum over N = cores
    single-threaded processes training side by side (what the book's worker pool does)."""
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    one = {k: _steps_per_s(k, s, seconds) for k in kinds}
    ctx = get_context("spawn")
    barrier, queue = ctx.Barrier(cores), ctx.Queue()
    procs = [ctx.Process(target=_throughput_worker, args=(kinds, s, seconds, barrier, queue))
             for _ in range(cores)]
    for p in procs:
        p.start()
    rs = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return {k: {"cores": cores, "one_process_all_threads": {"workers": 1, "threads": cores, "steps_per_s": one[k]},
                "n_single_thread_processes": {"workers": cores, "threads": 1,
                                              "steps_per_s": sum(r[k] for r in rs)},
                "parallel_speedup": sum(r[k] for r in rs) / one[k]} for k in kinds}


# --------------------------------------------------------------------------------------------------
# (d) the book build's own timings

def build_times(profile: str) -> dict:
    """The latest cold build (it trained runs) and the latest warm build (it trained none) of the
    profile, from data/build-times.jsonl."""
    from .paths import data_home
    log = data_home() / "build-times.jsonl"
    rows = []
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    rows = [r for r in rows if r.get("profile") == profile and r.get("html_built", True)]
    cold = [r for r in rows if r.get("runs_trained", 0) > 0]
    warm = [r for r in rows if r.get("runs_trained", 0) == 0]
    return {"cold": cold[-1] if cold else None, "warm": warm[-1] if warm else None}


# --------------------------------------------------------------------------------------------------

def bench(profile: str = "quick", quick: bool = False, threads: int | None = None, kinds=None) -> dict:
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    s = book_settings(profile)
    kinds = list(kinds or KINDS)
    t0 = time.perf_counter()
    from . import __version__
    out = {"profile": profile, "quick": quick, "machine": machine(), "settings": s, "bnopt": __version__,
           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out["components"] = {k: component_costs(k, s, reps=1 if quick else 7, probe_reps=1 if quick else 3,
                                            eval_fraction=0.2 if quick else 1.0) for k in kinds}
    if not quick:
        for k in kinds:
            steps = 2 * s["curvature_every"] if k.startswith("vgg") else 2 * s["dln_curvature_every"]
            out["components"][k]["ratio_measured"] = measured_ratio(k, s, steps)
    peak = matmul_peak()
    fl = {k: flops_of_step(k, s) for k in ("vgg", "vgg_bn")}
    for k, f in fl.items():
        f["achieved_flops_per_s"] = f["flops_per_step"] / out["components"][k]["plain_step_s"] \
            if k in out["components"] else None
        f["fraction_of_peak"] = f["achieved_flops_per_s"] / peak if f["achieved_flops_per_s"] else None
    out["flops"] = {"matmul_peak_flops_per_s": peak, "threads": threads, "steps": fl}
    out["throughput"] = throughput(("vgg_bn", "dln_bn"), s, 1.0 if quick else 10.0)
    out["build"] = build_times(profile)
    torch.set_num_threads(threads)
    out["bench_seconds"] = time.perf_counter() - t0
    return out


def table(b: dict) -> str:
    lines = [f"bnopt bench ({'quick' if b['quick'] else 'full'}, profile {b['profile']}) on "
             f"{b['machine']['cpu']}, {b['machine']['cores']} cores, torch {b['machine']['torch']}",
             "", "(a) cost per call in plain steps; run ratio = instrumented / plain at the book's cadence"]
    cols = ["data", "activations", "ics", "landscape", "sharpness", "eval"]
    lines.append(f"{'kind':14s} {'step ms':>8s} " + " ".join(f"{c:>11s}" for c in cols)
                 + f" {'ratio est':>9s} {'measured':>8s}")
    for k, c in b["components"].items():
        meas = c.get("ratio_measured", {}).get("ratio")
        lines.append(f"{k:14s} {1e3 * c['plain_step_s']:8.1f} "
                     + " ".join(f"{c['x_plain'].get(col, float('nan')):11.2f}" for col in cols)
                     + f" {c['ratio_estimated']:9.2f} " + (f"{meas:8.2f}" if meas else f"{'-':>8s}"))
    f = b["flops"]
    lines += ["", f"(b) matmul peak {f['matmul_peak_flops_per_s'] / 1e9:.1f} GFLOP/s at {f['threads']} threads"]
    for k, v in f["steps"].items():
        if v["achieved_flops_per_s"]:
            lines.append(f"    {k}: {v['flops_per_step'] / 1e9:.2f} GFLOP/step, "
                         f"{v['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s = {100 * v['fraction_of_peak']:.0f} % of peak")
    lines.append("")
    lines.append("(c) steps/s: one process x all threads vs N processes x 1 thread")
    for k, v in b["throughput"].items():
        lines.append(f"    {k}: {v['one_process_all_threads']['steps_per_s']:.1f} vs "
                     f"{v['n_single_thread_processes']['steps_per_s']:.1f} ({v['parallel_speedup']:.2f}x)")
    lines.append("")
    for which in ("cold", "warm"):
        r = b["build"][which]
        if r:
            per = ", ".join(f"{k} {v:.0f}s" for k, v in {"runs": r.get("runs", 0), **r.get("chapters", {}),
                                                         "html": r.get("html", 0)}.items())
            lines.append(f"(d) {which} make book ({r['started']}): {r.get('total', 0):.0f}s = {per}")
        else:
            lines.append(f"(d) {which} make book: no build of this profile recorded yet")
    return "\n".join(lines)


def load_or_run(quick: bool = True, profile: str = "quick", rerun: bool = False) -> dict:
    """The machine's saved bench (data/bench/), or a new one when there is none for this machine,
    profile and bnopt version (so a warm book build does not pay for the bench again)."""
    from . import __version__
    path = default_out(quick)
    if path.exists() and not rerun:
        try:
            b = json.loads(path.read_text())
            m = machine()
            if (b.get("profile") == profile and b.get("bnopt") == __version__
                    and all(b["machine"].get(k) == m[k] for k in ("cpu", "cores", "torch"))):
                return b
        except (OSError, ValueError, KeyError):
            pass
    b = bench(profile, quick)
    save(b, path)
    return b


def save(b: dict, path: Path) -> None:
    write_text_atomic(path, json.dumps(b, indent=1))


def report_tables(b: dict, current_build: dict | None = None) -> dict[str, str]:
    """Markdown for the book's cost page: {name: text} for the machine and parts (a)-(d)."""
    m = b["machine"]
    t = {"machine": f"{m['cpu']}, {m['cores']} cores ({m['cpu_capability']}), {m['platform']}; Python "
                    f"{m['python']}, torch {m['torch']}; measured {b['created']} "
                    f"({'quick' if b['quick'] else 'full'} bench, {b['bench_seconds']:.0f} s)"}
    cols = ["data", "activations", "ics", "landscape", "sharpness", "eval"]
    rows = []
    for k, c in b["components"].items():
        meas = c.get("ratio_measured", {}).get("ratio")
        rows.append([f"`{k}`", f"{1e3 * c['plain_step_s']:.1f}"]
                    + [f"{c['x_plain'][col]:.2f} × {c['calls_per_run'].get(col, 0)}" if col in c["x_plain"] else "–"
                       for col in cols]
                    + [f"{c['ratio_estimated']:.2f}" + (f" ({meas:.2f})" if meas else "")])
    t["components"] = md_table(["run kind", "plain step (ms)", "data gather", "activations", "ICS", "landscape",
                                 "sharpness", "evaluation", "instrumented / plain: estimated (measured)"], rows)
    f = b["flops"]
    t["flops"] = md_table(["run kind", "GFLOP per step", "achieved GFLOP/s", "matmul peak GFLOP/s", "fraction of peak"],
                           [[f"`{k}`", f"{v['flops_per_step'] / 1e9:.2f}", f"{v['achieved_flops_per_s'] / 1e9:.1f}",
                             f"{f['matmul_peak_flops_per_s'] / 1e9:.1f}", f"{100 * v['fraction_of_peak']:.0f} %"]
                            for k, v in f["steps"].items() if v.get("achieved_flops_per_s")])
    t["throughput"] = md_table(["run kind", "1 process × all threads (steps/s)", "N processes × 1 thread (steps/s)",
                                 "speed-up"],
                                [[f"`{k}`", f"{v['one_process_all_threads']['steps_per_s']:.1f}",
                                  f"{v['n_single_thread_processes']['steps_per_s']:.1f} (N = {v['cores']})",
                                  f"{v['parallel_speedup']:.2f}×"] for k, v in b["throughput"].items()])
    builds = [("this build (so far)", current_build)] if current_build else []
    builds += [(f"last {w} build", r) for w, r in build_times(b["profile"]).items() if r]
    stages = []
    for _, r in builds:
        stages += [k for k in ["runs", *r.get("chapters", {}), "html", "total"] if k not in stages]

    def cell(r, k):
        v = r.get("chapters", {}).get(k, r.get(k))
        return f"{v:.0f}" if isinstance(v, (int, float)) else "–"
    t["build"] = md_table(["stage", *[name for name, _ in builds]],          # one column per build: it fits the page
                           [["started", *[r.get("started", "?") for _, r in builds]],
                            ["runs trained / cached", *[f"{r.get('runs_trained', '?')} / {r.get('runs_cached', '?')}"
                                                        for _, r in builds]],
                            *[[f"{k} (s)", *[cell(r, k) for _, r in builds]] for k in stages]]) if builds else \
        "No build of this profile has been recorded on this machine yet."
    return t


RATIO_TARGET = 1.3   # issue target: instrumented / plain at the book's cadence, every run kind


def headline(b: dict) -> dict[str, str]:
    """Sentences for the cost page, computed from the bench: the range of the instrumented/plain
    ratio over run kinds, and whether every kind meets RATIO_TARGET (by how much it misses)."""
    from .experiments import HESSIAN_ITERS
    ratios = {k: c.get("ratio_measured", {}).get("ratio") or c["ratio_estimated"]
              for k, c in b["components"].items()}
    lo, hi = min(ratios.values()), max(ratios.values())
    over = {k: r for k, r in ratios.items() if r > RATIO_TARGET}
    verdict = ("met by every run kind" if not over else
               "missed by " + ", ".join(f"`{k}` ({r:.2f}, {100 * (r / RATIO_TARGET - 1):.0f} % over)"
                                        for k, r in sorted(over.items(), key=lambda kv: -kv[1])))
    return {"ratio_range": f"{lo:.2f} to {hi:.2f}", "ratio_verdict": verdict,
            "hessian_iters": f"{HESSIAN_ITERS}"}


def default_out(quick: bool) -> Path:
    from .paths import data_home
    return data_home() / "bench" / ("bench-quick.json" if quick else "bench.json")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the reduced bench (under a minute)")
    ap.add_argument("--profile", default="quick", help="whose run settings to time (default: quick)")
    ap.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: every core)")
    ap.add_argument("--out", default=None, help="JSON output (default: data/bench/bench[-quick].json)")
    a = ap.parse_args(argv)
    b = bench(a.profile, a.quick, a.threads)
    out = Path(a.out) if a.out else default_out(a.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    save(b, out)
    print(table(b))
    print(f"\nwritten {out} in {b['bench_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def chapter_values(quick: bool, profile: str, rerun: bool = False, record_path: str = ".build-times.json") -> dict:
    """{glue name: text} of the cost chapter: the saved (or a fresh) bench of this machine, with this
    build's stage timings so far (`record_path`, written by bnopt.build) in table (d)."""
    from pathlib import Path

    b = load_or_run(quick=quick, profile=profile, rerun=rerun)
    record = Path(record_path)
    tables = report_tables(b, json.loads(record.read_text()) if record.exists() else None)
    return {f"cost_{name}": text for name, text in {**tables, **headline(b)}.items()}
