import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnopt.nets import norms
from bnopt.nets.models import VGG_LAYOUTS, build_model, weight_layers
from bnopt.runs.config import ModelConfig


@pytest.mark.parametrize("arch, n_conv", [("vgg11", 8), ("vgg13", 10), ("vgg16", 13)])
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_vgg_shapes(arch, n_conv, norm):
    m = build_model(ModelConfig(arch=arch, norm=norm, width=0.125))
    assert len(m.blocks) == n_conv
    assert m(torch.randn(4, 3, 32, 32)).shape == (4, 10)


def expected_vgg_params(layout, width, bn, head_in_classes=10, bias=True):
    total, c_in = 0, 3
    for item in layout:
        if item == "M":
            continue
        c = max(1, int(round(item * width)))
        total += 9 * c_in * c + (c if bias else 0) + (2 * c if bn else 0)
        c_in = c
    return total + c_in * head_in_classes + head_in_classes


@pytest.mark.parametrize("width", [1.0, 0.25])
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_vgg16_parameter_count(width, norm):
    m = build_model(ModelConfig(arch="vgg16", norm=norm, width=width))
    n = sum(p.numel() for p in m.parameters())
    assert n == expected_vgg_params(VGG_LAYOUTS["vgg16"], width, norm == "batch")
    if width == 1.0 and norm == "batch":
        assert n == 14_728_266   # the common CIFAR VGG-16 (conv-BN-ReLU, Linear(512, 10) head)


def test_mlp_head_and_bad_head():
    m = build_model(ModelConfig(arch="vgg11", width=0.125, head="mlp"))
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="linear, mlp"):
        build_model(ModelConfig(arch="vgg11", head="transformer"))


def test_unknown_norm_and_arch_list_valid_names():
    with pytest.raises(ValueError, match=r"model.norm must be one of batch, .*none; got 'batchnorm'"):
        build_model(ModelConfig(norm="batchnorm"))
    with pytest.raises(ValueError, match="vgg11, vgg13, vgg16, dln"):
        build_model(ModelConfig(arch="resnet18"))


def test_registering_a_norm_makes_it_available_to_every_model():
    @norms.register("test_scale")
    def _scale(num_features, spatial):
        return nn.Identity()
    try:
        assert "test_scale" in norms.available()
        assert build_model(ModelConfig(arch="vgg11", width=0.125, norm="test_scale"))(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        assert build_model(ModelConfig(arch="dln", norm="test_scale"))(torch.randn(5, 10)).shape == (5, 10)
        with pytest.raises(ValueError, match="already registered"):
            norms.register("test_scale")(_scale)
    finally:
        norms.NORMS.pop("test_scale")


def test_glorot_uniform_init():
    torch.manual_seed(0)
    m = build_model(ModelConfig(arch="vgg16", width=0.5))
    for layer in weight_layers(m) + [m.head]:
        w = layer.weight.detach()
        fan_in = w.shape[1] * w[0, 0].numel()
        fan_out = w.shape[0] * w[0, 0].numel()
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert float(w.abs().max()) <= bound
        assert abs(float(w.var()) - bound ** 2 / 3) < 0.15 * bound ** 2 / 3   # Var U(-b, b) = b^2/3
        assert float(layer.bias.detach().abs().max()) == 0


def test_dln_is_the_matrix_product():
    m = build_model(ModelConfig(arch="dln", depth=25, dim=10, norm="none"))
    assert len(m.blocks) == 25 and sum(p.numel() for p in m.parameters()) == 25 * 100
    prod = torch.eye(10, dtype=torch.float64)
    for layer in weight_layers(m):
        prod = layer.weight.double() @ prod
    x = torch.randn(7, 10)
    assert torch.allclose(m(x).double(), x.double() @ prod.T, rtol=1e-4, atol=1e-4)


def test_dln_bn_after_hidden_layers_only():
    m = build_model(ModelConfig(arch="dln", norm="batch"))
    kinds = [type(b.norm).__name__ for b in m.blocks]
    assert kinds[:24] == ["BatchNorm1d"] * 24 and kinds[24] == "Identity"


def test_vgg_batchnorm_matches_functional_batch_norm():
    """The norm inside a VGG block is per-channel batch normalization over (N, H, W)."""
    m = build_model(ModelConfig(arch="vgg11", width=0.25, norm="batch"))
    bn = m.blocks[0].norm
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    x = torch.randn(8, bn.num_features, 5, 5) * 3 + 1
    ref = F.batch_norm(x, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    manual = (x - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    out = bn(x)
    assert torch.allclose(out, ref, atol=1e-5) and torch.allclose(out, manual, atol=1e-5)


def test_a_dln_takes_its_normalizations_options_on_its_hidden_layers_only():
    """The output layer has no normalization, so the options (e.g. group norm's min_group_size) reach only the
    hidden layers' norms: 10 features in groups of at least 4 are 2 groups of 5."""
    m = build_model(ModelConfig(arch="dln", depth=4, dim=10, norm="group", norm_kwargs={"min_group_size": 4}))
    norms = [b.norm for b in m.blocks]
    assert [n.num_groups for n in norms[:-1]] == [2, 2, 2] and isinstance(norms[-1], torch.nn.Identity)
