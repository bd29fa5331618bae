"""Resumable runs: a run killed with SIGKILL resumes from its last checkpoint and ends bit-identical to a run that
was never interrupted (same machine, same numerics, same thread count)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from bnopt.book.experiments import VGG_ETA_MULTIPLES, book_probes, scaled_etas
from bnopt.runs.cache import RunCache, result_digest
from bnopt.runs.config import vgg_config
from bnopt.runs.train import Checkpoints, load_checkpoint, save_checkpoint, train

EVERY = 5
CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import torch
    torch.set_num_threads(1)
    from bnopt.runs import launch as runs
    from bnopt.runs import train as T
    from bnopt.runs.config import RunConfig
    cfg, kill_after = RunConfig.from_dict(json.loads(sys.argv[1])), int(sys.argv[2])
    real, done = T.sgd_step, [0]
    def counted(*a, **k):                # SIGKILL inside the step after `kill_after` training steps
        if kill_after and done[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        done[0] += 1
        return real(*a, **k)
    T.sgd_step = counted
    runs.run(cfg, checkpoint_every=int(sys.argv[3]), checkpoint_interval_s=0.0)
    print(f"steps trained in this process: {done[0]}")
""")


def resumable_config(steps=24):
    """A small VGG whose every piece of state matters: noisy BN (the global RNG), several epochs of the tiny data
    (the sampler's permutation), evaluations, and every book probe (records in the checkpoint)."""
    probes = book_probes(2, 4, [1, 8], scaled_etas(0.1, VGG_ETA_MULTIPLES), hessian_iters=3)
    return vgg_config(**{"model.arch": "vgg11", "model.width": 0.125, "model.norm": "noisy_batch",
                         "optim.steps": steps, "optim.batch_size": 16, "eval_every": 6,
                         "data.eval_train_subset": 20, "probes": probes})


def child(cfg, kill_after: int, every: int = EVERY, home=None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"BNOPT_HOME": str(home)} if home else {})}
    return subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg.to_dict()), str(kill_after), str(every)],
                          env=env, capture_output=True, text=True, timeout=300)


def test_a_killed_run_resumes_from_its_checkpoint_bit_identical(tiny_data, tmp_path):
    cfg = resumable_config()
    cache = RunCache()
    key = cache.key({"config": cfg.key_dict(), "data_fingerprint": _fingerprint(cfg)})

    killed = child(cfg, kill_after=13)                         # checkpoints at steps 5 and 10, killed in step 14
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not cache.has(key)
    saved = load_checkpoint(cache.checkpoint_path(key), _run_id(cfg))
    assert saved is not None and saved["step"] == 10 and len(saved["probes"]["ics"]) == 5   # steps 0, 2, ..., 8

    resumed = child(cfg, kill_after=0)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "steps trained in this process: 14" in resumed.stdout     # 10 to 24: it did resume
    assert cache.has(key) and not cache.checkpoint_path(key).exists()      # the checkpoint goes with the run

    straight = child(cfg, kill_after=0, every=0, home=tmp_path / "straight")   # never checkpointed, never killed
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert "steps trained in this process: 24" in straight.stdout
    a, b = cache.load(key), RunCache(tmp_path / "straight" / "runs").load(key)
    assert a["steps_done"] == b["steps_done"] == 24 and len(a["probes"]["ics"]) == 12
    assert result_digest(a) == result_digest(b)
    b["train_loss"][-1] += 1e-7                                 # the digest sees a change in the last bit
    assert result_digest(a) != result_digest(b)


def test_a_checkpoint_of_another_run_or_a_broken_one_is_ignored(tiny_data, tmp_path):
    cfg = resumable_config(steps=8)
    straight = train(cfg)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"run_id": "someone-else", "step": 4})
    with pytest.warns(UserWarning, match="belongs to run someone-else"):
        other = train(cfg, checkpoints=Checkpoints(path, 100))
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="not usable"):
        broken = train(cfg, checkpoints=Checkpoints(path, 100))
    assert result_digest(straight) == result_digest(other) == result_digest(broken)
    with pytest.raises(ValueError, match="at least 1"):
        Checkpoints(path, 0)


