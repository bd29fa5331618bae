"""Loss-landscape probes along the update direction (paper Sec. 3.2, App. A.2.2; Figs 4, 10, 11).

At a training step with weights w and minibatch gradient g, on the *same* batch, with BN in training
mode and the same in-network noise draw as the step itself, evaluate w_eta = w - eta * d for a grid of
step sizes eta, where d = g (the paper) or a random direction scaled to ||g|| (the paper's text-only
claim). Reported per step:

  loss           L(w_eta) for each eta (the paper plots the band min..max)
  grad_diff      ||grad L(w) - grad L(w_eta)|| for each eta ("gradient predictiveness")
  beta           max over eta of grad_diff / ||w - w_eta||  ("effective beta-smoothness")

Known answer (tested): for L = 1/2 w^T A w, grad_diff = eta ||A d|| and beta = ||A d|| / ||d||.
"""
from __future__ import annotations

import torch

from bnopt.measure.probes import ProbeContext, RngSnapshot, full_precision, isolated


def flat_grad(model, loss) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def set_flat(model, flat: torch.Tensor) -> None:
    """Copy a flat vector into the model's trainable parameters (in order)."""
    params = [p for p in model.parameters() if p.requires_grad]
    chunks = torch.split(flat, [p.numel() for p in params])
    with torch.no_grad():
        torch._foreach_copy_([p.data for p in params], [c.view_as(p) for c, p in zip(chunks, params)])


def get_flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])


DIRECTIONS = ("gradient", "random")


def _check(etas, direction: str) -> None:
    """A clear error for an unknown direction or a step size that is not positive."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; valid choices: {', '.join(DIRECTIONS)}")
    if not len(etas) or any(e <= 0 for e in etas):
        raise ValueError(f"etas must be positive step sizes, got {list(etas)}")


def landscape(model, x, y, loss_fn, etas, direction: str = "gradient", train_mode: bool = True, seed: int = 0,
              step: int = 0) -> dict:
    """The loss and gradient of loss_fn(model(x), y) along w - eta * d for each step size in `etas`, with d the
    gradient at w (`direction='gradient'`, the paper) or a Gaussian direction scaled to its norm ('random', drawn
    from `seed` and `step`). BN in train mode (`train_mode=True`, the paper's setting) or eval mode; the same
    in-network noise draw at every point; the model (weights, grads, modes, RNG) is left exactly as it was.
    Returns {'loss0', 'loss', 'grad_diff', 'beta', 'grad_norm', 'etas'} (the module docstring defines them)."""
    _check(etas, direction)
    with isolated(model):
        model.train(train_mode)
        rng = RngSnapshot()

        def loss_and_grad():
            rng.restore()                          # the same noise draw at every point
            loss = loss_fn(full_precision(model(x)), y)
            return loss.detach(), flat_grad(model, loss)

        w = get_flat(model).clone()
        loss0, g = loss_and_grad()
        if direction == "gradient":
            d = g
        else:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
            d = torch.randn(g.numel(), generator=gen, dtype=g.dtype).to(g.device)
            d = d * (g.norm() / d.norm())
        d_norm = d.norm()
        losses, diffs = [], []
        for eta in etas:
            set_flat(model, w - float(eta) * d)
            loss_e, g_e = loss_and_grad()
            losses.append(loss_e)
            diffs.append((g - g_e).norm())
        losses, diffs = torch.stack(losses).cpu(), torch.stack(diffs).cpu()
        etas = torch.tensor([float(e) for e in etas], dtype=diffs.dtype)
        beta = (diffs / (etas * d_norm.cpu())).max()
    return {"loss0": float(loss0), "loss": losses, "grad_diff": diffs, "beta": float(beta),
            "grad_norm": float(g.norm()), "etas": etas}


class LandscapeProbe:
    """`landscape` at a training step, on the step's batch, in the mode the model trains in.
    etas: step sizes (paper VGG: 0.05, 0.1, 0.2, 0.4; DLN: 1e-8 .. 3e-5).
    direction: 'gradient' (paper) or 'random' (a fixed-seed Gaussian direction per call, scaled to ||g||)."""
    name = "landscape"   # the name a ProbeSpec gives (bnopt.measure.catalog)

    DIRECTIONS = DIRECTIONS

    def __init__(self, model, etas=(0.05, 0.1, 0.2, 0.4), direction: str = "gradient", seed: int = 0):
        _check(etas, direction)
        self.model, self.etas, self.direction, self.seed = model, [float(e) for e in etas], direction, seed

    def __call__(self, ctx: ProbeContext) -> dict:
        return landscape(self.model, ctx.x, ctx.y, ctx.loss_fn, self.etas, self.direction,
                         train_mode=self.model.training, seed=self.seed, step=ctx.step)
