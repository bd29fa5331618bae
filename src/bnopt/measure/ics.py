"""Internal covariate shift as the paper defines it (Definition 2.1), measured as a probe.

For layer i at step t, with the batch (x, y) of step t:
  G_i  = grad of L w.r.t. W_i, every layer at its step-t value;
  G'_i = the same gradient after layers 1..i-1 took their actual optimizer step t -> t+1
         (all their parameters, BN's gamma and beta included), layers i..k still at step t.
  ICS_i = ||G_i - G'_i||, reported with cos(G_i, G'_i) and the norms ||G_i||, ||G'_i||.
W_i is the block's conv/linear weight [choice: the paper does not say whether biases count].

Cost: one forward/backward for G, one no-grad forward of the fully updated network (the input of
block i depends only on blocks 1..i-1, so it gives every updated prefix at once), then for each
layer the old suffix from block i on, forward and backward. BN stays in training mode; running
statistics, parameters and RNG are restored bit-identically (probes.isolated). In-network noise
(noisy BN) is the training step's own draw in every pass: the RNG state is recorded as each block
begins and restored before the suffix pass from that block, so G - G' reflects the update alone.

Distributional ICS, beside the gradient one: the same two forward passes give layer i's input on the
same batch before and after layers 1..i-1 step. Per unit (channel) we fit N(mu, s^2) over the batch
(and H, W) and report `shift`, the mean over units of the 2-Wasserstein distance between the two fits
in units of the old std: sqrt((mu' - mu)^2 + (s' - s)^2) / s. `in_mean` and `in_var` (per unit, old
weights) let a chapter follow the same inputs' moments over training.
"""
from __future__ import annotations

import torch
from torch import nn

from bnopt.measure.probes import ProbeContext, RngSnapshot, full_precision, isolated, kept_at, observe, per_unit


def sgd_step_values(optimizer: torch.optim.Optimizer, grads: dict) -> dict:
    """What optimizer.step() would set each parameter to, without touching the optimizer or params.
    Supports torch.optim.SGD (lr, momentum, dampening, nesterov, weight_decay, maximize)."""
    if not isinstance(optimizer, torch.optim.SGD):
        raise TypeError(f"ICS needs the next step's weights; only torch.optim.SGD is supported, "
                        f"not {type(optimizer).__name__}")
    new = {}
    for group in optimizer.param_groups:
        lr, mom, damp = group["lr"], group["momentum"], group["dampening"]
        wd, nesterov, maximize = group["weight_decay"], group["nesterov"], group.get("maximize", False)
        for p in group["params"]:
            g = grads.get(p)
            if g is None:
                continue
            g = -g if maximize else g
            if wd:
                g = g + wd * p.detach()
            if mom:
                buf = optimizer.state.get(p, {}).get("momentum_buffer")
                buf = g.clone() if buf is None else mom * buf + (1 - damp) * g
                g = g + mom * buf if nesterov else buf
            new[p] = p.detach() - lr * g
    return new


def unit_moments(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit mean and biased variance of a layer input (N, C, *spatial) over batch and space."""
    u = per_unit(h.detach()).double()
    return u.mean(1), u.var(1, unbiased=False)


def unit_w2(old: tuple, new: tuple) -> torch.Tensor:
    """Per unit, the 2-Wasserstein distance W2(N(mu, s^2), N(mu', s'^2)) between two moment fits
    (old and new are (mean, variance) tensors over units)."""
    (m0, v0), (m1, v1) = old, new
    return ((m1 - m0) ** 2 + (v1.sqrt() - v0.sqrt()) ** 2).sqrt()


def w2_shift(old: tuple, new: tuple, floor: float = 1e-12) -> float:
    """Mean over units of W2 / s: the distribution shift of each unit between two moment fits, in
    units of its old standard deviation."""
    return float((unit_w2(old, new) / old[1].sqrt().clamp_min(floor)).mean())


def grad_change(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(||a - b||, cos(a, b)) of two flat gradients (cos 0 when either is 0).

    >>> grad_change(torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0]))
    (5.0, 0.0)
    """
    return float((a - b).norm()), float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-30))


