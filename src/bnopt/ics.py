"""Internal covariate shift as the paper defines it (Definition 2.1), measured as a probe.

For layer i at step t, with the batch (x, y) of step t:
  G_i  = grad of L w.r.t. W_i, every layer at its step-t value;
  G'_i = the same gradient after layers 1..i-1 took their actual optimizer step t -> t+1
         (all their parameters, BN's gamma and beta included), layers i..k still at step t.
  ICS_i = ||G_i - G'_i||, reported with cos(G_i, G'_i).
W_i is the block's conv/linear weight [choice: the paper does not say whether biases count].

Cost: one forward/backward for G, one no-grad forward of the fully updated network (the input of
block i depends only on blocks 1..i-1, so it gives every updated prefix at once), then for each
layer the old suffix from block i on, forward and backward. BN stays in training mode; running
statistics, parameters and RNG are restored bit-identically (probes.isolated). In-network noise
(noisy BN) is drawn afresh in the suffix passes: ICS is not defined for a noisy forward pass.
"""
from __future__ import annotations

import torch

from .probes import ProbeContext, RngSnapshot, full_precision, isolated, register


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


@register("ics")
class ICSProbe:
    """layers: 1-based block numbers to measure (default: all)."""

    def __init__(self, model, layers=None):
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
            loss = ctx.loss_fn(full_precision(model(ctx.x)), ctx.y)
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
            l2, cos = [], []
            for i in self.layers:
                out = model.forward_from(i, inputs[i])
                (g_prime,) = torch.autograd.grad(ctx.loss_fn(full_precision(out), ctx.y), weights[i])
                a, b = G[i].reshape(-1), g_prime.reshape(-1)
                l2.append(float((a - b).norm()))
                cos.append(float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-30)))
        return {"layers": self.layers, "l2": torch.tensor(l2, dtype=torch.float64),
                "cos": torch.tensor(cos, dtype=torch.float64)}
