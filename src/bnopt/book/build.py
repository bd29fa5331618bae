"""The book pipeline: execute every chapter with papermill into a staging tree, then build HTML.

    bnopt book --profile quick          # what `make book` runs
    bnopt book --profile paper --only training

Parameters come from `book/params/<profile>.yaml` ({chapter: {parameter: value}}); each chapter has
one cell tagged `parameters`. An unknown profile, chapter or parameter is an error. A chapter whose
execution fails leaves no executed copy behind, so a stale notebook never reaches the book.
Jupyter Book then builds the staging tree with its own execution off (`execute_notebooks: off`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from unittest import mock

from bnopt.book import claims, reuse
from bnopt.book.params import (BuildError, book_dir, chapters, check_parameters, notebook_parameters,
                               profile_parameters, profiles)
from bnopt.book.report import FIGURES_DIR
from bnopt.book.status import (ALONE, DEFAULT_PROFILE, FALLBACK, NO_TRAIN_BY_DEFAULT, SCALE_FILE, chapter_configs,
                               describe_runs, import_results, plan_profiles, run_status, scale_table, train_all)
from bnopt.runs.numerics import numerics
from bnopt.runs.paths import data_home, repo_root, write_text_atomic
from bnopt.runs.progress import close_files, message
from bnopt.runs.verify import outcome_line


STAGE = "_stage"   # the staged build, under the repository root: executed chapters, claim records, glued values


def execute_chapter(nb_path: Path, out_path: Path, parameters: dict, cwd: Path | None = None) -> float:
    """Execute one chapter with papermill. On failure, delete the output (and raise)."""
    import papermill

    parameters = check_parameters(nb_path, parameters)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # The notebook executes into a folder beside the stage (Jupyter Book reads every notebook in the
    # stage, so a killed build must leave nothing half-executed there); one file per process.
    scratch = executing_dir(out_path.parent)
    scratch.mkdir(parents=True, exist_ok=True)
    tmp = scratch / f"{out_path.stem}.{os.getpid()}.ipynb"
    out_path.unlink(missing_ok=True)   # never leave the previous build's copy in place on failure
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(str(nb_path), str(tmp), parameters=parameters,
                                   kernel_name="python3", progress_bar=False, log_output=False,
                                   cwd=str(cwd or out_path.parent))
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"chapter {nb_path.stem!r} failed: {type(e).__name__}: "
                         f"{str(e).strip()[-3000:]}") from None
    os.replace(tmp, out_path)
    return time.perf_counter() - t0


def executing_dir(stage: Path) -> Path:
    """Where chapters execute before they move into the stage (a sibling of the stage)."""
    return stage.parent / f".{stage.name}-executing"


def stage_book(root: Path, stage: Path, profile: str, only: list[str] | None = None, train: bool = True,
               fallback: str | None = None, fallback_train: bool = True, rerun: bool = False) -> dict:
    """Mirror book/ into the staging tree, executing the chapters. Returns {chapter: seconds}.

    The results bundles under results/<profile>/ are imported first. With train=False and a `fallback`
    profile, a chapter whose runs are not all in the run cache executes at `fallback` (its runs trained
    there when `fallback_train`); the stage's SCALE_FILE, on the front page, says which chapter is at which
    profile. A chapter whose inputs are unchanged since it last executed into this stage is reused, unless `rerun`
    (`bnopt.book.reuse`)."""
    stage = Path(stage).resolve()
    params = {profile: profile_parameters(root, profile)}
    if fallback and fallback != profile:
        params[fallback] = profile_parameters(root, fallback)
    valid = [nb.stem for nb in chapters(root)]
    unknown = sorted(set(only or []) - set(valid))
    if unknown:
        raise BuildError(f"--only names unknown chapter(s) {unknown}; chapters: {', '.join(valid)}")
    for leftover in stage.glob(".*.executing.ipynb"):   # from builds before the executing folder
        leftover.unlink()
    shutil.rmtree(executing_dir(stage), ignore_errors=True)
    src = book_dir(root)
    stage.mkdir(parents=True, exist_ok=True)
    # static pages, bibliography, images; not what a chapter executed inside book/ leaves behind (its claim records
    # and figures), which would overwrite a reused chapter's
    outputs = {"params", ".ipynb_checkpoints", claims.CLAIMS_DIR, claims.ROBUST_DIR, FIGURES_DIR}
    for f in src.rglob("*"):
        rel = f.relative_to(src)
        if f.is_file() and f.suffix != ".ipynb" and not outputs & set(rel.parts):
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, stage / rel)
    selected = [nb for nb in chapters(root) if not only or nb.stem in only]
    for nb in chapters(root):
        if nb not in selected and not (stage / nb.name).exists():
            raise BuildError(f"--only skips {nb.stem!r}, but the stage has no executed copy of it")
    timings = {}
    record = BuildRecord(stage, profile)
    t0 = time.perf_counter()
    imported = import_results(root, profile)
    at, why = plan_profiles(profile, [nb.stem for nb in selected], None if train else fallback)
    summaries = [train_all(root, prof, [s for s in at if at[s] == prof], train if prof == profile else fallback_train,
                           since=record.data["started"], imported=imported)
                 for prof in dict.fromkeys([profile, *at.values()])]
    timings["runs"] = time.perf_counter() - t0
    record.update(runs=timings["runs"], **{f"runs_{k}": sum(x[k] for x in summaries) for k in ("trained", "cached")},
                  workers=summaries[0]["workers"], threads=summaries[0]["threads"], chapter_profiles=at)
    status = {k: v for x in summaries for k, v in x.get("chapters", {}).items()}
    weightless = {s: st["weightless"] for s, st in status.items() if st["weightless"]}
    if weightless:                                 # cached, so not retrained: the chapter would fail on them
        raise BuildError("the run cache holds runs without their final weights (imported from a bundle exported with "
                         "--no-weights), and these chapters rebuild trained networks from them: " + "; ".join(
                             f"{s} at profile {at[s]!r}: {', '.join(describe_runs(c))}" for s, c in weightless.items())
                         + ". Import a bundle with weights, or remove those entries from the run cache to retrain them.")
    unselected = [nb.stem for nb in chapters(root) if nb not in selected]
    if unselected:                                 # staged by an earlier build: described at this profile
        status.update(run_status({s: cs for s in unselected if (cs := chapter_configs(s, profile))},
                                 imported=imported))
    write_text_atomic(stage / SCALE_FILE, scale_table({nb.stem: at.get(nb.stem, profile) for nb in chapters(root)},
                                                      status, why) + "\n\n" + outcome_line(profile, imported) + "\n")
    if why:
        message(f"chapters at profile {fallback!r} instead of {profile!r}: "
                + "; ".join(f"{s} ({w})" for s, w in why.items()))
    whole = profile if not why else f"{profile} ({', '.join(why)} at {fallback})"   # cost and ledger: the whole build
    # a chapter that declares `profile` is told the profile it executes at (the build as a whole for ALONE)
    given = {nb.stem: {**({"profile": whole if nb.stem in ALONE else at[nb.stem]}
                          if "profile" in notebook_parameters(nb) else {}), **params[at[nb.stem]][nb.stem]}
             for nb in selected}
    data = os.environ.get("BNOPT_DATA", "").strip()
    data = str(Path(data).expanduser().resolve()) if data else ""
    common = reuse.common_digest(root, data)
    run_keys = {s: k for x in summaries for s, k in x.get("keys", {}).items()}
    digests = {nb.stem: reuse.chapter_digest(common, nb, given[nb.stem], run_keys.get(nb.stem, []))
               for nb in selected if nb.stem not in ALONE}
    reused = {s for s, d in digests.items() if not rerun and reuse.reusable(stage, s, d)}
    for nb in selected:
        if nb.stem not in reused:
            claims.clear(stage, nb.stem)           # its ledger rows are written anew as it executes
    record.update(reused=sorted(reused))
    lock, failed = threading.Lock(), threading.Event()

    def execute(nb: Path) -> None:
        if failed.is_set():                        # a chapter failed: start no other
            return
        if nb.stem in reused:
            message(f"chapter {nb.stem}: its inputs are unchanged, the executed copy is reused (--rerun executes it)")
            with lock:
                timings[nb.stem] = 0.0
            return
        reuse.forget(stage, nb.stem)
        message(f"executing chapter {nb.stem} (profile {at[nb.stem]}, parameters {params[at[nb.stem]][nb.stem]})")
        try:
            seconds = execute_chapter(nb, stage / nb.name, given[nb.stem], cwd=stage)
        except BaseException:
            failed.set()
            raise
        if nb.stem in digests:                     # its inputs as it read them: with the measurements it made
            reuse.remember(stage, nb.stem, reuse.chapter_digest(common, nb, given[nb.stem], run_keys.get(nb.stem, [])))
        with lock:
            timings[nb.stem] = seconds
            record.update(chapters={**record.data.get("chapters", {}), nb.stem: seconds})
        message(f"chapter {nb.stem} done in {seconds:.0f}s")

    t0 = time.perf_counter()
    # papermill starts each kernel inside `chdir(cwd)`, which changes this whole process's folder and
    # restores it on exit: with chapters side by side, one chapter's restore would move the next kernel
    # out of the stage. In the stage already, every chdir and every restore names the same folder.
    # Kernels start in the stage: a relative data path is made absolute for them (restored after the build).
    kernel_env = {"BNOPT_DATA": data} if data else {}
    with _progress_relay(stage / ".progress.log"), contextlib.chdir(stage), mock.patch.dict(os.environ, kernel_env):
        jobs = chapter_jobs()
        # one OpenMP/MKL thread per kernel side by side, so that they do not oversubscribe the cores
        threads = {k: str(max(1, (os.cpu_count() or 1) // jobs)) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        together = longest_first([nb for nb in selected if nb.stem not in ALONE], data_home() / TIMES_LOG)
        with mock.patch.dict(os.environ, threads if jobs > 1 else {}), ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(execute, nb) for nb in together]
            for f in as_completed(futures):
                f.result()                         # the first failure stops the build (no other starts)
        # each executed chapter's inputs as they stand after all of them: a measurement that one chapter made on a
        # run another one also reads is that other chapter's input too (else its next build would execute it again)
        for nb in [nb for nb in together if nb.stem not in reused]:
            reuse.remember(stage, nb.stem, reuse.chapter_digest(common, nb, given[nb.stem], run_keys.get(nb.stem, [])))
        record.update(chapters_wall=time.perf_counter() - t0, chapter_jobs=jobs)
        for nb in [nb for nb in selected if nb.stem in ALONE]:
            execute(nb)
    return timings


# Seconds each chapter took to execute in the clean-clone rehearsal of 16eb321 (docs/timings.md), two side by side:
# the order in which chapters start on a machine that has not timed them yet. Longest first, so that the longest does
# not start late and run alone: in the table of contents' order smoothness started third (160 s of wall time for 262 s
# of chapters); longest first, 145 s for 284 s (rehearsal of 42c7346; an even split is 142 s).
TYPICAL_SECONDS = {"smoothness": 127, "bn_math": 60, "norms": 27, "ics": 21, "library": 15, "training": 12}
TIMES_LOG = "build-times.jsonl"      # every finished build's timings, one JSON line each (BuildRecord.finish)


def longest_first(nbs: list[Path], log: Path | None = None) -> list[Path]:
    """The chapters in the order they start: longest first, by this machine's latest execution time of each (the
    builds in `log`; a reused chapter's 0 s does not count), else TYPICAL_SECONDS, else 0 s; ties in the given order.
    The order changes when chapters start, never what they compute.

    >>> [p.stem for p in longest_first([Path("training.ipynb"), Path("new.ipynb"), Path("smoothness.ipynb")])]
    ['smoothness', 'training', 'new']
    """
    seconds = dict(TYPICAL_SECONDS)
    if log is not None and log.exists():
        for line in log.read_text().splitlines():
            try:
                timed = json.loads(line).get("chapters") or {}
            except (json.JSONDecodeError, AttributeError):
                continue                           # a line cut by a killed build: the others still count
            seconds.update({k: float(v) for k, v in timed.items() if isinstance(v, (int, float)) and v > 0})
    return sorted(nbs, key=lambda nb: -seconds.get(nb.stem, 0.0))


# Chapters that execute alone, in this order, after all the others: `cost` times this machine (nothing
# may run beside it), `ledger` reads every other chapter's claims.
def chapter_jobs() -> int:
    """How many chapters execute at once: BNOPT_CHAPTER_JOBS, else 2 where there are 2 cores or more (the
    notebooks only read the run cache; most of their time is single-threaded plotting and statistics)."""
    v = os.environ.get("BNOPT_CHAPTER_JOBS", "").strip()
    if v:
        if not v.isdigit() or int(v) < 1:
            raise BuildError(f"BNOPT_CHAPTER_JOBS={v!r}: allowed: an integer >= 1")
        return int(v)
    return 2 if (os.cpu_count() or 1) >= 2 else 1


class BuildRecord:
    """This build's stage timings, written as they happen to `<stage>/.build-times.json` (the cost
    chapter reads it while the build runs) and, at the end, appended to data/build-times.jsonl."""

    def __init__(self, stage: Path, profile: str):
        self.path = stage / ".build-times.json"
        self.data = {"profile": profile, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.update()

    def update(self, **values) -> None:
        self.data.update(values)
        write_text_atomic(self.path, json.dumps(self.data, indent=1))

    @staticmethod
    def finish(stage: Path, **values) -> dict:
        path = stage / ".build-times.json"
        data = {**json.loads(path.read_text()), **values}
        path.write_text(json.dumps(data, indent=1))
        log = data_home() / TIMES_LOG
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(json.dumps(data) + "\n")
        return data


@contextlib.contextmanager
def _progress_relay(log: Path):
    """Chapter kernels write progress to `log` (BNOPT_PROGRESS=file:...); a thread copies new lines
    to this process's stderr. An explicit BNOPT_PROGRESS from the caller is left alone."""
    if "BNOPT_PROGRESS" in os.environ:
        yield
        return
    log.write_text("")
    os.environ["BNOPT_PROGRESS"] = f"file:{log}"
    stop = threading.Event()

    def relay():
        with open(log) as f:
            while True:
                line = f.readline()
                if line:
                    sys.stderr.write(line)
                    sys.stderr.flush()
                elif stop.is_set():
                    return
                else:
                    time.sleep(0.5)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        del os.environ["BNOPT_PROGRESS"]
        close_files()


