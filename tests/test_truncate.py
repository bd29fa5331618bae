"""The normalizations chapter compares runs of different lengths over a common window: a run cut to its
first n steps (`summary.truncate`) must equal the run that trained n steps, bit for bit, with its probes."""
import torch

from bnopt.analysis import summary as S
from bnopt.book import experiments as E
from bnopt.runs.config import vgg_config
from bnopt.runs.train import train


def same(a, b, path="result"):
    """Recursive bit-identity of two run records (tensors compared with torch.equal, NaN equal to NaN)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(torch.nan_to_num(a, nan=-7.0), torch.nan_to_num(b, nan=-7.0)), path
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


RUN_KEYS = ("steps", "steps_done", "diverged", "diverged_at", "train_loss", "train_acc", "evals", "probes")


def test_a_cut_dln_run_equals_the_shorter_run():
    base = E.dln_base(dln_steps=20, dln_probe_every=4, dln_curvature_every=8, hessian_iters=3)
    base = E.at_lr(base, 1e-6, E.DLN_ETA_MULTIPLES, **{"model.norm": "batch"})
    long, short = train(base, device="cpu"), train(base.replace(**{"optim.steps": 12}), device="cpu")
    cut = S.truncate(long, 12)
    same({k: cut[k] for k in RUN_KEYS if k in short}, {k: short[k] for k in RUN_KEYS if k in short})
    assert [p["step"] for p in cut["probes"]["sharpness"]] == [0, 8]
    assert len(long["train_loss"]) == 20 and S.truncate(long, 20) is long


def test_a_cut_vgg_run_equals_the_shorter_run(tiny_data):
    cfg = vgg_config(**{"model.arch": "vgg11", "model.width": 0.125, "model.norm": "l2", "optim.steps": 9,
                        "optim.batch_size": 8, "eval_every": 3, "data.eval_train_subset": 8,
                        "probes": E.book_probes(3, 0, [1, 8], [0.05, 0.1], only=("ics", "landscape"))})
    long, short = train(cfg), train(cfg.replace(**{"optim.steps": 6}))
    cut = S.truncate(long, 6)
    same({k: cut[k] for k in RUN_KEYS}, {k: short[k] for k in RUN_KEYS})
    assert cut["evals"]["step"].tolist() == [3, 6] and long["evals"]["step"].tolist() == [3, 6, 9]
