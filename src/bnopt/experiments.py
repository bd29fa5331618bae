"""Experiments declared as data: each chapter's grid of run configurations, built from its parameters.

A chapter notebook calls `grid = experiments.GRIDS[name](**params)` and `run_grid(grid, seeds)`. The
same grid can be run without Jupyter (on a GPU machine, in parallel processes) so that the book then
reads every run from the cache:

    python -m bnopt.experiments training --profile paper --jobs 6

The parameters are the chapter's `parameters` cell, overridden by the profile's YAML section, so the
CLI and the book always declare the same runs.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from .config import ProbeSpec, RunConfig, vgg_config
from .runs import run_seeds


def training_grid(arch: str, width: float, steps: int, batch_size: int, lrs, norms, eval_every: int,
                  eval_train_subset: int, probe_every: int, ridge_layers, precision: str = "fp32",
                  **_unused) -> dict[tuple, RunConfig]:
    """Figure 1: VGG with each normalization at each learning rate, sampling activations."""
    base = vgg_config(**{
        "model.arch": arch, "model.width": width, "optim.steps": steps, "optim.batch_size": batch_size,
        "eval_every": eval_every, "data.eval_train_subset": eval_train_subset, "precision": precision,
        "probes": [ProbeSpec("activations", every=probe_every, kwargs={"layers": list(ridge_layers)})],
    })
    return {(norm, lr): base.replace(**{"model.norm": norm, "optim.lr": lr}) for norm in norms for lr in lrs}


def bn_math_grid(arch: str, width: float, steps: int, batch_size: int, lr: float, probe_every: int,
                 eval_every: int, precision: str = "fp32", **_unused) -> dict[str, RunConfig]:
    """The BN-math chapter: a VGG with and without BN whose final weights are kept (for the theorem
    checks on trained layers) and whose per-unit sigma_j is recorded over training."""
    base = vgg_config(**{
        "model.arch": arch, "model.width": width, "optim.steps": steps, "optim.batch_size": batch_size,
        "optim.lr": lr, "eval_every": eval_every, "data.eval_train_subset": 0, "precision": precision,
        "save_state": True, "probes": [ProbeSpec("unit_std", every=probe_every)],
    })
    return {norm: base.replace(**{"model.norm": norm}) for norm in ("none", "batch")}


GRIDS = {"training": training_grid, "bn_math": bn_math_grid}


def run_grid(grid: dict, seeds) -> dict:
    """{key: [result per seed]} from the cache or by training, in this process."""
    return {key: run_seeds(cfg, seeds) for key, cfg in grid.items()}


def chapter_parameters(chapter: str, profile: str | None) -> dict:
    """The chapter's parameters-cell defaults overridden by the profile's section."""
    from .build import book_dir, load_yaml, notebook_parameters, profile_parameters
    from .paths import repo_root

    root = repo_root()
    params = notebook_parameters(book_dir(root) / f"{chapter}.ipynb")
    if profile:
        params.update(profile_parameters(root, profile).get(chapter, {}))
    return params


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chapter", choices=sorted(GRIDS))
    ap.add_argument("--profile", default=None, help="a profile in book/params (default: notebook defaults)")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained in parallel processes")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=PYTHON_LITERAL",
                    help="override parameters, e.g. --set steps=100 'seeds=[0]'")
    ap.add_argument("--one", help=argparse.SUPPRESS)   # internal: 'index' of one (config, seed) job
    a = ap.parse_args(argv)
    import ast

    params = chapter_parameters(a.chapter, a.profile)
    for item in a.set:
        name, _, value = item.partition("=")
        params[name] = ast.literal_eval(value)
    grid = GRIDS[a.chapter](**params)
    jobs = [(key, seed) for key in grid for seed in params["seeds"]]
    if a.one is not None:
        key, seed = jobs[int(a.one)]
        run_seeds(grid[key], [seed])
        return 0
    t0 = time.time()
    if a.jobs <= 1:
        run_grid(grid, params["seeds"])
    else:
        pending = list(range(len(jobs)))
        running: list[subprocess.Popen] = []
        failed = 0
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // a.jobs))}
        base_cmd = [sys.executable, "-m", "bnopt.experiments", a.chapter, "--set",
                    *[f"{k}={v!r}" for k, v in params.items()]]
        while pending or running:
            while pending and len(running) < a.jobs:
                running.append(subprocess.Popen(base_cmd + ["--one", str(pending.pop(0))], env=env))
            time.sleep(1)
            for p in [p for p in running if p.poll() is not None]:
                failed += p.returncode != 0
                running.remove(p)
        if failed:
            print(f"{failed} job(s) failed", file=sys.stderr)
            return 1
    print(f"[bnopt] {a.chapter}: {len(jobs)} runs in {time.time() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
