"""Run many configurations in parallel worker processes; results land in the run cache.

One interface for the notebooks, the book build and the CLI: `ensure(configs)` trains every
configuration that the cache does not hold yet and returns when all are cached. Notebooks then only
read results (`runs.run` finds each one in the cache).

Engine: `concurrent.futures.ProcessPoolExecutor` (spawn start method) with `workers` processes, each
pinned to `threads` PyTorch threads. Any `concurrent.futures.Executor` can be passed as `executor=`
instead. On a cluster, `bnopt.runs.slurm.ensure_slurm` is the same call for one Slurm job array (submitit).

Why workers x 1 thread: on this project's 2-core CPU the quick VGG (1/8 width) and the 10 x 10 deep
linear network gain little from a second thread inside one process, while two single-threaded
processes run side by side at nearly full speed each (`make bench`, part (c), measures both on the
machine at hand). Two processes that each use every core slow each other 5-10x (oversubscription), so
threads are always set explicitly. On CUDA the default is one worker (the GPU is the shared resource).

Determinism: a CPU run is bit-reproducible for a fixed thread count; results differ in rounding
between 1 and 2 threads (and so, after many SGD steps, at the level of seed-to-seed noise). The thread
count each run used is recorded in its cache metadata (`meta['threads']`).
"""
from __future__ import annotations

import os
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import torch

from bnopt.runs.cache import RunCache
from bnopt.runs.config import RunConfig, canonical_json
from bnopt.runs.launch import describe, get_task, run
from bnopt.runs.paths import data_home
from bnopt.runs.progress import message
from bnopt.runs.train import RunStopped, resolve_device


class RunFailed(RuntimeError):
    """One or more runs raised; the message names each config, its cache key and its log file."""


def _env_int(name: str) -> int | None:
    """A positive integer from the environment variable `name`, None when unset."""
    env = os.environ.get(name, "").strip()
    if not env:
        return None
    try:
        n = int(env)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {env!r}")
    return n


def default_workers(device: torch.device | None = None) -> int:
    """BNOPT_WORKERS, else 1 on CUDA, else the number of cores."""
    n = _env_int("BNOPT_WORKERS")
    if n:
        return n
    return 1 if (device or resolve_device()).type == "cuda" else max(1, os.cpu_count() or 1)


