import json

import pytest
import torch

import bnopt
from bnopt.runs import launch as runs
from bnopt.runs.cache import RunCache
from bnopt.runs.config import CACHE_VERSION, ProbeSpec, RunConfig, config_hash, dln_config


def small_dln(**changes):
    return dln_config(**{"optim.steps": 5, **changes})


def test_miss_then_hit(home, monkeypatch):
    first = bnopt.run(small_dln(), device="cpu")
    assert first["meta"]["from_cache"] is False
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("trained although cached"))
    second = bnopt.run(small_dln(), device="cpu")
    assert second["meta"]["from_cache"] is True
    assert torch.equal(first["train_loss"], second["train_loss"])


def test_entry_records_provenance(home):
    r = bnopt.run(small_dln(), device="cpu")
    d = home / "runs" / r["meta"]["key"]
    meta = json.loads((d / "meta.json").read_text())
    cfg = json.loads((d / "config.json").read_text())
    assert set(meta) >= {"git_commit", "versions", "device", "wall_time_s", "created", "result_sha256"}
    assert meta["versions"]["torch"] == torch.__version__
    assert RunConfig.from_dict(cfg["config"]) == small_dln()
    assert "data_fingerprint" in cfg
    assert not [p for p in (home / "runs").iterdir() if p.name.startswith(".tmp")]


def test_seeds_are_separate_entries(home):
    rs = bnopt.run_seeds(small_dln(), [0, 1, 2])
    assert len({r["meta"]["key"] for r in rs}) == 3
    assert len(RunCache().entries()) == 3


