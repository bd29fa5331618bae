"""The training campaign: a profile's runs trained outside CI, within a time budget, in a stated priority order,
and exported as new results bundles that every build imports (`results/<profile>/*.tar.xz`).

    bnopt campaign --profile narrow --budget 150m            # one worker, one thread
    bnopt campaign --profile narrow --budget 8h --workers 2  # when nothing else runs
    bnopt campaign --profile narrow --plan                   # what is left, in order, and nothing trains

Order: the runs the profile's chapters declare, grouped by PRIORITY (the central claims first: the reference
pair, then the other learning rates (Fig. 1 at 0.5, Fig. 3), the other normalizations, noisy BN, weight decay,
the sweeps), the longest first within a group. At the end of the budget the runs in flight checkpoint and stop (`train.RunStopped`);
the next call resumes them from their checkpoints, bit-identically. Then every run of the profile that the run
cache holds and no bundle in the results folder has yet is exported as one new bundle, named by the time of its
export: a committed bundle is never rewritten.

The single-point measurements of the chapters (`bnopt.book.measurements`: Hessian spectra, landscapes at one point)
are made by a build, not by the campaign: after `make book PROFILE=narrow` on the committed runs,
`bnopt campaign --profile narrow --measurements` exports them as a bundle of their own, which every later build reads.

Train from a separate worktree at a fixed commit (`git worktree add ../campaign <commit>`), so that edits in the
main tree cannot change a running worker; the cache keys (a hash of each run's full configuration and data) are
what makes its results valid for later code. Copy the new bundle into the main tree's results folder and commit it.
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import re
import signal
import sys
import time
from pathlib import Path

from bnopt.book import experiments as E
from bnopt.book.bench import run_seconds, saved_bench
from bnopt.runs.bundle import BundleError, bundles_in, content_of, export, install, verify
from bnopt.runs.cache import RunCache
from bnopt.runs.config import RunConfig, canonical_json
from bnopt.runs.executor import config_keys, ensure, estimated_cost, missing
from bnopt.runs.launch import describe
from bnopt.runs.measured import entries_of
from bnopt.runs.paths import repo_root

NOISE_NORMS = ("noisy_batch", "noise_only")
PRIORITY = ("reference pair", "other learning rates", "other normalizations", "noisy BN", "weight decay",
            "learning-rate sweeps")
PRIORITY_NOTE = {   # what each group holds, for the plan and the front page
    "reference pair": "standard and BN at the reference learning rates (VGG 0.1, DLN 1e-6): Figs 1, 3, 4, the "
                      "theorem checks, matched loss",
    "other learning rates": "Fig. 1 at LR 0.5, Fig. 3 at LR 0.01 and the DLN at 1e-7",
    "other normalizations": "ℓ1, ℓ2, ℓ∞, layer and group norm (Figs 5, 6, 12, 13)",
    "noisy BN": "noisy BN and the noise alone (Fig. 2 and its control)",
    "weight decay": "the hidden-L2 question of Fig. 4a",
    "learning-rate sweeps": "the usable learning rates and the level of β and λ_max against 2/LR",
}


def priority_of(key, reference_lrs) -> int:
    """The PRIORITY group of a grid entry: its grid key (kind, normalization, learning rate), against the chapter's
    reference learning rates.

    >>> [PRIORITY[priority_of(k, {0.1, 1e-6})] for k in [("none", 0.1), ("batch", 0.5), ("vgg", "none", 0.01),
    ...                                                 ("dln", "batch", 1e-7), ("dln", "batch", 1e-6)]]
    ['reference pair', 'other learning rates', 'other learning rates', 'other learning rates', 'reference pair']
    >>> [PRIORITY[priority_of(k, {0.1})] for k in [("vgg_sweep", "none", 1.0), ("vgg_wd", "batch", 0.1),
    ...                                          ("vgg", "noisy_batch", 0.1), ("dln", "l1", 1e-6), "batch"]]
    ['learning-rate sweeps', 'weight decay', 'noisy BN', 'other normalizations', 'reference pair']
    """
    parts = key if isinstance(key, tuple) else (key,)
    kind = parts[0] if parts[0].startswith(("vgg", "dln")) else ""
    norm = next((p for p in parts if isinstance(p, str) and not p.startswith(("vgg", "dln"))), "none")
    lr = parts[-1] if isinstance(parts[-1], float) else None
    if kind.endswith("_sweep"):
        return 5
    if kind.endswith("_wd"):
        return 4
    if norm in NOISE_NORMS:
        return 3
    if norm not in ("none", "batch"):
        return 2
    if lr is not None and lr not in reference_lrs:
        return 1
    return 0


def reference_lrs(params: dict) -> set[float]:
    """A chapter's reference learning rates: the first of its lists, or its single values (VGG and DLN)."""
    out = {float(params[k]) for k in ("lr", "dln_lr") if k in params}
    out |= {float(params[k][0]) for k in ("lrs", "dln_lrs") if params.get(k)}
    return out


