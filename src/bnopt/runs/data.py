"""Data: CIFAR-10 (downloaded, or any image-folder copy) and the deep linear network's synthetic set.

Images are decoded once into a uint8 tensor cached under `data/cache/`, then kept resident on the
training device; batches are gathered by index with a seeded generator (no per-sample DataLoader).

Where the data comes from, in order:
1. `BNOPT_DATA` (the Makefile's `DATA=`): an image-folder tree `train/<class>/*`, `test/<class>/*`
   (the `torchvision.datasets.ImageFolder` layout; classes sort to the label indices).
2. Otherwise `torchvision.datasets.CIFAR10`, downloaded into `data/cifar10/` when missing.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bnopt.runs.cache import remove_stale
from bnopt.runs.config import DataConfig
from bnopt.runs.paths import data_home, write_text_atomic

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
DATASETS = ("cifar10", "dln")


class DataError(RuntimeError):
    """The dataset is missing or malformed; the message says what was looked for and how to fix it."""


# --------------------------------------------------------------------------------------------------
# Decoded image sets

@dataclass
class ImageSet:
    """A decoded image classification set: uint8 images (N, 3, H, W) and int64 labels."""
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple
    source: str          # where it was decoded from (for the record, not for the cache key)
    fingerprint: str     # sha256 of the decoded tensors: identifies the pixels, wherever they live


def _fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, ".*.tmp")           # left by a killed writer
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_decoded(path: Path) -> ImageSet | None:
    if not path.exists():
        return None
    try:
        d = torch.load(path, weights_only=True)
        s = ImageSet(**d)
        if _fingerprint(s.train_x, s.train_y, s.test_x, s.test_y) != s.fingerprint:
            raise ValueError("fingerprint mismatch")
        return s
    except Exception as e:  # corrupt or partial: rebuild
        warnings.warn(f"decoded-data cache {path} is unreadable ({e}); decoding again")
        path.unlink(missing_ok=True)
        return None


def _list_split(root: Path, split: str) -> tuple[list[str], list[tuple[Path, int]]]:
    d = root / split
    if not d.is_dir():
        raise DataError(
            f"image-folder dataset at {root} has no '{split}/' folder. Expected the layout "
            f"{root}/train/<class>/<image> and {root}/test/<class>/<image> "
            f"(torchvision ImageFolder). Point BNOPT_DATA (make: DATA=) at such a tree, or unset it "
            f"to download CIFAR-10 with torchvision.")
    classes = sorted(p.name for p in d.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{d} holds no class folders; expected {d}/<class>/<image>.")
    files = []
    for label, c in enumerate(classes):
        imgs = sorted(p for p in (d / c).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not imgs:
            raise DataError(f"class folder {d / c} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
        files += [(p, label) for p in imgs]
    return classes, files


def _decode(files: list[tuple[Path, int]], size: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    def one(item):
        path, _ = item
        try:
            with Image.open(path) as im:
                a = np.asarray(im.convert("RGB"))
        except Exception as e:
            raise DataError(f"cannot decode image {path}: {e}") from e
        return a

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        arrays = list(pool.map(one, files, chunksize=256))
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or (size is not None and next(iter(shapes))[:2] != size):
        bad = next(f for f, a in zip(files, arrays) if a.shape != arrays[0].shape or
                   (size is not None and a.shape[:2] != size))
        raise DataError(f"images must all be {size or arrays[0].shape[:2]} RGB; {bad[0]} is "
                        f"{np.asarray(arrays[files.index(bad)]).shape}. Found shapes: {sorted(shapes)[:5]}")
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    return x, y


def content_hash(root: Path, files: list[tuple[Path, int]]) -> str:
    """sha256 over every image's relative path, label and bytes: the key of the decoded cache, so an
    image replaced by another (of any size) is decoded again. Reading 60k files takes seconds, so
    the hash is memoised per stat listing (path, label, size, mtime): a replaced file has a new
    mtime, and then the bytes are read again."""
    listing = hashlib.sha256()
    for p, label in files:
        st = p.stat()
        listing.update(f"{p.relative_to(root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    memo = data_home() / "cache" / f"listing-{listing.hexdigest()[:24]}.sha256"
    if memo.exists():
        text = memo.read_text().strip()
        if len(text) == 64:
            return text
    h = hashlib.sha256()
    for p, label in files:
        h.update(f"{p.relative_to(root)}|{label}|".encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    digest = h.hexdigest()
    write_text_atomic(memo, digest)
    return digest


_LOADED: dict = {}   # per process: (root, size) -> ImageSet (the tree is read once per process)


def load_image_folder(root: str | os.PathLike, image_size: tuple[int, int] | None = (32, 32)) -> ImageSet:
    """Decode an image-folder tree (train/<class>/*, test/<class>/*) once; later calls hit the cache
    (and, within one process, the memory copy)."""
    root = Path(root).expanduser().resolve()
    if (root, image_size) in _LOADED:
        return _LOADED[(root, image_size)]
    s = _load_image_folder(root, image_size)
    _LOADED.clear()                       # one image folder resident per process
    _LOADED[(root, image_size)] = s
    return s


def _load_image_folder(root: Path, image_size: tuple[int, int] | None) -> ImageSet:
    if not root.is_dir():
        raise DataError(f"BNOPT_DATA={root} does not exist or is not a folder. Expected an image-folder "
                        f"tree {root}/train/<class>/<image>, {root}/test/<class>/<image>.")
    train_classes, train_files = _list_split(root, "train")
    test_classes, test_files = _list_split(root, "test")
    if train_classes != test_classes:
        raise DataError(f"train/ and test/ in {root} have different class folders: "
                        f"{train_classes} vs {test_classes}.")
    content = content_hash(root, train_files + test_files)
    cache = data_home() / "cache" / f"imagefolder-{content[:16]}.pt"
    cached = _load_decoded(cache)
    if cached is not None:
        return cached
    train_x, train_y = _decode(train_files, image_size)
    test_x, test_y = _decode(test_files, image_size)
    s = ImageSet(train_x, train_y, test_x, test_y, tuple(train_classes), f"imagefolder:{root}",
                 _fingerprint(train_x, train_y, test_x, test_y))
    _atomic_torch_save(s.__dict__, cache)
    return s


def download_cifar10(root: Path | None = None) -> ImageSet:
    """torchvision's CIFAR-10 (canonical pickled batches), downloaded into data/cifar10 if missing."""
    import torchvision

    root = Path(root or data_home() / "cifar10")
    cache = data_home() / "cache" / "cifar10-torchvision.pt"
    cached = _load_decoded(cache)
    if cached is not None:
        return cached
    if not (root / "cifar-10-batches-py").is_dir():
        # Download into a scratch folder and move it in only when complete: nothing half-written.
        root.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=root.parent, prefix=".cifar10-download-"))
        try:
            torchvision.datasets.CIFAR10(str(scratch), train=True, download=True)
            root.mkdir(parents=True, exist_ok=True)
            os.replace(scratch / "cifar-10-batches-py", root / "cifar-10-batches-py")
        except Exception as e:
            raise DataError(
                f"CIFAR-10 is not in {root} and could not be downloaded ({type(e).__name__}: {e}). "
                f"Either allow network access, or point BNOPT_DATA (make: DATA=) at an image-folder "
                f"copy with train/<class>/* and test/<class>/*, e.g. DATA=../shared/data/cifar10-jpeg."
            ) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    parts = []
    for train in (True, False):
        ds = torchvision.datasets.CIFAR10(str(root), train=train, download=False)
        parts += [torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(),
                  torch.tensor(ds.targets, dtype=torch.int64)]
    s = ImageSet(*parts, classes=CIFAR10_CLASSES, source=f"torchvision:{root}",
                 fingerprint=_fingerprint(*parts))
    _atomic_torch_save(s.__dict__, cache)
    return s


def load_cifar10() -> ImageSet:
    """CIFAR-10 from BNOPT_DATA (an image-folder copy) when set, else torchvision's download."""
    src = os.environ.get("BNOPT_DATA", "").strip()
    s = load_image_folder(src) if src else download_cifar10()
    if len(s.classes) != 10:
        raise DataError(f"CIFAR-10 needs 10 classes; {s.source} has {len(s.classes)}: {list(s.classes)}")
    return s


# --------------------------------------------------------------------------------------------------
# Synthetic data of the deep linear network (paper App. A.1)

def make_dln_data(n: int = 1000, dim: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x ~ N(0, I_dim) (n samples), A with i.i.d. N(0, 1) entries, targets y = A x. Returns (x, y, A)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    return x.float(), (x @ a.T).float(), a.float()


# --------------------------------------------------------------------------------------------------
# Device-resident tensors and batches

@dataclass
class Split:
    """Inputs and targets resident on the training device. uint8 images are standardized on gather."""
    x: torch.Tensor
    y: torch.Tensor
    mean: torch.Tensor | None = None   # per channel, in [0, 1] units, shape (1, C, 1, 1)
    std: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)

    def inputs(self, idx: torch.Tensor | slice | None = None) -> torch.Tensor:
        x = self.x if idx is None else self.x[idx]
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x


@dataclass
class Task:
    """What the training loop needs: splits on the device, the loss, and a data fingerprint."""
    train: Split
    evals: dict          # name -> Split evaluated at eval steps ('test', 'train_eval')
    loss: str            # 'cross_entropy' (mean over the batch) | 'half_sse' (1/2 sum of squared errors)
    fingerprint: str
    full_batch: bool = False


def prepare(cfg: DataConfig, device: torch.device | str = "cpu") -> Task:
    """Load the dataset named by cfg and put it on `device`."""
    device = torch.device(device)
    if cfg.dataset == "dln":
        x, y, a = make_dln_data(cfg.dln_samples, seed=cfg.data_seed)
        fp = _fingerprint(x, y)
        return Task(Split(x.to(device), y.to(device)), {}, "half_sse", fp, full_batch=True)
    if cfg.dataset != "cifar10":
        raise ValueError(f"unknown dataset {cfg.dataset!r}; valid: {', '.join(DATASETS)}")
    s = load_cifar10()
    train_x, train_y = s.train_x, s.train_y
    if cfg.train_subset:
        keep = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(cfg.data_seed))
        keep = keep[: cfg.train_subset].sort().values
        train_x, train_y = train_x[keep], train_y[keep]
    mean = std = None
    if cfg.standardize:
        f = train_x.double().div(255.0)
        mean = f.mean(dim=(0, 2, 3)).float().view(1, -1, 1, 1).to(device)
        std = f.std(dim=(0, 2, 3)).float().view(1, -1, 1, 1).to(device)
    train = Split(train_x.to(device), train_y.to(device), mean, std)
    evals = {"test": Split(s.test_x.to(device), s.test_y.to(device), mean, std)} if cfg.eval_test else {}
    if cfg.eval_train_subset:   # a fixed random subset (image folders are sorted by class)
        n = min(cfg.eval_train_subset, len(train_y))
        pick = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(cfg.data_seed + 1))[:n]
        pick = pick.sort().values.to(device)
        evals["train_eval"] = Split(train.x[pick], train.y[pick], mean, std)
    fp = s.fingerprint if not cfg.train_subset else f"{s.fingerprint}-sub{cfg.train_subset}-{cfg.data_seed}"
    return Task(train, evals, "cross_entropy", fp)


class BatchSampler:
    """Epochs of seeded random permutations, cut into full batches (the last partial one is dropped).

    All randomness comes from one CPU generator, so the batch sequence is identical on CPU and CUDA.
    """

    def __init__(self, n: int, batch_size: int, seed: int, augment: bool = False):
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} exceeds the {n} training examples")
        self.n, self.batch_size, self.augment = n, batch_size, augment
        self.gen = torch.Generator().manual_seed(seed)
        self._perm, self._pos = None, n

    def next_indices(self) -> torch.Tensor:
        if self.batch_size == self.n:   # full batch (the DLN): every example, in natural order
            return torch.arange(self.n)
        if self._pos + self.batch_size > self.n:
            self._perm, self._pos = torch.randperm(self.n, generator=self.gen), 0
        idx = self._perm[self._pos: self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx

    def state(self) -> dict:
        """Everything the next batches depend on (for a checkpoint)."""
        return {"gen": self.gen.get_state(), "perm": self._perm, "pos": self._pos}

    def load_state(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self._perm, self._pos = state["perm"], int(state["pos"])

    def batch(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.next_indices()
        dev_idx = idx.to(split.x.device)
        x, y = split.inputs(dev_idx), split.y[dev_idx]
        if self.augment:
            x = random_crop_flip(x, self.gen)
        return x, y


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Batched random crop (zero padding `pad` pixels) and horizontal flip; offsets drawn from `gen`."""
    b, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])            # (b, h)
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])            # (b, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
