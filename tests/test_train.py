import math

import pytest
import torch

from bnopt.measure import catalog
from bnopt.measure.catalog import PROBES, build_probe
from bnopt.measure.probes import ActivationSampler, ProbeContext, isolated, model_state_equal
from bnopt.nets.models import build_model
from bnopt.runs.config import ProbeSpec, dln_config, vgg_config
from bnopt.runs.train import train


def tiny_vgg(norm="batch", steps=6, **changes):
    return vgg_config(**{"model.arch": "vgg11", "model.width": 0.125, "model.norm": norm,
                         "optim.steps": steps, "optim.batch_size": 16, "eval_every": 3,
                         "data.eval_train_subset": 20, **changes})


def test_training_is_deterministic_on_cpu(tiny_data):
    a, b = train(tiny_vgg()), train(tiny_vgg())
    assert torch.equal(a["train_loss"], b["train_loss"]) and torch.equal(a["train_acc"], b["train_acc"])
    assert torch.equal(a["evals"]["test_acc"], b["evals"]["test_acc"])
    c = train(tiny_vgg(seed=1))
    assert not torch.equal(a["train_loss"], c["train_loss"])


def test_result_records_metrics_and_evals(tiny_data):
    r = train(tiny_vgg(steps=6))
    assert r["train_loss"].shape == (6,) and torch.isfinite(r["train_loss"]).all()
    assert list(r["evals"]["step"]) == [3.0, 6.0]
    assert set(r["evals"]) == {"step", "test_loss", "test_acc", "train_eval_loss", "train_eval_acc"}
    assert not r["diverged"] and r["diverged_at"] == -1 and r["steps_done"] == 6


def test_dln_loss_is_half_sum_of_squares_and_learns():
    r = train(dln_config(**{"optim.steps": 200}), device="cpu")
    from bnopt.runs.data import make_dln_data
    x, y, _ = make_dln_data(1000, 10, 0)
    torch.manual_seed(0)
    m = build_model(dln_config().model)
    with torch.no_grad():
        assert math.isclose(float(r["train_loss"][0]), float(0.5 * (m(x) - y).pow(2).sum()), rel_tol=1e-5)
    assert 1e4 < float(r["train_loss"][0]) < 1e5          # the paper's ~5e4 starting scale
    assert float(r["train_loss"][-1]) < float(r["train_loss"][0])
    assert r["train_acc"] is None and list(r["evals"]) == ["step"] and len(r["evals"]["step"]) == 0


def test_divergence_is_recorded_not_raised():
    r = train(dln_config(**{"optim.steps": 50, "optim.lr": 1e-3}), device="cpu")
    assert r["diverged"] and 0 <= r["diverged_at"] < 50
    assert torch.isfinite(r["train_loss"][: r["diverged_at"]]).all()
    assert torch.isnan(r["train_loss"][r["diverged_at"]:]).all()
    assert r["steps_done"] == r["diverged_at"]


def test_vgg_divergence_stops_evals(tiny_data):
    r = train(tiny_vgg(norm="none", steps=30, **{"optim.lr": 1e4}))
    assert r["diverged"]
    assert all(s <= r["diverged_at"] for s in r["evals"]["step"].tolist())


def _bn_model_and_batch():
    torch.manual_seed(0)
    m = build_model(tiny_vgg().model)
    m.train()
    return m, torch.randn(16, 3, 32, 32), torch.randint(10, (16,))


def test_activation_probe_leaves_model_bit_identical():
    m, x, y = _bn_model_and_batch()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rng = torch.get_rng_state()
    probe = ActivationSampler(m, layers=(1, 3), max_samples=100)
    rec = probe(ProbeContext(0, m, x, y, None, None))
    assert model_state_equal(before, m.state_dict())       # BN running stats untouched
    assert torch.equal(rng, torch.get_rng_state())
    assert m.training
    assert rec[1]["values"].shape == (100,)
    # mean/var are over all B*H*W values of the unit: recompute from a hooked forward
    bn = m.blocks[2].norm
    with isolated(m), torch.no_grad():
        out = {}
        h = bn.register_forward_hook(lambda mod, i, o: out.setdefault("o", o))
        m(x)
        h.remove()
    v = out["o"][:, rec[3]["unit"]].reshape(-1)
    assert math.isclose(rec[3]["mean"], float(v.mean()), abs_tol=1e-6)
    assert math.isclose(rec[3]["var"], float(v.var(unbiased=False)), rel_tol=1e-5)
    # with BN (gamma=1, beta=0 at init) the pre-activation unit is standardized over the batch
    assert abs(rec[3]["mean"]) < 1e-5 and abs(rec[3]["var"] - 1) < 1e-3


