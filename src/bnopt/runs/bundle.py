"""Results bundles: every run a profile's chapters need, in one archive that installs into any run cache.

A GPU machine (or a cluster) trains a profile; a reader's CPU builds the book from its results without
training anything:

    bnopt bundle export --profile paper paper-runs.tar     # where the runs are cached
    bnopt bundle import paper-runs.tar                     # on a clean clone
    make book PROFILE=paper

The archive is a plain tar file: `manifest.json` and, per run, `runs/<key>/{config.json, meta.json,
result.pt}`, the run cache's own entry (`bnopt.runs.cache`: config and data fingerprint, provenance with
commit, device, versions and wall time, and the result). The manifest lists every file's size and
sha256. `import` checks all of it before it installs anything: each file against the manifest, each
key against the hash of its config, each result against the checksum in its meta. A tampered, truncated
or incomplete bundle is refused with the run it concerns named, and nothing is installed. Entries are
installed the way the cache writes them (scratch folder, atomic rename, first writer wins), so an
import beside a running build is safe. Runs already in the cache are left as they are.

A bundle holds runs, or measurements made on runs (`bnopt.runs.measured`: the same entry layout, with the
measurement's key material in config.json); its manifest's `content` says which ("runs" when absent), and `install`
puts each kind into its own cache.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
from pathlib import Path

from bnopt.runs.cache import RunCache, _sha256
from bnopt.runs.config import config_hash
from bnopt.runs.measured import measure_cache

FORMAT = 1
FILES = ("config.json", "meta.json", "result.pt")
# A bundle is a tar file, plain or xz-compressed (the committed ones: about 25 % smaller, about 1 s per 10 MB to read).
COMPRESSION = {".tar": "", ".tar.xz": "xz"}
CONTENTS = ("runs", "measurements")      # what a bundle holds (its manifest's `content`)


class BundleError(ValueError):
    """The bundle is unreadable, incomplete or does not match its manifest; the message names the run."""


def compression(path: str | os.PathLike) -> str:
    """The compression a bundle's name asks for ('' or 'xz'), or BundleError naming the valid endings.

    >>> compression("results/narrow/a.tar.xz"), compression("runs.tar")
    ('xz', '')
    """
    name = Path(path).name
    for suffix, kind in sorted(COMPRESSION.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return kind
    raise BundleError(f"{name}: a bundle's name ends with one of {', '.join(COMPRESSION)}")


def bundles_in(folder: str | os.PathLike) -> list[Path]:
    """The bundles of a results folder (every name ending as COMPRESSION lists), sorted by name."""
    folder = Path(folder)
    return sorted(p for suffix in COMPRESSION for p in folder.glob(f"*{suffix}"))


def without_weights(key: str, cache: RunCache) -> dict[str, bytes] | None:
    """The entry's files with the final weights (`state_dict`) removed from its result and
    `weights_dropped: true` in its meta (the result's checksum recomputed; the key is unchanged).
    None when the entry holds no weights (it is exported as it is)."""
    result = cache.load(key)
    if result is None:
        raise BundleError(f"run {key}: the cache entry is unreadable")
    if result.get("state_dict") is None:
        return None
    meta = {k: v for k, v in result.pop("meta").items() if k not in ("key", "result_sha256")}
    files, _ = RunCache.encode(key, cache.material(key), {**result, "state_dict": None}, {**meta, "weights_dropped": True})
    return files


def content_of(manifest: dict) -> str:
    """What a bundle holds: 'runs' or 'measurements'."""
    content = manifest.get("content", "runs")
    if content not in CONTENTS:
        raise BundleError(f"bundle content {content!r}: allowed: {', '.join(CONTENTS)}")
    return content


def cache_for(content: str) -> RunCache:
    """The cache a bundle of `content` installs into (the default run cache, or the measurement cache)."""
    return RunCache() if content_of({"content": content}) == "runs" else measure_cache()


def export(keys: list[str], path: str | os.PathLike, cache: RunCache | None = None, profile: str = "",
           weights: bool = True, content: str = "runs") -> dict:
    """Write the cache entries `keys` into a bundle at `path` (atomically). Returns the manifest.
    With weights=False the runs' final weights are left out (see `without_weights`): the metrics and
    probe records stay, and a chapter that needs the trained networks says so when it is built.
    `content`: 'runs', or 'measurements' (entries of the measurement cache, the default `cache` then).
    Raises BundleError naming the keys the cache lacks."""
    cache = cache or cache_for(content)
    absent = [k for k in keys if not cache.has(k)]
    if absent:
        raise BundleError(f"{len(absent)} run(s) are not in the cache {cache.root}: {', '.join(absent[:10])}"
                          + (" ..." if len(absent) > 10 else ""))
    runs, blobs = [], {}
    for k in sorted(set(keys)):
        entry = (None if weights else without_weights(k, cache)) or \
            {name: (cache.path(k) / name).read_bytes() for name in FILES}
        files = {}
        for name in FILES:
            blobs[f"runs/{k}/{name}"] = entry[name]
            files[name] = {"sha256": _sha256(entry[name]), "bytes": len(entry[name])}
        meta = json.loads(blobs[f"runs/{k}/meta.json"])
        runs.append({"key": k, "description": meta.get("description", ""), "files": files,
                     "wall_time_s": meta.get("wall_time_s"), "device": meta.get("device_name", meta.get("device")),
                     "weights_dropped": bool(meta.get("weights_dropped"))})
    manifest = {"format": FORMAT, "profile": profile, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "weights": weights, "content": content, "runs": runs}
    path = Path(path)
    mode = "w:" + compression(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode=mode) as tar:
            for name, data in [("manifest.json", json.dumps(manifest, indent=1).encode())] + sorted(blobs.items()):
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), 0
                tar.addfile(info, io.BytesIO(data))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)              # mkstemp's 0600 would keep the bundle private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return manifest


def _read(path: str | os.PathLike) -> tuple[dict, dict]:
    """(manifest, {member name: bytes}) of a bundle; BundleError when it is not a readable, whole tar."""
    try:
        with tarfile.open(path, mode="r:*") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            if "manifest.json" not in members:
                raise BundleError(f"{path}: no manifest.json (not a bnopt bundle)")
            blobs = {name: tar.extractfile(m).read() for name, m in members.items()}
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BundleError(f"{path}: unreadable or truncated bundle ({type(e).__name__}: {e})") from None
    try:
        manifest = json.loads(blobs.pop("manifest.json"))
    except ValueError as e:
        raise BundleError(f"{path}: manifest.json is not valid JSON ({e})") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: bundle format {manifest.get('format')!r}; this bnopt reads format {FORMAT}")
    try:
        content_of(manifest)
    except BundleError as e:
        raise BundleError(f"{path}: {e}") from None
    return manifest, blobs


def manifest_of(path: str | os.PathLike) -> dict:
    """A bundle's manifest alone (its first member: the runs are not read or checked; `verify` checks them)."""
    try:
        with tarfile.open(path, mode="r:*") as tar:
            first = tar.next()
            if first is None or first.name != "manifest.json":
                raise BundleError(f"{path}: no manifest.json first (not a bnopt bundle)")
            return json.loads(tar.extractfile(first).read())
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise BundleError(f"{path}: unreadable manifest ({type(e).__name__}: {e})") from None


def verify(path: str | os.PathLike) -> tuple[dict, dict]:
    """Check a bundle completely (see the module docstring); returns (manifest, blobs) or raises BundleError
    naming the first run that fails and why."""
    manifest, blobs = _read(path)
    for run in manifest.get("runs", []):
        k, what = run["key"], f"run {run['key']} ({run.get('description', '')})"
        for name in FILES:
            data = blobs.get(f"runs/{k}/{name}")
            want = run["files"].get(name, {})
            if data is None:
                raise BundleError(f"{path}: {what}: {name} is missing from the bundle")
            if len(data) != want.get("bytes") or _sha256(data) != want.get("sha256"):
                raise BundleError(f"{path}: {what}: {name} does not match the manifest (tampered or truncated)")
        try:
            material = json.loads(blobs[f"runs/{k}/config.json"])
            meta = json.loads(blobs[f"runs/{k}/meta.json"])
        except ValueError as e:
            raise BundleError(f"{path}: {what}: unreadable JSON ({e})") from None
        if config_hash(material) != k:
            raise BundleError(f"{path}: {what}: its config does not hash to its key")
        if meta.get("result_sha256") != _sha256(blobs[f"runs/{k}/result.pt"]):
            raise BundleError(f"{path}: {what}: result.pt does not match the checksum in its meta.json")
    extra = sorted({n.split("/")[1] for n in blobs if n.startswith("runs/")} - {r["key"] for r in manifest["runs"]})
    if extra:
        raise BundleError(f"{path}: run(s) {', '.join(extra)} are in the archive but not in its manifest")
    return manifest, blobs


def install(path: str | os.PathLike, cache: RunCache | None = None) -> dict:
    """Verify the bundle, then install its entries into `cache` (default: the cache of its content, `cache_for`).
    {'installed': n, 'present': n, 'content': 'runs' or 'measurements'}."""
    manifest, blobs = verify(path)
    cache = cache or cache_for(content_of(manifest))
    counts = {"installed": 0, "present": 0, "content": content_of(manifest)}
    for run in manifest["runs"]:
        k = run["key"]
        new = not cache.has(k) and cache.write_entry(k, {name: blobs[f"runs/{k}/{name}"] for name in FILES})
        counts["installed" if new else "present"] += 1
    return counts
