"""The parallel run executor: trains what the cache lacks in worker processes, bit-identical to an
in-process run at the same thread count, and names a failed run and its log."""
import pytest
import torch

from bnopt.runs import executor as X
from bnopt.runs.cache import RunCache
from bnopt.runs.config import ProbeSpec, vgg_config
from bnopt.runs.launch import run


def tiny(seed=0, **changes):
    return vgg_config(**{"model.width": 0.0625, "optim.steps": 4, "optim.batch_size": 16, "eval_every": 0,
                         "data.eval_train_subset": 0, "seed": seed, **changes})


def test_pool_trains_missing_runs_once_and_matches_an_in_process_run(tiny_data):
    cfgs = [tiny(0), tiny(1), tiny(0)]                       # a duplicate is trained once
    s = X.ensure(cfgs, workers=2, threads=1)
    assert (s["trained"], s["cached"], s["workers"], s["threads"]) == (2, 0, 2, 1)
    assert len(RunCache().entries()) == 2
    again = X.ensure(cfgs, workers=2, threads=1)
    assert (again["trained"], again["cached"]) == (0, 2)
    pooled = run(tiny(1))
    assert pooled["meta"]["from_cache"] and pooled["meta"]["threads"] == 1
    torch.set_num_threads(1)                                 # same thread count: same bits
    fresh = run(tiny(1), force=True)
    assert torch.equal(fresh["train_loss"], pooled["train_loss"])


def test_a_failed_run_is_named_with_its_log(tiny_data):
    # probe options are checked where the probe is built, in the worker: the run fails there
    bad = tiny(0, **{"model.norm": "batch", "probes": [ProbeSpec("landscape", every=1, kwargs={"etas": [-1.0]})]})
    with pytest.raises(X.RunFailed, match=r"1 of 2 runs failed:\n.*norm=batch.*ValueError.*\(log: .*failed-.*\.log\)"):
        X.ensure([bad, tiny(3)], workers=2, threads=1)
    assert X.missing([tiny(3)]) == []                        # the good run still finished and is cached


def test_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("BNOPT_WORKERS", "3")
    monkeypatch.setenv("BNOPT_THREADS", "2")
    assert X.default_workers() == 3 and X.default_threads(3) == 2
    for bad in ("0", "abc"):
        monkeypatch.setenv("BNOPT_WORKERS", bad)
        with pytest.raises(ValueError, match=f"BNOPT_WORKERS must be an integer >= 1, got '{bad}'"):
            X.default_workers()


def test_longest_runs_are_scheduled_first():
    long, short = tiny(0, **{"optim.steps": 1000}), tiny(0, **{"optim.steps": 10})
    noisy = tiny(0, **{"optim.steps": 1000, "model.norm": "noisy_batch"})
    assert sorted([short, long, noisy], key=X.estimated_cost, reverse=True) == [noisy, long, short]
    dln = tiny(0, **{"model.arch": "dln"})
    assert X.estimated_cost(dln) < X.estimated_cost(tiny(0))
