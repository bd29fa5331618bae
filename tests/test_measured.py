"""Measurements made on finished runs: cached once and read bit for bit, committed in bundles of their own, and
computed again by `verify-runs` (exactly under the same numerics, within a tolerance under others)."""
import numpy as np
import pytest
import torch

from bnopt.book import campaign
from bnopt.book import measurements as BM
from bnopt.book.chapters.smoothness import points
from bnopt.measure.curvature import spectral_density
from bnopt.measure.landscape import LandscapeProbe
from bnopt.measure.probes import ProbeContext
from bnopt.runs import bundle, measured, verify
from bnopt.runs import launch as runs
from bnopt.runs.cache import RunCache
from bnopt.runs.config import dln_config, vgg_config
from bnopt.runs.launch import fixed_batch
from bnopt.runs.train import model_of

CALLS = []


def scaled_loss(cfg, result, p):
    """A measurement of known value: the run's training loss times p['scale'] (and how often it was computed)."""
    CALLS.append(p)
    return {"loss": result["train_loss"] * p["scale"], "scale": p["scale"]}


measured.register("scaled_loss", scaled_loss, lambda v: {"sum": float(v["loss"].sum())})


@pytest.fixture
def dln_run(home):
    CALLS.clear()
    cfg = dln_config(**{"optim.steps": 5})
    return cfg, runs.run(cfg, device="cpu")


def test_a_measurement_is_computed_once_then_read_bit_for_bit(dln_run):
    cfg, result = dln_run
    first = measured.measured("scaled_loss", cfg, result, {"scale": 2.0})
    again = measured.measured("scaled_loss", cfg, result, {"scale": 2.0})
    assert len(CALLS) == 1 and torch.equal(first["loss"], result["train_loss"] * 2.0)
    assert torch.equal(again["loss"], first["loss"]) and again["scale"] == 2.0 and "meta" not in again
    other = measured.measured("scaled_loss", cfg, result, {"scale": 3.0})        # other parameters: another entry
    assert len(CALLS) == 2 and torch.equal(other["loss"], result["train_loss"] * 3.0)
    [k2, k3] = sorted(measured.entries_of([result["meta"]["key"]]),
                      key=lambda k: measured.measure_cache().material(k)["params"]["scale"])
    meta = measured.measure_cache().meta(k2)
    assert meta["run"] == result["meta"]["key"] and meta["numerics"] and meta["git_commit"]
    assert k2 == measured.measured_key("scaled_loss", result["meta"]["key"], {"scale": 2.0},
                                       result["meta"]["result_sha256"]) != k3
    assert not any(k in RunCache().entries() for k in (k2, k3))                  # apart from the runs


def test_a_measurement_of_the_result_is_keyed_by_its_bits_one_of_the_config_is_not(dln_run):
    """The same config trained to other bits (another CPU's rounding) gets its own entry where the measurement reads
    the result; a measurement that reads only the config (at initialisation) shares one entry across both."""
    cfg, result = dln_run
    other_bits = {**result, "train_loss": result["train_loss"] * (1 + 1e-6),
                  "meta": {**result["meta"], "result_sha256": "0" * 64}}
    first = measured.measured("scaled_loss", cfg, result, {"scale": 2.0})
    second = measured.measured("scaled_loss", cfg, other_bits, {"scale": 2.0})
    assert len(CALLS) == 2 and not torch.equal(first["loss"], second["loss"])
    assert len(measured.entries_of([result["meta"]["key"]])) == 2
    measured.register("initial_scale", lambda c, r, p: {"scale": torch.tensor(p["scale"] * c.seed + 1.0)},
                      lambda v: {"scale": float(v["scale"])}, reads_result=lambda p: False)
    a = measured.measured("initial_scale", cfg, result, {"scale": 2.0})
    b = measured.measured("initial_scale", cfg, other_bits, {"scale": 2.0})
    assert torch.equal(a["scale"], b["scale"]) and len(measured.entries_of([result["meta"]["key"]])) == 3
    assert BM.trained({"when": "trained"}) and not BM.trained({"when": "initialisation"})


def test_bad_input_names_the_choices(dln_run):
    cfg, result = dln_run
    with pytest.raises(measured.MeasurementError, match="registered: .*scaled_loss"):
        measured.measured("no_such_thing", cfg, result, {})
    with pytest.raises(measured.MeasurementError, match="cached result"):
        measured.measured("scaled_loss", cfg, {"train_loss": result["train_loss"]}, {"scale": 1.0})
    with pytest.raises(ValueError, match="allowed: initialisation, trained"):
        BM.direction_point(cfg, result, {"when": "final"})


