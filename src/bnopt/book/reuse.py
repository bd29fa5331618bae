"""A warm build reuses a chapter's executed copy when nothing the chapter reads has changed.

A chapter's inputs are its notebook, the parameters it executes with, the package's source (every .py file of
the `bnopt` that runs it), the committed book snapshots (`bnopt.book.scales`), the runs it reads (their cache keys
and their entries' files) and the measurements made on them (`bnopt.runs.measured`: their entries' files), the CPU
numerics, the versions of the libraries that train and analyse
(`CHAPTER_LIBRARIES`), and the data folder. When a chapter succeeds, the build stores their digest and the digests
of the claim records the chapter wrote (<stage>/.executed/<chapter>.json).
A later build skips the chapter when the digest is the same and the executed copy and those records are still
there, unchanged. The chapters that execute alone always execute: `cost` measures the machine, the ledger reads
every other chapter. `bnopt book --rerun` executes every chapter.
"""
from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from bnopt.book import claims
from bnopt.book.scales import SNAPSHOT_NAME
from bnopt.runs.cache import RunCache, library_versions
from bnopt.runs.measured import entries_of, measure_cache
from bnopt.runs.numerics import numerics
from bnopt.runs.paths import write_text_atomic

MARKS = ".executed"
PACKAGE = Path(__file__).resolve().parents[1]        # the bnopt package that executes the chapters


# what the chapters compute and draw with, beyond the run store's own libraries (`library_versions`)
CHAPTER_LIBRARIES = ("scipy", "pandas", "matplotlib", "seaborn", "papermill", "nbformat", "ipykernel")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def common_digest(root: Path, data: str, package: Path = PACKAGE) -> str:
    """The inputs every chapter shares: the package's source, the committed snapshots, the numerics and library
    versions, and the data folder (`data`: as the build resolved it, '' for the default)."""
    h = hashlib.sha256()
    for f in sorted(package.rglob("*.py")):
        h.update(f"{f.relative_to(package)}\0{_sha(f.read_bytes())}\0".encode())
    for f in sorted(Path(root).glob(f"results/*/{SNAPSHOT_NAME}")):
        h.update(f"{f.relative_to(root)}\0{_sha(f.read_bytes())}\0".encode())
    h.update(json.dumps([numerics(), library_versions(), {d: _version(d) for d in CHAPTER_LIBRARIES}, data],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def _entry_files(cache: RunCache, key: str) -> list:
    d = cache.path(key)
    return sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in d.iterdir()) if d.is_dir() else []


def chapter_digest(common: str, nb: Path, parameters: dict, keys: list[str], cache: RunCache | None = None,
                   measured: RunCache | None = None) -> str:
    """One chapter's inputs: the shared ones, its notebook, its parameters, its runs (`keys`, the cache keys of its
    runs; each entry's files by name, size and modification time: a run trained or imported again is a new input)
    and the measurements made on those runs (`measured`, the measurement cache: each entry's files alike). Taken
    again after the chapter executed, it holds the measurements the chapter made."""
    cache, measured = cache or RunCache(), measured or measure_cache()
    h = hashlib.sha256(f"{common}\0{_sha(Path(nb).read_bytes())}\0".encode())
    h.update(json.dumps(parameters, sort_keys=True, default=repr).encode())
    for key in sorted(set(keys)):
        h.update(json.dumps([key, _entry_files(cache, key)]).encode())
    for key in entries_of(set(keys), measured):
        h.update(json.dumps(["measured", key, _entry_files(measured, key)]).encode())
    return h.hexdigest()


def _records(stage: Path, chapter: str) -> dict[str, str]:
    return {str(p.relative_to(stage)): _sha(p.read_bytes()) for p in claims.chapter_files(stage, chapter)}


def remember(stage: Path, chapter: str, digest: str) -> None:
    """After a chapter succeeded: its inputs' digest and its claim records."""
    write_text_atomic(Path(stage) / MARKS / f"{chapter}.json",
                      json.dumps({"inputs": digest, "records": _records(Path(stage), chapter)}, indent=1))


def forget(stage: Path, chapter: str) -> None:
    """Before a chapter executes: a failure must not leave a mark that a later build would trust."""
    (Path(stage) / MARKS / f"{chapter}.json").unlink(missing_ok=True)


def reusable(stage: Path, chapter: str, digest: str) -> bool:
    """Whether the stage holds this chapter executed from the same inputs, with its claim records as it wrote them."""
    stage = Path(stage)
    mark = stage / MARKS / f"{chapter}.json"
    if not mark.is_file() or not (stage / f"{chapter}.ipynb").is_file():
        return False
    try:
        seen = json.loads(mark.read_text())
    except ValueError:
        return False
    return seen.get("inputs") == digest and seen.get("records") == _records(stage, chapter)
