"""The bench, part 2: one process with every core against one single-threaded process per core, and the book
build's own stage timings."""
from __future__ import annotations

import json
import os
import time
from multiprocessing import get_context

from bnopt.book.bench.costs import _setup
from bnopt.runs.numerics import threads as numerics_threads
from bnopt.runs.paths import data_home
from bnopt.runs.train import sgd_step

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
    with numerics_threads(1):
        queue.put({k: _steps_per_s(k, s, seconds, barrier) for k in kinds})


def throughput(kinds, s: dict, seconds: float) -> dict:
    """Steps/s of one process with every core's thread, against the sum over N = cores
    single-threaded processes training side by side (what the book's worker pool does)."""
    cores = os.cpu_count() or 1
    with numerics_threads(cores):
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
