"""Shared fixtures: a tiny CIFAR-like image-folder tree made here, and an isolated data home."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_image_folder(root, n_train=12, n_test=4, size=32, classes=CLASSES, seed=0):
    """Class c is a noisy image whose mean colour depends on c, so a network can learn it."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            base = np.array([(c * 25) % 256, (c * 70) % 256, 255 - c * 25], dtype=float)
            for i in range(n):
                img = np.clip(base + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("tiny-cifar"))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """BNOPT_HOME in a temp folder: caches and runs never touch the repo's data/."""
    h = tmp_path / "home"
    monkeypatch.setenv("BNOPT_HOME", str(h))
    monkeypatch.setenv("BNOPT_PROGRESS", "off")
    from bnopt.runs import data
    from bnopt.runs import launch as runs
    runs._TASKS.clear()
    data._LOADED.clear()
    return h


@pytest.fixture
def tiny_data(home, tiny_folder, monkeypatch):
    monkeypatch.setenv("BNOPT_DATA", str(tiny_folder))
    return tiny_folder


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
