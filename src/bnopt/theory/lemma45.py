"""Lemma 4.5 in the one-neuron model of Dannemann & Junike (2025): `OneNeuron` and the `lemma45_*` helpers."""
from __future__ import annotations

import math
from functools import cached_property

import torch

from bnopt.theory.bn import _normalize

# --------------------------------------------------------------------------------------------------
# Lemma 4.5

def lemma45_gap(w0: torch.Tensor, w_star: torch.Tensor) -> dict:
    """The identity behind Lemma 4.5's proof: with k = <W*, W0> / ||W*||^2,
    ||W0 - k W*||^2 - ||W0 - W*||^2 = -(||W*||^2 - <W*, W0>)^2 / ||W*||^2."""
    w0, ws = w0.flatten().double(), w_star.flatten().double()
    k = (ws @ w0) / (ws @ ws)
    return {"k": float(k), "lhs": float((w0 - k * ws).pow(2).sum() - (w0 - ws).pow(2).sum()),
            "rhs": float(-((ws @ ws) - ws @ w0) ** 2 / (ws @ ws))}


def lemma45_sides(w0: torch.Tensor, w_star: torch.Tensor, bn_dir: torch.Tensor) -> dict:
    """Both sides of Lemma 4.5 at initialisation(s) w0 (d,) or (n, d), when the BN network's optima
    are the line {c * bn_dir : c != 0} (a single BN unit with a free gamma, see `OneNeuron`):
      lhs = ||w0 - W^*_BN||^2, the squared distance from w0 to the nearest BN optimum;
      rhs = ||w0 - W*||^2 - (||W*||^2 - <W*, w0>)^2 / ||W*||^2, as printed. Expanding the square shows
            it is the squared distance from w0 to the line through W*.
    The lemma claims lhs <= rhs whenever <w0, W*> > 0; `holds` allows a relative rounding slack."""
    w0, ws, u = w0.double(), w_star.double(), bn_dir.double() / bn_dir.double().norm()
    n2 = w0.pow(2).sum(-1)
    lhs = n2 - (w0 @ u) ** 2
    rhs = (w0 - ws).pow(2).sum(-1) - ((ws @ ws) - w0 @ ws) ** 2 / (ws @ ws)
    return {"lhs": lhs, "rhs": rhs, "holds": lhs <= rhs + 1e-10 * (n2 + ws @ ws)}


