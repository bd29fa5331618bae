"""The "Measuring your own model" page's functions on a torchvision network (known answers where they exist)."""
import pytest
import torch

from bnopt.book.chapters import library as L
from bnopt.measure.probes import model_state_equal


def test_population_statistics_are_the_plain_average_over_the_batches():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    batches = [torch.randn(8, 3) * (k + 1) + k for k in range(3)]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    pop = L.with_population_statistics(net, batches)
    with torch.no_grad():
        ys = [net[0](b) for b in batches]
    bn = pop[1]
    assert not pop.training and bn.num_batches_tracked == 3
    assert torch.allclose(bn.running_mean, torch.stack([y.mean(0) for y in ys]).mean(0), atol=1e-6)
    assert torch.allclose(bn.running_var, torch.stack([y.var(0, unbiased=True) for y in ys]).mean(0), atol=1e-5)
    assert model_state_equal(before, net.state_dict())


def test_unknown_torchvision_model_names_the_choices():
    with pytest.raises(ValueError, match="unknown torchvision classifier 'resnet7'; valid choices include.*resnet18"):
        L.torchvision_model("resnet7")


def test_measure_a_torchvision_network_without_changing_it():
    model = L.torchvision_model("shufflenet_v2_x0_5", seed=1)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, 32, 32, generator=g), torch.randint(10, (4,), generator=g)
    calib = [torch.randn(4, 3, 32, 32, generator=g)]
    m = L.measure(model, x, y, 0.1, ["conv1.0", "stage3.0.branch2.0", "fc"], [0.1, 0.2], 3, 3, 1, calib)
    assert m["unchanged"] is True
    assert float(m["ics"]["l2"][0]) == 0.0 and float(m["ics"]["l2"][2]) > 0
    for mode in ("train", "eval"):
        c, d = m["curvature"][mode], m["density"][mode]
        assert c["bottom"] <= c["top"] and c["iters"] == 3
        assert torch.allclose(d["weights"].sum(1), torch.ones(1, dtype=torch.float64))
    assert set(m["landscape"]) == {"gradient", "random"}
    t = L.tables(m)
    assert [r[0] for r in t["ics"][1]] == ["conv1.0", "stage3.0.branch2.0", "fc"]
    assert L.glued(m, model, x)["lib_unchanged"] == "bit-identical"