class ICSProbe:
    """layers: 1-based block numbers to measure (default: all). moments_every: the per-unit input moments
    (`in_mean`, `in_var`) are kept only at steps that are multiples of it (0: at every measurement); the
    per-layer numbers, `shift` included, are computed from them and recorded at every measurement."""
    name = "ics"   # the name a ProbeSpec gives (bnopt.measure.catalog)

    def __init__(self, model, layers=None, moments_every: int = 0):
        if isinstance(moments_every, bool) or not isinstance(moments_every, int) or moments_every < 0:
            raise ValueError(f"moments_every={moments_every!r}: steps between the kept per-unit moments; "
                             f"allowed: an integer >= 0 (0: at every measurement)")
        self.moments_every = moments_every
        k = len(model.blocks)
        self.layers = list(layers) if layers else list(range(1, k + 1))
        bad = [i for i in self.layers if not 1 <= i <= k]
        if bad:
            raise ValueError(f"layers {bad} out of range: this model has blocks 1..{k}")
        self.model = model

    def __call__(self, ctx: ProbeContext) -> dict:
        model = self.model
        params = [p for p in model.parameters() if p.requires_grad]
        weights = {i: model.blocks[i - 1].layer.weight for i in self.layers}
        with isolated(model):
            model.train()
            rng = RngSnapshot()
            old_in, rng_at = {}, {}

            def record(_m, args, i):
                old_in[i] = unit_moments(args[0])
                rng_at[i] = RngSnapshot()      # where the step's noise draw stands as block i begins

            hooks = [model.blocks[i - 1].register_forward_pre_hook(
                lambda m, args, i=i: record(m, args, i)) for i in self.layers]
            try:
                loss = ctx.loss_fn(full_precision(model(ctx.x)), ctx.y)
            finally:
                for h in hooks:
                    h.remove()
            grads = dict(zip(params, torch.autograd.grad(loss, params, allow_unused=True)))
            G = {i: grads[w].detach() for i, w in weights.items()}
            new = sgd_step_values(ctx.optimizer, grads)
            old = {p: p.detach().clone() for p in new}
            inputs = {}
            hooks = [model.blocks[i - 1].register_forward_pre_hook(
                lambda _m, args, i=i: inputs.__setitem__(i, args[0].detach())) for i in self.layers]
            try:
                with torch.no_grad():
                    torch._foreach_copy_([p.data for p in new], list(new.values()))
                    rng.restore()
                    model(ctx.x)
                    torch._foreach_copy_([p.data for p in old], list(old.values()))
            finally:
                for h in hooks:
                    h.remove()
            l2, cos, g_norm, gp_norm = [], [], [], []
            shift = [w2_shift(old_in[i], unit_moments(inputs[i])) for i in self.layers]
            for i in self.layers:
                rng_at[i].restore()            # the suffix sees the step's own noise draw
                out = model.forward_from(i, inputs[i])
                (g_prime,) = torch.autograd.grad(ctx.loss_fn(full_precision(out), ctx.y), weights[i])
                a, b = G[i].reshape(-1), g_prime.reshape(-1)
                d, c = grad_change(a, b)
                l2.append(d)
                cos.append(c)
                g_norm.append(float(a.norm()))
                gp_norm.append(float(b.norm()))
        f64 = torch.float64
        out = {"layers": self.layers, "l2": torch.tensor(l2, dtype=f64), "cos": torch.tensor(cos, dtype=f64),
               "shift": torch.tensor(shift, dtype=f64), "g_norm": torch.tensor(g_norm, dtype=f64),
               "gp_norm": torch.tensor(gp_norm, dtype=f64)}
        if kept_at(ctx.step, self.moments_every):
            out.update(in_mean=[old_in[i][0].float().cpu() for i in self.layers],
                       in_var=[old_in[i][1].float().cpu() for i in self.layers])
        return out


# --------------------------------------------------------------------------------------------------
# Any model: Definition 2.1 with "the layers before W_i" read from the forward pass