def test_resuming_in_process_gives_the_same_bits(tiny_data, tmp_path):
    """The same check without a kill: train with checkpoints (the run itself is unchanged by them), then a new call
    resumes from the last one and finishes with the same bits."""
    cfg = resumable_config(steps=12)
    straight = train(cfg)
    path = tmp_path / "ckpt.pt"
    first = train(cfg, checkpoints=Checkpoints(path, 5))          # leaves step 10's state behind
    state = load_checkpoint(path, _run_id(cfg))
    assert state["step"] == 10 and result_digest(first) == result_digest(straight)
    state["train_loss"][0] = -1.0                                  # a mark only a resumed run can carry
    save_checkpoint(path, state)
    again = train(cfg, checkpoints=Checkpoints(path, 5))
    assert float(again["train_loss"][0]) == -1.0                   # it resumed...
    assert torch.equal(again["train_loss"][1:], straight["train_loss"][1:])   # ...and ended on the same bits
    again["train_loss"][0] = straight["train_loss"][0]
    assert result_digest(again) == result_digest(straight)


def _run_id(cfg):
    from bnopt.runs.config import config_hash
    return config_hash(cfg.key_dict())


def _fingerprint(cfg):
    from bnopt.runs.launch import get_task
    return get_task(cfg, torch.device("cpu")).fingerprint


def test_a_run_past_its_stop_time_checkpoints_stops_and_resumes_bit_identical(tiny_data, tmp_path):
    import time

    from bnopt.runs.train import RunStopped
    cfg = resumable_config(steps=10)
    straight = train(cfg)
    path = tmp_path / "ckpt.pt"
    with pytest.raises(ValueError, match="needs checkpoints"):
        train(cfg, stop_at=time.time())
    with pytest.raises(RunStopped) as stopped:
        train(cfg, checkpoints=Checkpoints(path, 100), stop_at=time.time())      # already past: stops after step 1
    assert stopped.value.step == 1 and load_checkpoint(path, _run_id(cfg))["step"] == 1
    assert result_digest(train(cfg, checkpoints=Checkpoints(path, 100))) == result_digest(straight)


def test_ensure_past_its_stop_time_starts_nothing_and_reports_it(tiny_data):
    import time

    from bnopt.runs import executor as X
    cfgs = [resumable_config(steps=4).replace(seed=s) for s in (0, 1)]
    s = X.ensure(cfgs, workers=1, threads=1, stop_at=time.time() - 1)
    assert (s["stopped"], s["trained"], s["cached"]) == (2, 0, 0) and X.missing(cfgs) == cfgs
    s = X.ensure(cfgs, workers=1, threads=1)
    assert (s["stopped"], s["trained"]) == (0, 2) and X.missing(cfgs) == []


def test_a_run_shorter_than_the_interval_writes_no_checkpoint(tiny_data, tmp_path):
    """The default cadence (bnopt.runs.launch): a checkpoint only once CHECKPOINT_INTERVAL_S seconds have passed, so the
    short runs of the quick book write none; with no interval, every `every` steps."""
    cfg = resumable_config(steps=6)
    path = tmp_path / "ckpt.pt"
    train(cfg, checkpoints=Checkpoints(path, 2, min_interval_s=3600.0))
    assert not path.exists()
    train(cfg, checkpoints=Checkpoints(path, 2))
    assert load_checkpoint(path, _run_id(cfg))["step"] == 4
    with pytest.raises(ValueError, match="0 or more seconds"):
        Checkpoints(path, 2, min_interval_s=-1.0)


def test_progress_of_a_resumed_run_counts_only_the_steps_made_since(monkeypatch, tmp_path):
    """A run resumed at step 50 that makes 10 steps in 10 s reports 1.0 steps/s and 40 s left (not 6 steps/s)."""
    from bnopt.runs import progress as P

    log = tmp_path / "progress.log"
    monkeypatch.setenv("BNOPT_PROGRESS", f"file:{log}")
    clock = iter([0.0, 0.0, 10.0])
    monkeypatch.setattr(P.time, "perf_counter", lambda: next(clock))
    p = P.Progress("run", 100, interval=0.0)
    p.resumed(50)
    p.update(60)
    P.close_files()
    lines = log.read_text().splitlines()
    assert lines == ["[bnopt] run: resumed at step 50/100", "[bnopt] run: 60/100 steps, 1.0 steps/s, eta 40s "]