def default_threads(workers: int) -> int:
    """BNOPT_THREADS, else the cores shared out evenly between the workers (at least 1)."""
    return _env_int("BNOPT_THREADS") or max(1, (os.cpu_count() or 1) // workers)


def estimated_cost(cfg: RunConfig) -> float:
    """A rough relative cost, only to start the longest runs first (better packing of the pool)."""
    probes = {p.name: cfg.optim.steps / max(1, len(p.steps(cfg.optim.steps))) for p in cfg.probes}
    if cfg.model.arch == "dln":        # `make bench`: a 10x10 DLN step is 5-10 % of a 1/8-width VGG step
        per_step = 0.05 if cfg.model.norm == "none" else 0.1
    else:
        per_step = {"none": 1.0, "batch": 1.3}.get(cfg.model.norm, 2.2) * cfg.model.width / 0.125
    extra = sum(6.0 / every for name, every in probes.items() if name != "sharpness")
    extra += 60.0 / probes["sharpness"] if "sharpness" in probes else 0.0
    return cfg.optim.steps * per_step * (1.0 + extra)


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def _run_one(cfg_dict: dict, log_dir: str, stop_at: float | None = None) -> dict:
    """Worker body: train (or find) one config; on failure write the traceback to a log and re-raise
    a message that names it. Past `stop_at` (time.time()) a run does not start, and one in flight checkpoints
    and stops: {'stopped': True, 'step': the step it resumes from}."""

    cfg = RunConfig.from_dict(cfg_dict)
    t0 = time.perf_counter()
    if stop_at is not None and time.time() >= stop_at:
        return {"key": None, "stopped": True, "step": None, "wall_time_s": 0.0, "from_cache": False}
    try:
        result = run(cfg, stop_at=stop_at)
    except RunStopped as e:
        return {"key": None, "stopped": True, "step": e.step, "wall_time_s": time.perf_counter() - t0,
                "from_cache": False}
    except BaseException as e:
        log = Path(log_dir) / f"failed-{int(time.time())}-{os.getpid()}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"{describe(cfg)}\n{canonical_json(cfg_dict)}\n\n{traceback.format_exc()}")
        raise RunFailed(f"{describe(cfg)}: {type(e).__name__}: {e} (log: {log})") from None
    return {"key": result["meta"]["key"], "stopped": False, "wall_time_s": time.perf_counter() - t0,
            "from_cache": result["meta"].get("from_cache", False)}


def local_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes with `threads` PyTorch threads each."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                               initializer=_init_worker, initargs=(threads,))


def config_keys(configs: list[RunConfig]) -> list[str]:
    """The cache key of each config, in order (the data are prepared once per dataset, for its fingerprint)."""

    device, fingerprints, out = resolve_device(), {}, []
    for cfg in configs:
        data = canonical_json(cfg.data.__dict__)
        if data not in fingerprints:        # one load per dataset, not per run
            fingerprints[data] = get_task(cfg, device).fingerprint
        out.append(RunCache.key({"config": cfg.key_dict(), "data_fingerprint": fingerprints[data]}))
    return out


def run_keys(configs: list[RunConfig], keys: list[str] | None = None) -> dict[str, RunConfig]:
    """{cache key: config} of the distinct configs, in order (`keys`: their `config_keys`, when known)."""
    out = {}
    for key, cfg in zip(keys or config_keys(configs), configs):
        out.setdefault(key, cfg)
    return out


def plan(configs: list[RunConfig], keys: list[str] | None = None) -> tuple[list[RunConfig], int]:
    """(the distinct configs the run cache lacks, how many distinct configs it already holds)."""
    cache, keys = RunCache(), run_keys(configs, keys)
    todo = [cfg for k, cfg in keys.items() if not cache.has(k)]
    return todo, len(keys) - len(todo)


def missing(configs: list[RunConfig]) -> list[RunConfig]:
    """The distinct configs that the run cache does not hold yet."""
    return plan(configs)[0]


class RunsMissing(RuntimeError):
    """Runs are missing from the cache and training was not allowed; `.configs` lists them."""

    def __init__(self, configs: list[RunConfig]):
        super().__init__(f"{len(configs)} runs are not in the cache")
        self.configs = configs


def ensure(configs: list[RunConfig], workers: int | None = None, threads: int | None = None,
           executor=None, label: str = "runs", train: bool = True, keys: list[str] | None = None,
           stop_at: float | None = None, order: str = "longest") -> dict:
    """Train every config not in the cache, `workers` at a time, longest first (order='given': in the order of
    `configs`, e.g. a campaign's priority order). Returns a summary
    {'trained': n, 'cached': n, 'stopped': n, 'wall_s': s, 'workers': w, 'threads': t}. With `stop_at`
    (time.time()), runs still waiting then do not start and runs in flight checkpoint and stop ('stopped'; a
    later call resumes them); 'trained' counts only the runs that finished. Raises RunFailed naming
    every failed config (the others still finish and stay cached), and RunsMissing (before anything
    trains) when runs are missing and `train` is False. `keys`: the configs' `config_keys`, when the caller
    has them (computing them prepares every dataset once)."""
    if order not in ("longest", "given"):
        raise ValueError(f"order={order!r}; choose 'longest' or 'given'")
    todo, n_cached = plan(configs, keys)
    if todo and not train:
        raise RunsMissing(todo)
    workers = workers or default_workers()
    threads = threads or default_threads(workers)
    summary = {"trained": len(todo), "cached": n_cached, "stopped": 0, "wall_s": 0.0, "workers": workers,
               "threads": threads}
    if not todo:
        return summary
    if order == "longest":
        todo.sort(key=estimated_cost, reverse=True)
    log_dir = str(data_home() / "runs" / ".logs")
    message(f"{label}: {len(todo)} runs to train ({n_cached} cached) on {workers} worker(s) x "
            f"{threads} thread(s)")
    t0 = time.perf_counter()
    own = executor is None
    pool = local_pool(workers, threads) if own else executor
    failures = []
    try:
        futures = {pool.submit(_run_one, cfg.to_dict(), log_dir, stop_at) for cfg in todo}
        done = 0
        while futures:
            finished, futures = wait(futures, return_when=FIRST_COMPLETED)
            for f in finished:
                done += 1
                try:
                    summary["stopped"] += f.result().get("stopped", False)
                except RunFailed as e:
                    failures.append(str(e))
                message(f"{label}: {done}/{len(todo)} runs finished ({time.perf_counter() - t0:.0f}s)")
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
    summary["wall_s"] = time.perf_counter() - t0
    summary["trained"] -= summary["stopped"]
    if failures:
        raise RunFailed(f"{len(failures)} of {len(todo)} runs failed:\n" + "\n".join(failures))
    return summary
