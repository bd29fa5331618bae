"""Probes: measurements taken during training that must not change the training run.

The training loop calls each probe every `every` steps, before that step's update, with a
`ProbeContext` (the model, the step's batch, the optimizer, the loss). A probe returns a dict of
numbers and tensors, stored under its name in the run's results.

Contract: after a probe returns, parameters, buffers (BatchNorm running statistics), gradients and
the RNG state are bit-identical to before. `isolated(model)` guarantees this by snapshot and copy-back
(undoing `w -= eta*g` with `w += eta*g` is not exact in floating point), so a probe may freely run
train-mode forward passes or move the weights inside it.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass
class ProbeContext:
    step: int
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def isolated(model: nn.Module):
    """Run a block that may touch the model; restore parameters, buffers, grads, mode and RNG exactly."""
    state = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
    grads = {n: (None if p.grad is None else p.grad.detach().clone()) for n, p in model.named_parameters()}
    modes = {m: m.training for m in model.modules()}
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        with torch.no_grad():
            current = model.state_dict(keep_vars=True)
            torch._foreach_copy_([current[k].data for k in state], list(state.values()))
        for n, p in model.named_parameters():
            p.grad = grads[n]
        for m, training in modes.items():
            m.training = training


def observe(model: nn.Module, x: torch.Tensor, handles: list) -> None:
    """One train-mode forward pass of x without gradients, for the hooks whose `handles` are given (they
    are removed afterwards, also on error); the model is left exactly as it was."""
    try:
        with isolated(model), torch.no_grad():
            model.train()
            model(x)
    finally:
        for h in handles:
            h.remove()


def full_precision(out: torch.Tensor) -> torch.Tensor:
    """Network output as the loss should see it: bf16/fp16 (autocast) upcast to fp32, fp64 kept."""
    return out if out.dtype in (torch.float32, torch.float64) else out.float()


def capture_outputs(model: nn.Module, modules: dict, x: torch.Tensor) -> dict:
    """{key: output} of the given submodules ({key: module}) in one forward pass of x, in the model's
    current mode, with the model isolated (its state is left bit-identical)."""
    captured = {}
    handles = [m.register_forward_hook(lambda _m, _i, out, k=k: captured.__setitem__(k, out.detach()))
               for k, m in modules.items()]
    try:
        with isolated(model), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return captured


def per_unit(t: torch.Tensor) -> torch.Tensor:
    """(N, C, *spatial) -> (C, N * prod(spatial)): each row holds one unit's values."""
    return t.transpose(0, 1).reshape(t.shape[1], -1)


class RngSnapshot:
    """The global CPU and CUDA RNG states at construction; `restore()` rewinds to them, so every
    forward pass that follows draws the same in-network noise (noisy BN) as the training step."""

    def __init__(self):
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


