"""Known answers for ICS (Definition 2.1): a linear chain by hand, and a layer-1 ICS of exactly 0."""
import pytest
import torch

from bnopt.measure.ics import ICSProbe, sgd_step_values
from bnopt.measure.probes import ProbeContext, model_state_equal
from bnopt.nets.models import build_model
from bnopt.runs.config import ModelConfig, ProbeSpec, dln_config
from bnopt.runs.train import half_sse, train

D = torch.float64


def test_linear_chain_matches_hand_computation():
    torch.manual_seed(0)
    net = build_model(ModelConfig(arch="dln", depth=3, dim=2, norm="none")).double()
    x, y = torch.randn(5, 2, dtype=D), torch.randn(5, 2, dtype=D)
    lr = 0.05
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    rec = ICSProbe(net)(ProbeContext(0, net, x, y, opt, half_sse))
    W1, W2, W3 = (b.layer.weight.detach() for b in net.blocks)
    X, Y = x.T, y.T                                     # columns are samples; layers map h -> W h

    def grads(A, B, C):
        R = C @ B @ A @ X - Y
        return (C @ B).T @ R @ X.T, C.T @ R @ (A @ X).T, R @ (B @ A @ X).T

    G1, G2, G3 = grads(W1, W2, W3)
    W1n, W2n = W1 - lr * G1, W2 - lr * G2
    G2p = grads(W1n, W2, W3)[1]
    G3p = grads(W1n, W2n, W3)[2]
    expected = [0.0, float((G2 - G2p).norm()), float((G3 - G3p).norm())]
    assert torch.allclose(rec["l2"], torch.tensor(expected, dtype=D), rtol=1e-10, atol=1e-14)
    assert torch.allclose(rec["g_norm"], torch.stack([G1.norm(), G2.norm(), G3.norm()]), rtol=1e-12)
    # distributional shift of layer 3's input when layers 1 and 2 take their step: by hand
    h, hn = W2 @ W1 @ X, W2n @ W1n @ X
    m, mn, s, sn = h.mean(1), hn.mean(1), h.std(1, unbiased=False), hn.std(1, unbiased=False)
    w2 = (((mn - m) ** 2 + (sn - s) ** 2).sqrt() / s).mean()
    assert float(rec["shift"][0]) == 0.0 and abs(float(rec["shift"][2]) - float(w2)) < 1e-12
    assert torch.allclose(rec["in_mean"][2].double(), m.float().double()) and rec["in_var"][2].shape == (2,)
    cos3 = float((G3 * G3p).sum() / (G3.norm() * G3p.norm()))
    assert abs(float(rec["cos"][2]) - cos3) < 1e-12 and float(rec["cos"][0]) == pytest.approx(1.0)


def test_first_layer_ics_is_exactly_zero_and_state_is_restored():
    torch.manual_seed(1)
    net = build_model(ModelConfig(arch="vgg11", width=0.125, norm="batch")).train()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(10, (8,))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rec = ICSProbe(net, layers=[1, 4, 8])(ProbeContext(0, net, x, y, opt, torch.nn.functional.cross_entropy))
    assert float(rec["l2"][0]) == 0.0
    assert float(rec["l2"][1]) > 0 and float(rec["l2"][2]) > 0
    assert model_state_equal(before, net.state_dict())
    assert len(opt.state) == 0            # the probe read the optimizer, it did not step it


def test_efficient_probe_equals_naive_recomputation():
    torch.manual_seed(2)
    net = build_model(ModelConfig(arch="vgg11", width=0.125, norm="batch")).double().train()
    x, y = torch.randn(6, 3, 32, 32, dtype=D), torch.randint(10, (6,))
    opt = torch.optim.SGD(net.parameters(), lr=0.2, weight_decay=1e-3)
    loss_fn = torch.nn.functional.cross_entropy
    rec = ICSProbe(net)(ProbeContext(0, net, x, y, opt, loss_fn))
    params = list(net.parameters())
    state = {k: v.clone() for k, v in net.state_dict().items()}
    grads = dict(zip(params, torch.autograd.grad(loss_fn(net(x), y), params)))
    new = sgd_step_values(opt, grads)
    for i in range(1, len(net.blocks) + 1):
        net.load_state_dict(state)
        prefix = [p for b in net.blocks[: i - 1] for p in b.parameters()]
        with torch.no_grad():
            for p in prefix:
                p.copy_(new[p])
        w = net.blocks[i - 1].layer.weight
        (gp,) = torch.autograd.grad(loss_fn(net(x), y), w)
        assert abs(float((grads[w] - gp).norm()) - float(rec["l2"][i - 1])) < 1e-9 * (1 + float(grads[w].norm()))
    net.load_state_dict(state)


