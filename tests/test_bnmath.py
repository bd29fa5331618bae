"""Known-answer tests of BatchNorm and of the Section 4 identities (float64)."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from bnopt import theory as bnmath
from bnopt.measure import curvature
from bnopt.measure.catalog import build_probe
from bnopt.measure.probes import ProbeContext, UnitStd, isolated, model_state_equal
from bnopt.nets.models import build_model
from bnopt.runs.config import ModelConfig, ProbeSpec

D = torch.float64


@pytest.mark.parametrize("shape", [(32, 4), (6, 3, 5, 5)])
def test_batch_norm_matches_torch_and_gradcheck(shape):
    torch.manual_seed(0)
    x = (torch.randn(shape, dtype=D) * 2 - 1).requires_grad_()
    g = torch.rand(shape[1], dtype=D).add(0.5).requires_grad_()
    b = torch.randn(shape[1], dtype=D).requires_grad_()
    ours = bnmath.batch_norm(x, g, b, eps=1e-5)
    ref = F.batch_norm(x, None, None, g, b, training=True, eps=1e-5)
    assert torch.allclose(ours, ref, atol=1e-12)
    w = torch.randn(shape, dtype=D)
    for a, c in zip(torch.autograd.grad((ours * w).sum(), [x, g, b]), torch.autograd.grad((ref * w).sum(), [x, g, b])):
        assert torch.allclose(a, c, atol=1e-11)
    assert torch.autograd.gradcheck(lambda *t: bnmath.batch_norm(*t, eps=1e-5), (x, g, b))


def test_running_statistics_and_eval_mode_match_torch():
    torch.manual_seed(1)
    x = torch.randn(16, 3, 4, 4, dtype=D) * 3 + 2
    g, b = torch.rand(3, dtype=D) + 0.5, torch.randn(3, dtype=D)
    rm, rv, rm2, rv2 = torch.zeros(3, dtype=D), torch.ones(3, dtype=D), torch.zeros(3, dtype=D), torch.ones(3, dtype=D)
    for _ in range(3):
        bnmath.batch_norm(x, g, b, rm, rv, training=True, momentum=0.2)
        F.batch_norm(x, rm2, rv2, g, b, training=True, momentum=0.2)
    assert torch.allclose(rm, rm2, atol=1e-13) and torch.allclose(rv, rv2, atol=1e-13)
    assert torch.allclose(bnmath.batch_norm(x, g, b, rm, rv, training=False),
                          F.batch_norm(x, rm2, rv2, g, b, training=False), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 9), c=st.integers(1, 4), spatial=st.sampled_from([0, 1, 2]),
       scale=st.floats(1e-2, 1e2), shift=st.floats(-50, 50), seed=st.integers(0, 10_000))
def test_batch_norm_property(n, c, spatial, scale, shift, seed):
    """Over random shapes and magnitudes: forward and hand-written backward equal PyTorch's, each
    output channel has mean beta and (biased) std about |gamma|, and the input gradient sums to zero."""
    gen = torch.Generator().manual_seed(seed)
    shape = (n, c, *([3] * spatial))
    x = (torch.randn(shape, generator=gen, dtype=D) * scale + shift).requires_grad_()
    g = torch.randn(c, generator=gen, dtype=D).requires_grad_()
    b = torch.randn(c, generator=gen, dtype=D).requires_grad_()
    w = torch.randn(shape, generator=gen, dtype=D)
    eps = 1e-5
    ours = bnmath.batch_norm(x, g, b, eps=eps)
    ref = F.batch_norm(x, None, None, g, b, training=True, eps=eps)
    assert torch.allclose(ours, ref, atol=1e-9, rtol=1e-9)
    ga = torch.autograd.grad((ours * w).sum(), [x, g, b])
    gr = torch.autograd.grad((ref * w).sum(), [x, g, b])
    for a, r in zip(ga, gr):
        assert torch.allclose(a, r, atol=1e-8 * (1 + float(r.abs().max())), rtol=1e-7)
    dims = [0, *range(2, x.dim())]
    bd, gd, xd = b.detach(), g.detach(), x.detach()
    assert torch.allclose(ours.detach().mean(dims), bd, atol=1e-9 * (1 + float(bd.abs().max())))
    var = xd.var(dims, unbiased=False)
    expected_std = gd.abs() * torch.sqrt(var / (var + eps))
    assert torch.allclose(ours.detach().std(dims, unbiased=False), expected_std, rtol=1e-6, atol=1e-9)
    assert torch.allclose(ga[0].sum(dims), torch.zeros(c, dtype=D), atol=1e-7 * (1 + float(ga[0].abs().max())))


def _bn_net(seed=0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(arch="vgg11", width=0.125, norm="batch")).double().train()


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g, dtype=D), torch.randint(10, (n,), generator=g)


def test_theorem41_identity_holds_with_one_over_m():
    net = _bn_net()
    x, y = _batch()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for layer in (1, 4, 8):
        lg = bnmath.layer_gradients(net, layer, x, y, eps=0.0)
        d = bnmath.theorem41(lg)
        assert torch.allclose(d["lhs"], d["rhs_exact"], rtol=1e-9, atol=1e-300)
    assert model_state_equal(before, net.state_dict())


def test_theorem41_gradient_equals_projected_downstream_gradient():
    """dL^/dy = (gamma / sigma) Pi g: the closed form of Fact C.2, unit by unit."""
    net = _bn_net(1)
    x, y = _batch(seed=1)
    lg = bnmath.layer_gradients(net, 2, x, y, eps=0.0)
    pi_g = lg.g - lg.g.mean(0) - lg.yhat * (lg.g * lg.yhat).mean(0)
    assert torch.allclose(lg.grad_y, lg.gamma / lg.sigma * pi_g, atol=1e-12)


def test_printed_theorem41_fails_on_the_counterexample():
    net = _bn_net()
    x, y = _batch()
    lg = bnmath.layer_gradients(net, 1, x, y, eps=0.0)
    lg.g = 0.3 * lg.yhat                                     # g proportional to yhat: Pi g = 0
    lg.grad_y = lg.gamma / lg.sigma * (lg.g - lg.g.mean(0) - lg.yhat * (lg.g * lg.yhat).mean(0))
    d = bnmath.theorem41(lg)
    assert float(d["lhs"].abs().max()) < 1e-20
    assert bool((d["rhs_printed"] < 0).all())                # printed: 0 <= negative, false
    m = lg.m
    expected = lg.gamma ** 2 / lg.sigma ** 2 * lg.g.pow(2).sum(0) * (1 - math.sqrt(m))
    assert torch.allclose(d["rhs_printed"], expected, rtol=1e-9)


def test_theorem42_first_statement_is_an_equality():
    net = _bn_net(2)
    x, y = _batch(4, seed=2)
    r = bnmath.theorem42(net, 3, x, y, units=[0, 5], eps=0.0)
    assert torch.allclose(r["lhs"], r["rhs"], rtol=1e-8, atol=1e-14)
    assert len(r["uHu"]) == 2


def test_theorem44_corrected_form_and_rank_one_maximiser():
    net = _bn_net(3)
    x, y = _batch(seed=3)
    lg = bnmath.layer_gradients(net, 8, x, y, eps=0.0)
    d = bnmath.theorem44(lg, lam=3.0)
    assert torch.allclose(d["lhs"], d["rhs_corrected"], rtol=1e-9)
    v = lg.grad_y[:, 0]
    X = 3.0 * torch.outer(v / v.norm(), torch.eye(5, dtype=D)[0])
    assert math.isclose(float(torch.linalg.matrix_norm(X, ord=2)), 3.0, rel_tol=1e-12)
    assert math.isclose(float((X.T @ v).pow(2).sum()), 9.0 * float(v.pow(2).sum()), rel_tol=1e-12)


def _instance(bias=False):
    """x = (1,0), (0,1), (1,1), t = (2, 0, 5): BN optima on the ray 3 w1 = 5 w2 (by hand below)."""
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=D)
    return bnmath.OneNeuron(X, torch.tensor([2.0, 0.0, 5.0], dtype=D), bias=bias)


def test_lemma45_identity_and_its_printed_rhs_is_the_distance_to_the_line_of_w_star():
    g = torch.Generator().manual_seed(0)
    w0, ws = torch.randn(7, generator=g, dtype=D), torch.randn(7, generator=g, dtype=D)
    r = bnmath.lemma45_gap(w0, ws)
    assert math.isclose(r["lhs"], r["rhs"], rel_tol=1e-12)
    # the printed right-hand side equals ||w0||^2 - <w0, W*>^2 / ||W*||^2; with u = W* the lemma is tight
    sides = bnmath.lemma45_sides(w0, ws, ws)
    assert math.isclose(float(sides["rhs"]), float(w0 @ w0 - (w0 @ ws) ** 2 / (ws @ ws)), rel_tol=1e-12)
    assert math.isclose(float(sides["lhs"]), float(sides["rhs"]), rel_tol=1e-12) and bool(sides["holds"])


def test_one_neuron_closed_forms_match_hand_computation_and_gradient_descent():
    p = _instance()
    # W* = (X^T X)^-1 X^T t = 1/3 [[2, -1], [-1, 2]] (7, 5) = (3, 1)
    assert torch.allclose(p.standard_optimum(), torch.tensor([3.0, 1.0], dtype=D), atol=1e-12)
    # centred: Xc^T tc = (7/3, 1/3), Xc^T Xc = 1/3 [[2, -1], [-1, 2]]  =>  w_c = (5, 3)
    assert torch.allclose(p.bn_direction(), torch.tensor([5.0, 3.0], dtype=D) / math.sqrt(34), atol=1e-12)
    assert p.bn_min_loss() < 1e-20                      # 3 points, 2 weights + beta: an exact fit
    assert math.isclose(float(p.standard_loss(p.standard_optimum())), 3.0, rel_tol=1e-12)   # residuals 1, 1, -1
    rows = torch.tensor([[3.0, 1.0], [0.0, 0.0], [1.0, 2.0]], dtype=D)           # batched = row by row
    assert torch.allclose(p.standard_loss(rows), torch.stack([p.standard_loss(r) for r in rows]))
    for start in ([1.0, -1.0], [-0.2, 2.0], [4.0, 0.5]):
        r = p.descend_bn(torch.tensor(start, dtype=D), steps=3000, lr=0.05)
        assert r["angle_to_bn_line"] < 1e-8 and r["loss"] < 1e-12
    # the standard optimum is stationary for L; no (gamma, beta) makes it stationary for L^
    w = p.standard_optimum().clone().requires_grad_()
    (gs,) = torch.autograd.grad(p.standard_loss(w), w)
    assert float(gs.norm()) < 1e-12
    for gamma in torch.linspace(-3, 3, 13, dtype=D):
        for beta in torch.linspace(-3, 3, 13, dtype=D):
            (gb,) = torch.autograd.grad(p.bn_loss(w, gamma, beta), w)
            assert float(gb.norm()) > 1e-3 or abs(float(gamma)) < 1e-12
    assert float(p.bn_gradient(p.standard_optimum()).norm()) > 0.1
    # scale invariance: no k W* is stationary either
    ws = p.standard_optimum()
    assert math.isclose(float(p.bn_loss(5 * ws, 1.0, 2.0)), float(p.bn_loss(ws, 1.0, 2.0)), rel_tol=1e-12)


def test_lemma45_fails_at_w_star_without_bias_and_holds_with_one():
    p = _instance()
    ws = p.standard_optimum()
    s = bnmath.lemma45_sides(ws, ws, p.bn_direction())
    assert abs(float(s["rhs"])) < 1e-12                 # the lemma would force a BN optimum at W0 = W*
    # distance^2 from (3, 1) to the line through (5, 3): 10 - 18^2 / 34 = 8 / 17
    assert math.isclose(float(s["lhs"]), 8 / 17, rel_tol=1e-12) and not bool(s["holds"])
    pb = _instance(bias=True)                           # with a bias, W* is the intercept fit: on the BN line
    assert bnmath.line_angle(pb.standard_optimum(), pb.bn_direction()) < 1e-12
    r = bnmath.lemma45_random_inits(pb, 2000, torch.Generator().manual_seed(0))
    assert bool(r["holds"].all()) and torch.allclose(r["lhs"], r["rhs"], rtol=1e-9, atol=1e-12)


def test_lemma45_fails_for_half_of_isotropic_initialisations():
    # closed form in 2-D: the lemma holds iff |cos(w0, u)| >= |cos(w0, W*)|; over a uniform grid of
    # directions the failing set is two quarter-circles, whatever the angle between the lines
    for phi in (0.05, 0.7, 1.5):
        theta = (torch.arange(100_000, dtype=D) + 0.5) * (2 * math.pi / 100_000)
        W0 = torch.stack([theta.cos(), theta.sin()], 1)
        ws, u = torch.tensor([1.0, 0.0], dtype=D), torch.tensor([math.cos(phi), math.sin(phi)], dtype=D)
        keep = W0 @ ws > 0
        frac = 1 - float(bnmath.lemma45_sides(W0[keep], ws, u)["holds"].double().mean())
        assert abs(frac - 0.5) < 1e-3
    # Monte Carlo over random instances in higher dimension: within 4 standard errors of 1/2
    r = bnmath.lemma45_sweep(m=40, d=10, n_datasets=20, n_inits=500, seed=3)
    se = 0.5 / math.sqrt(20 * 500)
    assert abs(float(r["fail"].mean()) - 0.5) < 4 * se and float(r["angle"].min()) > 1e-6


def test_one_neuron_rejects_inputs_without_a_unique_bn_optimum():
    with pytest.raises(ValueError, match="rank"):
        bnmath.OneNeuron(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=D), torch.tensor([1.0, 2.0], dtype=D))
    with pytest.raises(ValueError, match="targets"):
        bnmath.OneNeuron(torch.eye(3, 2, dtype=D), torch.ones(4, dtype=D))


def test_hvp_matches_float64_central_differences_on_a_smooth_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()
    x, y = torch.randn(10, 4, dtype=D), torch.randint(3, (10,))
    params = list(net.parameters())
    v = [torch.randn_like(p) for p in params]
    hv = curvature.hvp(lambda: F.cross_entropy(net(x), y), params, v)

    def grad_at(shift):
        with torch.no_grad():
            for p, d in zip(params, v):
                p.add_(shift * d)
        g = torch.autograd.grad(F.cross_entropy(net(x), y), params)
        with torch.no_grad():
            for p, d in zip(params, v):
                p.sub_(shift * d)
        return g

    h = 1e-5
    fd = [(a - b) / (2 * h) for a, b in zip(grad_at(h), grad_at(-h))]
    for a, b in zip(hv, fd):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-8)


def test_model_hvp_is_explicit_about_mode_and_restores_state():
    net = _bn_net(4)
    x, y = _batch(4, seed=4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    v = [torch.randn_like(p) for p in net.parameters()]
    train_hv = curvature.model_hvp(net, x, y, F.cross_entropy, v, train_mode=True)
    eval_hv = curvature.model_hvp(net, x, y, F.cross_entropy, v, train_mode=False)
    assert model_state_equal(before, net.state_dict()) and net.training
    assert not all(torch.allclose(a, b) for a, b in zip(train_hv, eval_hv))   # different landscapes


def test_unit_std_probe_matches_manual_and_restores():
    torch.manual_seed(0)
    net = build_model(ModelConfig(arch="vgg11", width=0.125, norm="batch")).train()
    x = torch.randn(8, 3, 32, 32)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rec = UnitStd(net)(ProbeContext(0, net, x, None, None, None))
    assert model_state_equal(before, net.state_dict())
    out = net.blocks[0].layer(x)
    manual = out.detach().transpose(0, 1).reshape(out.shape[1], -1).std(1, unbiased=False)
    assert torch.allclose(rec[1]["sigma"], manual, atol=1e-6)
    assert set(rec) == set(range(1, 9)) and torch.equal(rec[3]["gamma"], net.blocks[2].norm.weight.detach())
    assert isinstance(build_probe(ProbeSpec("unit_std").name, net), UnitStd)   # the name reaches the class


@pytest.mark.parametrize("arch", ["vgg11", "dln"])
def test_theorem44_at_the_actual_input_is_the_adjoint_bound(arch):
    """lhs is autograd's weight gradient, and equals ||X^T dL^/dy_j||^2 with X the layer's im2col input
    (a check of the row order); the corrected bound lam^2 ||dL^/dy_j||^2 holds for every unit and is
    attained only up to the alignment of dL^/dy_j with X's top singular vector."""
    torch.manual_seed(4)
    if arch == "dln":
        net = build_model(ModelConfig(arch="dln", depth=6, dim=10, norm="batch")).double().train()
        g = torch.Generator().manual_seed(4)
        x, y = torch.randn(16, 10, generator=g, dtype=D), torch.randn(16, 10, generator=g, dtype=D)
        loss, layers = (lambda o, t: (o - t).pow(2).sum()), (1, 3, 5)
    else:
        net, (x, y), loss, layers = _bn_net(4), _batch(seed=4), F.cross_entropy, (1, 4, 8)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for layer in layers:
        r = bnmath.theorem44_at_input(net, layer, x, y, loss)
        lg = bnmath.layer_gradients(net, layer, x, y, loss, eps=0.0)
        saved = {}
        h = net.blocks[layer - 1].layer.register_forward_pre_hook(lambda _m, i: saved.update(x=i[0].detach()))
        with isolated(net), torch.no_grad():
            net(x)
        h.remove()
        X = bnmath.weight_layer_input_matrix(net.blocks[layer - 1].layer, saved["x"])
        assert X.shape[0] == r["m"] == lg.m
        assert torch.allclose(r["lhs"], (X.T @ lg.grad_y).pow(2).sum(0), rtol=1e-9, atol=1e-300)
        assert math.isclose(r["lam"], float(torch.linalg.svdvals(X)[0]), rel_tol=1e-12)
        assert bool((r["lhs"] <= r["rhs"] * (1 + 1e-12)).all())
        assert float((r["lhs"] / r["rhs"]).max()) < 1                       # random X: not attained
    assert model_state_equal(before, net.state_dict())