def campaign_order(profile: str, chapters=None) -> list[tuple[int, RunConfig]]:
    """Every distinct run of the profile's chapters (all chapters with runs, or `chapters`) as (priority, config),
    in training order: by priority group, then the longest first."""
    best: dict[str, tuple[int, RunConfig]] = {}
    for chapter in sorted(chapters or E.GRIDS):
        params = E.chapter_parameters(chapter, profile)
        refs = reference_lrs(params)
        for key, cfgs in E.chapter_grid(chapter, params).items():
            for cfg in cfgs:
                k = canonical_json(cfg.to_dict())
                p = priority_of(key, refs)
                if k not in best or p < best[k][0]:
                    best[k] = (p, cfg)
    return sorted(best.values(), key=lambda pc: (pc[0], -estimated_cost(pc[1])))


def estimate(order: list[tuple[int, RunConfig]], bench: dict | None) -> dict[str, float]:
    """Single-thread seconds of each PRIORITY group's runs by a saved bench (`bench.run_seconds`), and 'total';
    empty without a bench."""
    if not bench:
        return {}
    out = {name: 0.0 for name in PRIORITY}
    for p, cfg in order:
        out[PRIORITY[p]] += run_seconds(cfg, bench) or 0.0
    out["total"] = sum(out.values())
    return out


def parse_budget(text: str) -> float:
    """Seconds of a budget written as '150m', '2h', '90s', '1h30m' or a plain number of seconds.

    >>> parse_budget("150m"), parse_budget("1h30m"), parse_budget("45"), parse_budget("2h")
    (9000.0, 5400.0, 45.0, 7200.0)
    """
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    if not text or not parts or not any(parts.groups()):
        raise ValueError(f"budget {text!r}: write it as e.g. 150m, 2h, 1h30m, 90s or a number of seconds")
    h, m, s = (float(g or 0) for g in parts.groups())
    return 3600 * h + 60 * m + s


def bundled(folder: Path) -> dict[str, set[str]]:
    """{content: the keys of every entry in the (verified) bundles of a results folder that hold it} (runs,
    measurements), each bundle read and verified once."""
    keys: dict[str, set[str]] = {}
    for b in bundles_in(folder):
        manifest, _ = verify(b)
        keys.setdefault(content_of(manifest), set()).update(r["key"] for r in manifest["runs"])
    return keys


def bundled_keys(folder: Path, content: str = "runs") -> set[str]:
    """The keys of every entry in the (verified) bundles of a results folder that hold `content` (runs, or
    measurements)."""
    return bundled(folder).get(content, set())


def bundle_path(folder: Path, profile: str, n: int, content: str) -> Path:
    """A new bundle's path, named by the UTC time of its export; a committed bundle is never rewritten."""
    path = Path(folder) / f"{profile}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{n}{content}.tar.xz"
    if path.exists():
        raise BundleError(f"{path} exists already: a committed bundle is never rewritten")
    return path


def export_new(profile: str, folder: Path, configs: list[RunConfig]) -> Path | None:
    """Export the runs of `configs` that the cache holds and no bundle in `folder` has yet, as a new bundle named
    by the UTC time of the export; None when there is nothing new."""
    cache, have = RunCache(), bundled_keys(folder)
    new = [k for k in dict.fromkeys(config_keys(configs)) if k not in have and cache.has(k)]
    if not new:
        return None
    path = bundle_path(folder, profile, len(new), "runs")
    export(new, path, profile=profile)
    return path


def export_measurements(profile: str, folder: Path) -> Path | None:
    """Export the measurement entries (`bnopt.runs.measured`) made on the runs committed in `folder` that no
    measurement bundle there holds yet, as a new bundle; None when there is nothing new. A build of the profile
    (`make book PROFILE=narrow`) is what makes them."""
    keys = bundled(folder)
    have = keys.get("measurements", set())
    new = [k for k in entries_of(keys.get("runs", set())) if k not in have]
    if not new:
        return None
    path = bundle_path(folder, profile, len(new), "measurements")
    export(new, path, profile=profile, content="measurements")
    return path


