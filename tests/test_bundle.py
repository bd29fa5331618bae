"""Results bundles: a round trip installs identical cache entries; a tampered, truncated or incomplete
bundle is refused, naming the run, and installs nothing."""
import io
import json
import tarfile

import pytest
import torch

from bnopt.book import cli
from bnopt.book import experiments as E
from bnopt.runs import bundle
from bnopt.runs import launch as runs
from bnopt.runs.cache import RunCache
from bnopt.runs.config import dln_config
from bnopt.runs.executor import run_keys


def tiny_runs():
    cfgs = [dln_config(**{"optim.steps": 4, "model.norm": n, "seed": s}) for n in ("none", "batch") for s in (0, 1)]
    return [runs.run(c)["meta"]["key"] for c in cfgs], cfgs


def rewrite(src, dst, change):
    """Copy the tar at src to dst, passing each (name, bytes) through change (None drops the member)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            out = change(m.name, tin.extractfile(m).read())
            if out is not None:
                info = tarfile.TarInfo(m.name)
                info.size = len(out)
                tout.addfile(info, io.BytesIO(out))


@pytest.mark.parametrize("name", ["b.tar", "b.tar.xz"])
def test_round_trip_installs_identical_entries(home, tmp_path, name):
    keys, cfgs = tiny_runs()
    path = tmp_path / name
    manifest = bundle.export(keys, path, profile="tiny")
    assert sorted(r["key"] for r in manifest["runs"]) == sorted(keys)
    other = RunCache(tmp_path / "other")
    assert bundle.install(path, other) == {"installed": 4, "present": 0, "content": "runs"}
    assert bundle.install(path, other) == {"installed": 0, "present": 4, "content": "runs"}
    for k in keys:
        for name in bundle.FILES:
            assert (other.path(k) / name).read_bytes() == (RunCache().path(k) / name).read_bytes()
        a, b = other.load(k), RunCache().load(k)
        assert torch.equal(a["train_loss"], b["train_loss"]) and a["meta"] == b["meta"]
    assert run_keys(cfgs) == dict(zip(keys, cfgs))           # the keys the book computes for its configs


def test_a_tampered_truncated_or_incomplete_bundle_is_refused_and_installs_nothing(home, tmp_path):
    keys, _ = tiny_runs()
    good = tmp_path / "good.tar"
    bundle.export(keys, good)
    victim = sorted(keys)[1]
    flip = lambda name, data: data[:-1] + bytes([data[-1] ^ 1]) if name == f"runs/{victim}/result.pt" else data
    rewrite(good, tmp_path / "tampered.tar", flip)
    rewrite(good, tmp_path / "dropped.tar", lambda n, d: None if n == f"runs/{victim}/meta.json" else d)
    (tmp_path / "truncated.tar").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    other = RunCache(tmp_path / "other")
    for name, why in (("tampered", "result.pt does not match the manifest"), ("dropped", "meta.json is missing"),
                      ("truncated", "truncated")):
        with pytest.raises(bundle.BundleError, match=why) as e:
            bundle.install(tmp_path / f"{name}.tar", other)
        if name != "truncated":
            assert victim in str(e.value) and "dln-d25" in str(e.value)   # the run, by key and description
        assert other.entries() == []
    # a manifest edited to match a forged result still fails: the result no longer matches its meta checksum
    def forge(name, data):
        if name == f"runs/{victim}/result.pt":
            return data[:-1] + bytes([data[-1] ^ 1])
        if name == "manifest.json":
            m = json.loads(data)
            blob = flip(f"runs/{victim}/result.pt", (RunCache().path(victim) / "result.pt").read_bytes())
            for r in m["runs"]:
                if r["key"] == victim:
                    r["files"]["result.pt"] = {"sha256": bundle._sha256(blob), "bytes": len(blob)}
            return json.dumps(m).encode()
        return data
    rewrite(good, tmp_path / "forged.tar", forge)
    with pytest.raises(bundle.BundleError, match=f"{victim}.*checksum in its meta.json"):
        bundle.install(tmp_path / "forged.tar", other)
    with pytest.raises(bundle.BundleError, match="not in the cache"):
        bundle.export(keys + ["0" * 16], tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()


def test_cli_export_lists_the_missing_runs_of_a_profile(home, tmp_path, capsys, tiny_folder, monkeypatch):
    monkeypatch.setenv("BNOPT_DATA", str(tiny_folder))
    assert cli.bundle_main(["export", "--profile", "tiny", str(tmp_path / "t.tar")]) == 2
    err = capsys.readouterr().err
    assert "runs of profile 'tiny' are not in the cache" in err and "vgg" in err and "dln-d25" in err
    assert not (tmp_path / "t.tar").exists()
    assert cli.bundle_main(["import", str(tmp_path / "nothing.tar")]) == 2


def test_a_build_told_not_to_train_stops_before_training_and_lists_the_missing_runs(home, tiny_folder, monkeypatch):
    """`--train no` (the default of the paper profile) lists what is missing, with a cost estimate from a saved
    bench, and trains nothing; after the runs are imported (here: trained), the same build goes through."""
    from bnopt.book import build as B
    from bnopt.runs.paths import repo_root
    monkeypatch.setenv("BNOPT_DATA", str(tiny_folder))
    root = repo_root()
    with pytest.raises(B.BuildError, match=r"runs of profile 'tiny' are not in the run cache") as e:
        B.train_all(root, "tiny", ["training"], train=False)
    text = str(e.value)
    assert "vgg16-w0.0625 norm=none lr=0.1 seed=0, 12 steps" in text and "no saved bench" in text
    assert "TRAIN=yes" in text and "bnopt bundle import" in text and RunCache().entries() == []
    bench = {"settings": {"width": 0.0625, "batch_size": 16},
             "components": {k: {"plain_step_s": 3600.0, "ratio_estimated": 1.0} for k in ("vgg", "vgg_bn")}}
    (home / "bench").mkdir(parents=True)
    (home / "bench" / "bench.json").write_text(json.dumps(bench))
    with pytest.raises(B.BuildError, match=r"12 steps, about 12\.0 h on one core here"):
        B.train_all(root, "tiny", ["training"], train=False)
    B.train_all(root, "tiny", ["training"], train=True)
    assert B.train_all(root, "tiny", ["training"], train=False)["trained"] == 0
    assert "paper" in B.NO_TRAIN_BY_DEFAULT


def test_a_bundle_without_weights_keeps_every_record_and_names_the_run_when_weights_are_asked_for(home, tmp_path):
    from bnopt.runs.train import WeightsMissing, model_of
    cfg = dln_config(**{"optim.steps": 4, "model.norm": "batch", "save_state": True})
    plain = dln_config(**{"optim.steps": 4, "model.norm": "none"})
    r, p = runs.run(cfg), runs.run(plain)
    k, kp = r["meta"]["key"], p["meta"]["key"]
    assert r["state_dict"] is not None and p["state_dict"] is None
    m = bundle.export([k, kp], tmp_path / "nw.tar", weights=False)
    assert m["weights"] is False and {x["key"]: x["weights_dropped"] for x in m["runs"]} == {k: True, kp: False}
    bundle.export([k, kp], tmp_path / "w.tar")
    assert (tmp_path / "nw.tar").stat().st_size < (tmp_path / "w.tar").stat().st_size
    other = RunCache(tmp_path / "other")
    assert bundle.install(tmp_path / "nw.tar", other) == {"installed": 2, "present": 0, "content": "runs"}
    got = other.load(k)
    assert got["state_dict"] is None and got["meta"]["weights_dropped"] is True
    assert torch.equal(got["train_loss"], r["train_loss"]) and got["probes"].keys() == r["probes"].keys()
    assert json.loads((other.path(k) / "config.json").read_text()) == \
        json.loads((RunCache().path(k) / "config.json").read_text())                # same key material
    for name in bundle.FILES:                       # a run without weights is exported as it is
        assert (other.path(kp) / name).read_bytes() == (RunCache().path(kp) / name).read_bytes()
    with pytest.raises(WeightsMissing, match=rf"run {k} \(dln-d\d+ norm=batch .*\) has no final weights: it was "
                                             r"imported from a results bundle exported without weights"):
        model_of(cfg, got)
    with pytest.raises(WeightsMissing, match=r"save_state: false"):
        model_of(plain, p)
    trained = model_of(cfg, r)                      # with weights: the trained network
    assert all(torch.equal(v, r["state_dict"][n]) for n, v in trained.state_dict().items())


def test_cli_export_without_weights(home, tmp_path, capsys, monkeypatch):
    cfg = dln_config(**{"optim.steps": 4, "model.norm": "batch", "save_state": True})
    runs.run(cfg)
    monkeypatch.setattr(E, "profile_configs", lambda profile: [cfg])
    assert cli.bundle_main(["export", "--profile", "tiny", "--no-weights", str(tmp_path / "t.tar")]) == 0
    assert "the final weights of 1 runs left out" in capsys.readouterr().out
    assert bundle.verify(tmp_path / "t.tar")[0]["weights"] is False
    other = dln_config(**{"optim.steps": 4, "seed": 7})               # not trained: --partial exports the rest
    monkeypatch.setattr(E, "profile_configs", lambda profile: [cfg, other])
    assert cli.bundle_main(["export", "--profile", "tiny", str(tmp_path / "p.tar")]) == 2
    assert "or export the others with --partial" in capsys.readouterr().err and not (tmp_path / "p.tar").exists()
    assert cli.bundle_main(["export", "--profile", "tiny", "--partial", str(tmp_path / "p.tar")]) == 0
    assert "warning: 1 of the 2 runs" in capsys.readouterr().err
    assert [r["description"] for r in bundle.verify(tmp_path / "p.tar")[0]["runs"]] == [runs.describe(cfg)]


def test_a_bundle_name_says_its_compression(home, tmp_path):
    keys, _ = tiny_runs()
    with pytest.raises(bundle.BundleError, match=r"ends with one of \.tar, \.tar\.xz"):
        bundle.export(keys, tmp_path / "out" / "b.zip")
    assert not (tmp_path / "out").exists()
    bundle.export(keys, tmp_path / "out" / "b.tar.xz")
    with open(tmp_path / "out" / "b.tar.xz", "rb") as f:
        assert f.read(6) == b"\xfd7zXZ\x00"                     # xz's magic number
    assert bundle.bundles_in(tmp_path / "out") == [tmp_path / "out" / "b.tar.xz"]


def test_committed_results_stay_under_the_size_cap_and_verify():
    """results/<profile>/: every committed bundle verifies and belongs to its folder's profile, and all of them
    together stay under the README's cap of 40 MB (final weights included, for the runs that keep them)."""
    from bnopt.runs.paths import repo_root
    bundles = [b for folder in sorted((repo_root() / "results").glob("*")) for b in bundle.bundles_in(folder)]
    assert sum(b.stat().st_size for b in bundles) <= 40e6
    for b in bundles:
        manifest, _ = bundle.verify(b)
        assert manifest["profile"] == b.parent.name, b