def test_recheck_is_exact_under_the_same_numerics_and_a_tolerance_elsewhere(dln_run, monkeypatch):
    cfg, result = dln_run
    measured.measured("scaled_loss", cfg, result, {"scale": 2.0})
    [key] = measured.entries_of([result["meta"]["key"]])
    ok = measured.recheck(key, cfg, result)
    assert ok["mode"] == "exact" and ok["ok"] and ok["measurement"] == "scaled_loss"
    nudged = {**result, "train_loss": result["train_loss"] * (1 + 1e-6)}        # another CPU's rounding, say
    bad = measured.recheck(key, cfg, nudged)
    assert bad["mode"] == "exact" and not bad["ok"] and "bit for bit" in bad["why"]
    monkeypatch.setattr(measured, "numerics", lambda: "another CPU")
    assert measured.recheck(key, cfg, nudged)["ok"]                               # 1e-6 relative: within RTOL
    far = measured.recheck(key, cfg, {**result, "train_loss": result["train_loss"] * 1.01})
    assert far["mode"] == "tolerance" and not far["ok"] and far["why"].startswith("sum: ")


def test_measurement_bundles_install_into_the_measurement_cache_and_verify_runs_rechecks_them(dln_run, tmp_path):
    cfg, result = dln_run
    folder = tmp_path / "results" / "p"
    assert campaign.export_measurements("p", folder) is None                      # no committed runs yet
    runs_bundle = folder / "p-1-runs.tar.xz"
    bundle.export([result["meta"]["key"]], runs_bundle, profile="p")
    measured.measured("scaled_loss", cfg, result, {"scale": 2.0})
    path = campaign.export_measurements("p", folder)
    assert path.name.endswith("-1measurements.tar.xz") and bundle.manifest_of(path)["content"] == "measurements"
    assert campaign.export_measurements("p", folder) is None                      # nothing new: no second bundle
    assert campaign.bundled_keys(folder) == {result["meta"]["key"]}               # runs only
    other = measured.measure_cache(tmp_path / "elsewhere")
    assert bundle.install(path, other) == {"installed": 1, "present": 0, "content": "measurements"}
    assert bundle.install(runs_bundle)["content"] == "runs"
    [e] = verify.recheck_measurements("p", tmp_path)
    assert e["ok"] and e["mode"] == "exact" and e["measurement"] == "scaled_loss"
    assert [r["key"] for r in verify.committed("p", tmp_path)] == [result["meta"]["key"]]   # runs only


def test_a_bundle_of_unknown_content_is_refused(home, tmp_path):
    with pytest.raises(bundle.BundleError, match="allowed: runs, measurements"):
        bundle.content_of({"content": "weights"})


def tiny_vgg(norm):
    return vgg_config(**{"model.arch": "vgg11", "model.width": 0.125, "model.norm": norm, "optim.steps": 3,
                         "optim.batch_size": 8, "eval_every": 3, "data.eval_train_subset": 8, "save_state": True})


def test_the_chapter_reads_the_same_spectra_and_landscapes_it_computed_before_the_cache(tiny_data):
    """The smoothness chapter's single-point measurements through the cache equal the direct computation that the
    chapter made before (bit for bit), for the first call (computed) and the second (read)."""
    import torch.nn.functional as F

    cfgs = {n: [tiny_vgg(n).replace(seed=s) for s in (0, 1)] for n in ("none", "batch")}
    grid = {("vgg", n, 0.1): c for n, c in cfgs.items()}
    results = {k: [runs.run(c, device="cpu") for c in v] for k, v in grid.items()}
    for _ in range(2):
        spectra = points.hessian_spectra(grid, results, 0.1, [0, 1], [1], iters=4, vectors=1, batch=8)
        x, y = fixed_batch(cfgs["batch"][0], 8)
        direct = spectral_density(model_of(cfgs["batch"][1], results[("vgg", "batch", 0.1)][1]), x, y,
                                  F.cross_entropy, 4, 1, False, seed=1)
        assert torch.equal(spectra[("batch", "trained", False)][0]["nodes"], direct["nodes"])
        assert torch.equal(spectra[("batch", "trained", False)][0]["weights"], direct["weights"])
        land = points.direction_landscape(grid, results, 0.1, ["none"], [0, 1], [0], [0.5, 1.0], 2, 8)
        model = model_of(cfgs["none"][0])
        probe = LandscapeProbe(model, [0.05, 0.1], direction=LandscapeProbe.DIRECTIONS[0], seed=0)
        recs = [probe(ProbeContext(b, model, x_, y_, None, F.cross_entropy))
                for b, (x_, y_) in enumerate(fixed_batch(cfgs["none"][0], 8, seed=1000 + b) for b in range(2))]
        assert land[("none", "initialisation", LandscapeProbe.DIRECTIONS[0])]["beta"] == [
            float(np.median([r["beta"] for r in recs]))]
    assert len(measured.entries_of([r["meta"]["key"] for v in results.values() for r in v])) == 5 + 2 * 1


