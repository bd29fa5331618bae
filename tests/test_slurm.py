"""The Slurm engine (bnopt.runs.slurm): one job array of packed runs into the run cache, results identical to
the local executor's. submitit's `local` cluster runs the same array as local processes (always tested);
the real Slurm test runs where `tools/slurm_single_node.sh` has started a cluster, and is skipped with the
reason otherwise."""
import shutil
import subprocess

import pytest
import torch

from bnopt.runs import executor, slurm
from bnopt.runs.cache import RunCache
from bnopt.runs.config import dln_config
from bnopt.runs.launch import run


def grid():
    return [dln_config(**{"optim.steps": 6, "model.norm": n, "seed": s, "optim.lr": 1e-6})
            for n in ("none", "batch") for s in (0, 1, 2)]


def expected(tmp_path, monkeypatch, configs):
    """The same grid through the local executor, in a cache of its own: {key: train_loss}."""
    monkeypatch.setenv("BNOPT_HOME", str(tmp_path / "local-home"))
    executor.ensure(configs, workers=2, threads=1)
    out = {r["meta"]["key"]: r["train_loss"] for r in map(run, configs)}
    monkeypatch.setenv("BNOPT_HOME", str(tmp_path / "home"))
    return out


def check_same(configs, want):
    cache = RunCache()
    assert sorted(cache.entries()) == sorted(want)            # exactly the grid's runs, nothing else
    for cfg in configs:
        r = run(cfg)
        assert r["meta"]["from_cache"] and torch.equal(r["train_loss"], want[r["meta"]["key"]])


def test_chunks_pack_every_run_once():
    cs = grid()
    packed = slurm.chunks(cs, 4)
    assert len(packed) == 2 and sorted(map(len, packed)) == [3, 3]
    assert sorted(id(c) for ch in packed for c in ch) == sorted(map(id, cs))
    with pytest.raises(ValueError, match="runs per job must be >= 1"):
        slurm.chunks(cs, 0)


def test_array_on_submitits_local_cluster_matches_the_local_executor(home, tmp_path, monkeypatch):
    configs = grid()
    want = expected(tmp_path, monkeypatch, configs)
    ex = slurm.slurm_executor(tmp_path / "logs", cluster="local", time_min=5)
    s = slurm.ensure_slurm(configs, tmp_path / "logs", runs_per_job=4, poll_s=0.2, executor=ex)
    assert s["trained"] == 6 and s["jobs"] == 2
    check_same(configs, want)
    again = slurm.ensure_slurm(configs, tmp_path / "logs", runs_per_job=4, poll_s=0.2, executor=ex)
    assert again["trained"] == 0 and again["cached"] == 6 and again["jobs"] == 0   # re-submission skips them


def slurm_ready() -> str | None:
    """None when a Slurm cluster answers with an idle node, else why not."""
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return "no Slurm here (sbatch/sinfo not found; tools/slurm_single_node.sh starts a one-node cluster)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        return f"sinfo failed: {e}"
    if out.returncode != 0 or not any(s.strip() in ("idle", "mix") for s in out.stdout.split()):
        return f"no idle Slurm node (sinfo: {out.stdout.strip() or out.stderr.strip()})"
    return None


@pytest.mark.skipif(slurm_ready() is not None, reason=str(slurm_ready()))
def test_array_on_slurm_matches_the_local_executor(home, tmp_path, monkeypatch):
    configs = grid()
    want = expected(tmp_path, monkeypatch, configs)
    s = slurm.ensure_slurm(configs, tmp_path / "slurm-logs", runs_per_job=4, poll_s=1.0, time_min=5)
    assert s["trained"] == 6 and s["jobs"] == 2 and s["array"]
    check_same(configs, want)
