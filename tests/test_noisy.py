"""The paper's noisy-BN noise model: statistics of the injected noise, train-only, registry."""
import torch

from bnopt.nets import norms


def test_noise_statistics_match_algorithm_1():
    torch.manual_seed(0)
    layer = norms.make_norm("noise_only", 64, spatial=True).train()
    a = torch.ones(4000, 64, 1, 1)                     # a = 1: output s + m, per channel
    out = layer(a).squeeze(-1).squeeze(-1)             # (4000, 64)
    # per channel: E[s + m] = sigma_j + mu_j, Var = r_sigma^2 + r_mu^2 / 3 (uniform width 2 r_mu)
    var = out.var(0)
    assert torch.allclose(var, torch.full((64,), 0.1 ** 2 + 0.1 ** 2 / 3), rtol=0.15)
    means = out.mean(0)                                # sigma_j + mu_j, sigma in U(1, 1.25), mu in U(-0.5, 0.5)
    assert float(means.min()) > 1 - 0.5 - 0.02 and float(means.max()) < 1.25 + 0.5 + 0.02
    assert float(means.std()) > 0.2                  # the channel parameters really are redrawn per channel
    zero = layer(torch.zeros(4000, 64, 1, 1)).squeeze(-1).squeeze(-1)   # a = 0: only m ~ U(mu -+ 0.1)
    spread = zero.max(0).values - zero.min(0).values
    assert float(spread.max()) <= 0.2 + 1e-6 and float(spread.min()) > 0.19


def test_noise_is_redrawn_every_step_and_off_in_eval():
    torch.manual_seed(1)
    layer = norms.make_norm("noisy_batch", 8, spatial=False)
    x = torch.randn(256, 8)
    assert not torch.equal(layer(x), layer(x))
    layer.eval()
    assert torch.equal(layer(x), layer.inner(x))
    assert "noisy_batch" in norms.available() and "noise_only" in norms.available()


def test_channels_last_noise_has_the_same_law_and_layout():
    """The noise is drawn in the activation's own memory layout (the fast path for channels-last
    VGGs): same per-channel law as Algorithm 1, output stays channels-last, and a = 0 leaves m only."""
    torch.manual_seed(0)
    layer = norms.make_norm("noise_only", 16, spatial=True).train()
    a = torch.ones(500, 16, 4, 4).contiguous(memory_format=torch.channels_last)
    out = layer(a)
    assert out.is_contiguous(memory_format=torch.channels_last)
    per_ch = out.transpose(0, 1).reshape(16, -1)                 # (C, N*H*W)
    assert torch.allclose(per_ch.var(1), torch.full((16,), 0.1 ** 2 + 0.1 ** 2 / 3), rtol=0.1)
    spread = per_ch.mean(1)                                      # sigma_j + mu_j, one draw per channel
    assert float(spread.std()) > 0.2
    zero = layer(torch.zeros_like(a)).transpose(0, 1).reshape(16, -1)
    width = zero.max(1).values - zero.min(1).values
    assert float(width.max()) <= 0.2 + 1e-6 and float(width.min()) > 0.19
