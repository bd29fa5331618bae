import math

import numpy as np

from bnopt.analysis import summary as S


def test_smooth_matches_naive_trailing_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 50))
    out = S.smooth(x, 7)
    for t in range(50):
        assert np.allclose(out[:, t], x[:, max(0, t - 6): t + 1].mean(1))


def test_smooth_keeps_nan_tail():
    x = np.array([1.0, 2.0, 3.0, np.nan, np.nan])
    assert np.allclose(S.smooth(x, 2)[:3], [1, 1.5, 2.5]) and np.isnan(S.smooth(x, 2)[3:]).all()


def test_steps_to_threshold_and_mean_std():
    assert S.steps_to_threshold([0.1, 0.4, 0.6, 0.2], 0.5) == 3
    assert S.steps_to_threshold([0.1, 0.2], 0.5) is None
    m, s, n = S.mean_std([1.0, 3.0, None, float("nan")])
    assert (m, n) == (2.0, 2) and math.isclose(s, math.sqrt(2))
    assert S.mean_std([5.0]) == (5.0, 0.0, 1)
    assert S.pm(0.8312, 0.0041, 1, 100) == "83.1 ± 0.4" and S.pm(float("nan"), 0) == "n/a"


def test_wilson_interval_known_values():
    # Wilson (1927) / Newcombe (1998) Table I: 81/263 -> 0.2553 to 0.3662; 0/10 -> 0 to 0.2775
    lo, hi = S.wilson(81, 263)
    assert abs(lo - 0.2553) < 5e-4 and abs(hi - 0.3662) < 5e-4
    lo, hi = S.wilson(0, 10)
    assert lo == 0.0 and abs(hi - 0.2775) < 5e-4
    assert all(math.isnan(v) for v in S.wilson(0, 0))


def test_eval_curve_pads_runs_that_stopped():
    a = {"evals": {"step": [10, 20, 30], "test_acc": [0.1, 0.2, 0.3]}, "diverged": False}
    b = {"evals": {"step": [10], "test_acc": [0.5]}, "diverged": True}
    steps, ys = S.eval_curve([a, b], "test_acc")
    assert list(steps) == [10, 20, 30] and np.isnan(ys[1, 1:]).all() and ys[1, 0] == 0.5
    assert S.final_eval(a, "test_acc") == 0.3 and math.isnan(S.final_eval(b, "test_acc"))


def test_probe_series_pads_runs_that_stopped_and_picks_layers():
    from bnopt.analysis.summary import at_layer, probe_series

    rec = lambda s, v: {"step": s, "data": {"layers": [5, 10], "l2": [v, 10 * v]}}
    a = {"probes": {"ics": [rec(0, 1.0), rec(50, 2.0), rec(100, 3.0)]}}
    b = {"probes": {"ics": [rec(0, 4.0)]}}
    steps, v = probe_series([a, b], "ics", at_layer("l2", 10))
    assert list(steps) == [0, 50, 100]
    assert v[0].tolist() == [10.0, 20.0, 30.0] and v[1, 0] == 40.0 and np.isnan(v[1, 1:]).all()


def test_pm_g_formats_mean_and_sample_std():
    from bnopt.book.report import pm_g

    assert pm_g([1.0, 2.0, 3.0]) == "2 ± 1"
    assert pm_g([float("nan")]) == "n/a" and pm_g([0.5]) == "0.5 ± 0"
