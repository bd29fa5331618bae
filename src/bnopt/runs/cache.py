"""On-disk cache of finished runs, keyed by a hash of their full configuration.

Layout: `data/runs/<key>/` with
  config.json  the full key material (RunConfig + data fingerprint), human-readable
  meta.json    git commit, library versions, device, wall time, and the sha256 of result.pt
  result.pt    the result dict (tensors and numbers; loads with weights_only=True), its tensors packed
               into one flat buffer per dtype (`pack`; entries written before that load as they are)

An entry is written into a scratch folder and renamed into place, so readers never see a partial
entry. Entries are write-once: when several processes compute the same key, the first rename wins
and the others keep that entry (their own copy is dropped), so no reader ever sees an entry being
replaced and exactly one entry results. A corrupt entry (missing file, unreadable, checksum mismatch)
is reported with a warning, moved aside atomically, removed and recomputed. Scratch folders left by
a killed writer are removed by the next save once they are older than STALE_SCRATCH_S.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import torch

from bnopt._version import __version__
from bnopt.runs.config import config_hash
from bnopt.runs.numerics import numerics
from bnopt.runs.paths import data_home, repo_root

STALE_SCRATCH_S = 3600.0   # a save takes seconds; a scratch folder this old belongs to a dead writer


def remove_stale(folder: Path, pattern: str, age_s: float = STALE_SCRATCH_S) -> int:
    """Remove entries of `folder` matching `pattern` that are older than `age_s`; returns how many."""
    import time
    n = 0
    for p in Path(folder).glob(pattern):
        try:
            if time.time() - p.stat().st_mtime > age_s:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                n += 1
        except OSError:
            pass                  # another process removed it first
    return n


def pack(obj, buffers: dict | None = None):
    """(structure, buffers): every tensor of a nested dict/list/tuple replaced by
    ('__tensor__', dtype, offset, shape) into one flat buffer per dtype. torch.load's safe
    (weights_only) unpickler rebuilds each tensor slowly (a DLN run records ~5,000 small ones,
    about 0.8 s to load); the packed form loads as a few tensors and plain Python values."""
    top = buffers is None
    buffers = {} if top else buffers
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        key = str(t.dtype).removeprefix("torch.")
        parts = buffers.setdefault(key, [[], 0])
        parts[0].append(t.reshape(-1))
        out = ("__tensor__", key, parts[1], tuple(t.shape))
        parts[1] += t.numel()
    elif isinstance(obj, dict):
        out = {k: pack(v, buffers)[0] for k, v in obj.items()}
    elif isinstance(obj, (list, tuple)):
        out = type(obj)(pack(v, buffers)[0] for v in obj)
    else:
        out = obj
    if top:
        return out, {k: torch.cat(v[0]) if v[0] else torch.empty(0) for k, v in buffers.items()}
    return out, None


def unpack(obj, buffers: dict):
    """The inverse of `pack`: tensors are views into the flat buffers (cloned, so each owns its memory)."""
    if isinstance(obj, tuple) and len(obj) == 4 and obj[0] == "__tensor__":
        _, key, offset, shape = obj
        n = 1
        for d in shape:
            n *= d
        return buffers[key][offset: offset + n].view(shape).clone()
    if isinstance(obj, dict):
        return {k: unpack(v, buffers) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(unpack(v, buffers) for v in obj)
    return obj


def packed_bytes(obj) -> bytes:
    """`obj` serialized with its tensors packed (`pack`): what result.pt and a run's checkpoint hold."""
    structure, buffers = pack(obj)
    buf = io.BytesIO()
    torch.save({"__packed__": structure, "buffers": buffers}, buf)
    return buf.getvalue()


def from_packed(raw: dict):
    """The inverse of `packed_bytes`, given what torch.load read."""
    return unpack(raw["__packed__"], raw["buffers"])


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


TIMING_FIELDS = ("wall_time_s", "meta")   # how long a run took and where it came from: not what it computed


def result_digest(result: dict) -> str:
    """SHA-256 of what a run computed: every tensor's bits and every number of its result, without its timing
    and provenance (TIMING_FIELDS). Two runs with the same digest followed the same trajectory bit for bit."""
    structure, buffers = pack({k: v for k, v in result.items() if k not in TIMING_FIELDS})
    h = hashlib.sha256(repr(structure).encode())
    for name in sorted(buffers):
        h.update(name.encode())
        h.update(buffers[name].contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def git_commit() -> str:
    root = repo_root()
    if root is None:
        return "unknown"
    try:
        head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=10)
        commit = head.stdout.strip() if head.returncode == 0 else ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (commit or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict:
    import numpy
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__, "bnopt": __version__}


