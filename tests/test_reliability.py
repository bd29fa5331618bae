"""Bad input stops with an error that names the value and what is allowed; the caches survive
concurrent and killed writers; data and archives are checked by content."""
import importlib.util
import os
import time
from multiprocessing import get_context

import pytest
import torch

from bnopt.book import build as B
from bnopt.book import cli
from bnopt.book import experiments as E
from bnopt.book import params as PM
from bnopt.book.params import ParameterError, coerce, coerce_parameters
from bnopt.runs.cache import RunCache
from bnopt.runs.config import ConfigError, ProbeSpec, dln_config, vgg_config
from bnopt.runs.paths import repo_root
from bnopt.runs.train import resolve_device

ROOT = repo_root()


@pytest.mark.parametrize("change, message", [
    ({"model.width": 0}, "model.width must be > 0, got 0"),
    ({"model.width": -1}, "model.width must be > 0, got -1"),
    ({"optim.lr": 0}, "optim.lr must be > 0, got 0"),
    ({"optim.steps": 0}, "optim.steps must be >= 1, got 0"),
    ({"optim.steps": -5}, "optim.steps must be >= 1, got -5"),
    ({"optim.steps": "abc"}, "optim.steps must be an integer >= 1, got 'abc'"),
    ({"optim.batch_size": 0}, "optim.batch_size must be >= 1, got 0"),
    ({"eval_every": -1}, "eval_every must be >= 0, got -1"),
    ({"model.norm": "nope"}, "model.norm must be one of .*batch.*none.*; got 'nope'"),
    ({"precision": "fp8"}, "precision must be one of fp32, tf32, bf16; got 'fp8'"),
    ({"optim.momentum": 1.0}, "optim.momentum must be < 1, got 1.0"),
])
def test_run_config_names_the_bad_value(change, message):
    with pytest.raises(ConfigError, match=message):
        vgg_config(**change)


def test_probe_cadence_and_dln_batch_are_checked():
    with pytest.raises(ConfigError, match=r"probes\[ics\].every must be >= 1, got 0"):
        ProbeSpec("ics", every=0)
    with pytest.raises(ConfigError, match="probe name must be one of .*activations"):
        ProbeSpec("nope")
    with pytest.raises(ConfigError, match=r"optim.batch_size must be <= data.dln_samples \(1000\), got 2000"):
        dln_config(**{"optim.batch_size": 2000})


def test_outside_values_are_coerced_by_one_function():
    assert coerce("lr", "1e-3", 0.1) == 1e-3 and isinstance(coerce("lr", 1, 0.1), float)
    assert coerce("steps", "500", 15000) == 500 and coerce("steps", 500.0, 15000) == 500
    assert coerce("norms", "batch", ["none", "batch"]) == ["batch"]      # not ['b', 'a', ...]
    assert coerce("seeds", 0, [0, 1, 2]) == [0]
    assert coerce("seeds", "[0, 1]", [0, 1, 2]) == [0, 1]
    assert coerce("lrs", [1, "0.5"], [0.1, 0.5]) == [1.0, 0.5]
    assert coerce("save", "true", False) is True
    for name, value, default, msg in (("steps", "abc", 1, "must be an integer, got 'abc'"),
                                      ("steps", 1.5, 1, "must be an integer, got 1.5"),
                                      ("lr", "fast", 0.1, "must be a number, got 'fast'"),
                                      ("arch", 16, "vgg16", "must be a string, got 16"),
                                      ("seeds", ["x"], [0], r"seeds\[0\]' must be an integer")):
        with pytest.raises(ParameterError, match=msg):
            coerce(name, value, default)
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) \['stepz'\] for here; its parameters: \['steps'\]"):
        coerce_parameters({"steps": 1}, {"stepz": 5}, "here")


