"""The `bnopt` command: one entry point, one subcommand per task (`bnopt --help` lists them).

    bnopt book [--profile narrow] [--train yes|no] [--only CHAPTER ...]   execute the chapters, build the HTML
    bnopt verify-runs [--profile narrow]      retrain the start of a sample of committed runs, compare records
    bnopt train CHAPTER [--profile P] [--set NAME=VALUE ...]   train a chapter's runs (workers or Slurm)
    bnopt bundle export|import|list FILE      results bundles (every run of a profile in one verified archive)
    bnopt campaign --profile narrow --budget 150m   train a profile's missing runs in priority order
    bnopt bench [--quick]                     cost of a run and of each probe on this machine
    bnopt glued [STAGE]                       every glued value of a staged build, as JSON (compare two builds)
    bnopt snapshot --profile quick --out F    a staged build's claims and glued values, for builds at other scales

`python -m bnopt ...` is the same command where the package is not installed (PYTHONPATH=src).
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

from bnopt.book import bench, build, campaign, measurements, scales
from bnopt.book import experiments as E
from bnopt.book.params import BuildError, ParameterError, coerce_parameters
from bnopt.book.report import glued_values
from bnopt.runs import bundle, verify
from bnopt.runs.cache import RunCache
from bnopt.runs.config import ConfigError
from bnopt.runs.data import DataError
from bnopt.runs.executor import RunFailed, ensure, run_keys
from bnopt.runs.launch import describe


def train_main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bnopt train", description=E.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chapter", choices=sorted(E.GRIDS))
    ap.add_argument("--profile", default=None, help="a profile in book/params (default: notebook defaults)")
    ap.add_argument("--jobs", "--workers", dest="workers", type=int, default=None,
                    help="parallel worker processes (default: BNOPT_WORKERS, else 1 on CUDA, else the cores)")
    ap.add_argument("--threads", type=int, default=None,
                    help="PyTorch threads per worker (default: BNOPT_THREADS, else cores / workers)")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=PYTHON_LITERAL",
                    help="override parameters, e.g. --set steps=100 'seeds=[0]'")
    ap.add_argument("--executor", choices=("local", "slurm"), default="local",
                    help="local: worker processes on this machine; slurm: one Slurm job array (bnopt.runs.slurm)")
    sl = ap.add_argument_group("slurm (with --executor slurm; the run cache must be on a shared file system)")
    sl.add_argument("--partition", default=None, help="Slurm partition (default: the cluster's default)")
    sl.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per array task (default 0)")
    sl.add_argument("--cpus-per-task", type=int, default=1, help="CPU cores per array task (default 1)")
    sl.add_argument("--runs-per-job", type=int, default=4, help="runs packed into one array task (default 4)")
    sl.add_argument("--time", dest="time_min", type=int, default=60, help="minutes per array task (default 60)")
    sl.add_argument("--max-requeue", type=int, default=3, help="requeues of a timed-out or preempted task (default 3)")
    sl.add_argument("--parallel", type=int, default=None, help="array tasks running at once (default: no limit)")
    sl.add_argument("--slurm-folder", default="slurm-logs", help="submitit's folder for task logs and pickles")
    a = ap.parse_args(argv)
    try:
        params = E.chapter_parameters(a.chapter, a.profile)
        given = {}
        for item in a.set:
            name, eq, value = item.partition("=")
            if not eq:
                raise ParameterError(f"--set {item!r}: expected NAME=VALUE")
            try:
                given[name] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                given[name] = value                      # a bare word: a string, coerced below
        params.update(coerce_parameters(params, given, f"chapter {a.chapter!r}"))
        configs = E.grid_configs(E.chapter_grid(a.chapter, params))
        if a.executor == "slurm":
            from bnopt.runs.slurm import ensure_slurm  # local: submitit only for Slurm (GPU loans have no submitit)
            summary = ensure_slurm(configs, a.slurm_folder, a.runs_per_job, threads=a.threads or a.cpus_per_task,
                                   label=a.chapter, partition=a.partition, gpus_per_job=a.gpus_per_job,
                                   cpus_per_task=a.cpus_per_task, time_min=a.time_min, max_requeue=a.max_requeue,
                                   parallel=a.parallel)
            where = f"{summary['jobs']} Slurm array task(s) (array {summary['array']})"
        else:
            summary = ensure(configs, a.workers, a.threads, label=a.chapter)
            where = f"{summary['workers']} worker(s) x {summary['threads']} thread(s)"
    except (RunFailed, BuildError, ConfigError, ParameterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"[bnopt] {a.chapter}: {summary['trained']} runs trained, {summary['cached']} cached, "
          f"in {summary['wall_s']:.0f}s on {where}", file=sys.stderr)
    return 0


def bundle_main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bnopt bundle", description=bundle.__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="pack every run a profile's chapters need")
    ex.add_argument("--profile", required=True)
    ex.add_argument("--partial", action="store_true",
                    help="export the runs the cache holds and name the missing ones (e.g. a GPU loan that ran out)")
    ex.add_argument("--no-weights", action="store_true",
                    help="leave the runs' final weights out (metrics and probe records only; see the README's size cap)")
    ex.add_argument("file")
    im = sub.add_parser("import", help="verify a bundle and install its runs into the run cache")
    im.add_argument("file")
    ls = sub.add_parser("list", help="verify a bundle and list its runs")
    ls.add_argument("file")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "export":
            keys = run_keys(E.profile_configs(args.profile))
            absent = [k for k in keys if not RunCache().has(k)]
            if absent:
                print(f"{'warning' if args.partial else 'error'}: {len(absent)} of the {len(keys)} runs of profile "
                      f"{args.profile!r} are not in the cache; train them first (bnopt train CHAPTER "
                      f"--profile {args.profile})" + (", or export the others with --partial" if not args.partial else ""),
                      file=sys.stderr)
                for k in absent:
                    print(f"  {k}  {describe(keys[k])}", file=sys.stderr)
                if not args.partial or len(absent) == len(keys):
                    return 2
            m = bundle.export([k for k in keys if k not in absent], args.file, profile=args.profile, weights=not args.no_weights)
            size = Path(args.file).stat().st_size
            dropped = sum(r["weights_dropped"] for r in m["runs"])
            print(f"[bnopt] bundle {args.file}: {len(m['runs'])} runs of profile {args.profile!r}, {size / 1e6:.1f} MB"
                  + (f" (the final weights of {dropped} runs left out)" if dropped else ""))
        elif args.cmd == "import":
            c = bundle.install(args.file)
            print(f"[bnopt] bundle {args.file}: {c['installed']} {c['content']} installed, {c['present']} already present")
        else:
            m, _ = bundle.verify(args.file)
            for r in m["runs"]:
                print(f"{r['key']}  {r.get('description', '')}  ({r.get('device') or 'cpu'}, {r.get('wall_time_s') or 0:.0f} s)")
            print(f"[bnopt] {len(m['runs'])} {bundle.content_of(m)}, profile {m.get('profile')!r}, created "
                  f"{m.get('created')}: verified")
    except (bundle.BundleError, ValueError, DataError) as e:     # export needs the data for the runs' fingerprints
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def verify_main(argv=None) -> int:
    """`bnopt verify-runs` (`bnopt.runs.verify`), with the book's measurements registered so that a sample of the
    committed ones is computed again as well."""
    measurements.register_all()
    return verify.main(argv)


def glued_main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bnopt glued", description=glued_values.__doc__.split("\n\n")[0])
    ap.add_argument("stage", nargs="?", default=build.STAGE, help=f"a staged build (default {build.STAGE})")
    print(json.dumps(glued_values(ap.parse_args(argv).stage), indent=1, sort_keys=True))
    return 0


def snapshot_main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bnopt snapshot", description=scales.__doc__.split("\n\n")[0])
    ap.add_argument("--profile", required=True, help="the profile every chapter of the staged build was built at")
    ap.add_argument("--stage", default=build.STAGE, help=f"the staged build (default {build.STAGE})")
    ap.add_argument("--out", required=True, help=f"where to write it, e.g. results/quick/{scales.SNAPSHOT_NAME}")
    a = ap.parse_args(argv)
    try:
        snap = scales.write(a.stage, a.out, a.profile)
    except scales.SnapshotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[bnopt] {a.out}: {len(snap['records'])} claim records and the glued values of "
          f"{len(snap['glued'])} chapters at {scales.describe(snap)}")
    return 0


COMMANDS = {"book": build.main, "verify-runs": verify_main, "train": train_main, "bundle": bundle_main,
            "campaign": campaign.main, "bench": bench.main, "glued": glued_main,
            "snapshot": snapshot_main}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}; valid choices: {', '.join(COMMANDS)}", file=sys.stderr)
            return 2
        return 0 if argv else 2
    return COMMANDS[argv[0]](argv[1:])