def _order_hooks(model: nn.Module, order: list) -> list:
    """Hooks that append each module holding parameters of its own to `order` when first called."""
    return [m.register_forward_pre_hook(lambda mod, _a: order.append(mod) if mod not in order else None)
            for m in model.modules() if any(True for _ in m.parameters(recurse=False))]


def call_order(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """The modules that hold parameters of their own, in the order one forward pass first calls them
    (train mode; the model is left exactly as it was)."""
    order = []
    observe(model, x, _order_hooks(model, order))
    return order


def gradient_ics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, layers: list[str], lr: float = 0.1,
                 optimizer: torch.optim.SGD | None = None) -> dict:
    """Definition 2.1 on any network, for the named modules `layers` (each with a `weight`): G_i, the
    gradient of loss_fn(model(x), y) with respect to layer i's weight, against G'_i, the same gradient after
    every module the forward pass calls *before* layer i has taken the next SGD step (plain SGD at `lr`, or the
    step `optimizer` would take, momentum and weight decay included, when one is given; its
    parameters, BN's included), everything from layer i on unchanged. Per layer: 'l2' = ||G - G'||,
    'cos' = cos(G, G'), and 'shift', the distributional shift of layer i's input (mean over units of W2/s,
    as `ICSProbe`; a module called twice is measured at its first call). One forward and backward for G
    (which also reads the call order), then one per layer, BN in train mode, the same RNG draw in every pass;
    the model and optimizer are left exactly as they were. For a `bnopt` model it equals `ICSProbe`."""
    named = dict(model.named_modules())
    bad = [n for n in layers if not isinstance(getattr(named.get(n), "weight", None), torch.Tensor)]
    if bad:
        valid = [n for n, m in named.items() if isinstance(getattr(m, "weight", None), torch.Tensor)]
        raise ValueError(f"layers {bad} are not modules with a weight; valid choices include: "
                         f"{', '.join(valid[:8])}{', ...' if len(valid) > 8 else ''} ({len(valid)} in all)")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizer if optimizer is not None else torch.optim.SGD(params, lr=lr)
    out = {"layers": list(layers), "l2": [], "cos": [], "shift": []}
    with isolated(model):
        model.train()
        rng = RngSnapshot()

        def loss_and_inputs(modules, order=None):
            """The loss (with its graph) and the input each module first receives, in one forward pass;
            with `order`, also the call order of the modules holding parameters."""
            saved = {}

            def keep(mod, a):                  # returns None: the input itself flows on, graph intact
                saved.setdefault(mod, a[0].detach())
            hs = [m.register_forward_pre_hook(keep) for m in modules]
            hs += _order_hooks(model, order) if order is not None else []
            try:
                rng.restore()
                loss = loss_fn(full_precision(model(x)), y)
            finally:
                for h in hs:
                    h.remove()
            return loss, saved

        targets = [named[n] for n in layers]
        order = []
        loss, x_old = loss_and_inputs(targets, order)
        grads = dict(zip(params, torch.autograd.grad(loss, params, allow_unused=True)))
        new = sgd_step_values(optimizer, grads)
        for module in targets:
            earlier = [p for m in order[: order.index(module)] for p in m.parameters(recurse=False) if p in new]
            old = [p.detach().clone() for p in earlier]
            with torch.no_grad():
                for p in earlier:
                    p.copy_(new[p])
            loss_new, x_new = loss_and_inputs([module])
            (g_prime,) = torch.autograd.grad(loss_new, module.weight)
            with torch.no_grad():
                for p, v in zip(earlier, old):
                    p.copy_(v)
            d, c = grad_change(grads[module.weight].detach().reshape(-1), g_prime.reshape(-1))
            out["l2"].append(d)
            out["cos"].append(c)
            out["shift"].append(w2_shift(unit_moments(x_old[module]), unit_moments(x_new[module])))
    return {k: (v if k == "layers" else torch.tensor(v, dtype=torch.float64)) for k, v in out.items()}