def model_state_equal(a: dict, b: dict) -> bool:
    """Bit-identical comparison of two state dicts (tests and debug checks)."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class ActivationSampler:
    """One fixed random unit (channel) per chosen layer: its values over the batch (and H, W).

    For the ridgeline plots of Figs 1c, 2 and 6. Records, per layer, a fixed subsample of the unit's
    values (`max_samples` positions chosen once) and the mean and (biased) variance over all of them.

    where: 'pre_act' samples the output of the block's norm, i.e. the input of the ReLU (BN's output
    after its affine, for BN nets) [choice: the paper says "activations" and no more]; 'post_act'
    samples after the nonlinearity; 'layer' samples the raw conv/linear output before the norm.

    Storage (records only; the mean and variance are always over every value, in fp32): `values_every`
    keeps the samples only at steps that are multiples of it (0: at every measurement), and `values_dtype`
    stores them as 'float32', 'bfloat16' (fp32's range, 8 significant bits: ample for a density plot, safe
    for a diverging run) or 'float16'. A 15,000-step run measured every 100 steps keeps 15 sets instead of 150.
    """
    name = "activations"   # the name a ProbeSpec gives (bnopt.measure.catalog)

    WHERE = ("pre_act", "post_act", "layer")
    DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

    def __init__(self, model: nn.Module, layers=(3, 11), where: str = "pre_act",
                 max_samples: int = 2048, unit_seed: int = 0, values_every: int = 0, values_dtype: str = "float32"):
        if where not in self.WHERE:
            raise ValueError(f"unknown where={where!r}; valid choices: {', '.join(self.WHERE)}")
        check_storage(max_samples, values_every, values_dtype, self.DTYPES)
        k = len(model.blocks)
        bad = [i for i in layers if not 1 <= i <= k]
        if bad:
            raise ValueError(f"layers {bad} out of range: this model has blocks 1..{k}")
        self.model, self.layers, self.where, self.max_samples = model, list(layers), where, max_samples
        self.values_every, self.values_dtype = values_every, self.DTYPES[values_dtype]
        self.units = {}
        for i in self.layers:
            g = torch.Generator().manual_seed(unit_seed * 1000 + i)
            n_units = model.blocks[i - 1].layer.weight.shape[0]
            self.units[i] = int(torch.randint(n_units, (1,), generator=g))
        self._positions = {}

    def _module(self, i: int) -> nn.Module:
        b = self.model.blocks[i - 1]
        return {"pre_act": b.norm, "post_act": b.act, "layer": b.layer}[self.where]

    def __call__(self, ctx: ProbeContext) -> dict:
        outs = capture_outputs(self.model, {i: self._module(i) for i in self.layers}, ctx.x)
        record = {}
        keep = kept_at(ctx.step, self.values_every)
        for i, out in outs.items():
            v = out[:, self.units[i]].reshape(-1).float()
            if i not in self._positions:
                g = torch.Generator().manual_seed(i)
                n = v.numel()
                self._positions[i] = (torch.randperm(n, generator=g)[: self.max_samples].sort().values
                                      if n > self.max_samples else torch.arange(n))
            values = {"values": v[self._positions[i].to(v.device)].to(self.values_dtype).cpu()} if keep else {}
            record[i] = {**values, "mean": float(v.mean()), "var": float(v.var(unbiased=False)), "unit": self.units[i]}
        return record


def kept_at(step: int, every: int) -> bool:
    """Whether a probe that thins its per-unit records keeps them at `step` (every: 0 keeps them always).

    >>> [s for s in range(0, 3000, 500) if kept_at(s, 1000)], kept_at(700, 0)
    ([0, 1000, 2000], True)
    """
    return every == 0 or step % every == 0


def check_storage(max_samples: int, every: int, dtype: str, dtypes) -> None:
    """The storage options of a probe that samples values, or a ValueError naming what is allowed."""
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
        raise ValueError(f"max_samples={max_samples!r}: values kept per unit; allowed: an integer >= 1")
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ValueError(f"values_every={every!r}: steps between the kept samples; allowed: an integer >= 0 "
                         f"(0: at every measurement)")
    if dtype not in dtypes:
        raise ValueError(f"values_dtype={dtype!r}; valid choices: {', '.join(dtypes)}")


def squared_norms(model: nn.Module) -> dict:
    """{'all': sum of squared entries of every parameter, 'weights': of the weight matrices and kernels only
    (dim > 1; biases and BN's gamma/beta left out)}. (wd/2) x 'all' is the L2 term of SGD's weight decay
    on every parameter (bnopt.runs.train.make_optimizer); (wd/2) x 'weights' is TF's l2_loss on the kernels.

    >>> m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    >>> for p in m.parameters(): _ = nn.init.constant_(p, 2.0)
    >>> squared_norms(m)
    {'all': 60.0, 'weights': 24.0}
    """
    with torch.no_grad():
        sq = {n: float(p.detach().double().pow(2).sum()) for n, p in model.named_parameters()}
        dims = {n: p.dim() for n, p in model.named_parameters()}
    return {"all": sum(sq.values()), "weights": sum(v for n, v in sq.items() if dims[n] > 1)}


class WeightNorm:
    """The squared parameter norms of `squared_norms`, before the step's update: with weight decay wd, the
    loss SGD minimises is the batch loss plus (wd/2) x 'all' (the "hidden L2" question of protocol §7)."""
    name = "weight_norm"   # the name a ProbeSpec gives (bnopt.measure.catalog)

    def __init__(self, model: nn.Module):
        self.model = model

    def __call__(self, ctx: ProbeContext) -> dict:
        return squared_norms(self.model)


class UnitStd:
    """Per-unit standard deviation sigma_j of every block's weight-layer output (the pre-norm,
    pre-activation values) over the batch and spatial positions, for every layer; and the BN scale
    gamma_j where the block has one. sigma_j is the quantity Theorem 4.1's gamma/sigma_j factor
    rests on ("large and uncontrolled" in networks without BN, says the paper)."""
    name = "unit_std"   # the name a ProbeSpec gives (bnopt.measure.catalog)

    def __init__(self, model: nn.Module):
        self.model = model

    def __call__(self, ctx: ProbeContext) -> dict:
        layers = {k: b.layer for k, b in enumerate(self.model.blocks, start=1)}
        record = {}
        for k, out in capture_outputs(self.model, layers, ctx.x).items():
            rec = {"sigma": per_unit(out).float().std(1, unbiased=False).cpu()}
            norm = self.model.blocks[k - 1].norm
            if getattr(norm, "weight", None) is not None:
                rec["gamma"] = norm.weight.detach().float().cpu().clone()
            record[k] = rec
        return record


def with_population_statistics(model: torch.nn.Module, batches) -> torch.nn.Module:
    """A copy of `model` whose BN running statistics are the plain average over `batches` (BN momentum
    None while they pass, train mode, no gradients): the population statistics eval mode then uses.
    The model itself is not changed."""
    twin = copy.deepcopy(model)
    norms = [m for m in twin.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    twin.train()
    with torch.no_grad():
        for xb in batches:
            twin(xb)
    return twin.eval()
