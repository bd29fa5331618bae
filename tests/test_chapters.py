"""The chapters' analysis functions (bnopt.book.chapters.*) on synthetic runs whose answers are known in
closed form, and their claim records."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bnopt.book import claims
from bnopt.book.chapters import common
from bnopt.book.chapters import ics as I
from bnopt.book.chapters import smoothness as M
from bnopt.book.chapters import training as T


def act_run(vars_, means=None, layer=3):
    """A run whose 'activations' probe records the given per-step variance (and mean) of one unit."""
    means = means if means is not None else [0.0] * len(vars_)
    return {"probes": {"activations": [{"step": 10 * i, "data": {layer: {"mean": m, "var": v}}}
                                       for i, (m, v) in enumerate(zip(means, vars_))]}}


def test_std_change_is_the_factor_of_the_std_either_way():
    rs = [act_run([1.0, 4.0]), act_run([4.0, 1.0]), act_run([2.0, 2.0])]
    np.testing.assert_allclose(T.std_change(rs, 3), [2.0, 2.0, 1.0])     # std doubled, halved, unchanged


def test_moment_series_differences_and_drift():
    rs = [act_run([1.0, 2.0, 4.0], means=[0.0, 1.0, -1.0])]
    steps, dmu = I.moment_series(rs, 3, "dmu")
    np.testing.assert_array_equal(steps, [0, 10, 20])
    np.testing.assert_allclose(dmu, [[1.0, 2.0]])
    np.testing.assert_allclose(I.moment_series(rs, 3, "var0")[1], [[0.0, 1.0, 3.0]])


def ics_run(first, last):
    """An 'ics' probe record with per-layer input moments at the first and last measurement."""
    def rec(step, moments):
        return {"step": step, "data": {"layers": list(range(1, len(moments) + 1)),
                                       "in_mean": [torch.tensor(m) for m, _ in moments],
                                       "in_var": [torch.tensor(v) for _, v in moments]}}
    return {"probes": {"ics": [rec(0, first), rec(100, last)]}}


def test_drift_is_w2_over_first_rms_std():
    # unit Gaussians N(0, 1) -> N(3, 4): W2 = sqrt(3^2 + (2 - 1)^2) = sqrt(10); the first RMS std is 1
    r = ics_run(first=[([0.0, 0.0], [1.0, 1.0])], last=[([3.0, 3.0], [4.0, 4.0])])
    np.testing.assert_allclose(I.drift([r]), [[math.sqrt(10)]])


def test_layer_profile_skips_step_zero_and_takes_the_median():
    recs = [{"step": s, "data": {"layers": [1, 2], "cos": np.array([c, 2 * c])}} for s, c in
            ((0, 100.0), (1, 1.0), (2, 3.0), (3, 2.0))]
    layers, prof = I.layer_profile([{"probes": {"ics": recs}}], "cos")
    np.testing.assert_array_equal(layers, [1, 2])
    np.testing.assert_allclose(prof, [[2.0], [4.0]])


def land_run(loss_lo, loss_hi, g_hi, beta):
    recs = [{"step": i, "data": {"loss": np.array([lo, hi]), "loss0": lo, "grad_diff": np.array([0.0, g]),
                                 "beta": b}} for i, (lo, hi, g, b) in enumerate(zip(loss_lo, loss_hi, g_hi, beta))]
    return {"probes": {"landscape": recs}}


def test_land_stats_known_values():
    d = M.landscape([land_run([1, 1, 1, 1], [2, 4, 3, 9], [5, 1, 2, 3], [10, 20, 30, 40])])
    s = M.land_stats({"batch": d}, early_fraction=0.5)["batch"]
    np.testing.assert_allclose(s["loss_hi_max"], [9.0])
    np.testing.assert_allclose(s["loss_width"], [2.5])          # median of 1, 3, 2, 8
    np.testing.assert_allclose(s["g_hi_early"], [3.0])          # median of the first half: 5, 1
    np.testing.assert_allclose(s["beta_med"], [25.0])
    np.testing.assert_allclose(s["beta_cv"], [np.std([10, 20, 30, 40]) / 25.0])


def sweep_run(losses, diverged=False):
    return {"train_loss": np.asarray(losses, dtype=float), "diverged": diverged}


def test_sweep_points_and_usable_range():
    results = {("vgg_sweep", "none", 0.1): [sweep_run([2.3] + [1.0] * 9), sweep_run([2.3] + [0.5] * 9)],
               ("vgg_sweep", "none", 1.0): [sweep_run([2.3, 9.0], diverged=True), sweep_run([2.3] * 10)]}
    pts = M.sweep_points(results, "vgg_sweep", "none", [0.1, 1.0], final_fraction=0.1)
    assert pts[0]["final"] == [1.0, 0.5] and pts[0]["init"] == pytest.approx(2.3)
    assert pts[1]["final"] == [2.3] and pts[1]["diverged"] == 1
    u = M.usable(pts, ref=0.9 * 2.3)
    assert u["range"] == (0.1, 0.1) and u["best"] == 0.1 and u["diverged_at"] == [1.0]
    assert "upper end may lie beyond" not in M.usable_text({**u, "grid": [0.1, 1.0]})


def lr_run(betas, eig, diverged=False):
    return {"diverged": diverged, "probes": {"landscape": [{"step": i, "data": {"beta": b}} for i, b in enumerate(betas)],
                                             "sharpness": [{"step": 9, "data": {"top_eig": eig}}]}}


def test_lr_levels_slopes_and_the_edge_of_stability_claim(tmp_path):
    """beta = c * (2/LR)^k per seed (median over a run's measurements) gives slope k; a diverged run is left out;
    the BN slopes compared with 0 make the recorded claim."""
    lrs = [0.01, 0.1, 1.0]
    res = {}
    for n, k in (("batch", 1.0), ("none", 0.0)):
        for l in lrs:
            res[("vgg_sweep", n, l)] = [lr_run([0.5 * (2 / l) ** k, c * (2 / l) ** k, 9 * (2 / l) ** k], 3.0 * (2 / l) ** k)
                                        for c in (0.7, 1.3)]
    res[("vgg_sweep", "none", 1.0)][1] = lr_run([float("nan")], float("nan"), diverged=True)
    lev = M.lr_levels(res, "vgg_sweep", "batch", lrs)
    np.testing.assert_allclose(lev["beta"][0], [0.7 * 200, 0.7 * 20, 0.7 * 2])
    np.testing.assert_allclose(M.lr_slopes(lev, "beta"), [1.0, 1.0])
    np.testing.assert_allclose(M.lr_slopes(lev, "eig"), [1.0, 1.0])
    std = M.lr_levels(res, "vgg_sweep", "none", lrs)
    assert np.isnan(std["beta"][1, 2]) and not np.isnan(std["beta"][0, 2])
    np.testing.assert_allclose(M.lr_slopes(std, "beta"), [0.0, 0.0], atol=1e-12)
    (header, rows), glued = M.lr_report({("vgg_sweep", n): M.lr_levels(res, "vgg_sweep", n, lrs) for n in ("none", "batch")},
                                        ["none", "batch"], {"vgg_sweep": "quick", "dln_sweep": "quick"}, tmp_path)
    assert len(rows) == 2 and glued["lr_slope_beta_vgg_batch"].startswith("1 ±")
    assert glued["lr_level_beta_vgg_batch"].startswith("1 ±")               # median beta / (2/LR) = median(0.7, 1.3)
    recs = claims.load(tmp_path)
    # both seeds' slopes are exactly 1: no spread, so the exact sign test on 2 pairs (p = 0.5) decides
    assert recs["lr_beta_vgg"]["verdict"] == recs["lr_eig_vgg"]["verdict"] == "consistent but underpowered"
    assert recs["lr_beta_vgg"]["numbers"]["magnitude"] == 1.0 and recs["lr_beta_vgg"]["numbers"]["test"] == "sign"
    assert "against the edge-of-stability slope 1, p = n/a" in glued["verdict_lr_beta_vgg"] and "lr_beta_dln" not in recs
    assert glued["verdict_lr_beta_dln"].startswith("n/a")
    edge = M.edge_glue({("vgg_sweep", "batch"): lev, ("vgg_sweep", "none"): std}, 1.5)
    assert edge["edge_eig_vgg_batch"] == "within a factor 1.5 of 2/LR at no learning rate of the grid; above at 0.01, 0.1, 1"   # 3 x 2/LR
    assert edge["edge_beta_vgg_none"] == "within a factor 1.5 of 2/LR at no learning rate of the grid; below at 0.01, 0.1, 1"
    assert edge["edge_beta_dln_batch"] == "n/a" and edge["edge_tolerance"] == "1.5"


def matched_run(loss, every, cos, beta, eig_steps, eig):
    steps = range(0, len(loss), every)
    return {"diverged": False, "train_loss": np.asarray(loss, float), "train_acc": np.linspace(0.1, 0.5, len(loss)),
            "probes": {"ics": [{"step": t, "data": {"layers": [1, 2, 3], "cos": [1.0, c, c + 0.1]}} for t, c in zip(steps, cos)],
                       "landscape": [{"step": t, "data": {"beta": b}} for t, b in zip(steps, beta)],
                       "sharpness": [{"step": t, "data": {"top_eig": e}} for t, e in zip(eig_steps, eig)]}}


def test_matched_loss_pairs_measurements_of_equal_training_loss(tmp_path):
    """Standard: loss 2.3 - 0.004 t, measured every 10 steps; BN: 2.5 - 0.02 t. Within 5 %: BN step 10 (loss 2.3)
    matches standard steps 10, 20 (2.26, 2.22); BN 20 (2.1) matches 30-70; BN 30 (1.9) matches 80, 90. λ_max
    (standard at 50, BN at 50 with loss 1.5) never matches: not testable."""
    std_loss, bn_loss = np.linspace(2.3, 1.9, 101)[:100], np.linspace(2.5, 0.5, 101)[:100]
    runs = {("vgg", "none", 0.1): [matched_run(std_loss, 10, [0.9] * 10, [50.0 + k for k in range(10)], [0, 50], [30.0, 40.0 + s])
                                   for s in range(2)],
            ("vgg", "batch", 0.1): [matched_run(bn_loss, 10, [0.5 + 0.01 * k for k in range(10)], [20.0 + k for k in range(10)],
                                                [0, 50], [5.0, 6.0]) for _ in range(2)]}
    m = M.matched_loss(runs, "vgg", 0.1, window=1, tol=0.05)
    assert m["beta"]["steps_bn"][0] == [10, 20, 30] and m["beta"]["steps_std"][0] == list(range(10, 100, 10))
    np.testing.assert_array_equal(m["beta"]["pairs"], [9, 9])
    np.testing.assert_allclose(m["beta"]["std"], [55.0, 55.0])               # median of 51..59
    np.testing.assert_allclose(m["beta"]["bn"], [22.0, 22.0])                # median of 21, 22, 23
    np.testing.assert_allclose(m["ics"]["bn"], [0.57, 0.57])                 # median over steps of the layer-2/3 median
    assert np.isnan(m["eig"]["bn"]).all() and (m["eig"]["pairs"] == 0).all()
    (header, rows), glued = M.matched_report({"vgg": m}, {"vgg": "quick", "dln": "quick"}, tmp_path)
    recs = claims.load(tmp_path)
    # identical seeds: no spread, and 2 pairs cannot reach 0.05 by the sign test
    assert recs["matched_beta_vgg"]["verdict"] == recs["matched_ics_vgg"]["verdict"] == "consistent but underpowered"
    assert recs["matched_eig_vgg"]["verdict"] == "not testable at this scale"
    assert glued["verdict_matched_ics_dln"].startswith("n/a") and len(rows) == 3
    assert "A − B = -0.38" in glued["verdict_matched_ics_vgg"]     # 0.57 - 0.95: cosines compared by their difference
    far = M.how_far(runs, "vgg", 0.1, 1)
    assert far["far_vgg_none_acc"] == "50 ± 0 %" and far["far_vgg_none_loss"].startswith("1.9")


def wd_run(loss, sq_all, every=2):
    return {"diverged": False, "train_loss": np.asarray(loss, float),
            "probes": {"weight_norm": [{"step": t, "data": {"all": v, "weights": v / 2}} for t, v in zip(range(0, len(loss), every), sq_all)],
                       "landscape": [{"step": t, "data": {"loss": np.array([1.0, 1.0 + w]), "loss0": 1.0}}
                                     for t, w in zip(range(0, len(loss), every), [0.1 * (t + 1) for t in range(len(loss))])]}}


def test_hidden_l2_cuts_the_reference_run_and_adds_the_l2_term(tmp_path):
    """Reference runs of 8 steps cut to the 4-step window; the L2 term is wd/2 x the recorded squared norm; the
    loss SGD minimises is the end loss plus that term; the loss-band widths compared by the rule."""
    wd = 1e-2
    ref = lambda c: dict(wd_run([3.0, 2.0, 1.0, 0.5, 0.1, 0.1, 0.1, 0.1], [0] * 4), steps=8, steps_done=8, diverged_at=-1,
                         evals={"step": []}, train_acc=None)
    runs = {("vgg", "none", 0.1): [ref(0), ref(1), ref(2)], ("vgg", "batch", 0.1): [ref(0), ref(1), ref(2)],
            ("vgg_wd", "none", 0.1): [wd_run([3.0, 2.0, 1.5, 1.0], [100.0, 80.0]) for _ in range(2)],
            ("vgg_wd", "batch", 0.1): [wd_run([3.0, 2.0, 1.5, 1.0], [200.0, 180.0]) for _ in range(2)]}
    l2 = M.hidden_l2(runs, 0.1, ["none", "batch"], [0, 1, 2], [0, 2], wd, wd_steps=4, window=1)
    np.testing.assert_allclose(l2["none"]["ce_ref"], [0.5, 0.5])            # the reference cut at step 4
    np.testing.assert_allclose(l2["none"]["l2_end"], [0.4, 0.4])            # 1e-2 / 2 x 80
    np.testing.assert_allclose(l2["batch"]["objective"], [1.0 + 0.9, 1.0 + 0.9])
    np.testing.assert_allclose(l2["none"]["width_ref"], [0.15, 0.15])       # median of 0.1, 0.2 (steps 0, 2 < 4)
    (header, rows), glued = M.hidden_l2_report(l2, {"none": {"all": 0.97, "weights": 0.97}}, "quick", tmp_path)
    assert glued["paper_l2_none_all"] == "0.97" and len(rows) == 2
    assert claims.load(tmp_path)["fig4_loss_band_wd"]["verdict"] == "not reproduced"     # equal widths


def test_init_l2_is_half_wd_times_the_squared_norm():
    from bnopt.measure.probes import squared_norms
    from bnopt.runs.config import vgg_config
    from bnopt.runs.train import model_of
    sq = squared_norms(model_of(vgg_config(**{"model.arch": "vgg11", "model.width": 0.125, "model.norm": "batch"})))
    got = M.init_l2("vgg11", 0.125, "batch", 5e-4)
    assert got["all"] == pytest.approx(2.5e-4 * sq["all"]) and sq["all"] - sq["weights"] > 0   # BN gamma = 1, biases


def test_last_fraction_mean():
    assert common.last_fraction_mean(np.arange(10.0), 0.1) == 9.0
    assert common.last_fraction_mean(np.arange(700.0), 0.1) == np.arange(630.0, 700.0).mean()
    assert common.last_fraction_mean([1.0, 2.0], 0.01) == 2.0      # at least one point


def curv_run(top, low, beta):
    return {"probes": {"sharpness": [{"step": 10 * i, "data": {"top_eig": t, "min_eig": m}} for i, (t, m) in enumerate(zip(top, low))],
                       "landscape": [{"step": 10 * i, "data": {"beta": b}} for i, b in enumerate(beta)]}}


def test_curvature_stats_ratios():
    d = M.curvature_stats([curv_run([10.0, 20.0], [-40.0, -1.0], [5.0, 40.0])], lr=0.1)
    np.testing.assert_allclose(d["eig_over"], [1.0])                 # 20 / (2 / 0.1)
    np.testing.assert_allclose(d["beta_over_eig"], [np.median([0.5, 2.0])])
    np.testing.assert_allclose(d["beta_over_abs"], [np.median([5 / 40, 40 / 20])])
    assert M.curvature_stats([{"probes": {}}], lr=0.1) is None


def train_run(acc, loss, test_acc, diverged=False):
    n = len(acc)
    return {"train_acc": np.asarray(acc, float), "train_loss": np.asarray(loss, float), "diverged": diverged,
            "diverged_at": n if diverged else None,
            "evals": {"step": [n], "test_acc": [test_acc], "train_eval_acc": [test_acc]}}


def test_training_claims_recorded_with_computed_verdicts(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "std_change", lambda rs, layer: np.array([1.1, 1.2, 1.3]) * (2 if rs[0]["std"] else 1))
    fast, slow = [0.2, 0.6, 0.9, 0.95], [0.1, 0.2, 0.3, 0.4]
    res = {("batch", 0.1): [dict(train_run(fast, [2, 1, 0.5, 0.2], 0.8), std=False) for _ in range(3)],
           ("none", 0.1): [dict(train_run(slow, [2, 2, 1.9, 1.8], 0.6), std=True) for _ in range(3)],
           ("batch", 0.5): [dict(train_run(fast, [2, 1, 0.5, 0.2], 0.7), std=False) for _ in range(3)],
           ("none", 0.5): [dict(train_run(slow, [2, 9, 9, 9], float("nan"), diverged=True), std=True) for _ in range(3)]}
    stats = T.all_stats(res, smooth_window=1, acc_threshold=0.5)
    out = T.measure_claims(res, stats, [0.1, 0.5], steps=4, acc_threshold=0.5, ridge_layers=[3, 11],
                           scales={"ref": "test: 3 seeds", "other": "test: 2 seeds"}, folder=tmp_path)
    recs = claims.load(tmp_path)
    # three identical seeds agree in every pair, but without spread the exact sign test (p = 0.25) decides
    assert recs["fig1_speed"]["verdict"] == "consistent but underpowered"    # BN reached 50 % at step 2, standard never
    assert recs["fig1_final_train"]["verdict"] == "consistent but underpowered"
    assert recs["fig1_high_lr"]["verdict"] == "consistent but underpowered"  # diverged standard runs count at chance
    assert recs["fig1_high_lr"]["numbers"]["effect"] == pytest.approx(0.7 - T.CHANCE)
    assert recs["fig1_high_lr"]["scale"] == "test: 2 seeds" and recs["fig1_speed"]["scale"] == "test: 3 seeds"
    # BN's std changed by half the standard's in every seed, with spread: the t-test decides (p = 0, no variance of
    # the log ratio log 1/2 ... identical ratios), so the sign test again
    assert recs["fig1_same_drift"]["verdict"] == "consistent but underpowered"
    assert "**consistent but underpowered** before correction" in out["verdict_speed"]


def test_smoothness_claims(tmp_path):
    bn = {"loss_width": [1.0, 1.0], "g_hi_med": [1.0, 5.0], "beta_med": [30.0, 30.0],
          "g_hi_max": [10.0, 12.0], "beta_cv": [0.2, 0.3], "g_hi_early": [5.0, 6.0]}
    std = {"loss_width": [2.0, 3.0], "g_hi_med": [2.0, 4.0], "beta_med": [20.0, 20.0],
           "g_hi_max": [100.0, 90.0], "beta_cv": [0.25, 0.2], "g_hi_early": [0.1, 0.2]}
    out = M.measure_claims({"vgg": {"batch": bn, "none": std}}, {"vgg": "test"}, folder=tmp_path)
    recs = claims.load(tmp_path)
    # loss band: both pairs agree (1/2, 1/3), t = -4.4 on 1 degree of freedom: p = 0.14
    assert [recs[k]["verdict"] for k in ("fig4_loss_band", "fig4_grad_pred", "fig4_beta")] == \
        ["consistent but underpowered", "not reproduced", "not reproduced"]
    assert recs["fig4_grad_spikes"]["verdict"] == "reproduced"      # 1/10 and 2/15: t = -15, p = 0.04
    assert recs["fig4_beta_flat"]["verdict"] == "not reproduced"    # 1 of 2 pairs agree
    assert recs["fig4_grad_early"]["verdict"] == "contradicted"     # BN 30 to 50 times higher in both seeds
    assert recs["fig4_grad_early"]["exploratory"] and recs["fig4_grad_early"]["numbers"]["magnitude"] == 0.01
    assert recs["fig4_grad_early"]["numbers"]["effect"] == pytest.approx(np.sqrt(50 * 30))   # geometric mean ratio
    assert "fig10_beta" not in recs                                  # no DLN stats: no DLN records
    assert set(out) == {"verdict", "verdict_spikes", "verdict_early"} and "**reproduced**" in out["verdict_spikes"]


def test_largest_usable_and_sweep_claim(tmp_path):
    def run(loss, diverged=False):
        return {"train_loss": np.array([9.0, loss]), "diverged": diverged}
    lrs = [0.01, 0.1, 1.0]
    res = {("vgg_sweep", "batch", 0.01): [run(1.0), run(1.0)], ("vgg_sweep", "batch", 0.1): [run(1.0), run(1.0)],
           ("vgg_sweep", "batch", 1.0): [run(1.0), run(5.0)],
           ("vgg_sweep", "none", 0.01): [run(1.0), run(3.0)], ("vgg_sweep", "none", 0.1): [run(3.0), run(3.0)],
           ("vgg_sweep", "none", 1.0): [run(1.0, diverged=True), run(1.0, diverged=True)]}
    assert M.largest_usable(res, "vgg_sweep", "batch", lrs, ref=2.0, final_fraction=0.5).tolist() == [1.0, 0.1]
    assert M.largest_usable(res, "vgg_sweep", "none", lrs, ref=2.0, final_fraction=0.5).tolist() == \
        pytest.approx([0.01, 0.001])                                   # none usable: one grid step below the grid
    usable = {("vgg_sweep", n): {"ref": 2.0} for n in ("batch", "none")}
    out = M.sweep_claims(res, [("vgg_sweep", lrs)], usable, 0.5, {"vgg_sweep": "test"}, folder=tmp_path)
    rec = claims.load(tmp_path)["sweep_lr_vgg"]
    assert rec["numbers"]["effect"] == pytest.approx(100.0)                       # 100x and 100x: no spread
    assert rec["verdict"] == "consistent but underpowered" and rec["numbers"]["test"] == "sign"
    assert "**consistent but underpowered** before correction" in out["verdict_sweep"]


def test_ics_claims_use_cosine_differences(tmp_path):
    dist = {(k, n): {"cos": np.array([[1.0, 1.0], [c, c + 0.1]]), "shift": np.array([[0.0, 0.0], [s, s]])}
            for k in ("vgg", "dln") for n, c, s in (("batch", 0.2, 0.1), ("none", 0.6, 0.5))}
    out = I.measure_claims({}, {}, dist, deep_layer=13, scales={"vgg": "v", "noisy": "n", "dln": "d"},
                          folder=tmp_path)
    recs = claims.load(tmp_path)
    # BN's cosine lower by exactly 0.4 in both seeds: no spread, the sign test on 2 pairs
    assert recs["fig3_vgg_ics"]["verdict"] == "consistent but underpowered"
    assert recs["fig3_vgg_ics"]["numbers"]["effect"] == pytest.approx(-0.4)
    assert recs["folk_shift"]["verdict"] == "consistent but underpowered"
    assert (recs["fig3_vgg_ics"]["scale"], recs["fig3_dln_ics"]["scale"]) == ("v", "d")
    assert "mean over layers 2 and up" in out["verdict_overall"]               # the declared aggregation, named
    assert out["verdict_noisy"].startswith("n/a")


def _bn_run(betas, gammas, sigma=2.0, layers=3, units=4):
    """A fake BN run: per probe step, every unit has |gamma| = gammas[t] (layer k: times k+1) and sigma."""
    unit_std = [{"step": 50 * t, "data": {k: {"gamma": torch.full((units,), g * (k + 1)), "sigma": torch.full((units,), sigma)}
                                          for k in range(layers)}} for t, g in enumerate(gammas)]
    land = [{"step": 50 * t, "data": {"beta": b}} for t, b in enumerate(betas)]
    return {"probes": {"unit_std": unit_std, "landscape": land}}


def test_gamma_sigma_tracks_beta_by_the_stated_rule():
    from bnopt.book.chapters import bn_math as M

    betas = [1.0, 3.0, 2.0, 5.0, 4.0]
    st, per_layer, whole, b = M.gamma_sigma_series(_bn_run(betas, [0.1, 0.3, 0.2, 0.5, 0.4]))
    assert list(st) == [0, 50, 100, 150, 200] and list(b) == betas
    assert np.allclose(per_layer[:, 2], np.array([0.1, 0.3, 0.2, 0.5, 0.4]) * 3 / 2)
    assert np.allclose(whole, np.array([0.1, 0.3, 0.2, 0.5, 0.4]) * 2 / 2)          # median over 3 layers: layer 2
    same, against = _bn_run(betas, [0.1, 0.3, 0.2, 0.5, 0.4]), _bn_run(betas, [0.5, 0.3, 0.4, 0.1, 0.2])
    _, (_, rows), glued = M.gamma_sigma_report([same, same], [0, 1], 0.5)
    assert rows[0][-1] == "tracks" and glued["gs_verdict"] == "**tracks**" and rows[0][1] == "1.00"
    _, (_, rows), glued = M.gamma_sigma_report([against, against], [0, 1], 0.5)
    assert glued["gs_verdict"] == "**moves against**" and glued["gs_layers"] == "3 layers: moves against"
    assert glued["gs_meaning"].startswith("the opposite of what the paper's reading predicts")
    _, _, glued = M.gamma_sigma_report([same, against], [0, 1], 0.5)
    assert glued["gs_verdict"] == "**no consistent relation**" and glued["gs_meaning"].startswith("no support")
    _, _, glued = M.gamma_sigma_report([_bn_run(betas, [0.5, 0.3, 0.4, 0.1, 0.2], layers=1)], [0], 0.5)
    assert glued["gs_layers"] == "1 layer: moves against"


def test_direction_report_compares_bn_with_standard_per_direction_and_records_the_random_claim(tmp_path):
    def pt(beta):
        return {"beta": beta, "g_max": [1.0, 1.0], "loss_width": [0.1, 0.1]}
    land = {("none", "initialisation", "gradient"): pt([1.0, 1.0]), ("batch", "initialisation", "gradient"): pt([5.0, 6.0]),
            ("none", "initialisation", "random"): pt([1.0, 1.0]), ("batch", "initialisation", "random"): pt([2.0, 0.5]),
            ("none", "trained", "gradient"): pt([9.0, 8.0]), ("batch", "trained", "gradient"): pt([3.0, 2.0]),
            ("none", "trained", "random"): pt([4.0, 4.0]), ("batch", "trained", "random"): pt([1.0, 2.0])}
    (header, rows), glued = M.direction_report(land, "test", folder=tmp_path)
    assert len(rows) == 8 and header[:3] == ["network", "point", "direction"]
    assert glued["dir_init_gradient"].startswith("**contradicted** before correction")   # BN 5-6x higher, t-test p = 0.03
    assert glued["dir_init_random"].startswith("**not reproduced**")         # 1 of 2 pairs agree
    # trained: BN lower in both seeds (1/3 and 1/4; 1/4 and 1/2), t on 1 degree of freedom: not significant
    assert glued["dir_trai_gradient"].startswith("**consistent but underpowered** before correction")
    assert glued["dir_trai_random"].startswith("**consistent but underpowered**")
    rec = claims.load(tmp_path)["random_dirs"]
    assert rec["verdict"] == "consistent but underpowered" and rec["numbers"]["effect"] == pytest.approx(np.sqrt(0.25 * 0.5))
    _, glued = M.direction_report({k: v for k, v in land.items() if k[0] == "batch"}, "test", folder=tmp_path / "b")
    assert glued["dir_trai_random"].startswith("n/a")


def test_the_gamma_sigma_reading_is_shown_beside_the_snapshot_at_another_profile():
    from bnopt.book.chapters import bn_math as M
    snap = {"profile": "quick", "commit": "abcdef123", "made": "2026-12-06", "numerics": "AuthenticAMD AVX2",
            "glued": {"bn_math": {"gs_rho": "0.93 (seed 0), 0.85 (seed 1)", "gs_verdict": "**tracks**"}}}
    text = M.gs_other_scale(snap, "narrow")
    assert "`quick` (commit abcdef1" in text and "ρ = 0.93 (seed 0), 0.85 (seed 1): the factor **tracks** β" in text
    assert "nothing to compare" in M.gs_other_scale(snap, "quick")
    assert "no γ/σ reading" in M.gs_other_scale({**snap, "glued": {}}, "narrow")
    assert "No snapshot" in M.gs_other_scale(None, "narrow")
