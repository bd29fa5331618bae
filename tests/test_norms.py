"""The l_p, layer and group normalizations (bnopt.nets.norms) on inputs whose outputs are known in closed form,
their gradients against finite differences in float64 (to second order: the curvature probes differentiate
twice), their train/eval behaviour, and the registry's errors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bnopt.nets import norms
from bnopt.nets.models import build_model
from bnopt.runs.config import ConfigError, ModelConfig

LP = ("l1", "l2", "linf")


def lp(name, c, **kw):
    m = norms.make_norm(name, c, spatial=True, **kw).double()
    return m.train()


def test_known_outputs_on_a_symmetric_channel():
    # one channel, values 1, -1, 3, -3: mean 0, N_1 = 2, N_2 = sqrt(5), N_inf = 3
    x = torch.tensor([1.0, -1.0, 3.0, -3.0], dtype=torch.float64).view(2, 1, 1, 2)
    for name, n in (("l1", 2.0), ("l2", math.sqrt(5.0)), ("linf", 3.0)):
        torch.testing.assert_close(lp(name, 1, eps=0.0)(x), x / n, rtol=1e-15, atol=0)


def test_uncentred_l2_divides_by_the_root_mean_square():
    # per channel y = mu + sigma z with z of mean 0 and (biased) std 1: N_2 = sqrt(sigma^2 + mu^2)
    z = torch.randn(64, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z = (z - z.mean((0, 2, 3), keepdim=True)) / z.std((0, 2, 3), unbiased=False, keepdim=True)
    mu, sigma = torch.tensor([0.0, 2.0, -3.0]).double(), torch.tensor([1.0, 0.5, 4.0]).double()
    y = lp("l2", 3, eps=0.0)(mu.view(1, 3, 1, 1) + sigma.view(1, 3, 1, 1) * z)
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-14, rtol=0)
    torch.testing.assert_close(y.std((0, 2, 3), unbiased=False), sigma / (sigma ** 2 + mu ** 2).sqrt(), rtol=1e-13, atol=0)


def test_centred_l2_is_batchnorm():
    x = 3 + 2 * torch.randn(16, 4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    m = lp("l2", 4, eps=0.0, centered=True)
    mean, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(m(x), (x - mean) / var.sqrt(), rtol=1e-12, atol=1e-12)       # BN with eps = 0
    bn = F.batch_norm(x, None, None, training=True, eps=1e-5)
    torch.testing.assert_close(lp("l2", 4, eps=1e-5, centered=True)(x), bn, rtol=1e-5, atol=1e-5)   # eps placement only


@pytest.mark.parametrize("name", LP)
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("spatial", [True, False])
def test_gradients_to_second_order(name, centered, spatial):
    g = torch.Generator().manual_seed(2)
    shape = (5, 3, 2, 2) if spatial else (6, 3)
    x = torch.randn(*shape, dtype=torch.float64, generator=g).requires_grad_()
    m = norms.make_norm(name, 3, spatial=spatial, centered=centered).double().train()
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5, generator=g)
        m.bias.uniform_(-0.5, 0.5, generator=g)
    f = lambda x, w, b: torch.func.functional_call(m, {"weight": w, "bias": b}, (x,))
    args = (x, m.weight.detach().clone().requires_grad_(), m.bias.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(f, args)
    assert torch.autograd.gradgradcheck(f, args)


@pytest.mark.parametrize("name", LP)
def test_running_statistics_and_eval_mode(name):
    x = 1.5 + torch.randn(8, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    m = lp(name, 2, momentum=0.1)
    m(x)
    mean = x.mean((0, 2, 3))
    n = m.batch_norm_p(x, [0, 2, 3])
    torch.testing.assert_close(m.running_mean, 0.1 * mean)
    torch.testing.assert_close(m.running_norm, 0.9 + 0.1 * n)
    m.eval()
    before = (m.running_mean.clone(), m.running_norm.clone())
    expect = (x - m.running_mean.view(1, 2, 1, 1)) / (m.running_norm.view(1, 2, 1, 1) + m.eps)
    torch.testing.assert_close(m(x), expect)
    assert torch.equal(m.running_mean, before[0]) and torch.equal(m.running_norm, before[1])


def test_layer_norm_normalises_each_sample():
    x = 5 + 3 * torch.randn(4, 8, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    y = norms.make_norm("layer", 8, spatial=True, eps=0.0).double()(x)
    torch.testing.assert_close(y.mean((1, 2, 3)), torch.zeros(4, dtype=torch.float64), atol=1e-13, rtol=0)
    torch.testing.assert_close(y.var((1, 2, 3), unbiased=False), torch.ones(4, dtype=torch.float64))
    x2 = torch.randn(6, 10, dtype=torch.float64)         # (N, C) features: nn.LayerNorm over the features
    ln = norms.make_norm("layer", 10, spatial=False).double()
    torch.testing.assert_close(ln(x2), F.layer_norm(x2, (10,), eps=1e-5))


def test_group_norm_groups():
    g = norms.make_norm("group", 16, spatial=True)
    assert g.num_groups == 8
    x = torch.randn(2, 16, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(g.double()(x), F.group_norm(x, 8, eps=1e-5))
    assert norms.make_norm("group", 64, spatial=True, groups=4).num_groups == 4
    with pytest.raises(ValueError, match="groups >= 1"):
        norms.make_norm("group", 16, spatial=True, groups=0)


def test_registry_errors_name_the_choices():
    with pytest.raises(ValueError, match="l1, l2, layer, linf"):
        norms.make_norm("l3", 4, spatial=True)
    with pytest.raises(ValueError, match="valid choices: 1, 2, inf"):
        norms.LpNorm(4, p=3)
    with pytest.raises(ConfigError, match="model.norm"):
        ModelConfig(norm="lp")
    with pytest.raises(ConfigError, match="model.norm_kwargs: normalization 'l1' has no option 'p'; its options: eps"):
        ModelConfig(norm="l1", norm_kwargs={"p": 3})
    assert ModelConfig(norm="l2", norm_kwargs={"centered": True}).norm_kwargs == {"centered": True}


@pytest.mark.parametrize("name", ["l1", "l2", "linf", "layer", "group"])
@pytest.mark.parametrize("arch", ["vgg11", "dln"])
def test_every_model_trains_a_step_with_each_norm(name, arch):
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, norm=name, width=0.125) if arch != "dln" else ModelConfig(arch="dln", norm=name)
    model = build_model(cfg).train()
    x = torch.randn(8, 3, 32, 32) if arch != "dln" else torch.randn(8, 10)
    out = model(x)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(isinstance(m, (norms.LpNorm, torch.nn.GroupNorm)) for m in model.modules()) > 0