@pytest.mark.parametrize("damage", ["truncate", "delete_meta", "bad_json", "other_valid_result"])
def test_corrupt_entry_is_detected_and_recomputed(home, damage):
    r = bnopt.run(small_dln(), device="cpu")
    d = home / "runs" / r["meta"]["key"]
    if damage == "other_valid_result":      # loadable, but not what was saved: only the checksum sees it
        torch.save({**{k: v for k, v in r.items() if k != "meta"}, "train_loss": r["train_loss"] + 1},
                   d / "result.pt")
    elif damage == "truncate":
        blob = (d / "result.pt").read_bytes()
        (d / "result.pt").write_bytes(blob[: len(blob) // 2])
    elif damage == "delete_meta":
        (d / "meta.json").unlink()
    else:
        (d / "config.json").write_text("{not json")
    with pytest.warns(UserWarning, match="corrupt"):
        again = bnopt.run(small_dln(), device="cpu")
    assert again["meta"]["from_cache"] is False
    assert torch.equal(again["train_loss"], r["train_loss"])
    assert bnopt.run(small_dln(), device="cpu")["meta"]["from_cache"] is True


def test_failed_write_leaves_no_partial_entry(home, monkeypatch):
    cache = RunCache()
    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr("bnopt.runs.cache.json.dumps", boom)
    with pytest.raises(OSError):
        cache.save("abc", {"x": 1}, {"train_loss": torch.zeros(2)}, {})
    assert list(cache.root.iterdir()) == []


def test_key_covers_every_field():
    base = RunConfig().replace(**{"model.norm": "batch"})
    k0 = config_hash(base.key_dict())
    changes = {"model.norm": "l1", "model.width": 0.5, "model.norm_kwargs": {"eps": 1e-3},
               "data.augment": True, "data.train_subset": 100, "optim.lr": 0.5, "optim.steps": 10,
               "optim.momentum": 0.9, "optim.weight_decay": 5e-4, "optim.batch_size": 64, "seed": 1,
               "eval_every": 100, "precision": "tf32", "save_state": True, "cache_version": CACHE_VERSION + 1,
               "data.eval_test": False, "probes": [{"name": "activations", "every": 50, "kwargs": {}}]}
    keys = {k0}
    for field, value in changes.items():
        keys.add(config_hash(base.replace(**{field: value}).key_dict()))
    assert len(keys) == len(changes) + 1
    probes = {config_hash(base.replace(probes=[{"name": "activations", "every": e, "start": s}]).key_dict())
              for e, s in ((50, 0), (100, 0), (100, 30))}
    assert len(probes) == 3


def test_key_is_stable():
    """The key of a fixed config must not drift: if this fails, results of existing configs changed
    meaning, so bump CACHE_VERSION (and update the expected value) on purpose."""
    d = RunConfig().key_dict()
    shuffled = json.loads(json.dumps(d, sort_keys=False))
    assert config_hash(shuffled) == config_hash(d)
    assert config_hash(RunConfig().replace(**{"optim.lr": 1e-1}).key_dict()) == config_hash(d)
    assert config_hash(d) == "79c84c610cf14c91"   # CACHE_VERSION 2, memory_format added
    # fields added later (KEY_DEFAULTS) leave the key of a config that does not use them unchanged
    probed = RunConfig(probes=[ProbeSpec("ics", every=50)])
    assert "start" not in probed.key_dict()["probes"][0] and "eval_test" not in probed.key_dict()["data"]
    assert "extra" not in probed.key_dict()["probes"][0]
    assert RunConfig.from_dict(probed.key_dict()) == probed == RunConfig.from_dict(probed.to_dict())
    early = RunConfig(probes=[ProbeSpec("ics", every=50, extra=[25, 10])])
    assert early.key_dict()["probes"][0]["extra"] == [10, 25] and config_hash(early.key_dict()) != config_hash(probed.key_dict())
    assert RunConfig.from_dict(early.key_dict()) == early


def test_replace_rejects_unknown_fields():
    with pytest.raises(KeyError, match="valid here"):
        RunConfig().replace(**{"optim.learning_rate": 0.1})
    with pytest.raises(KeyError, match="sections"):
        RunConfig().replace(**{"trainer.lr": 0.1})


def test_pack_roundtrip_keeps_every_tensor_and_value():
    from bnopt.runs.cache import pack, unpack
    r = {"a": torch.arange(6.0).view(2, 3), "b": [torch.tensor(1.5, dtype=torch.float64), {"c": torch.zeros(0)}],
         "i": torch.tensor([1, 2], dtype=torch.int64), "t": (torch.ones(2, 2).t(), "x", 3, None),
         "flag": torch.tensor([True, False]), "n": 0.25}
    structure, buffers = pack(r)
    assert set(buffers) == {"float32", "float64", "int64", "bool"}
    back = unpack(structure, buffers)
    assert back["n"] == 0.25 and back["t"][1:] == ("x", 3, None)
    for got, want in ((back["a"], r["a"]), (back["b"][0], r["b"][0]), (back["b"][1]["c"], r["b"][1]["c"]),
                      (back["i"], r["i"]), (back["t"][0], r["t"][0]), (back["flag"], r["flag"])):
        assert got.dtype == want.dtype and got.shape == want.shape and torch.equal(got, want)


def test_entries_written_before_packing_still_load(home):
    r = bnopt.run(small_dln(), device="cpu")
    d = home / "runs" / r["meta"]["key"]
    import hashlib
    import io
    buf = io.BytesIO()
    torch.save({k: v for k, v in r.items() if k != "meta"}, buf)          # the old, unpacked format
    (d / "result.pt").write_bytes(buf.getvalue())
    meta = json.loads((d / "meta.json").read_text())
    meta["result_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (d / "meta.json").write_text(json.dumps(meta))
    again = bnopt.run(small_dln(), device="cpu")
    assert again["meta"]["from_cache"] and torch.equal(again["train_loss"], r["train_loss"])


def test_write_text_atomic_replaces_whole_and_leaves_no_temporary(tmp_path):
    from bnopt.runs.paths import write_text_atomic

    p = tmp_path / "sub" / "x.json"
    write_text_atomic(p, "one")
    write_text_atomic(p, "two")
    assert p.read_text() == "two"
    assert [q.name for q in p.parent.iterdir()] == ["x.json"]