def test_bn_twin_reproduces_the_standard_network_and_keeps_the_gradient_reduction():
    """Observation 4.3: with gamma = sqrt(var + eps) and beta = mu the BN network computes the standard one
    (same outputs; with BN at one layer, the same downstream gradient), and its gradient at y_j is the
    projection Pi g_j, whose squared norm has the closed form
    ||g||^2 - <1, g>^2/m - 2 <g, yhat>^2/m + <g, yhat>^2 ||yhat||^2/m^2 (yhat with the eps): below ||g||^2."""
    torch.manual_seed(5)
    std = build_model(ModelConfig(arch="vgg11", width=0.125, norm="none")).double()
    x, y = _batch(seed=5)
    before = {k: v.clone() for k, v in std.state_dict().items()}
    r = bnmath.observation43(std, x, y, layers=(1, 5, 8))
    assert r["out_err"] < 1e-12 and r["g_err"] < 1e-10
    assert math.isclose(r["loss_std"], r["loss_twin"], rel_tol=1e-12)
    closed = []
    for layer in (1, 5, 8):
        twin = bnmath.bn_twin(std, x, [layer])
        assert torch.equal(twin.blocks[layer - 1].layer.weight, std.blocks[layer - 1].layer.weight)
        lg = bnmath.layer_gradients(twin, layer, x, y, eps=1e-5)
        g, yh, m = lg.g, lg.yhat, lg.m
        gy = (g * yh).sum(0)
        closed.append((g.pow(2).sum(0) - g.sum(0).pow(2) / m - 2 * gy.pow(2) / m
                       + gy.pow(2) * yh.pow(2).sum(0) / m ** 2) / g.pow(2).sum(0))
    assert torch.allclose(r["ratio"], torch.cat(closed), rtol=1e-8, equal_nan=True)
    live = r["ratio"].isfinite()                              # a unit whose downstream gradient is 0: NaN
    assert int(live.sum()) >= 40 and bool((r["ratio"][live] < 1).all())
    assert model_state_equal(before, std.state_dict())
    with pytest.raises(ValueError, match="already has a normalization"):
        bnmath.bn_twin(bnmath.bn_twin(std, x, [2]), x, [2])