def line_angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angle in radians, in [0, pi/2], between the lines spanned by a and b (float64, robust near 0)."""
    a, b = a.double() / a.double().norm(), b.double() / b.double().norm()
    b = b if float(a @ b) >= 0 else -b
    return float(2 * torch.atan2((a - b).norm(), (a + b).norm()))


class OneNeuron:
    """One neuron with the identity activation on a dataset (X: m x d, targets t: m), squared loss.

    standard:  L(w[, b])          = sum_i (w.x_i [+ b] - t_i)^2      (bias only if `bias=True`)
    with BN:   L^(w, gamma, beta) = sum_i (gamma yhat_i + beta - t_i)^2,  yhat = BN(Xw) over the m
               points (batch mean, biased std, eps = 0), gamma and beta free.
    This is the setting of Dannemann & Junike (2025). Closed forms (for a non-constant Xw):
      * for fixed w the best affine is beta = mean(t), gamma = <yhat, t> / m, leaving
        L^ = ||t - mean(t)||^2 (1 - rho^2), rho the correlation of Xw with t; so L^ depends on the
        direction of w only, and its optima are the line through w_c = argmin ||Xc w - tc||
        (the centred least-squares fit, i.e. the fit *with* an intercept), w != 0;
      * the standard optimum W* is the least-squares fit without an intercept (with `bias=True`:
        with one, and then W* = w_c)."""

    def __init__(self, X: torch.Tensor, t: torch.Tensor, bias: bool = False):
        self.X, self.t, self.bias = X.double(), t.double().flatten(), bias
        m, d = self.X.shape
        if m != len(self.t):
            raise ValueError(f"X has {m} rows but t has {len(self.t)} targets")
        if torch.linalg.matrix_rank(self.X - self.X.mean(0)) < d:
            raise ValueError(f"the centred inputs have rank < d = {d} (need at least d + 1 points "
                             "in general position): the BN optimum is not a single line")

    def standard_loss(self, w: torch.Tensor, b=0.0) -> torch.Tensor:
        """L at weights w (d,), or at each row of w (n, d)."""
        return (w @ self.X.T + (b if self.bias else 0.0) - self.t).pow(2).sum(-1)

    def yhat(self, w: torch.Tensor) -> torch.Tensor:
        """BN(Xw) over the m points, eps = 0."""
        return _normalize((self.X @ w).unsqueeze(1), 0.0)[0].squeeze(1)

    def bn_loss(self, w: torch.Tensor, gamma, beta) -> torch.Tensor:
        return (gamma * self.yhat(w) + beta - self.t).pow(2).sum()

    def best_affine(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta) minimising the BN loss at fixed w."""
        return (self.yhat(w) * self.t).mean(), self.t.mean()

    @cached_property
    def _standard_optimum(self) -> torch.Tensor:
        A = torch.cat([self.X, torch.ones(len(self.t), 1, dtype=self.X.dtype)], 1) if self.bias else self.X
        return torch.linalg.lstsq(A, self.t.unsqueeze(1)).solution.squeeze(1)[: self.X.shape[1]]

    @cached_property
    def _bn_direction(self) -> torch.Tensor:
        Xc, tc = self.X - self.X.mean(0), self.t - self.t.mean()
        w = torch.linalg.lstsq(Xc, tc.unsqueeze(1)).solution.squeeze(1)
        return w / w.norm()

    def standard_optimum(self) -> torch.Tensor:
        """W*: the weights (not the bias) of the least-squares fit of the standard neuron."""
        return self._standard_optimum.clone()

    def bn_direction(self) -> torch.Tensor:
        """Unit vector u: the BN optima are {c u : c != 0} (c > 0 exactly when the best gamma > 0)."""
        return self._bn_direction.clone()

    def bn_min_loss(self) -> float:
        """The BN network's optimal loss, from the closed form at u."""
        u = self.bn_direction()
        return float(self.bn_loss(u, *self.best_affine(u)))

    def bn_gradient(self, w: torch.Tensor) -> torch.Tensor:
        """d L^ / d w at w, with gamma and beta at their best values for this w (the gradient in
        gamma and beta is then zero, so this is the whole gradient)."""
        w = w.detach().double().clone().requires_grad_(True)
        gamma, beta = self.best_affine(w.detach())
        (g,) = torch.autograd.grad(self.bn_loss(w, gamma, beta), w)
        return g

    def descend_bn(self, w0: torch.Tensor, steps: int = 3000, lr: float = 0.05) -> dict:
        """Plain gradient descent on L^ in (w, gamma, beta) jointly, from (w0, gamma=1, beta=0):
        an independent, numerical check of the closed-form optimum."""
        w = w0.detach().double().clone().requires_grad_(True)
        gb = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([w, gb], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            loss = self.bn_loss(w, gb[0], gb[1]) / len(self.t)
            loss.backward()
            opt.step()
        w, (gamma, beta) = w.detach(), gb.detach()
        return {"w": w, "gamma": float(gamma), "beta": float(beta),
                "loss": float(self.bn_loss(w, gamma, beta)), "angle_to_bn_line": line_angle(w, self.bn_direction())}


def lemma45_random_inits(problem: OneNeuron, n: int, generator: torch.Generator) -> dict:
    """Lemma 4.5 at n isotropic random initialisations w0 ~ N(0, I), each reflected so that
    <w0, W*> > 0 (the lemma's hypothesis). Returns per-draw lhs, rhs and whether the lemma holds."""
    ws = problem.standard_optimum()
    W0 = torch.randn(n, len(ws), generator=generator, dtype=torch.float64)
    return lemma45_sides(W0 * torch.sign(W0 @ ws).unsqueeze(1), ws, problem.bn_direction())


def random_one_neuron(m: int, d: int, generator: torch.Generator, input_mean: float = 1.0,
                      target_bias: float = 1.0, noise: float = 0.5, bias: bool = False) -> OneNeuron:
    """A random instance: inputs x ~ N(input_mean, I_d) (a non-zero mean, as after a ReLU), targets from
    a random linear teacher with an intercept, t = x.a + target_bias + noise * N(0, 1), a ~ N(0, I_d / d)."""
    X = torch.randn(m, d, generator=generator, dtype=torch.float64) + input_mean
    a = torch.randn(d, generator=generator, dtype=torch.float64) / math.sqrt(d)
    t = X @ a + target_bias + noise * torch.randn(m, generator=generator, dtype=torch.float64)
    return OneNeuron(X, t, bias=bias)


def lemma45_sweep(m: int, d: int, n_datasets: int, n_inits: int, seed: int = 0, **kw) -> dict:
    """Lemma 4.5 over `n_datasets` random instances (`random_one_neuron(m, d, **kw)`) and `n_inits`
    random initialisations each. Per dataset: the fraction of initialisations at which the lemma
    fails, and the angle between the line of W* and the line of BN optima (the lemma's proof needs 0).
    For isotropic w0 the failure probability is exactly 1/2 whenever that angle is not 0: the lemma
    holds iff |cos(w0, u)| >= |cos(w0, W*)|, and the projection of w0 on the plane of u and W* is
    isotropic, so the two bisectors of the lines split its directions in half."""
    gen = torch.Generator().manual_seed(seed)
    fail, angle = [], []
    for _ in range(n_datasets):
        p = random_one_neuron(m, d, gen, **kw)
        r = lemma45_random_inits(p, n_inits, gen)
        fail.append(1.0 - float(r["holds"].double().mean()))
        angle.append(line_angle(p.standard_optimum(), p.bn_direction()))
    return {"fail": torch.tensor(fail, dtype=torch.float64), "angle": torch.tensor(angle, dtype=torch.float64)}
