import numpy as np
import pytest
import torch
from conftest import make_image_folder
from PIL import Image

from bnopt.runs import data as D
from bnopt.runs.config import DataConfig


def test_image_folder_decodes_in_label_order(tiny_data):
    s = D.load_cifar10()
    assert s.train_x.shape == (120, 3, 32, 32) and s.train_x.dtype == torch.uint8
    assert s.test_x.shape == (40, 3, 32, 32)
    assert s.classes == D.CIFAR10_CLASSES
    assert torch.equal(s.train_y, torch.arange(10).repeat_interleave(12))
    # pixel check against PIL for one file
    img = np.array(Image.open(tiny_data / "train" / "bird" / "0003.png").convert("RGB"))
    assert torch.equal(s.train_x[2 * 12 + 3], torch.from_numpy(img).permute(2, 0, 1))


def test_decoded_cache_is_reused(tiny_data, monkeypatch):
    first = D.load_cifar10()
    assert D.load_cifar10() is first                    # the same process keeps it in memory
    D._LOADED.clear()                                   # a new process reads the disk cache
    monkeypatch.setattr(D, "_decode", lambda *a, **k: pytest.fail("decoded again instead of cache"))
    second = D.load_cifar10()
    assert second.fingerprint == first.fingerprint
    assert torch.equal(second.train_x, first.train_x)


def test_corrupt_decoded_cache_is_rebuilt(tiny_data, home):
    D.load_cifar10()
    (cache,) = (home / "cache").glob("imagefolder-*.pt")
    cache.write_bytes(b"garbage")
    D._LOADED.clear()                                   # a new process
    with pytest.warns(UserWarning, match="unreadable"):
        s = D.load_cifar10()
    assert s.train_x.shape[0] == 120


def _no_partial_files(home):
    return [p for p in home.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


@pytest.mark.parametrize("breakage, message", [
    ("missing", "does not exist"),
    ("no_test", "has no 'test/' folder"),
    ("empty_class", "holds no images"),
    ("bad_size", "images must all be"),
    ("class_mismatch", "different class folders"),
])
def test_malformed_folder_errors_clearly(tmp_path, home, monkeypatch, breakage, message):
    root = make_image_folder(tmp_path / "ds", n_train=2, n_test=1)
    import shutil
    if breakage == "missing":
        root = tmp_path / "nowhere"
    elif breakage == "no_test":
        shutil.rmtree(root / "test")
    elif breakage == "empty_class":
        for f in (root / "train" / "cat").iterdir():
            f.unlink()
    elif breakage == "bad_size":
        Image.new("RGB", (16, 16)).save(root / "train" / "dog" / "9999.png")
    elif breakage == "class_mismatch":
        shutil.rmtree(root / "test" / "truck")
    monkeypatch.setenv("BNOPT_DATA", str(root))
    with pytest.raises(D.DataError, match=message) as err:
        D.load_cifar10()
    assert "train/<class>" in str(err.value) or breakage in ("empty_class", "bad_size", "class_mismatch")
    assert _no_partial_files(home) == []
    assert not list((home / "cache").glob("*.pt")) if (home / "cache").exists() else True


def test_failed_download_errors_clearly_and_leaves_nothing(home, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.delenv("BNOPT_DATA", raising=False)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(D.DataError, match="could not be downloaded") as err:
        D.load_cifar10()
    assert "BNOPT_DATA" in str(err.value)
    leftovers = [p for p in home.rglob("*") if p.is_file() or p.name.startswith(".cifar10-download")]
    assert leftovers == []


def test_prepare_standardizes_per_channel(tiny_data):
    task = D.prepare(DataConfig(eval_train_subset=30))
    x = task.train.inputs()
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    assert len(task.evals["test"]) == 40 and len(task.evals["train_eval"]) == 30
    # the eval subset is spread over classes, not the first class folders
    assert len(task.evals["train_eval"].y.unique()) > 5


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="cifar10, dln"):
        D.prepare(DataConfig(dataset="mnist"))


def test_batch_sampler_epochs_cover_everything_once():
    s = D.BatchSampler(n=10, batch_size=3, seed=0)
    epoch = torch.cat([s.next_indices() for _ in range(3)])   # 3 full batches, the 10th index dropped
    assert len(epoch.unique()) == 9
    again = D.BatchSampler(n=10, batch_size=3, seed=0)
    assert torch.equal(torch.cat([again.next_indices() for _ in range(3)]), epoch)
    assert not torch.equal(torch.cat([D.BatchSampler(10, 3, seed=1).next_indices() for _ in range(3)]), epoch)
    assert torch.equal(D.BatchSampler(n=5, batch_size=5, seed=0).next_indices(), torch.arange(5))


def test_random_crop_flip_moves_pixels_only():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 8, 8)
    y = D.random_crop_flip(x, g, pad=0)       # no padding: each image is itself or its mirror
    same = (y == x).flatten(1).all(1)
    flipped = (y == x.flip(3)).flatten(1).all(1)
    assert bool((same | flipped).all()) and 10 < int(flipped.sum()) < 54
    z = D.random_crop_flip(x, g, pad=2)
    assert z.shape == x.shape
    # every output pixel is an input pixel of the same image and channel, or zero padding
    assert bool(torch.isin(z[0, 0], torch.cat([x[0, 0].flatten(), torch.zeros(1)])).all())


def test_dln_data_is_seeded_and_linear():
    x, y, a = D.make_dln_data(1000, 10, seed=3)
    assert x.shape == (1000, 10) and a.shape == (10, 10)
    assert torch.allclose(y, x @ a.T, atol=1e-4)
    x2, _, a2 = D.make_dln_data(1000, 10, seed=3)
    assert torch.equal(x, x2) and torch.equal(a, a2)
    assert abs(float(x.std()) - 1) < 0.05
