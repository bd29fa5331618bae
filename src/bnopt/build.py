"""The book pipeline: execute every chapter with papermill into a staging tree, then build HTML.

    python -m bnopt.build --profile quick          # what `make book` runs
    python -m bnopt.build --profile paper --only training

Parameters come from `book/params/<profile>.yaml` ({chapter: {parameter: value}}); each chapter has
one cell tagged `parameters`. An unknown profile, chapter or parameter is an error. A chapter whose
execution fails leaves no executed copy behind, so a stale notebook never reaches the book.
Jupyter Book then builds the staging tree with its own execution off (`execute_notebooks: off`).
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from unittest import mock

import yaml

from . import claims
from .numerics import numerics
from .paths import repo_root, write_text_atomic
from .verify import outcome_line
from .progress import close_files, message


class BuildError(RuntimeError):
    pass


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads '1e-3' as a string; this loader reads it as the float it obviously is."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)$|^[-+]?(?:\d+\.\d*|\.\d+)$"),
    list("-+0123456789."))


def _no_duplicate_keys(loader, node, deep=False):
    """A mapping whose explicit keys are unique (keys merged in with `<<:` may be overridden)."""
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = key_node.value
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def load_yaml(path: Path) -> dict:
    """A YAML file as a dict; a syntax error or a duplicate key raises BuildError naming the file
    and line (YAML would otherwise keep the last of two equal keys silently)."""
    try:
        data = yaml.load(Path(path).read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        raise BuildError(f"{where}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise BuildError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def book_dir(root: Path) -> Path:
    return root / "book"


def profiles(root: Path) -> list[str]:
    return sorted(p.stem for p in (book_dir(root) / "params").glob("*.yaml"))


def toc_files(root: Path) -> list[str]:
    """Every file named in _toc.yml, in order."""
    toc = load_yaml(root / "_toc.yml")
    out = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                out.append(e["file"])
            walk(e.get("sections"))
            for part in e.get("chapters", []) or []:
                walk([part])

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return out


def chapters(root: Path) -> list[Path]:
    """The notebooks of the table of contents, in order."""
    return [book_dir(root) / f"{f}.ipynb" for f in toc_files(root)
            if (book_dir(root) / f"{f}.ipynb").exists()]


def notebook_parameters(nb_path: Path) -> dict:
    """{name: default} of the chapter's one cell tagged 'parameters' (NAME = literal lines only).

    Parsed with `ast`, not papermill's line regex (which drops a parameter whose comment has '=').
    """
    nb = json.loads(Path(nb_path).read_text())
    cells = [c for c in nb.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise BuildError(f"{nb_path}: needs exactly one cell tagged 'parameters', found {len(cells)}")
    src = cells[0]["source"]
    src = "".join(src) if isinstance(src, list) else src
    params = {}
    for node in ast.parse(src).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) else None
        if not isinstance(target, ast.Name) or node.value is None:
            raise BuildError(f"{nb_path}: the parameters cell may hold only `name = literal` lines; "
                             f"line {node.lineno} is not one")
        try:
            params[target.id] = ast.literal_eval(node.value)
        except ValueError:
            raise BuildError(f"{nb_path}: parameter {target.id!r} (line {node.lineno}) is not a literal") from None
    return params


def profile_parameters(root: Path, profile: str) -> dict[str, dict]:
    """{chapter stem: {param: value}} for a profile, checked against the chapters' parameter cells."""
    valid = profiles(root)
    if profile not in valid:
        raise BuildError(f"unknown profile {profile!r}; valid choices: {', '.join(valid)} "
                         f"(files in {book_dir(root) / 'params'})")
    params = load_yaml(book_dir(root) / "params" / f"{profile}.yaml")
    # Top-level keys starting with '_' only hold YAML anchors (values several chapters share).
    params = {k: v for k, v in params.items() if not str(k).startswith("_")}
    nbs = {p.stem: p for p in chapters(root)}
    unknown_ch = sorted(set(params) - set(nbs))
    if unknown_ch:
        raise BuildError(f"profile {profile!r} names chapters not in _toc.yml: {unknown_ch}; "
                         f"chapters: {sorted(nbs)}")
    out = {}
    for stem in nbs:
        values = params.get(stem) or {}
        if not isinstance(values, dict):
            raise BuildError(f"profile {profile!r}: section {stem!r} must be a mapping of parameters, got {values!r}")
        out[stem] = check_parameters(nbs[stem], values, f"chapter {stem!r} (profile {profile!r})")
    return out


