"""Where the project keeps downloads, decoded-data caches and run results."""
from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename, so a reader (or
    another process writing the same file) never sees a partial file."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def repo_root() -> Path | None:
    """The checkout this package is installed from (editable install), or None."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").exists() else None


def data_home() -> Path:
    """BNOPT_HOME if set, else <repo>/data for an editable install, else ./data."""
    env = os.environ.get("BNOPT_HOME", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    return (root / "data") if root else Path.cwd() / "data"
