"""Where the project keeps downloads, decoded-data caches and run results."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path | None:
    """The checkout this package is installed from (editable install), or None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() else None


def data_home() -> Path:
    """BNOPT_HOME if set, else <repo>/data for an editable install, else ./data."""
    env = os.environ.get("BNOPT_HOME", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    return (root / "data") if root else Path.cwd() / "data"
