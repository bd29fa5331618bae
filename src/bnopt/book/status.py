"""What the run cache holds of each chapter's runs, and at which profile each chapter is built: the front page's
scale table, the plan that sends a chapter whose runs are missing to the fallback profile, and the training of the
runs a build needs (in `bnopt.runs.executor`'s workers, before any notebook executes)."""
from __future__ import annotations

from pathlib import Path

from bnopt.book import experiments as E
from bnopt.book.bench import run_seconds, saved_bench
from bnopt.book.params import BuildError, profile_parameters
from bnopt.runs.bundle import BundleError, bundles_in, install, manifest_of
from bnopt.runs.cache import RunCache
from bnopt.runs.config import ConfigError, canonical_json
from bnopt.runs.executor import RunFailed, RunsMissing, config_keys, ensure
from bnopt.runs.launch import describe
from bnopt.runs.paths import repo_root
from bnopt.runs.progress import message

# Chapters that execute alone, in this order, after all the others: `cost` times this machine (nothing
# may run beside it), `ledger` reads every other chapter's claims.
ALONE = ("cost", "ledger")


# Profiles whose missing runs are not trained unless asked (--train yes): a CPU would need days (narrow: the
# campaign's 20 core-hours; paper: sized for a GPU). Their runs come from the committed bundles (results/<profile>/,
# imported by every build), a GPU machine or a bundle (bnopt bundle import FILE). A chapter whose runs are
# not all there executes at FALLBACK instead, and the front page's scale table says so.
NO_TRAIN_BY_DEFAULT = ("narrow", "paper")
DEFAULT_PROFILE = "narrow"
FALLBACK = "quick"


def missing_runs_text(configs: list, profile: str, shown: int = 25) -> str:
    """The runs a build lacks, with a cost estimate from this machine's saved bench where there is one."""
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
            + "\n".join(lines) + f"\nImport them (bnopt bundle import FILE), or train them here with "
            f"`make book PROFILE={profile} TRAIN=yes` (bnopt book --profile {profile} --train yes).")


def chapter_configs(stem: str, profile: str) -> list:
    """The run configurations chapter `stem` declares at `profile` ([] for a chapter without runs)."""
    if stem not in E.GRIDS:
        return []
    try:
        return E.grid_configs(E.chapter_grid(stem, E.chapter_parameters(stem, profile)))
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
            if stem in E.READS_WEIGHTS and cfg.save_state and meta.get("weights_dropped"):
                st["weightless"].append(cfg)
            name = meta.get("device_name") or meta.get("device") or "unknown device"
            if name == "cpu" and meta.get("numerics"):       # on a CPU, what sets the rounding (bnopt.runs.numerics)
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
    parallel workers of `bnopt.runs.executor` (notebooks then only read the cache). With train=False, a
    missing run stops the build before anything trains, listing the missing runs. The summary's
    'chapters' holds each chapter's `run_status` after training, 'keys' each chapter's run keys."""

    per_chapter = {stem: cs for stem in stems if (cs := chapter_configs(stem, profile))}   # all checked first
    flat = [c for cs in per_chapter.values() for c in cs]
    keys = config_keys(flat)                       # once: each pass prepares every dataset (about 4 s at quick)
    try:
        summary = ensure(flat, label=f"book ({profile})", train=train, keys=keys)
    except RunsMissing as e:
        raise BuildError(missing_runs_text(e.configs, profile)) from None
    except RunFailed as e:
        raise BuildError(str(e)) from None
    at, per_keys = 0, {}
    for stem, cs in per_chapter.items():
        per_keys[stem], at = keys[at:at + len(cs)], at + len(cs)
    return {**summary, "chapters": run_status(per_chapter, keys, since, imported), "keys": per_keys}


def describe_runs(configs: list) -> list[str]:
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
    """Install the results bundles committed under results/<profile>/ (verified; entries already cached are kept):
    runs into the run cache, measurements into the measurement cache. Returns the keys of the committed runs."""
    keys = set()
    for b in bundles_in(root / "results" / profile):
        try:
            c = install(b)
            if c["content"] == "runs":
                keys |= {r["key"] for r in manifest_of(b)["runs"]}
        except BundleError as e:
            raise BuildError(str(e)) from None
        message(f"{b.relative_to(root)}: {c['installed']} {c['content']} installed, {c['present']} already in the "
                f"{'run' if c['content'] == 'runs' else 'measurement'} cache")
    return keys
