"""Pack an image-folder tree into one .npz of raw file bytes, and unpack it again.

Used to carry the CIFAR-10 JPEG copy to a remote GPU machine (one 55 MB file instead of 60,000
small files):  python tools/imagefolder_pack.py pack SRC OUT.npz | unpack IN.npz DEST
"""
import sys
from pathlib import Path

import numpy as np


def pack(src: Path, out: Path) -> None:
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    blobs = [p.read_bytes() for p in files]
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    names = np.array([str(p.relative_to(src)) for p in files])
    np.savez(out, data=np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets=offsets, names=names)
    print(f"packed {len(files)} files, {offsets[-1] / 1e6:.1f} MB -> {out}")


def safe_target(dest: Path, name: str) -> Path:
    """dest / name, or ValueError when the entry would land outside dest (absolute, '..', links)."""
    root = dest.resolve()
    target = (root / name).resolve()
    if Path(name).is_absolute() or target != root and root not in target.parents:
        raise ValueError(f"archive entry {name!r} escapes the target folder {dest}; nothing was unpacked")
    return target


def unpack(src: Path, dest: Path) -> None:
    z = np.load(src, allow_pickle=False)
    data, offsets, names = z["data"], z["offsets"], z["names"]
    targets = [safe_target(dest, str(name)) for name in names]   # check every entry before writing any
    for i, p in enumerate(targets):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data[offsets[i]:offsets[i + 1]].tobytes())
    print(f"unpacked {len(names)} files -> {dest}")


if __name__ == "__main__":
    cmd, a, b = sys.argv[1:4]
    {"pack": pack, "unpack": unpack}[cmd](Path(a), Path(b))