def test_committed_runs_are_runs_of_their_profile():
    """Every committed measurement was made on a committed run of its folder (on its committed bits, where it reads
    them), and every committed run is still a run
    of its profile: a change that reaches a frozen profile's configurations
    (a chapter default, a probe option, a cadence) would orphan the committed runs and retrain them silently.
    The configurations are compared, not the keys, so that no dataset is needed (a key also holds the data's
    fingerprint)."""
    from bnopt.runs.config import canonical_json
    from bnopt.runs.paths import repo_root
    for folder in sorted((repo_root() / "results").glob("*")):
        committed, keys, measured_on, digests = {}, set(), {}, {}
        for b in bundle.bundles_in(folder):
            manifest, blobs = bundle.verify(b)
            for r in manifest["runs"]:
                material = json.loads(blobs[f"runs/{r['key']}/config.json"])
                if bundle.content_of(manifest) == "measurements":
                    measured_on[r["key"]] = (material["run"], material.get("run_result"))
                    continue
                digests[r["key"]] = json.loads(blobs[f"runs/{r['key']}/meta.json"])["result_sha256"]
                committed[canonical_json(material["config"])] = f"{r['key']} ({r['description']})"
                keys.add(r["key"])
        orphans = sorted(k for k, (run, bits) in measured_on.items()
                         if run not in keys or bits is not None and bits != digests[run])
        assert not orphans, f"{folder.name}: committed measurements of runs (or run bits) not committed: {', '.join(orphans)}"
        if committed:
            declared = {canonical_json(cfg.key_dict()) for cfg in E.profile_configs(folder.name)}
            orphans = sorted(v for k, v in committed.items() if k not in declared)
            assert not orphans, f"{folder.name}: committed runs no longer in the profile: " + ", ".join(orphans)
