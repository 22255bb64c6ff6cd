"""The coarse-scale loss term: its block means, its image gradient through both mse_step paths, and the fit option."""

import numpy as np
import pytest
import torch

from gipp_codec.errors import ConfigError
from gipp_codec.fit.config import FitConfig
from gipp_codec.fit.coarse_loss import block_mean, coarse_grad_filter
from gipp_codec.fit.trainer import train
from gipp_codec.render import get_renderer, mse_step


def _scene(n=40, h=23, w=31, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g) * torch.tensor([w, h])  # [N, 2]
    covs = torch.tensor([[4.0, 0.5, 3.0]]).repeat(n, 1)  # [N, 3]
    colors = torch.rand(n, 3, generator=g)  # [N, 3]
    target = torch.rand(h, w, 3, generator=g)  # [H, W, 3]
    return means, covs, colors, target


def test_block_means_by_a_loop():
    x = torch.rand(2, 37, 53, generator=torch.Generator().manual_seed(1))  # [C, H, W], odd sides

    def by_loop(side):
        out = torch.empty_like(x)
        for i in range(0, 37, side):
            for j in range(0, 53, side):
                out[:, i:i + side, j:j + side] = x[:, i:i + side, j:j + side].mean(dim=(1, 2), keepdim=True)
        return out

    for side in (2, 4, 8, 64):
        assert torch.allclose(block_mean(x, side), by_loop(side), atol=1e-6)
    y = x.clone()
    coarse_grad_filter(0.5, 3)(y)
    assert torch.allclose(y, x + 0.5 * (by_loop(2) + by_loop(4) + by_loop(8)), atol=1e-6)


@pytest.mark.parametrize("renderer", ["cpu", "reference"])
def test_the_filtered_step_backpropagates_the_whole_loss(renderer):
    means, covs, colors, target = _scene()
    weight, levels = 0.7, 3
    leaves = [t.clone().requires_grad_() for t in (means, covs, colors)]
    residual = (get_renderer("reference")(*leaves, 23, 31) - target).permute(2, 0, 1)  # [3, H, W]
    loss = residual.square().mean() + weight * sum(block_mean(residual, s).square().mean() for s in (2, 4, 8))
    expected = torch.autograd.grad(loss, leaves)
    plain = [t.clone().requires_grad_() for t in (means, covs, colors)]
    mse_step(get_renderer(renderer), target)(*plain)
    filtered = [t.clone().requires_grad_() for t in (means, covs, colors)]
    _, mse = mse_step(get_renderer(renderer), target, coarse_grad_filter(weight, levels))(*filtered, loss=True)
    for got, want, base in zip(filtered, expected, plain):
        assert torch.allclose(got.grad, want, rtol=1e-4, atol=1e-6 * float(want.abs().max()))
        assert not torch.allclose(got.grad, base.grad)  # the term changed it
    assert abs(float(mse) - float(residual.detach().square().mean())) < 1e-6  # the loss reported stays the MSE


def test_the_fit_option():
    y, x = np.mgrid[0:16, 0:20]
    img = torch.from_numpy(np.stack([x / 20, y / 16, (x + y) % 5 / 5], -1).astype(np.float32))  # [16, 20, 3]
    cfg = FitConfig(grow_every_frac=0.5)
    ref = get_renderer("reference")
    plain = train(img, 30, 20, cfg, ref, seed=0)
    assert torch.equal(plain.means, train(img, 30, 20, cfg.replace(loss_coarse_levels=2), ref, seed=0).means)
    coarse = train(img, 30, 20, cfg.replace(loss_coarse_weight=1.0), ref, seed=0)
    assert not torch.equal(plain.means, coarse.means)
    for bad in (dict(loss_coarse_weight=-1.0), dict(loss_coarse_weight=float("nan")),
                dict(loss_coarse_weight=True), dict(loss_coarse_levels=0), dict(loss_coarse_levels=9),
                dict(loss_coarse_levels=1.5)):
        with pytest.raises(ConfigError):
            cfg.replace(**bad)