def mathjax_dir() -> Path:
    """The MathJax 3 distribution that `make env` installs from the npm registry into the environment."""
    return Path(sys.prefix) / "npm" / "node_modules" / "mathjax" / "es5"


def stage_mathjax(stage: Path) -> Path:
    """Copy MathJax into the stage's static files (`mathjax_path` in _config.yml points there), so that
    the built book typesets its equations with no network."""
    src = mathjax_dir()
    if not (src / "tex-chtml.js").is_file():
        raise BuildError(f"MathJax is missing at {src}: run `make env` (it installs mathjax from the npm registry)")
    # Not under _static: when the stage has a _static folder, Jupyter Book adds every .js file of every
    # static path to each page (hundreds of MathJax components).
    shutil.rmtree(stage / "_static" / "mathjax", ignore_errors=True)   # where builds before put it
    if (stage / "_static").is_dir() and not any((stage / "_static").iterdir()):
        (stage / "_static").rmdir()
    dst = stage / "_vendor" / "mathjax"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


def build_html(root: Path, stage: Path) -> None:
    stage_mathjax(stage)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb if jb.exists() else "jupyter-book"), "build", str(stage),
           "--config", str(root / "_config.yml"), "--toc", str(root / "_toc.yml"),
           "--path-output", str(root), "-W", "-n", "--keep-going",
           "--all"]   # a full rebuild: Sphinx's incremental environment keeps stale labels of edited chapters
    message("building HTML: " + " ".join(cmd))
    if subprocess.run(cmd, cwd=root).returncode != 0:
        raise BuildError("jupyter-book build failed (warnings are errors: see the log above)")