def _tiny_bn_mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5), torch.nn.Tanh(),
                               torch.nn.Linear(5, 2)).double()


def _dense_hessian(model, x, y, loss, train_mode):
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    with isolated(model):
        model.train(train_mode)
        apply = curvature.hvp_operator(lambda: loss(model(x), y), params)
        eye = torch.eye(n, dtype=D)
        cols = [torch.cat([c.reshape(-1) for c in apply([c.view_as(p) for c, p in
                                                         zip(torch.split(eye[i], [p.numel() for p in params]), params)])])
                for i in range(n)]
    return torch.stack(cols, 1)


@pytest.mark.parametrize("train_mode", [True, False])
def test_slq_density_matches_the_dense_spectrum_of_a_tiny_bn_network(train_mode):
    """Stochastic Lanczos quadrature against a dense eigendecomposition (52 parameters, BN in either mode):
    with as many steps as parameters the nodes are the exact eigenvalues; with fewer, each vector's
    quadrature still reproduces v^T H^p v / |v|^2 exactly for p < 2k; averaged over many vectors the
    moments estimate tr(H^p)/n; lambda_max and the outlier ratio come from the nodes."""
    net = _tiny_bn_mlp()
    with isolated(net):                                   # running statistics for eval mode
        for s in range(5):
            net.train()(torch.randn(32, 3, generator=torch.Generator().manual_seed(s), dtype=D))
        g = torch.Generator().manual_seed(9)
        x, y = torch.randn(16, 3, generator=g, dtype=D), torch.randint(2, (16,), generator=g)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        H = _dense_hessian(net, x, y, F.cross_entropy, train_mode)
        assert torch.allclose(H, H.T, atol=1e-10)
        eig = torch.linalg.eigvalsh(H)
        n = len(eig)
        full = curvature.spectral_density(net, x, y, F.cross_entropy, iters=n, vectors=1, train_mode=train_mode)
        live = full["weights"][0] > 1e-12
        for theta in full["nodes"][0][live]:
            assert float((eig - theta).abs().min()) < 1e-8 * float(eig.abs().max())
        assert math.isclose(float(full["nodes"].max()), float(eig.max()), rel_tol=1e-9)
        short = curvature.spectral_density(net, x, y, F.cross_entropy, iters=4, vectors=1, seed=3, train_mode=train_mode)
        v = torch.randn(n, generator=torch.Generator().manual_seed(3), dtype=D)
        v = v / v.norm()
        for p in range(1, 8):
            exact = float(v @ torch.linalg.matrix_power(H, p) @ v)
            assert math.isclose(curvature.density_moment(short, p), exact, rel_tol=1e-7, abs_tol=1e-12 * float(eig.abs().max()) ** p)
        many = curvature.spectral_density(net, x, y, F.cross_entropy, iters=10, vectors=200, seed=1, train_mode=train_mode)
        for p in (1, 2):
            tr = float(eig.pow(p).mean())
            assert abs(curvature.density_moment(many, p) - tr) < 0.15 * float(eig.pow(2).mean()) ** (p / 2)
        assert math.isclose(float(many["nodes"].max()), float(eig.max()), rel_tol=1e-6)
        assert math.isclose(curvature.outlier_ratio(many), float(eig.max() / eig.pow(2).mean().sqrt()), rel_tol=0.1)
        assert model_state_equal(before, net.state_dict())


