"""The bench's arithmetic: per-call costs composed with the cadence, the verdict against the target,
the build log's cold/warm picks, and the tables the cost chapter glues."""
import json

import pytest

from bnopt.book import bench


def fake(ratio_vgg=1.5, ratio_dln=1.2):
    comp = {}
    for kind, ratio in (("vgg", ratio_vgg), ("dln", ratio_dln)):
        comp[kind] = {"plain_step_s": 0.1, "x_plain": {"step": 1.0, "data": 0.01, "ics": 5.0},
                      "calls_per_run": {"ics": 10}, "ratio_estimated": ratio}
    return {"profile": "quick", "quick": True, "created": "now", "bench_seconds": 1.0,
            "machine": {"cpu": "cpu", "cores": 2, "cpu_capability": "AVX2", "platform": "linux", "python": "3",
                        "torch": "2"},
            "components": comp,
            "flops": {"matmul_peak_flops_per_s": 1e11, "threads": 2,
                      "steps": {"vgg": {"flops_per_step": 4e9, "achieved_flops_per_s": 4e10, "fraction_of_peak": 0.4}}},
            "throughput": {"vgg": {"cores": 2, "one_process_all_threads": {"steps_per_s": 9.0},
                                   "n_single_thread_processes": {"steps_per_s": 13.5}, "parallel_speedup": 1.5}}}


def test_run_ratio_closed_form():
    # 20 steps of 0.1 s = 2 s plain; ICS 3 x 0.2 s and one 1 s sharpness call add 1.6 s: 3.6 / 2 = 1.8
    assert bench.run_ratio({"step": 0.1, "ics": 0.2, "sharpness": 1.0}, {"ics": 3, "sharpness": 1}, 20) \
        == pytest.approx(1.8)
    assert bench.run_ratio({"step": 0.1}, {}, 20) == 1.0


def test_component_costs_of_a_book_run():
    """The DLN at the tiny profile's cadence: calls per run from the cadence, the ratio from the
    measured per-call costs."""
    s = bench.book_settings("tiny")
    c = bench.component_costs("dln", s, reps=1, probe_reps=1)
    total = sum(c["seconds"][k] * n for k, n in c["calls_per_run"].items())
    assert c["ratio_estimated"] == pytest.approx(1 + total / (c["plain_step_s"] * c["steps_per_run"]))
    assert c["calls_per_run"]["ics"] == -(-s["dln_steps"] // s["dln_probe_every"])
    assert c["calls_per_run"]["sharpness"] == -(-s["dln_steps"] // s["dln_curvature_every"])
    assert set(c["x_plain"]) >= {"step", "data", "activations", "ics", "landscape", "sharpness"}
    assert c["x_plain"]["step"] == 1.0


def test_headline_states_the_target_verdict():
    met = bench.headline(fake(1.25, 1.1))
    assert met["ratio_range"] == "1.10 to 1.25" and met["ratio_verdict"] == "met by every run kind"
    missed = bench.headline(fake(1.56, 1.2))
    assert missed["ratio_verdict"] == "missed by `vgg` (1.56, 20 % over)"


def test_build_log_gives_the_latest_cold_and_warm(tmp_path, monkeypatch):
    monkeypatch.setenv("BNOPT_HOME", str(tmp_path))
    rows = [{"profile": "quick", "runs_trained": 5, "total": 100, "started": "1"},
            {"profile": "quick", "runs_trained": 0, "total": 10, "started": "2"},
            {"profile": "tiny", "runs_trained": 3, "total": 1, "started": "3"},
            {"profile": "quick", "runs_trained": 2, "total": 50, "started": "4"}]
    (tmp_path / "build-times.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    t = bench.build_times("quick")
    assert t["cold"]["started"] == "4" and t["warm"]["started"] == "2"
    tables = bench.report_tables(fake(), {"runs": 3.0, "chapters": {"training": 2.0}, "started": "now",
                                          "runs_trained": 0, "runs_cached": 9})
    lines = tables["build"].splitlines()
    assert lines[0] == "| stage | this build (so far) | last cold build | last warm build |"    # one column a build
    assert lines[2] == "| started | now | 4 | 2 |" and lines[3] == "| runs trained / cached | 0 / 9 | 2 / ? | 0 / ? |"
    assert "| training (s) | 2 | – | – |" in lines and "| total (s) | – | 50 | 10 |" in lines
    assert "| `vgg` | 4.00 | 40.0 | 100.0 | 40 % |" in tables["flops"]
    assert "13.5 (N = 2)" in tables["throughput"] and "1.50×" in tables["throughput"]


def test_run_throughput_reads_each_cached_run_against_the_peak_of_its_precision(home):
    """FLOP per step from the closed form of a deep linear network; achieved FLOP/s = FLOP per step x steps / wall."""
    from bnopt.book.bench import run_throughput
    from bnopt.runs import launch as runs
    from bnopt.runs.config import dln_config
    L, d, N = 4, 10, 100
    cfg = dln_config(**{"model.depth": L, "model.dim": d, "data.dln_samples": N, "optim.batch_size": N,
                        "optim.steps": 5})
    meta = runs.run(cfg)["meta"]
    (row,) = run_throughput({"fp32": 1e9, "tf32": 1e12})
    assert row["key"] == meta["key"] and row["steps"] == 5 and row["wall_s"] == meta["wall_time_s"]
    assert row["flop_per_step"] == 2 * N * d ** 2 * (3 * L - 1)
    assert row["achieved_flop_s"] == pytest.approx(row["flop_per_step"] * 5 / meta["wall_time_s"])
    assert row["fraction_of_peak"] == pytest.approx(row["achieved_flop_s"] / 1e9)      # a CPU run: the fp32 peak


def test_run_seconds_adds_each_probe_call_and_evaluation_of_the_runs_own_schedule():
    from bnopt.runs.config import ProbeSpec, vgg_config
    b = {"settings": {"width": 0.125, "batch_size": 128},
         "components": {"vgg": {"plain_step_s": 0.01, "x_plain": {"ics": 5.0, "landscape": 4.0, "eval": 30.0}}}}
    cfg = vgg_config(**{"model.width": 0.125, "optim.steps": 1000, "eval_every": 500,
                        "probes": [ProbeSpec("ics", every=100), ProbeSpec("landscape", every=500, extra=[50])]})
    # 1000 steps + 10 ICS calls x 5 + 3 landscape calls x 4 + 2 evaluations x 30, at 10 ms a step
    assert bench.run_seconds(cfg, b) == pytest.approx(0.01 * (1000 + 10 * 5 + 3 * 4 + 2 * 30))
    wider = cfg.replace(**{"model.width": 0.25, "optim.batch_size": 64})       # width squared, batch linear
    assert bench.run_seconds(wider, b) == pytest.approx(bench.run_seconds(cfg, b) * 4 / 2)
    assert bench.run_seconds(cfg.replace(**{"model.norm": "batch"}), b) is None   # a kind the bench did not measure
    assert bench.run_seconds(cfg, None) is None