class CampaignStopped(RuntimeError):
    """SIGTERM reached the campaign: its worker processes were stopped with it (their runs resume from their last
    checkpoint, at most a minute of training lost; finished runs stay cached and the next call exports them)."""


@contextlib.contextmanager
def stop_on_sigterm():
    """Inside the block, SIGTERM (a `kill`, the end of a session) also stops the worker processes, which would
    otherwise train on, orphaned, beside whatever runs next; the previous handler is restored after the block."""
    def handler(signum, frame):
        for child in multiprocessing.active_children():
            child.terminate()
        raise CampaignStopped("stopped by SIGTERM; the runs in flight resume from their last checkpoints")

    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def run_campaign(profile: str, budget_s: float, workers: int = 1, threads: int = 1, chapters=None,
                 results: Path | None = None) -> dict:
    """Train the profile's missing runs in priority order until `budget_s` seconds have passed (the runs in flight
    then checkpoint and stop), then export what finished as a new bundle. Returns the executor's summary with
    'bundle' (its path, or None) and 'left' (runs still missing)."""
    order = [cfg for _, cfg in campaign_order(profile, chapters)]
    stop_at = time.time() + budget_s
    folder = Path(results) if results else (repo_root() or Path.cwd()) / "results" / profile
    for b in bundles_in(folder):          # the runs committed already are not trained again
        install(b)
    summary = ensure(order, workers=workers, threads=threads, label=f"campaign ({profile})", stop_at=stop_at,
                     order="given")
    summary["bundle"] = export_new(profile, folder, order)
    summary["left"] = len(missing(order))
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bnopt campaign", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--budget", default="150m", help="how long to train, e.g. 150m, 2h, 1h30m (default 150m)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes (1 while you work, 2 when nothing else runs)")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads per worker")
    ap.add_argument("--chapters", nargs="+", help="only these chapters' runs (default: every chapter with runs)")
    ap.add_argument("--results", help="the results folder to export into (default: results/<profile>/ of this tree)")
    ap.add_argument("--plan", action="store_true", help="list the runs left, in training order, and train nothing")
    ap.add_argument("--measurements", action="store_true",
                    help="export the measurements a build made on the committed runs as a new bundle; train nothing")
    a = ap.parse_args(argv)
    try:
        if a.measurements:
            folder = Path(a.results) if a.results else (repo_root() or Path.cwd()) / "results" / a.profile
            path = export_measurements(a.profile, folder)
            print(f"[bnopt] campaign ({a.profile}): new measurement bundle: {path or 'none (nothing new)'}")
            return 0
        if a.plan:
            order = campaign_order(a.profile, a.chapters)
            left = {canonical_json(c.to_dict()) for c in missing([c for _, c in order])}
            todo = [(p, c) for p, c in order if canonical_json(c.to_dict()) in left]
            for p, c in todo:
                print(f"{PRIORITY[p]:22s} {describe(c)}, {c.optim.steps} steps")
            print(f"[bnopt] {len(todo)} of {len(order)} runs of profile {a.profile!r} left to train")
            bench = saved_bench()
            whole = estimate(order, bench)
            for name, left in estimate(todo, bench).items():
                print(f"  {name:22s} {left / 3600:6.1f} of {whole[name] / 3600:6.1f} core-hours left (this machine's "
                      f"bench){': ' + PRIORITY_NOTE[name] if name in PRIORITY_NOTE else ''}")
            if not bench:
                print("  no saved bench on this machine (`make bench`): no time estimate")
            return 0
        with stop_on_sigterm():
            s = run_campaign(a.profile, parse_budget(a.budget), a.workers, a.threads, a.chapters, a.results)
    except (ValueError, BundleError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except CampaignStopped as e:
        print(f"[bnopt] campaign ({a.profile}): {e}", file=sys.stderr)
        return 128 + signal.SIGTERM
    print(f"[bnopt] campaign ({a.profile}): {s['trained']} runs finished, {s['stopped']} stopped at the budget "
          f"(they resume), {s['left']} left; new bundle: {s['bundle'] or 'none (nothing new)'}")
    return 0