def test_the_theorem_checks_through_the_cache_equal_the_checks_on_the_networks(tiny_data):
    """Theorem 4.2 and Observation 4.3 through the measurement cache equal the checks on the chapter's float64
    networks (`bn_math.networks`, as the chapter computed them before the cache), bit for bit, computed and read."""
    from bnopt import theory as bnmath
    from bnopt.book.chapters import bn_math

    grid = {n: [tiny_vgg(n).replace(seed=s) for s in (0, 1)] for n in ("batch", "none")}
    results = {n: [runs.run(c, device="cpu") for c in v] for n, v in grid.items()}
    xb, yb = bn_math.theory_batch(grid, 4)
    nets, std = bn_math.networks(grid, results, [0, 1]), bn_math.networks(grid, results, [0, 1], norm="none")
    for _ in range(2):
        t42 = bn_math.theorem42_all(grid, results, [0, 1], 4, [2], 1)
        assert list(t42) == list(nets) == ["initialisation", "trained, seed 0", "trained, seed 1"]
        for name, net in nets.items():
            unit = torch.randperm(net.blocks[1].layer.weight.shape[0], generator=torch.Generator().manual_seed(2))[:1]
            direct = bnmath.theorem42(net, 2, xb, yb, unit.tolist(), eps=0.0)
            assert all(torch.equal(t42[name][k], direct[k]) for k in direct)
        obs = bn_math.observation43_all(grid, results, [0, 1], 4)
        for name, net in std.items():
            direct = bnmath.observation43(net, xb, yb, range(1, len(net.blocks) + 1))
            assert measured._same(obs[name], direct)


def test_an_entry_records_its_thread_count_and_is_rechecked_with_it(tiny_data):
    from bnopt.runs.numerics import threads

    cfg = tiny_vgg("batch").replace(seed=0)
    result = runs.run(cfg, device="cpu")
    with threads(1):
        BM.point("hessian_spectrum", cfg, result, when="trained", train_mode=True, iters=4, vectors=1, batch=8, seed=0)
    [key] = measured.entries_of([result["meta"]["key"]])
    assert measured.measure_cache().meta(key)["threads"] == 1 and torch.get_num_threads() == 2
    e = measured.recheck(key, cfg, result)
    assert e["mode"] == "exact" and e["ok"] and torch.get_num_threads() == 2


def test_a_measurement_made_on_a_chapters_run_is_one_of_that_chapters_inputs(dln_run, tmp_path):
    """A warm build reuses a chapter only when the measurements of its runs are the ones it read: a measurement
    made (or removed) on one of its runs changes its digest; one on another chapter's run does not."""
    from bnopt.book import reuse

    cfg, result = dln_run
    other = runs.run(cfg.replace(seed=1), device="cpu")
    nb = tmp_path / "chapter.ipynb"
    nb.write_text("{}")
    digest = lambda keys: reuse.chapter_digest("common", nb, {}, keys)
    mine, theirs = digest([result["meta"]["key"]]), digest([other["meta"]["key"]])
    measured.measured("scaled_loss", cfg, result, {"scale": 2.0})
    assert digest([result["meta"]["key"]]) != mine and digest([other["meta"]["key"]]) == theirs
    after = digest([result["meta"]["key"]])
    assert digest([result["meta"]["key"]]) == after                             # stable once made
    import shutil
    shutil.rmtree(measured.measure_cache().root)                                  # removed: the chapter's input again
    assert digest([result["meta"]["key"]]) == mine