def main(argv=None) -> int:
    root = repo_root() or Path.cwd()
    ap = argparse.ArgumentParser(prog="bnopt book", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default=DEFAULT_PROFILE,
                    help=f"one of: {', '.join(profiles(root))} (default {DEFAULT_PROFILE})")
    ap.add_argument("--stage", default=str(root / STAGE), help="folder for executed notebooks")
    ap.add_argument("--only", nargs="+", help="execute only these chapters (others must be staged)")
    ap.add_argument("--no-html", action="store_true", help="execute chapters, skip jupyter-book")
    ap.add_argument("--rerun", action="store_true",
                    help="execute every chapter, also those whose inputs are unchanged since they last executed")
    ap.add_argument("--train", choices=("auto", "yes", "no"), default="auto",
                    help=f"train runs the cache lacks (auto: yes, except for {', '.join(NO_TRAIN_BY_DEFAULT)}, "
                         f"whose chapters with runs missing execute at the --fallback profile)")
    ap.add_argument("--fallback", default=FALLBACK,
                    help=f"where runs are not trained (--train no, or auto for {', '.join(NO_TRAIN_BY_DEFAULT)}): the "
                         f"profile a chapter with missing runs executes at instead (default {FALLBACK}; 'none': stop "
                         f"and list the missing runs)")
    a = ap.parse_args(argv)
    train = a.train == "yes" or a.train == "auto" and a.profile not in NO_TRAIN_BY_DEFAULT
    fallback = None if a.fallback == "none" else a.fallback
    try:
        if fallback and fallback not in profiles(root):
            raise BuildError(f"--fallback {fallback!r}: allowed: none, {', '.join(profiles(root))}")
        t0 = time.perf_counter()
        print(f"[build] numerics in force (what sets the CPU's rounding, bnopt.runs.numerics): {numerics()}", flush=True)
        timings = stage_book(root, Path(a.stage).resolve(), a.profile, a.only, train, fallback,
                             fallback_train=a.train != "no", rerun=a.rerun)
        t1 = time.perf_counter()
        if not a.no_html:
            build_html(root, Path(a.stage).resolve())
        t2 = time.perf_counter()
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    BuildRecord.finish(Path(a.stage).resolve(), html=t2 - t1, total=t2 - t0,
                       html_built=not a.no_html)
    per = ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
    message(f"book done: chapters {t1 - t0:.0f}s ({per}); html {t2 - t1:.0f}s; "
            f"open {root / '_build' / 'html' / 'index.html'}")
    return 0