def provenance(description: str, started: float, wall_time_s: float, **extra) -> dict:
    """The meta every cache entry records about where and how it was computed: what it is (`description`), the
    commit, the library versions, `numerics()` and the thread count (which together fix its bits), when it started
    (`started`, time.time()) and how long it took; `extra` adds entry-specific fields (a run's device)."""
    return {"description": description, "git_commit": git_commit(), "versions": library_versions(),
            "numerics": numerics(), "threads": torch.get_num_threads(), "wall_time_s": wall_time_s,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)), **extra}


class RunCache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else data_home() / "runs"

    @staticmethod
    def key(key_material: dict) -> str:
        return config_hash(key_material)

    def path(self, key: str) -> Path:
        return self.root / key

    def checkpoint_path(self, key: str) -> Path:
        """Where the run `key` keeps its checkpoint while it trains (bnopt.runs.train.Checkpoints); removed once the run
        is saved. Beside the entries, in a folder the cache's listing and its stale-scratch cleanup skip."""
        return self.root / ".checkpoints" / f"{key}.pt"

    def meta(self, key: str) -> dict:
        """An entry's meta.json (provenance, without loading its result)."""
        return json.loads((self.path(key) / "meta.json").read_text())

    def material(self, key: str) -> dict:
        """An entry's config.json: the key material {'config': ..., 'data_fingerprint': ...}."""
        return json.loads((self.path(key) / "config.json").read_text())

    def has(self, key: str) -> bool:
        """Whether a complete entry exists (cheap: no result is read or checked)."""
        d = self.path(key)
        return all((d / f).is_file() for f in ("config.json", "meta.json", "result.pt"))

    def load(self, key: str) -> dict | None:
        """The cached result with its meta under result['meta'], or None (miss or corrupt entry)."""
        d = self.path(key)
        if not d.exists():
            return None
        try:
            meta = json.loads((d / "meta.json").read_text())
            blob = (d / "result.pt").read_bytes()
            if _sha256(blob) != meta["result_sha256"]:
                raise ValueError("result.pt checksum does not match meta.json")
            json.loads((d / "config.json").read_text())
            result = torch.load(io.BytesIO(blob), weights_only=True)
            if isinstance(result, dict) and "__packed__" in result:
                result = from_packed(result)
        except Exception as e:
            warnings.warn(f"run cache entry {d} is corrupt ({type(e).__name__}: {e}); recomputing it")
            aside = d.with_name(f".corrupt-{key}-{os.getpid()}")
            try:
                os.rename(d, aside)   # atomic: no other reader or writer sees it half-deleted
            except OSError:
                return None           # someone else moved it already
            shutil.rmtree(aside, ignore_errors=True)
            return None
        result["meta"] = meta
        return result

    @staticmethod
    def encode(key: str, key_material: dict, result: dict, meta: dict) -> tuple[dict[str, bytes], dict]:
        """An entry's files {name: bytes} and its meta (with the key and the result's checksum)."""
        blob = packed_bytes({k: v for k, v in result.items() if k != "meta"})
        meta = {**meta, "key": key, "result_sha256": _sha256(blob)}
        files = {"config.json": json.dumps(key_material, indent=2, sort_keys=True).encode(), "result.pt": blob,
                 "meta.json": json.dumps(meta, indent=2, sort_keys=True).encode()}
        return files, meta

    def save(self, key: str, key_material: dict, result: dict, meta: dict) -> dict:
        """Write atomically; returns the meta as stored."""
        self.root.mkdir(parents=True, exist_ok=True)
        files, meta = self.encode(key, key_material, result, meta)
        if not self.write_entry(key, files):
            return self.meta(key)
        return meta

    def write_entry(self, key: str, files: dict[str, bytes]) -> bool:
        """Write an entry's files {name: bytes} atomically (scratch folder, then one rename). True when this
        call created the entry, False when it already existed (the first writer wins; the copy is dropped)."""
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale(self.root, ".tmp-*")
        scratch = Path(tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{key}-"))
        try:
            for name, data in files.items():
                (scratch / name).write_bytes(data)
            try:
                os.rename(scratch, self.path(key))   # fails if the key exists: the first writer wins
            except OSError:
                if not self.has(key):
                    raise
                shutil.rmtree(scratch, ignore_errors=True)
                return False
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return True

    def entries(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("*") if p.is_dir() and not p.name.startswith("."))

