"""`make verify-runs`: retrain the first steps of a sample of the committed runs and compare them with their records.

The committed bundles (results/<profile>/) are results that no build retrains; this check is what makes them
evidence for the code at hand. It picks one committed run of each kind in SAMPLE (a standard VGG, a BN VGG, an
lp-normalized VGG, a BN deep linear network; another committed run where a kind is not committed yet), retrains its
first `steps` steps with the thread count its meta records, and compares the record with the committed one cut to
those steps (`summary.truncate`: training loss and accuracy at every step, every probe record before `steps`):

- **bit-identical**, where this machine's numerics (`bnopt.runs.numerics`: CPU vendor, the vector ISA in force, torch)
  are the ones the run recorded. Pinning the ISA (`make`'s default, BNOPT_ISA=avx2) makes every machine of one
  vendor such a machine; any difference then fails the check, naming the run and the first field that differs.
- **within a tolerance** elsewhere (another vendor, another torch): the mean training loss over the last 100 of the
  `steps` steps may differ from the committed one by at most TOLERANCE_SEEDS times the seed-to-seed standard
  deviation of that mean over the committed seeds of the same configuration (at least 2 seeds; else
  TOLERANCE_RELATIVE of the mean). Another CPU's rounding moves a run; it must move it far less than a new seed.

Committed measurements made on the runs (`bnopt.runs.measured`: a trained network's Hessian spectrum, its landscape
at one point) are checked the same way: per measurement, the entry that was quickest to make is computed again on its
committed run and compared, bit for bit under the numerics it recorded, else within `measured.RTOL` on its summary
numbers.

The outcome goes to <data home>/verify-runs.json, which the front page's scale table reports.

    bnopt verify-runs --profile narrow [--steps 300]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from bnopt.analysis.summary import truncate
from bnopt.runs.bundle import bundles_in, cache_for, content_of, install, manifest_of
from bnopt.runs.cache import RunCache
from bnopt.runs.config import RunConfig
from bnopt.runs.data import DataError
from bnopt.runs.launch import get_task
from bnopt.runs.measured import recheck
from bnopt.runs.numerics import numerics
from bnopt.runs.numerics import threads as numerics_threads
from bnopt.runs.paths import data_home, repo_root, write_text_atomic
from bnopt.runs.train import train

# The kinds of run the check covers, in order: (name, test on a config).
SAMPLE = (("standard VGG", lambda c: c.model.arch != "dln" and c.model.norm == "none"),
          ("BN VGG", lambda c: c.model.arch != "dln" and c.model.norm == "batch"),
          ("lp VGG", lambda c: c.model.arch != "dln" and c.model.norm in ("l1", "l2", "linf")),
          ("BN DLN", lambda c: c.model.arch == "dln" and c.model.norm == "batch"))
DEFAULT_STEPS = 300
TOLERANCE_SEEDS = 0.5        # [choice] of the seed-to-seed std of the mean loss over the compared window
TOLERANCE_RELATIVE = 0.02    # [choice] of that mean, where fewer than 2 seeds are committed
WINDOW = 100                 # the last steps of the compared prefix whose mean training loss is compared
OUTCOME_FILE = "verify-runs.json"


class VerifyError(RuntimeError):
    """A committed run does not reproduce; the message names it and what differs."""


def first_difference(a, b, path: str = "result") -> str | None:
    """The path of the first field where two run records differ bit for bit (NaN equal to NaN), or None.

    >>> first_difference({"x": torch.tensor([1.0, float("nan")])}, {"x": torch.tensor([1.0, float("nan")])}) is None
    True
    >>> first_difference({"p": [{"v": 1.0}, {"v": 2.0}]}, {"p": [{"v": 1.0}, {"v": 2.5}]})
    'result.p[1].v'
    """
    if type(a) is not type(b):
        return path
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return path
        return next((d for k in a if (d := first_difference(a[k], b[k], f"{path}.{k}"))), None)
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return path
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := first_difference(x, y, f"{path}[{i}]"))), None)
    if isinstance(a, torch.Tensor):
        same = a.shape == b.shape and a.dtype == b.dtype and torch.equal(
            torch.nan_to_num(a.float() if a.is_floating_point() else a, nan=-7.0),
            torch.nan_to_num(b.float() if b.is_floating_point() else b, nan=-7.0))
        return None if same else path
    if isinstance(a, float) and np.isnan(a) and np.isnan(b):
        return None
    return None if a == b else path


def compared(result: dict, steps: int) -> dict:
    """What the check compares of a run: its record cut to `steps` steps, training curves and probe records."""
    cut = truncate(result, steps)
    return {k: cut.get(k) for k in ("train_loss", "train_acc", "probes")}


def window_loss(result: dict, steps: int) -> float:
    """Mean training loss over the last WINDOW steps of the first `steps`."""
    loss = torch.as_tensor(result["train_loss"][:steps], dtype=torch.float64)
    return float(loss[-min(WINDOW, len(loss)):].mean())


def _installed(profile: str, root: Path | None, content: str) -> tuple[RunCache, list[str]]:
    """Install the committed bundles of `profile` that hold `content` into that content's cache (verified); returns
    the cache and the keys of their entries."""
    root = root or repo_root() or Path.cwd()
    cache, keys = cache_for(content), []
    for b in bundles_in(root / "results" / profile):
        if content_of(manifest_of(b)) == content:
            install(b, cache)
            keys += [r["key"] for r in manifest_of(b)["runs"]]
    return cache, keys


def committed(profile: str, root: Path | None = None) -> list[dict]:
    """The committed runs of `profile`, installed into the run cache (verified): [{'key', 'config', 'meta'}]."""
    cache, keys = _installed(profile, root, "runs")
    return [{"key": k, "config": RunConfig.from_dict(cache.material(k)["config"]),
             "fingerprint": cache.material(k)["data_fingerprint"], "meta": cache.meta(k)} for k in keys]


def pick(runs: list[dict], n: int = len(SAMPLE)) -> list[tuple[str, dict]]:
    """[(kind, run)]: the first committed run (lowest seed, then key) of each kind in SAMPLE, then other runs
    (longest first) until `n`."""
    ordered = sorted(runs, key=lambda r: (r["config"].seed, r["key"]))
    chosen = []
    for kind, test in SAMPLE:
        hit = next((r for r in ordered if test(r["config"]) and all(r is not c for _, c in chosen)), None)
        if hit:
            chosen.append((kind, hit))
    rest = sorted((r for r in ordered if all(r is not c for _, c in chosen)), key=lambda r: -r["config"].optim.steps)
    chosen += [("other", r) for r in rest[: max(0, n - len(chosen))]]
    return chosen


def tolerance(run: dict, runs: list[dict], steps: int) -> tuple[float, str]:
    """(allowed |difference| of `window_loss`, how it was set) for `run`, from the committed seeds of its config."""
    same = [r for r in runs if r["config"].replace(seed=0).key_dict() == run["config"].replace(seed=0).key_dict()]
    if len(same) >= 2:
        cache = RunCache()
        values = [window_loss(cache.load(r["key"]), steps) for r in same]
        sd = float(np.std(values, ddof=1))
        return TOLERANCE_SEEDS * sd, f"{TOLERANCE_SEEDS} x the std over {len(same)} committed seeds ({sd:.3g})"
    mean = window_loss(RunCache().load(run["key"]), steps)
    return TOLERANCE_RELATIVE * abs(mean), f"{TOLERANCE_RELATIVE:.0%} of the mean (fewer than 2 seeds committed)"


def committed_measurements(profile: str, root: Path | None = None) -> list[dict]:
    """The committed measurements of `profile` (`bnopt.runs.measured`), installed into the measurement cache
    (verified): [{'key', 'measurement', 'run', 'meta'}]."""
    cache, keys = _installed(profile, root, "measurements")
    return [{"key": k, "measurement": cache.material(k)["measurement"], "run": cache.material(k)["run"],
             "meta": cache.meta(k)} for k in keys]


def recheck_measurements(profile: str, root: Path | None = None) -> list[dict]:
    """Compute again, per measurement, the committed entry that took the least time to make (ties: the first key), on
    its committed run, and compare (`bnopt.runs.measured.recheck`). The measurements must be registered (the book's
    are, by `bnopt verify-runs`)."""
    chosen = {}
    for e in sorted(committed_measurements(profile, root), key=lambda e: (e["meta"].get("wall_time_s", 0), e["key"])):
        chosen.setdefault(e["measurement"], e)
    out, runs = [], RunCache()
    for name, e in sorted(chosen.items()):
        result = runs.load(e["run"])
        if result is None:
            raise VerifyError(f"measurement {name} [{e['key']}] was made on run {e['run']}, which no committed "
                              f"bundle of {profile!r} holds")
        cfg = RunConfig.from_dict(runs.material(e["run"])["config"])
        out.append({**recheck(e["key"], cfg, result), "run": result["meta"].get("description", e["run"]),
                    "recorded": e["meta"].get("numerics")})
    return out


def _retrain(cfg_dict: dict, threads: int) -> dict:
    """Worker body: train a config from scratch with `threads` PyTorch threads, outside the run cache."""
    with numerics_threads(threads):
        r = train(RunConfig.from_dict(cfg_dict))
    return {k: r.get(k) for k in ("train_loss", "train_acc", "probes")}


def verify(profile: str, steps: int = DEFAULT_STEPS, n: int = len(SAMPLE), workers: int = 2,
           root: Path | None = None) -> dict:
    """Retrain and compare the sample of the runs committed under <root>/results/<profile>/ (see the module
    docstring). Returns the outcome, also written to <data home>/verify-runs.json; raises VerifyError naming
    every run that does not reproduce."""
    runs = committed(profile, root)
    here = numerics()
    outcome = {"profile": profile, "steps": steps, "numerics": here, "checked": [], "committed": len(runs),
               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "missing_kinds": []}
    chosen = pick(runs, n)
    outcome["missing_kinds"] = [k for k, _ in SAMPLE if k not in [c for c, _ in chosen]]
    jobs = []
    for kind, r in chosen:
        if get_task(r["config"], torch.device("cpu")).fingerprint != r["fingerprint"]:
            outcome["checked"].append({"kind": kind, "key": r["key"], "run": r["meta"].get("description", ""),
                                       "mode": "skipped", "why": "trained on other CIFAR-10 pixels than this machine's"})
            continue
        jobs.append((kind, r))
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs) or 1)), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_retrain, r["config"].replace(**{"optim.steps": min(steps, r["config"].optim.steps)})
                               .to_dict(), int(r["meta"].get("threads", 1))) for _, r in jobs]
        fresh = [f.result() for f in futures]
    failures = []
    for (kind, r), new in zip(jobs, fresh):
        k = min(steps, r["config"].optim.steps)
        old = compared(RunCache().load(r["key"]), k)
        diff = first_difference(old, new)
        exact = r["meta"].get("numerics") == here
        entry = {"kind": kind, "key": r["key"], "run": r["meta"].get("description", ""), "steps": k,
                 "recorded": r["meta"].get("numerics"), "mode": "exact" if exact else "tolerance",
                 "identical": diff is None}
        if exact and diff is not None:
            entry["why"] = f"differs at {diff}"
            failures.append(entry)
        elif not exact and diff is not None:
            allowed, how = tolerance(r, runs, k)
            gap = abs(window_loss(new, k) - window_loss(old, k))
            entry.update(gap=gap, allowed=allowed, tolerance=how)
            if not gap <= allowed:
                entry["why"] = f"mean loss over its last {WINDOW} steps moved {gap:.3g}, more than {allowed:.3g} ({how})"
                failures.append(entry)
        outcome["checked"].append(entry)
    outcome["measurements"] = recheck_measurements(profile, root)
    failures += [{"kind": e["measurement"], "run": e["run"], "key": e["key"], "why": e["why"]}
                 for e in outcome["measurements"] if not e["ok"]]
    outcome["passed"] = not failures
    path = data_home() / OUTCOME_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(outcome, indent=1))
    if failures:
        raise VerifyError("committed runs or measurements that do not reproduce: " + "; ".join(
            f"{e['run']} [{e['key']}] ({e['kind']}): {e['why']}" for e in failures))
    return outcome


def outcome_line(profile: str, committed_keys: set[str]) -> str:
    """The front page's sentence on the last check of this profile's committed runs (<data home>/verify-runs.json)."""
    if not committed_keys:
        return f"No `{profile}` runs are committed: nothing to verify."
    path = data_home() / OUTCOME_FILE
    try:
        o = json.loads(path.read_text())
    except (OSError, ValueError):
        o = {}
    checked = [e for e in o.get("checked", []) if e.get("key") in committed_keys]
    if o.get("profile") != profile or not checked:
        return (f"The committed `{profile}` runs were not verified on this machine (`make verify-runs` retrains the "
                f"first steps of a sample and compares them with the records).")
    parts = []
    for e in checked:
        if e["mode"] == "skipped":
            parts.append(f"{e['run']}: skipped ({e['why']})")
        elif e.get("identical"):
            parts.append(f"{e['run']}: bit-identical")
        else:
            parts.append(f"{e['run']}: within tolerance (loss moved {e['gap']:.2g}, allowed {e['allowed']:.2g})")
    for e in o.get("measurements", []):
        parts.append(f"the measurement {e['measurement']} on {e['run']}: "
                     + ("bit-identical" if e["mode"] == "exact" else f"computed again, {e['why']}"))
    verdict = "passed" if o.get("passed") else "FAILED"
    return (f"`make verify-runs` {verdict} on {o['date'][:10]} ({o['numerics']}): the first {o['steps']} steps of "
            f"{len(checked)} committed runs retrained and compared with their records: " + "; ".join(parts) + ".")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bnopt verify-runs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="narrow")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"steps retrained per run (default {DEFAULT_STEPS})")
    ap.add_argument("--runs", type=int, default=len(SAMPLE), help=f"runs checked (default {len(SAMPLE)})")
    ap.add_argument("--workers", type=int, default=2, help="runs retrained side by side (default 2)")
    a = ap.parse_args(argv)
    if a.steps < 1 or a.runs < 1:
        print("error: --steps and --runs: allowed: integers >= 1", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        o = verify(a.profile, a.steps, a.runs, a.workers)
    except (VerifyError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not o["checked"]:
        print(f"[verify] no committed {a.profile} runs: nothing to verify")
        return 0
    for e in o["checked"]:
        print(f"[verify] {e['kind']:13s} {e['run']} [{e['key']}]: {e['mode']}, "
              + ("skipped: " + e["why"] if e["mode"] == "skipped" else "bit-identical" if e["identical"] else
                 f"loss moved {e['gap']:.3g} (allowed {e['allowed']:.3g}: {e['tolerance']})"))
    for e in o["measurements"]:
        print(f"[verify] {e['measurement']:13s} on {e['run']} [{e['key']}]: {e['mode']}, "
              + ("bit-identical" if e["mode"] == "exact" else e["why"]) + f" ({e['seconds']:.1f} s)")
    if o["missing_kinds"]:
        print(f"[verify] not committed yet, so not checked: {', '.join(o['missing_kinds'])}")
    print(f"[verify] {len(o['checked'])} committed {a.profile} runs reproduce ({o['numerics']}) "
          f"in {time.perf_counter() - t0:.0f}s")
    return 0


