"""The grid's missing runs as one Slurm job array, through submitit, into the shared run cache.

    bnopt train smoothness --profile paper --executor slurm \\
        --partition gpu --gpus-per-job 1 --runs-per-job 6 --time 120 --slurm-folder slurm-logs

`ensure_slurm(configs)` is `executor.ensure` for a cluster: the runs the cache lacks (the same
`executor.plan`) are packed `runs_per_job` to an array task, longest first and dealt out in turn so
that the tasks take about as long as each other, and submitted as ONE job array (`map_array`), so the
scheduler sees one submission, not hundreds. Each task trains its runs one after another into the run
cache, which must be on a file system every node sees (`BNOPT_HOME`, default `<repo>/data`): entries
are written atomically and the first writer wins, so tasks never clash.

Failures and preemption:
- a task that times out or is preempted is requeued by submitit (`RunChunk` is checkpointable: the
  same call again), up to `max_requeue` times; its finished runs are then read from the cache, so
  only the unfinished ones train again;
- a task that raises is resubmitted once more (`retries`), for the same reason cheaply;
- afterwards every config is checked against the cache, and a run still missing raises RunFailed
  naming it and its log.

Re-submitting the same grid skips finished runs (they are in the cache). The local executor
(`executor.ensure`, worker processes on one machine) is the default and the same interface.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import submitit

from bnopt.runs import numerics
from bnopt.runs.config import RunConfig
from bnopt.runs.executor import RunFailed, _run_one, estimated_cost, missing, plan
from bnopt.runs.launch import describe
from bnopt.runs.paths import data_home
from bnopt.runs.progress import message


class RunChunk(submitit.helpers.Checkpointable):
    """One array task: its runs, one after another, with `threads` PyTorch threads. Checkpointable: on a
    timeout or preemption submitit resubmits the same call, and runs already cached return at once."""

    def __call__(self, cfg_dicts: list[dict], log_dir: str, threads: int) -> list[dict]:
        with numerics.threads(threads):
            return [_run_one(d, log_dir) for d in cfg_dicts]


def chunks(configs: list[RunConfig], per_job: int) -> list[list[RunConfig]]:
    """Configs dealt out longest first, in turn, to ceil(n / per_job) tasks of about equal cost.

    >>> from bnopt.runs.config import dln_config
    >>> cs = [dln_config(**{"optim.steps": s}) for s in (100, 400, 300, 200, 500)]
    >>> [[c.optim.steps for c in ch] for ch in chunks(cs, 2)]
    [[500, 200], [400, 100], [300]]
    """
    if per_job < 1:
        raise ValueError(f"runs per job must be >= 1, got {per_job}")
    todo = sorted(configs, key=estimated_cost, reverse=True)
    n = -(-len(todo) // per_job)
    return [todo[i::n] for i in range(n)] if n else []


def slurm_executor(folder: str | os.PathLike, partition: str | None = None, gpus_per_job: int = 0,
                   cpus_per_task: int = 1, time_min: int = 60, max_requeue: int = 3, parallel: int | None = None,
                   cluster: str | None = "slurm") -> submitit.AutoExecutor:
    """A submitit executor for the array (cluster='local' runs the same tasks as local processes)."""
    ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster, slurm_max_num_timeout=max_requeue)
    params = {"name": "bnopt", "timeout_min": time_min, "cpus_per_task": cpus_per_task, "nodes": 1,
              "tasks_per_node": 1}
    if gpus_per_job:
        params["gpus_per_node"] = gpus_per_job
    if partition and ex.cluster == "slurm":
        params["slurm_partition"] = partition
    if parallel and ex.cluster == "slurm":
        params["slurm_array_parallelism"] = parallel
    ex.update_parameters(**params)
    return ex


def ensure_slurm(configs: list[RunConfig], folder: str | os.PathLike = "slurm-logs", runs_per_job: int = 4,
                 threads: int = 1, retries: int = 1, poll_s: float = 5.0, executor=None, label: str = "slurm",
                 **slurm) -> dict:
    """Train the configs the cache lacks as one job array; return when they are all cached. `slurm` goes to
    `slurm_executor` (partition, gpus_per_job, cpus_per_task, time_min, max_requeue, parallel). Returns
    {'trained': n, 'cached': n, 'wall_s': s, 'jobs': n, 'array': job id}."""
    todo, n_cached = plan(configs)
    summary = {"trained": len(todo), "cached": n_cached, "wall_s": 0.0, "jobs": 0, "array": None}
    if not todo:
        return summary
    ex = executor or slurm_executor(folder, **slurm)
    log_dir = str(data_home() / "runs" / ".logs")
    t0 = time.perf_counter()
    groups = chunks(todo, runs_per_job)
    for attempt in range(retries + 1):
        jobs = ex.map_array(RunChunk(), [[c.to_dict() for c in g] for g in groups], [log_dir] * len(groups),
                            [threads] * len(groups))
        summary["jobs"] += len(jobs)
        summary["array"] = summary["array"] or (jobs[0].job_id.split("_")[0] if jobs else None)
        message(f"{label}: {len(todo)} runs in {len(jobs)} array task(s) ({ex.cluster}, job {jobs[0].job_id if jobs else '-'})")
        pending, failed = list(zip(jobs, groups)), []
        while pending:
            still = []
            for job, g in pending:
                if not job.done():
                    still.append((job, g))
                elif job.exception() is not None:
                    failed.append((job, g))
            if len(still) != len(pending):
                message(f"{label}: {len(jobs) - len(still)}/{len(jobs)} tasks finished ({time.perf_counter() - t0:.0f}s)")
            pending = still
            if pending:
                time.sleep(poll_s)
        if not failed:
            break
        groups = [g for _, g in failed]
        message(f"{label}: {len(failed)} task(s) failed; " + ("resubmitting them" if attempt < retries else "giving up"))
    summary["wall_s"] = time.perf_counter() - t0
    left = missing(configs)
    if left:
        logs = sorted(str(p) for p in Path(log_dir).glob("failed-*.log"))[-5:]
        raise RunFailed(f"{len(left)} of {len(todo)} runs are still missing after the array "
                        f"(task logs under {folder}; run logs: {', '.join(logs) or 'none'}):\n"
                        + "\n".join(describe(c) for c in left))
    return summary