def test_sgd_step_values_matches_optimizer_step():
    torch.manual_seed(3)
    net = build_model(ModelConfig(arch="dln", depth=4, dim=3)).double()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1)
    x, y = torch.randn(7, 3, dtype=D), torch.randn(7, 3, dtype=D)
    for _ in range(2):   # the second step exercises the momentum buffer
        opt.zero_grad()
        half_sse(net(x), y).backward()
        predicted = sgd_step_values(opt, {p: p.grad for p in net.parameters()})
        opt.step()
        for p in net.parameters():
            assert torch.allclose(p.detach(), predicted[p], rtol=1e-13, atol=1e-15)
    with pytest.raises(TypeError, match="only torch.optim.SGD"):
        sgd_step_values(torch.optim.Adam(net.parameters()), {})


def test_ics_probe_does_not_change_training():
    cfg = dln_config(**{"optim.steps": 6})
    plain = train(cfg, device="cpu")
    probed = train(cfg.replace(probes=[ProbeSpec("ics", every=2, kwargs={"layers": [1, 9, 17]})]), device="cpu")
    assert torch.equal(plain["train_loss"], probed["train_loss"])
    recs = probed["probes"]["ics"]
    assert [r["step"] for r in recs] == [0, 2, 4] and float(recs[0]["data"]["l2"][0]) == 0.0


def test_noisy_bn_suffix_passes_see_the_steps_noise_draw():
    """With the same noise draw in every pass, layer 1's G' equals G exactly, also in a noisy-BN net;
    and G equals the gradient of the training step itself."""
    torch.manual_seed(4)
    net = build_model(ModelConfig(arch="vgg11", width=0.125, norm="noisy_batch")).double().train()
    x, y = torch.randn(6, 3, 32, 32, dtype=D), torch.randint(10, (6,))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss_fn = torch.nn.functional.cross_entropy
    rng = torch.get_rng_state()
    rec = ICSProbe(net, layers=[1, 3])(ProbeContext(0, net, x, y, opt, loss_fn))
    assert torch.equal(rng, torch.get_rng_state())
    assert float(rec["l2"][0]) == 0.0 and float(rec["cos"][0]) == pytest.approx(1.0)
    w3 = net.blocks[2].layer.weight
    (g3,) = torch.autograd.grad(loss_fn(net(x), y), w3)   # the step's own forward: the same noise draw
    assert abs(float(g3.norm()) - float(rec["g_norm"][1])) < 1e-12 * float(g3.norm())


def test_gradient_ics_on_any_model_equals_the_probe_and_restores_everything():
    """The model-agnostic Definition 2.1 (layers named, 'before' read from the forward pass) gives the
    probe's numbers on a bnopt VGG, the hand-computed chain on a DLN, and names what is allowed."""
    from bnopt.measure.ics import call_order, gradient_ics

    torch.manual_seed(3)
    net = build_model(ModelConfig(arch="vgg11", width=0.125, norm="batch")).double().train()
    x, y = torch.randn(6, 3, 32, 32, dtype=D), torch.randint(10, (6,))
    opt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-3)
    loss_fn = torch.nn.functional.cross_entropy
    rec = ICSProbe(net, layers=[1, 3, 6])(ProbeContext(0, net, x, y, opt, loss_fn))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    name_of = {m: n for n, m in net.named_modules()}
    names = [name_of[net.blocks[i].layer] for i in (0, 2, 5)]
    order = call_order(net, x)
    assert order[0] is net.blocks[0].layer and order[1] is net.blocks[0].norm and order[-1] is net.head
    got = gradient_ics(net, x, y, loss_fn, names, optimizer=opt)
    assert got["layers"] == names and float(got["l2"][0]) == 0.0 and float(got["shift"][0]) == 0.0
    for k in ("l2", "cos", "shift"):
        assert torch.allclose(got[k], rec[k], rtol=1e-9, atol=1e-12), k
    later = gradient_ics(net, x, y, loss_fn, names[1:], optimizer=opt)      # no first layer: its G must still be complete
    assert torch.allclose(later["l2"], rec["l2"][1:], rtol=1e-9) and torch.allclose(later["cos"], rec["cos"][1:], rtol=1e-9)
    assert model_state_equal(before, net.state_dict()) and len(opt.state) == 0
    act = name_of[net.blocks[0].act]
    with pytest.raises(ValueError, match=rf"\['{act}'\] are not modules with a weight; valid choices include: {names[0]}"):
        gradient_ics(net, x, y, loss_fn, [act], optimizer=opt)


def test_gradient_ics_on_a_torchvision_resnet_is_zero_at_the_stem_and_positive_later():
    from torchvision.models import resnet18

    from bnopt.measure.ics import gradient_ics

    torch.manual_seed(4)
    net = resnet18(num_classes=10)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(10, (4,))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    got = gradient_ics(net, x, y, torch.nn.functional.cross_entropy, ["conv1", "layer2.0.conv1", "fc"], optimizer=opt)
    assert float(got["l2"][0]) == 0.0 and float(got["l2"][1]) > 0 and float(got["l2"][2]) > 0
    assert bool((got["cos"] <= 1 + 1e-6).all())
    assert model_state_equal(before, net.state_dict())
