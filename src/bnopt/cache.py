"""On-disk cache of finished runs, keyed by a hash of their full configuration.

Layout: `data/runs/<key>/` with
  config.json  the full key material (RunConfig + data fingerprint), human-readable
  meta.json    git commit, library versions, device, wall time, and the sha256 of result.pt
  result.pt    the result dict (tensors and numbers; loads with weights_only=True)

An entry is written into a scratch folder and renamed into place, so readers never see a partial
entry. A corrupt entry (missing file, unreadable, checksum mismatch) is reported with a warning,
removed and recomputed.
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
import warnings
from pathlib import Path

import torch

from .config import config_hash
from .paths import data_home, repo_root


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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

    from . import __version__
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__, "bnopt": __version__}


class RunCache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else data_home() / "runs"

    @staticmethod
    def key(key_material: dict) -> str:
        return config_hash(key_material)

    def path(self, key: str) -> Path:
        return self.root / key

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
        except Exception as e:
            warnings.warn(f"run cache entry {d} is corrupt ({type(e).__name__}: {e}); recomputing it")
            shutil.rmtree(d, ignore_errors=True)
            return None
        result["meta"] = meta
        return result

    def save(self, key: str, key_material: dict, result: dict, meta: dict) -> dict:
        """Write atomically; returns the meta as stored."""
        self.root.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save({k: v for k, v in result.items() if k != "meta"}, buf)
        blob = buf.getvalue()
        meta = {**meta, "key": key, "result_sha256": _sha256(blob)}
        scratch = Path(tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{key}-"))
        try:
            (scratch / "config.json").write_text(json.dumps(key_material, indent=2, sort_keys=True))
            (scratch / "result.pt").write_bytes(blob)
            (scratch / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
            final = self.path(key)
            if final.exists():        # a concurrent writer won, or a stale entry: keep one
                shutil.rmtree(final, ignore_errors=True)
            os.replace(scratch, final)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return meta

    def entries(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("*") if p.is_dir() and not p.name.startswith("."))

