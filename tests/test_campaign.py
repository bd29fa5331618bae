"""The training campaign (bnopt.book.campaign): priority order, the time budget, and new bundles that never rewrite old
ones."""
from __future__ import annotations

from pathlib import Path

import pytest

from bnopt.book import campaign as C
from bnopt.book import experiments as E
from bnopt.runs.bundle import bundles_in, verify
from bnopt.runs.config import canonical_json
from bnopt.runs.executor import estimated_cost


def test_the_quick_grid_in_priority_order_holds_every_run_once():
    order = C.campaign_order("quick")
    groups = [p for p, _ in order]
    assert groups == sorted(groups) and set(groups) == set(range(len(C.PRIORITY)))   # every group is in the grid
    every = {canonical_json(c.to_dict()) for ch in E.GRIDS
             for c in E.grid_configs(E.chapter_grid(ch, E.chapter_parameters(ch, "quick")))}
    assert len(order) == len(every) == len({canonical_json(c.to_dict()) for _, c in order})
    first = [c for p, c in order if p == 0]
    assert {(c.model.norm, c.optim.lr) for c in first if c.model.arch.startswith("vgg") and c.optim.weight_decay == 0} \
        >= {("none", 0.1), ("batch", 0.1)}
    assert all(c.model.norm in ("none", "batch") for c in first)
    costs = [estimated_cost(c) for c in first]
    assert costs == sorted(costs, reverse=True)                                          # longest first in a group


def test_a_campaign_trains_within_its_budget_and_exports_only_what_is_new(tiny_data, tmp_path):
    results = tmp_path / "results"
    stopped = C.run_campaign("tiny", 0.0, chapters=["training"], results=results)     # no time: nothing starts
    assert stopped["trained"] == 0 and stopped["stopped"] == stopped["left"] > 0 and stopped["bundle"] is None
    done = C.run_campaign("tiny", 600.0, chapters=["training"], results=results)
    assert done["left"] == 0 and done["trained"] == stopped["left"] and done["bundle"].parent == results
    manifest, _ = verify(done["bundle"])
    assert len(manifest["runs"]) == done["trained"] and manifest["profile"] == "tiny"
    again = C.run_campaign("tiny", 600.0, chapters=["training"], results=results)
    assert again["trained"] == 0 and again["bundle"] is None                          # nothing new, no new file
    assert bundles_in(results) == [done["bundle"]]
    import shutil

    from bnopt.runs.cache import RunCache
    shutil.rmtree(RunCache().root)                   # a fresh worktree: the committed runs are installed, not retrained
    fresh = C.run_campaign("tiny", 600.0, chapters=["training"], results=results)
    assert fresh["trained"] == 0 and fresh["left"] == 0 and fresh["bundle"] is None


def test_budgets_are_read_or_refused_with_the_valid_forms():
    assert C.parse_budget("2h") == 7200 and C.parse_budget(" 90s ") == 90
    for bad in ("", "soon", "5 minutes", "m"):
        with pytest.raises(ValueError, match="150m, 2h"):
            C.parse_budget(bad)
    with pytest.raises(ValueError, match="choose 'longest' or 'given'"):
        from bnopt.runs.executor import ensure
        ensure([], order="random")