def check_parameters(nb_path: Path, values: dict, where: str | None = None) -> dict:
    """`values` coerced to the chapter's declared parameter types (bnopt.params), or BuildError."""
    from .params import ParameterError, coerce_parameters
    try:
        return coerce_parameters(notebook_parameters(nb_path), values, where or f"chapter {nb_path.stem!r}")
    except ParameterError as e:
        raise BuildError(str(e)) from None


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
               fallback: str | None = None, fallback_train: bool = True) -> dict:
    """Mirror book/ into the staging tree, executing the chapters. Returns {chapter: seconds}.

    The results bundles under results/<profile>/ are imported first. With train=False and a `fallback`
    profile, a chapter whose runs are not all in the run cache executes at `fallback` (its runs trained
    there when `fallback_train`); the stage's SCALE_FILE, on the front page, says which chapter is at which
    profile."""
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
    for f in src.rglob("*"):   # static pages, bibliography, images
        rel = f.relative_to(src)
        if f.is_file() and f.suffix != ".ipynb" and "params" not in rel.parts \
                and ".ipynb_checkpoints" not in rel.parts:
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, stage / rel)
    os.environ["BNOPT_PROFILE"] = profile          # kernels name it in their claims' scale and provenance
    if os.environ.get("BNOPT_DATA", "").strip():   # kernels run in the stage: make the path absolute
        os.environ["BNOPT_DATA"] = str(Path(os.environ["BNOPT_DATA"].strip()).expanduser().resolve())
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
    for nb in selected:
        claims.clear(stage, nb.stem)               # its ledger rows are written anew as it executes
    lock, failed = threading.Lock(), threading.Event()

    def execute(nb: Path) -> None:
        if failed.is_set():                        # a chapter failed: start no other
            return
        prof = at[nb.stem]
        message(f"executing chapter {nb.stem} (profile {prof}, parameters {params[prof][nb.stem]})")
        try:
            seconds = execute_chapter(nb, stage / nb.name, params[prof][nb.stem], cwd=stage)
        except BaseException:
            failed.set()
            raise
        with lock:
            timings[nb.stem] = seconds
            record.update(chapters={**record.data.get("chapters", {}), nb.stem: seconds})
        message(f"chapter {nb.stem} done in {seconds:.0f}s")

    t0 = time.perf_counter()
    # papermill starts each kernel inside `chdir(cwd)`, which changes this whole process's folder and
    # restores it on exit: with chapters side by side, one chapter's restore would move the next kernel
    # out of the stage. In the stage already, every chdir and every restore names the same folder.
    with _progress_relay(stage / ".progress.log"), contextlib.chdir(stage):
        jobs = chapter_jobs()
        # one OpenMP/MKL thread per kernel side by side, so that they do not oversubscribe the cores
        threads = {k: str(max(1, (os.cpu_count() or 1) // jobs)) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        for prof in dict.fromkeys(at.values()):    # kernels read their profile from the environment at start
            together = [nb for nb in selected if nb.stem not in ALONE and at[nb.stem] == prof]
            os.environ["BNOPT_PROFILE"] = prof
            with mock.patch.dict(os.environ, threads if jobs > 1 else {}), ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(execute, nb) for nb in together]
                for f in as_completed(futures):
                    f.result()                     # the first failure stops the build (no other starts)
        record.update(chapters_wall=time.perf_counter() - t0, chapter_jobs=jobs)
        os.environ["BNOPT_PROFILE"] = profile if not why else \
            f"{profile} ({', '.join(why)} at {fallback})"   # cost and ledger: the build as a whole
        for nb in [nb for nb in selected if nb.stem in ALONE]:
            execute(nb)
    return timings


# Chapters that execute alone, in this order, after all the others: `cost` times this machine (nothing
# may run beside it), `ledger` reads every other chapter's claims.
ALONE = ("cost", "ledger")


def chapter_jobs() -> int:
    """How many chapters execute at once: BNOPT_CHAPTER_JOBS, else 2 where there are 2 cores or more (the
    notebooks only read the run cache; most of their time is single-threaded plotting and statistics)."""
    v = os.environ.get("BNOPT_CHAPTER_JOBS", "").strip()
    if v:
        if not v.isdigit() or int(v) < 1:
            raise BuildError(f"BNOPT_CHAPTER_JOBS={v!r}: allowed: an integer >= 1")
        return int(v)
    return 2 if (os.cpu_count() or 1) >= 2 else 1


# Profiles whose missing runs are not trained unless asked (--train yes): a CPU would need days (narrow: the
# campaign's 20 core-hours; paper: sized for a GPU). Their runs come from the committed bundles (results/<profile>/,
# imported by every build), a GPU machine or a bundle (python -m bnopt.bundle import FILE). A chapter whose runs are
# not all there executes at FALLBACK instead, and the front page's scale table says so.
NO_TRAIN_BY_DEFAULT = ("narrow", "paper")
DEFAULT_PROFILE = "narrow"
FALLBACK = "quick"


def missing_runs_text(configs: list, profile: str, shown: int = 25) -> str:
    """The runs a build lacks, with a cost estimate from this machine's saved bench where there is one."""
    from .bench import run_seconds, saved_bench
    from .runs import describe
    bench = saved_bench()
    est = [run_seconds(c, bench) for c in configs]
    lines = [f"  {describe(c)}, {c.optim.steps:,} steps" + (f", about {e / 3600:.1f} h on one core here" if e else "")
             for c, e in list(zip(configs, est))[:shown]]
    if len(configs) > shown:
        lines.append(f"  ... and {len(configs) - shown} more")
    total = (f"; about {sum(e for e in est if e) / 3600:,.0f} core-hours here by this machine's bench"
             if any(est) else "; no saved bench on this machine (`make bench`) to estimate their time")
    steps = sum(c.optim.steps for c in configs)
    return (f"{len(configs)} runs of profile {profile!r} are not in the run cache ({steps:,} steps in all{total}):\n"
            + "\n".join(lines) + f"\nImport them (python -m bnopt.bundle import FILE), or train them here with "
            f"`make book PROFILE={profile} TRAIN=yes` (python -m bnopt.build --profile {profile} --train yes).")


def chapter_configs(stem: str, profile: str) -> list:
    """The run configurations chapter `stem` declares at `profile` ([] for a chapter without runs)."""
    from .config import ConfigError
    from .experiments import GRIDS, chapter_grid, chapter_parameters, grid_configs
    if stem not in GRIDS:
        return []
    try:
        return grid_configs(chapter_grid(stem, chapter_parameters(stem, profile)))
    except (ConfigError, ValueError) as e:
        raise BuildError(f"chapter {stem!r} (profile {profile!r}): {e}") from None


def run_status(per_chapter: dict[str, list], keys: list[str] | None = None, since: str | None = None,
               imported=frozenset()) -> dict[str, dict]:
    """What the run cache holds of each chapter's configs: {stem: {'runs': distinct runs, 'missing': [configs],
    'weightless': [configs whose final weights the chapter reads (experiments.READS_WEIGHTS) but whose entry came
    from a bundle exported without them], 'devices': {device name: runs}, 'commits': {commit: runs}, 'dates':
    [first, last] day the runs were trained, 'trained_now': runs trained at or after `since` (ISO time: this
    build's start), 'imported': runs whose keys are in `imported` (the committed bundles'), 'other_data': {data fingerprint: runs}, the missing runs that the cache holds for other
    pixels (e.g. committed runs trained on the JPEG copy, read by a machine whose CIFAR-10 is the canonical
    one)}}. `keys`: the `config_keys` of all the configs in order, when known; else they are computed in one pass
    (every dataset prepared once)."""
    from .cache import RunCache
    from .config import canonical_json
    from .executor import config_keys
    from .experiments import READS_WEIGHTS
    cache = RunCache()
    flat = [cfg for configs in per_chapter.values() for cfg in configs]
    keys = iter(keys or config_keys(flat))
    out, elsewhere = {}, None
    for stem, configs in per_chapter.items():
        st = out[stem] = {"runs": 0, "missing": [], "weightless": [], "devices": {}, "commits": {}, "dates": [],
                          "trained_now": 0, "imported": 0, "other_data": {}}
        seen = set()
        for cfg in configs:
            key = next(keys)
            if key in seen:
                continue
            seen.add(key)
            st["runs"] += 1
            if not cache.has(key):
                st["missing"].append(cfg)
                if elsewhere is None:              # {config: [fingerprints]} of every entry, read once
                    elsewhere = {}
                    for k in cache.entries():
                        try:
                            m = cache.material(k)
                        except (OSError, ValueError):
                            continue
                        elsewhere.setdefault(canonical_json(m["config"]), []).append(m.get("data_fingerprint", "?"))
                for fp in elsewhere.get(canonical_json(cfg.key_dict()), []):
                    st["other_data"][fp] = st["other_data"].get(fp, 0) + 1
                continue
            meta = cache.meta(key)
            st["imported"] += key in imported
            if stem in READS_WEIGHTS and cfg.save_state and meta.get("weights_dropped"):
                st["weightless"].append(cfg)
            name = meta.get("device_name") or meta.get("device") or "unknown device"
            if name == "cpu" and meta.get("numerics"):       # on a CPU, what sets the rounding (bnopt.numerics)
                name = f"CPU ({meta['numerics']})"
            st["devices"][name] = st["devices"].get(name, 0) + 1
            commit = str(meta.get("git_commit", "unknown"))[:7] + ("+dirty" if "dirty" in str(meta.get("git_commit")) else "")
            st["commits"][commit] = st["commits"].get(commit, 0) + 1
            created = str(meta.get("created", ""))
            if created:
                day = created[:10]
                st["dates"] = [min(st["dates"][0], day), max(st["dates"][1], day)] if st["dates"] else [day, day]
                if since and _utc(created) >= _utc(since):
                    st["trained_now"] += 1
    return out


def _utc(stamp: str) -> float:
    """Seconds since the epoch of an ISO time with its offset ('2026-12-06T02:51:30+0000')."""
    import datetime
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp()


def train_all(root: Path, profile: str, stems: list[str], train: bool = True, since: str | None = None,
              imported=frozenset()) -> dict:
    """Train every run that the given chapters declare, before any notebook executes, in the
    parallel workers of `bnopt.executor` (notebooks then only read the cache). With train=False, a
    missing run stops the build before anything trains, listing the missing runs. The summary's
    'chapters' holds each chapter's `run_status` after training."""
    from .executor import RunFailed, RunsMissing, config_keys, ensure

    per_chapter = {stem: cs for stem in stems if (cs := chapter_configs(stem, profile))}   # all checked first
    flat = [c for cs in per_chapter.values() for c in cs]
    keys = config_keys(flat)                       # once: each pass prepares every dataset (about 4 s at quick)
    try:
        summary = ensure(flat, label=f"book ({profile})", train=train, keys=keys)
    except RunsMissing as e:
        raise BuildError(missing_runs_text(e.configs, profile)) from None
    except RunFailed as e:
        raise BuildError(str(e)) from None
    return {**summary, "chapters": run_status(per_chapter, keys, since, imported)}


def describe_runs(configs: list) -> list[str]:
    from .runs import describe
    return [describe(c) for c in configs]


def plan_profiles(profile: str, stems: list[str], fallback: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """({chapter: the profile it executes at}, {chapter: why it is not at `profile`}). Without a fallback every
    chapter is at `profile`; with one, a chapter whose `profile` runs are not all in the run cache, or lack final
    weights it reads, executes at `fallback` instead. So does a chapter without runs that computes on its own (the
    library chapter: at `paper`, ResNet-18's Hessian, sized for a GPU), except the chapters that describe the build
    as a whole (ALONE)."""
    if not fallback or fallback == profile:
        return {s: profile for s in stems}, {}
    per_chapter = {s: chapter_configs(s, profile) for s in stems}
    status = run_status({s: cs for s, cs in per_chapter.items() if cs})
    at, why = {s: profile for s in stems}, {}
    from .paths import repo_root
    root = repo_root() or Path.cwd()
    own, low = profile_parameters(root, profile), profile_parameters(root, fallback)
    for s, cs in per_chapter.items():
        if not cs and s not in ALONE and own.get(s) != low.get(s):
            at[s], why[s] = fallback, f"it computes at `{profile}` scale itself, which this build does not"
    for s, st in status.items():
        other = sum(st["other_data"].values())
        gaps = ([f"{len(st['missing'])} of its {st['runs']} runs are not in the run cache"] if st["missing"] else []) + \
            ([f"{other} of them are there for other CIFAR-10 pixels ({', '.join(fp[:12] for fp in st['other_data'])}: "
              f"the committed runs were trained on the JPEG copy; DATA= pointing at that copy builds from them)"]
             if other else []) + \
            ([f"{len(st['weightless'])} runs came without the final weights it reads"] if st["weightless"] else [])
        if gaps:
            at[s], why[s] = fallback, f"at `{profile}`, " + " and ".join(gaps)
    return at, why


def scale_table(at: dict[str, str], status: dict[str, dict], why: dict[str, str]) -> str:
    """The front page's table (MyST): each chapter, the profile it was built at, its runs (how many came from
    the committed bundles, how many this build trained), the device and numerics, commits and dates that trained
    them; under it, why a chapter is not at the build's profile.

    >>> print(scale_table({"training": "paper", "cost": "paper"},
    ...                   {"training": {"runs": 2, "imported": 2, "trained_now": 0, "devices": {"NVIDIA H200": 2},
    ...                                 "commits": {"38a5350": 2}, "dates": ["2026-12-06", "2026-12-06"]}}, {}))
    | Chapter | Profile | Runs | Committed | Trained now | Trained on | Commit | Dates |
    |---|---|---|---|---|---|---|---|
    | {doc}`training` | `paper` | 2 | 2 | 0 | NVIDIA H200 (2) | 38a5350 (2) | 2026-12-06 |
    | {doc}`cost` | `paper` | none | — | — | — | — | — |
    """
    lines = ["| Chapter | Profile | Runs | Committed | Trained now | Trained on | Commit | Dates |",
             "|---|---|---|---|---|---|---|---|"]
    for stem, prof in at.items():
        st, mark = status.get(stem), " *" if stem in why else ""
        if not st:
            lines.append(f"| {{doc}}`{stem}` | `{prof}`{mark} | none | — | — | — | — | — |")
            continue
        where = ", ".join(f"{d} ({n})" for d, n in sorted(st["devices"].items())) or "—"
        commits = ", ".join(f"{c} ({n})" for c, n in sorted(st.get("commits", {}).items())) or "—"
        dates = st.get("dates") or []
        days = "—" if not dates else dates[0] if dates[0] == dates[1] else f"{dates[0]} to {dates[1]}"
        lines.append(f"| {{doc}}`{stem}` | `{prof}`{mark} | {st['runs']} | "
                     f"{st.get('imported', 0)} | {st.get('trained_now', 0)} | {where} | {commits} | {days} |")
    notes = [f"- \\* {{doc}}`{stem}` is at `{at[stem]}`: {reason}." for stem, reason in why.items()]
    return "\n".join(lines + ([""] + notes if notes else []))


SCALE_FILE = "_scale_status.md"    # written into the stage; the front page includes it


def import_results(root: Path, profile: str) -> set[str]:
    """Install the results bundles committed under results/<profile>/ (verified; runs already cached are kept).
    Returns the keys of the committed runs."""
    from .bundle import BundleError, bundles_in, install, manifest_of
    keys = set()
    for b in bundles_in(root / "results" / profile):
        try:
            c = install(b)
            keys |= {r["key"] for r in manifest_of(b)["runs"]}
        except BundleError as e:
            raise BuildError(str(e)) from None
        message(f"{b.relative_to(root)}: {c['installed']} runs installed, {c['present']} already in the run cache")
    return keys


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
        from .paths import data_home
        path = stage / ".build-times.json"
        data = {**json.loads(path.read_text()), **values}
        path.write_text(json.dumps(data, indent=1))
        log = data_home() / "build-times.jsonl"
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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default=DEFAULT_PROFILE,
                    help=f"one of: {', '.join(profiles(root))} (default {DEFAULT_PROFILE})")
    ap.add_argument("--stage", default=str(root / "_stage"), help="folder for executed notebooks")
    ap.add_argument("--only", nargs="+", help="execute only these chapters (others must be staged)")
    ap.add_argument("--no-html", action="store_true", help="execute chapters, skip jupyter-book")
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
        print(f"[build] numerics in force (what sets the CPU's rounding, bnopt.numerics): {numerics()}", flush=True)
        timings = stage_book(root, Path(a.stage).resolve(), a.profile, a.only, train, fallback,
                             fallback_train=a.train != "no")
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


if __name__ == "__main__":
    sys.exit(main())