def test_isolated_restores_after_an_arbitrary_mutation():
    m, x, y = _bn_model_and_batch()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with isolated(m):
        opt = torch.optim.SGD(m.parameters(), lr=0.3)
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
        torch.rand(5)
        m.eval()
    assert model_state_equal(before, m.state_dict()) and m.training
    assert all(p.grad is None for p in m.parameters())


def test_probes_do_not_change_the_training_run(tiny_data):
    plain = train(tiny_vgg(steps=8))
    probed = train(tiny_vgg(steps=8, probes=[ProbeSpec("activations", every=2, kwargs={"layers": [1, 8]})]))
    assert torch.equal(plain["train_loss"], probed["train_loss"])
    recs = probed["probes"]["activations"]
    assert [r["step"] for r in recs] == [0, 2, 4, 6]
    assert set(recs[0]["data"]) == {1, 8}


def test_a_probe_starts_at_its_start_step_and_a_run_can_skip_the_test_set(tiny_data):
    cfg = tiny_vgg(steps=8, eval_every=0, probes=[ProbeSpec("activations", every=3, start=2, kwargs={"layers": [1]})])
    out = train(cfg)
    assert [r["step"] for r in out["probes"]["activations"]] == list(cfg.probes[0].steps(8)) == [2, 5]
    assert "test_acc" in out["evals"]
    quiet = train(cfg.replace(**{"data.eval_test": False, "data.eval_train_subset": 0}))
    assert quiet["evals"] == {"step": quiet["evals"]["step"]} and torch.equal(quiet["train_loss"], out["train_loss"])


def test_a_shorter_run_is_the_start_of_a_longer_one(tiny_data):
    """The budget and the evaluation cadence do not change a trajectory: a short run is, bit for bit, the first steps
    of a longer one (so a quick run is the start of its narrow run: test_experiments.py)."""
    short = train(tiny_vgg(steps=4, eval_every=2))
    long = train(tiny_vgg(steps=8, eval_every=3, **{"data.eval_train_subset": 0}))
    assert len(short["train_loss"]) == 4 and torch.equal(short["train_loss"], long["train_loss"][:4])


@pytest.mark.parametrize("norm", ["batch", "noisy_batch"])
def test_the_book_probes_do_not_change_the_training_run(tiny_data, norm):
    """Every probe the book puts on its runs (experiments.book_probes), on a BN and a noisy-BN net:
    the loss trajectory is bit-identical with and without them."""
    from bnopt.book.experiments import VGG_ETA_MULTIPLES, book_probes, scaled_etas

    plain = train(tiny_vgg(steps=6, norm=norm))
    probed = train(tiny_vgg(steps=6, norm=norm, probes=book_probes(2, 3, [1, 8], scaled_etas(0.1, VGG_ETA_MULTIPLES))))
    assert torch.equal(plain["train_loss"], probed["train_loss"])
    assert set(probed["probes"]) == {"activations", "ics", "landscape", "sharpness"}
    assert [r["step"] for r in probed["probes"]["sharpness"]] == [0, 3]


def test_a_misbehaving_probe_is_caught_by_the_state_check():
    """The contract test itself: a probe that forgets to restore is detectable."""
    m, x, y = _bn_model_and_batch()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m(x)   # a bare train-mode forward moves the running statistics
    assert not model_state_equal(before, m.state_dict())


def test_probe_registry_errors():
    with pytest.raises(ValueError, match="valid choices: activations"):
        build_probe("hessian", None)
    with pytest.raises(ValueError, match="out of range"):
        ActivationSampler(build_model(tiny_vgg().model), layers=(9,))
    with pytest.raises(ValueError, match="pre_act, post_act, layer"):
        ActivationSampler(build_model(tiny_vgg().model), where="middle")
    assert "activations" in PROBES
    with pytest.raises(ValueError, match="probe 'activations' is already in the catalog"):
        catalog._catalog(*PROBES.values(), type("Again", (), {"name": "activations"}))