def test_the_narrow_profile_is_the_papers_protocol_at_one_eighth_width():
    """What issue 26 asks of `narrow`, read off the runs its chapters declare."""
    order = C.campaign_order("narrow")
    vgg = [c for _, c in order if c.model.arch == "vgg16"]
    assert {c.model.width for c in vgg} == {0.125} and {c.precision for c in vgg} == {"fp32"}
    assert {c.optim.batch_size for c in vgg} == {128}
    ref = [c for p, c in order if p == 0 and c.model.arch == "vgg16" and c.optim.lr == 0.1 and c.optim.steps == 15000]
    assert {(c.model.norm, c.seed) for c in ref} == {(n, s) for n in ("none", "batch") for s in range(5)}
    probes = {p.name: p for p in next(c for c in ref if c.model.norm == "batch").probes}
    assert probes["ics"].every == probes["landscape"].every == 100 and probes["sharpness"].every == 500
    assert [s for s in probes["sharpness"].steps(15000) if s < 1000] == [0, 25, 50, 100, 200, 300, 400, 500, 600,
                                                                          700, 800, 900]       # densely early
    other = [c for p, c in order if C.PRIORITY[p] == "other learning rates"]
    assert {(c.model.arch, c.optim.lr) for c in other} == {("vgg16", 0.5), ("vgg16", 0.01), ("dln", 1e-7)}
    assert {c.seed for c in other if c.model.arch == "vgg16"} == {0, 1, 2}                  # 3 seeds off the pair
    assert len([c for c in other if c.optim.lr == 0.5]) == 6
    assert {c.seed for p, c in order if C.PRIORITY[p] == "noisy BN"} == {0, 1, 2}
    norms = [c for p, c in order if C.PRIORITY[p] == "other normalizations"]
    assert {c.optim.steps for c in norms if c.model.arch == "vgg16"} == {15000}               # the paper's window
    assert {c.seed for c in norms if c.model.arch == "vgg16"} == {0, 1, 2}
    group_dln = [c for c in norms if c.model.arch == "dln" and c.model.norm == "group"]
    assert group_dln and all(c.model.norm_kwargs == {"min_group_size": 4} for c in group_dln)
    sweeps = [c for p, c in order if C.PRIORITY[p] == "learning-rate sweeps"]
    assert {c.optim.steps for c in sweeps if c.model.arch == "vgg16"} == {2000}
    assert all("landscape_fixed_eta" in [p.record for p in c.probes] for c in sweeps)
    wd = [c for p, c in order if C.PRIORITY[p] == "weight decay"]
    assert {c.optim.steps for c in wd} == {15000} and {c.seed for c in wd} == {0, 1, 2}
    assert {c.optim.steps for _, c in order if c.model.arch == "dln" and not c.optim.steps == 2000} == {10000}


def test_the_estimate_adds_every_group_and_says_nothing_without_a_bench():
    b = {"settings": {"width": 0.125, "batch_size": 128},
         "components": {k: {"plain_step_s": 0.01, "x_plain": {}} for k in ("vgg", "vgg_bn", "vgg_noisy_bn", "dln", "dln_bn")}}
    order = C.campaign_order("quick")
    est = C.estimate(order, b)
    assert est["total"] == pytest.approx(sum(0.01 * c.optim.steps for _, c in order))
    assert est["total"] == pytest.approx(sum(v for k, v in est.items() if k != "total"))
    assert C.estimate(order, None) == {}


def test_other_seeds_must_be_the_first_of_the_reference_seeds():
    params = E.chapter_parameters("ics", "narrow")
    for bad in ([1, 2], [], [0, 1, 2, 3, 4, 5]):
        with pytest.raises(ValueError, match="the first seeds of seeds"):
            E.chapter_grid("ics", {**params, "other_seeds": bad})


def test_sigterm_stops_the_campaign_and_its_workers(tmp_path):
    """A `kill` of the campaign's process also stops its spawned worker processes (they used to train on, orphaned,
    slowing whatever ran next 3x), and the process exits 143."""
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = textwrap.dedent("""
        import sys, time
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context
        from bnopt.book.campaign import CampaignStopped, stop_on_sigterm
        if __name__ == "__main__":
            try:
                with stop_on_sigterm(), ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                    f = pool.submit(time.sleep, 120)
                    while not pool._processes:
                        time.sleep(0.05)
                    print(*pool._processes, flush=True)
                    f.result()
            except CampaignStopped:
                sys.exit(143)
    """)
    path = tmp_path / "campaign_like.py"
    path.write_text(script)
    proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    worker = int(proc.stdout.readline())
    time.sleep(1.0)                                      # the worker is running its task
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    deadline = time.time() + 10
    while time.time() < deadline:
        status = Path(f"/proc/{worker}/status")
        if not status.exists() or "\nState:\tZ" in status.read_text():     # gone, or a zombie awaiting its reaper
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"worker {worker} still runs after the campaign was stopped")
