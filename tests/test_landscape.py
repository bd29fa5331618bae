"""Known answers for the landscape and curvature probes: a quadratic 1/2 w^T A w."""
import math

import pytest
import torch
from torch import nn

from bnopt.measure.curvature import SharpnessProbe, top_eigenvalue
from bnopt.measure.landscape import LandscapeProbe
from bnopt.measure.probes import ProbeContext, model_state_equal
from bnopt.nets.models import build_model
from bnopt.runs.config import ModelConfig

D = torch.float64


class Quadratic(nn.Module):
    """model(x) returns w; with loss(out, A) = 1/2 out^T A out this is the quadratic 1/2 w^T A w."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        return self.w


def quad_loss(out, a):
    return 0.5 * out @ (a @ out)


def _spd(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=D))
    eig = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.1], dtype=D)[:n]
    return q @ torch.diag(eig) @ q.T, eig


def test_landscape_on_a_quadratic_is_exact():
    a, _ = _spd()
    w = torch.randn(6, dtype=D, generator=torch.Generator().manual_seed(1))
    model = Quadratic(w)
    etas = [0.05, 0.1, 0.2, 0.4]
    rec = LandscapeProbe(model, etas=etas)(ProbeContext(0, model, None, a, None, quad_loss))
    g = a @ w
    ag = a @ g
    assert torch.allclose(rec["grad_diff"], torch.tensor(etas, dtype=D) * ag.norm(), rtol=1e-12)
    assert math.isclose(rec["beta"], float(ag.norm() / g.norm()), rel_tol=1e-12)
    expected_loss = torch.stack([quad_loss(w - e * g, a) for e in etas])
    assert torch.allclose(rec["loss"], expected_loss, rtol=1e-12)
    assert torch.equal(model.w.detach(), w)


def test_landscape_random_direction_is_scaled_to_the_gradient():
    a, _ = _spd()
    w = torch.randn(6, dtype=D, generator=torch.Generator().manual_seed(2))
    model = Quadratic(w)
    rec = LandscapeProbe(model, etas=[0.1, 0.3], direction="random", seed=3)(ProbeContext(7, model, None, a, None, quad_loss))
    # grad diff is linear in eta along any fixed direction of a quadratic
    assert math.isclose(float(rec["grad_diff"][1] / rec["grad_diff"][0]), 3.0, rel_tol=1e-10)
    with pytest.raises(ValueError, match="gradient, random"):
        LandscapeProbe(model, direction="hessian")


def test_landscape_leaves_a_bn_net_untouched_and_sees_the_same_noise():
    torch.manual_seed(0)
    net = build_model(ModelConfig(arch="vgg11", width=0.125, norm="noisy_batch")).train()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(10, (8,))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    probe = LandscapeProbe(net, etas=[1e-12])
    rec = probe(ProbeContext(0, net, x, y, None, torch.nn.functional.cross_entropy))
    assert model_state_equal(before, net.state_dict()) and torch.equal(rng, torch.get_rng_state())
    # a vanishing step must give (nearly) the same loss: only possible if the noise draw is shared
    assert abs(float(rec["loss"][0]) - rec["loss0"]) < 1e-5


def test_top_eigenvalue_of_a_quadratic():
    a, eig = _spd()
    model = Quadratic(torch.randn(6, dtype=D))
    lam, iters = top_eigenvalue(model, None, a, quad_loss, iters=50)
    assert math.isclose(lam, float(eig.max()), rel_tol=1e-10) and iters <= 6   # Krylov space exhausted
    rec = SharpnessProbe(model, iters=50)(ProbeContext(0, model, None, a, None, quad_loss))
    assert math.isclose(rec["top_eig"], 5.0, rel_tol=1e-10) and math.isclose(rec["min_eig"], 0.1, rel_tol=1e-8)


def test_lanczos_finds_the_top_when_a_negative_eigenvalue_dominates():
    """Power iteration would return -9 here; the edge-of-stability comparison needs the top, +4."""
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(40, 40, generator=g, dtype=D))
    eig = torch.cat([torch.tensor([-9.0, 4.0], dtype=D), torch.linspace(-1, 1, 38, dtype=D)])
    a = q @ torch.diag(eig) @ q.T
    model = Quadratic(torch.randn(40, dtype=D))
    lam, _ = top_eigenvalue(model, None, a, quad_loss, iters=25)
    assert abs(lam - 4.0) < 1e-6


@pytest.mark.parametrize("norm", ["batch", "noisy_batch"])
def test_retained_graph_hvps_equal_fresh_double_backward_bit_for_bit(norm):
    """The Lanczos products share one forward pass and one first backward (hvp_operator); each must
    equal, bit for bit, a product computed from a fresh forward pass with the same noise draw."""
    from bnopt.measure.curvature import hvp_operator
    from bnopt.measure.probes import RngSnapshot

    torch.manual_seed(0)
    net = build_model(ModelConfig(arch="vgg11", width=0.0625, norm=norm)).train()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(10, (8,))
    params = [p for p in net.parameters() if p.requires_grad]
    rng = RngSnapshot()
    apply_h = hvp_operator(lambda: nn.functional.cross_entropy(net(x), y), params)
    for k in range(3):
        v = [torch.randn_like(p) for p in params]
        shared = apply_h(v)
        rng.restore()                                    # the same noise draw as the shared graph
        loss = nn.functional.cross_entropy(net(x), y)
        g = torch.autograd.grad(loss, params, create_graph=True)
        fresh = torch.autograd.grad(g, params, v)
        assert all(torch.equal(a, b) for a, b in zip(shared, fresh)), f"product {k} differs"