def test_curvature_stops_with_pytorchs_error_where_an_activation_has_no_double_backward():
    """The library page's caveat: Hardsigmoid (torchvision's MobileNetV3) has no double backward in PyTorch."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Hardsigmoid(), torch.nn.Linear(4, 2))
    x, y = torch.randn(5, 3), torch.randint(2, (5,))
    with pytest.raises(RuntimeError, match="hardsigmoid"):
        curvature.hessian_extremes(net, x, y, F.cross_entropy, iters=2)


def test_chapter_theorem44_reuses_theorem41_and_equals_the_library_function():
    """The chapter takes the bound from Theorem 4.1's results (no second pass per layer): the same numbers."""
    from bnopt.book.chapters import bn_math as M

    nets = {"a": _bn_net(7), "b": _bn_net(8)}
    x, y = _batch(seed=7)
    got = M.theorem44_at_inputs(nets, x, y, M.theorem41_all(nets, x, y))
    for name, net in nets.items():
        parts = [bnmath.theorem44_at_input(net, layer, x, y) for layer in range(1, len(net.blocks) + 1)]
        assert torch.allclose(got[name]["lhs"], torch.cat([p["lhs"] for p in parts]), rtol=1e-12)
        assert torch.allclose(got[name]["rhs"], torch.cat([p["rhs"] for p in parts]), rtol=1e-12)