def test_profile_yaml_errors_name_the_file_and_line(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("training:\n  steps: 10\n  steps: 20\n")
    with pytest.raises(B.BuildError, match=r"dup.yaml, line 3: duplicate key 'steps' \(first at line 2\)"):
        PM.load_yaml(dup)
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  steps: [1, 2\n  lr: 3\n")
    with pytest.raises(B.BuildError, match=r"bad.yaml, line \d+: "):
        PM.load_yaml(bad)
    good = tmp_path / "good.yaml"
    good.write_text("_a: &a\n  steps: 1\ntraining:\n  <<: *a\n  lr: 1e-3\n")
    assert PM.load_yaml(good)["training"] == {"steps": 1, "lr": 1e-3}     # anchors and merges still work


def test_profile_values_are_coerced_and_checked_before_training():
    params = B.profile_parameters(ROOT, "quick")
    assert isinstance(params["training"]["seeds"], list) and isinstance(params["training"]["width"], float)
    with pytest.raises(B.BuildError, match=r"unknown parameter\(s\) \['stepz'\] for chapter 'training'"):
        B.check_parameters(ROOT / "book" / "training.ipynb", {"stepz": 5})


def test_unknown_names_fail_with_the_valid_choices(tmp_path, capsys, monkeypatch):
    with pytest.raises(B.BuildError, match=r"--only names unknown chapter\(s\) \['nope'\]; chapters: bn_math, training"):
        B.stage_book(ROOT, tmp_path / "stage", "tiny", only=["nope"])
    assert cli.train_main(["training", "--set", "stepz=5"]) == 1
    assert "unknown parameter(s) ['stepz'] for chapter 'training'; its parameters: [" in capsys.readouterr().err
    assert cli.train_main(["training", "--set", "width=0", "steps=1"]) == 1
    assert "model.width must be > 0, got 0.0" in capsys.readouterr().err
    monkeypatch.setenv("BNOPT_DEVICE", "garbage")
    with pytest.raises(ValueError, match="BNOPT_DEVICE='garbage' is not a device; valid choices here: cpu"):
        resolve_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("BNOPT_DEVICE", "cuda")
        with pytest.raises(ValueError, match="BNOPT_DEVICE='cuda' is not available on this machine; valid choices here: cpu"):
            resolve_device()
    monkeypatch.setenv("BNOPT_DEVICE", "cpu")
    assert resolve_device().type == "cpu"


def _save_same_key(root, i, barrier):
    cache = RunCache(root)
    barrier.wait()
    meta = cache.save("k" * 16, {"config": {"i": 0}}, {"x": torch.full((200_000,), float(i))}, {"writer": i})
    return meta["writer"]


def _writer(args):
    return _save_same_key(*args)


def test_concurrent_writers_leave_exactly_one_entry(tmp_path):
    ctx = get_context("spawn")
    barrier = ctx.Manager().Barrier(4)
    with ctx.Pool(4) as pool:
        winners = pool.map(_writer, [(str(tmp_path), i, barrier) for i in range(4)])
    cache = RunCache(tmp_path)
    assert cache.entries() == ["k" * 16]
    assert len(set(winners)) == 1                      # every writer reports the one entry that stayed
    hit = cache.load("k" * 16)
    assert hit["meta"]["writer"] == winners[0] and torch.equal(hit["x"], torch.full((200_000,), float(winners[0])))
    assert not list(tmp_path.glob(".tmp-*"))


def test_second_writer_keeps_the_first_entry_and_stale_scratch_is_cleaned(tmp_path):
    cache = RunCache(tmp_path)
    stale = tmp_path / ".tmp-dead-writer"
    stale.mkdir(parents=True)
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = tmp_path / ".tmp-live-writer"
    fresh.mkdir()
    cache.save("a" * 16, {}, {"v": torch.tensor(1.0)}, {"writer": 1})
    meta = cache.save("a" * 16, {}, {"v": torch.tensor(2.0)}, {"writer": 2})
    assert meta["writer"] == 1 and float(cache.load("a" * 16)["v"]) == 1.0
    assert not stale.exists() and fresh.exists()        # only a dead writer's scratch is removed


def test_decoded_cache_is_keyed_by_image_content(tmp_path, monkeypatch):
    from conftest import make_image_folder
    from PIL import Image

    from bnopt.runs import data

    monkeypatch.setenv("BNOPT_HOME", str(tmp_path / "home"))
    data._LOADED.clear()
    root = make_image_folder(tmp_path / "imgs", n_train=2, n_test=1)
    first = data.load_image_folder(root)
    img = root / "train" / "cat" / "0000.png"
    size = img.stat().st_size
    pixels = torch.zeros(32, 32, 3, dtype=torch.uint8)
    pixels[0, 0, 0] = 1                                 # other pixels, same format
    Image.fromarray(pixels.numpy()).save(img)
    if img.stat().st_size != size:                      # pad to the same size: the old key missed this
        with open(img, "ab") as f:
            f.write(b"\0" * max(0, size - img.stat().st_size))
    data._LOADED.clear()                                # a new process: only the disk cache remains
    second = data.load_image_folder(root)
    assert second.fingerprint != first.fingerprint
    i = [k for k, (y) in enumerate(second.train_y.tolist()) if y == 3][0]
    assert int(second.train_x[i].sum()) == 1


def test_pack_tool_rejects_entries_outside_the_target(tmp_path):
    import numpy as np

    spec = importlib.util.spec_from_file_location("pack", ROOT / "tools" / "imagefolder_pack.py")
    pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pack)
    for bad in ("../x.jpg", "/tmp/abs.jpg", "a/../../x.jpg"):
        arc = tmp_path / "bad.npz"
        np.savez(arc, data=np.frombuffer(b"abc", dtype=np.uint8), offsets=np.array([0, 3]), names=np.array([bad]))
        with pytest.raises(ValueError, match="escapes the target folder"):
            pack.unpack(arc, tmp_path / "out")
        assert not (tmp_path / "x.jpg").exists() and not (tmp_path / "out").exists()
    good = tmp_path / "src" / "train" / "c"
    good.mkdir(parents=True)
    (good / "1.jpg").write_bytes(b"jpegbytes")
    pack.pack(tmp_path / "src", tmp_path / "ok.npz")
    pack.unpack(tmp_path / "ok.npz", tmp_path / "out")
    assert (tmp_path / "out" / "train" / "c" / "1.jpg").read_bytes() == b"jpegbytes"


def test_the_build_checks_layer_choices_before_training(monkeypatch, tmp_path):
    real = E.chapter_parameters

    def bad(chapter, profile):
        p = real(chapter, profile)
        return {**p, "ridge_layers": [3, 4]} if chapter == "training" else p
    monkeypatch.setattr(E, "chapter_parameters", bad)
    monkeypatch.setattr("bnopt.runs.executor.ensure", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(B.BuildError, match=r"chapter 'training' \(profile 'tiny'\): ridge_layers=\[3, 4\]: layers \[4\] "
                                           r"are not recorded; valid choices: \[2, 3, 9, 11, 13\]"):
        B.train_all(ROOT, "tiny", ["bn_math", "training"])
    E.check_chapter("ics", {"ics_layers": [5, 13], "dln_ics_layers": [25]})
    with pytest.raises(ValueError, match=r"dln_ics_layers=\[26\]: layers \[26\]"):
        E.check_chapter("ics", {"dln_ics_layers": [26]})
    with pytest.raises(ValueError, match=r"hvp_layers=\[14\]"):
        E.check_chapter("bn_math", {"arch": "vgg16", "hvp_layers": [14]})
