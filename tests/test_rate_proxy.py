"""The rate term of QAT: the differentiable bit estimate and its effect on a fit."""

import numpy as np
import pytest
import torch

from gipp_codec.errors import ConfigError
from gipp_codec.fit.api import fit_and_quantize
from gipp_codec.fit.config import FitConfig, QATConfig
from gipp_codec.fit.rate_proxy import RATE_CHANNELS, attribute_bits
from gipp_codec.quant.lsq import LSQPlus

BITS = (12, 12, 10, 10, 10, 6, 6, 6)


def _rows(n=400, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g) * 64
    a = torch.exp(torch.randn(n, generator=g))
    c = torch.exp(torch.randn(n, generator=g))
    b = (torch.rand(n, generator=g) - 0.5) * torch.sqrt(a * c)
    col = torch.randn(n, 3, generator=g) * 0.3 + 0.5
    return torch.cat((x, a[:, None], b[:, None], c[:, None], col), dim=1)


def _order0_bits(q: np.ndarray, levels: list[int]) -> float:
    """Sum over channels of -log2 of each integer's smoothed frequency (counts + 1/2)."""
    total = 0.0
    for j, lv in enumerate(levels):
        counts = np.bincount(q[:, j].astype(np.int64), minlength=lv).astype(np.float64) + 0.5
        p = counts / counts.sum()
        total += float(-np.log2(p[q[:, j].astype(np.int64)]).sum())
    return total


def test_estimate_is_the_order0_cost_of_the_integers_on_the_grid():
    rows = _rows()
    quant = LSQPlus(BITS)
    quant.init_minmax(rows)
    with torch.no_grad():
        on_grid = quant(rows)  # dequantized rows: every value exactly on its grid
    est = float(attribute_bits(on_grid, quant))
    q = quant.quantize(on_grid)[:, list(RATE_CHANNELS)]
    expected = _order0_bits(q, [(1 << BITS[j]) for j in RATE_CHANNELS])
    assert est == pytest.approx(expected, rel=1e-4)


def _on_grid(n: int) -> tuple[torch.Tensor, LSQPlus]:
    """Rows [n, 8] exactly on the grids of a quantizer fitted to them, and the quantizer."""
    rows = _rows(n=n)
    quant = LSQPlus(BITS)
    quant.init_minmax(rows)
    with torch.no_grad():
        return quant(rows), quant


def test_gradient_moves_a_value_towards_the_more_probable_grid_value():
    rows, quant = _on_grid(200)
    with torch.no_grad():
        # put 50 colours (red) on one grid value and a probe 0.3 steps above it
        s, o = float(quant.scale[5]), float(quant.offset[5])
        rows[:50, 5] = o + 20 * s
        rows[50, 5] = o + 20.3 * s
    probe = rows.clone().requires_grad_(True)
    attribute_bits(probe, quant).backward()
    assert float(probe.grad[50, 5]) > 0  # descending the bits lowers it, towards grid value 20
    assert float(probe.grad[:, 0:2].abs().sum()) == 0.0  # positions carry no rate term


def test_residual_gradient_moves_red_towards_greens_prediction():
    """With ``residuals`` red is priced by its residual from green's prediction: a red value
    0.3 steps above the prediction, where most reds sit on theirs, is pulled down, and its
    green up (each lowers the residual); and the residuals cost far fewer bits than the reds
    and blues by their own histograms."""
    from gipp_codec.fit.rate_proxy import residual_links

    rows, quant = _on_grid(200)
    with torch.no_grad():
        sr, or_ = float(quant.scale[5]), float(quant.offset[5])
        rows[:, 5] = rows[:, 6]  # red = green in value: the residual sits near one value
        rows[50, 5] = rows[50, 6] + 0.3 * sr
        rows[:, 5] = rows[:, 5].clamp(or_, or_ + 63 * sr)
    ref, gain, shift = residual_links(RATE_CHANNELS, quant.scale.detach().numpy(), quant.offset.detach().numpy(), True)
    assert list(ref) == [-1, -1, -1, 4, -1, 4] and gain[3] == pytest.approx(float(quant.scale.detach()[6]) / sr)
    probe = rows.clone().requires_grad_(True)
    attribute_bits(probe, quant, RATE_CHANNELS, residuals=True).backward()
    assert float(probe.grad[50, 5]) > 0 and float(probe.grad[50, 6]) < 0
    assert float(attribute_bits(rows, quant, RATE_CHANNELS, residuals=True)) < float(attribute_bits(rows, quant)) - 200


@pytest.mark.parametrize("channels,residuals,corr", [(RATE_CHANNELS, False, False), ((2, 3, 4), False, False),
                                                     (RATE_CHANNELS, True, False), ((2, 3, 4), False, True),
                                                     (RATE_CHANNELS, True, True)])
def test_the_cpu_kernel_adds_the_gradient_autograd_would(channels, residuals, corr):
    """``add_rate_gradients`` (the QAT loop's form on the CPU) adds to existing gradients what
    ``(attribute_bits * factor).backward()`` adds, up to float32 rounding, off the grid and
    with values clamped at both ends of a range and below a and c's log floor; with b coded
    as the correlation b / sqrt(ac) too, whose gradient also reaches a and c."""
    from gipp_codec.fit.rate_proxy import add_rate_gradients

    rows = _rows(n=300, seed=3)
    quant = LSQPlus(BITS, correlation=corr)
    quant.init_minmax(rows[:250])  # the last 50 rows partly outside the ranges: clamped
    rows[260, 2] = 0.0  # a at 0: below the log floor
    rows[261, 5] = -5.0
    rows[262, 7] = 9.0
    factor = 0.37
    start = [torch.randn(300, w, generator=torch.Generator().manual_seed(w)) for w in (2, 3, 3)]
    reference = [p.clone().requires_grad_(True) for p in torch.split(rows, [2, 3, 3], dim=1)]
    for p, g in zip(reference, start):
        p.grad = g.clone()
    (attribute_bits(torch.cat(reference, dim=1), quant, channels, residuals) * factor).backward()
    params = [p.clone().requires_grad_(True) for p in torch.split(rows, [2, 3, 3], dim=1)]
    for p, g in zip(params, start):
        p.grad = g.clone()
    bits = add_rate_gradients(params, quant, channels, factor, want_bits=True, residuals=residuals)
    assert bits == pytest.approx(float(attribute_bits(rows, quant, channels, residuals)), rel=1e-5)
    for ours, theirs, g in zip(params, reference, start):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-4, atol=1e-6)
    quiet = [p.clone().detach().requires_grad_(True) for p in torch.split(rows, [2, 3, 3], dim=1)]
    for p, g in zip(quiet, start):
        p.grad = g.clone()
    assert add_rate_gradients(quiet, quant, channels, factor, residuals=residuals) is None  # the trainer's call
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(quiet, params))
    moved = torch.cat([p.grad - g for p, g in zip(params, start)], dim=1)
    assert float(moved[:, [j for j in range(8) if j not in channels]].abs().max()) == 0.0
    assert int((moved[:, list(channels)] != 0).sum()) > 150 * len(channels)  # a real gradient, not zeros
    broken = [p.clone().detach().requires_grad_(True) for p in torch.split(rows, [2, 3, 3], dim=1)]
    with torch.no_grad():
        broken[1][5, 0] = float("nan")  # a NaN a: no gradient for it, and no stray histogram write
    add_rate_gradients(broken, quant, channels, factor, residuals=residuals)
    assert float(broken[1].grad[5, 0]) == 0.0 and bool(torch.isfinite(torch.cat([p.grad for p in broken], 1)).all())


def test_rate_weight_is_validated():
    with pytest.raises(ConfigError, match="rate_weight"):
        FitConfig().replace(qat=QATConfig(rate_weight=-1.0))
    with pytest.raises(ConfigError, match="rate_weight"):
        FitConfig().replace(qat=QATConfig(rate_weight=float("nan")))


def test_the_weight_falls_as_one_over_the_rate_above_its_rate():
    q = QATConfig(rate_weight=0.5, rate_weight_until_bpp=0.5)
    assert q.rate_weight_at(0.15) == q.rate_weight_at(0.5) == q.rate_weight_at(None) == 0.5
    assert q.rate_weight_at(1.0) == pytest.approx(0.25)
    assert q.rate_weight_at(2.0) == pytest.approx(0.125)
    assert QATConfig(rate_weight=0.5, rate_weight_until_bpp=None).rate_weight_at(2.0) == 0.5
    with pytest.raises(ConfigError, match="rate_weight_until_bpp"):
        FitConfig().replace(qat=QATConfig(rate_weight_until_bpp=0.0))


@pytest.mark.parametrize("rate,weight", [(dict(bpp=0.3), 0.5), (dict(bpp=1.0), 0.25), (dict(bpp=2.5), 0.1),
                                         (dict(gaussians=12), None)])
def test_the_encoder_trains_with_the_weight_of_its_rate(monkeypatch, rate, weight):
    from gipp_codec import encoder
    from gipp_codec.fit import api

    seen = []
    real = api.fit_and_quantize

    def spy(*args, config=None, **kwargs):
        seen.append(config.qat.rate_weight)
        return real(*args, config=config, **kwargs)

    monkeypatch.setattr(api, "fit_and_quantize", spy)
    img = _image()
    encoder.encode_with_report(img, iterations=8, **rate)
    if weight is None:  # N Gaussians: the weight at the rate N takes in the rate model
        nominal = encoder.nominal_bpp(QATConfig(), 12, None, img.shape[1], img.shape[0])
        assert nominal > 0.5
        weight = 0.5 * 0.5 / nominal
    assert seen and all(w == pytest.approx(weight) for w in seen)


def _image(h=20, w=28) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 100 * np.sin(xx / 3.0), 128 + 100 * np.cos(yy / 2.5), (xx * 9 + yy * 5) % 256], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_rate_term_lowers_the_cost_of_the_fitted_attributes():
    img = _image()
    costs = []
    for weight in (0.0, 30.0):
        cfg = FitConfig().replace(qat=QATConfig(start_frac=0.5, rate_weight=weight, refit_colors=False))
        q, _, _, rep = fit_and_quantize(img, 40, 200, seed=0, device="cpu", config=cfg, backend="reference")
        cols = list(RATE_CHANNELS)
        costs.append(_order0_bits(q[:, cols], [(1 << BITS[j]) for j in cols]) / q.shape[0])
        assert rep.psnr > 15.0  # still a fit of the image
    assert costs[1] < costs[0] - 1.0


def test_rate_term_on_the_covariance_only_leaves_the_colours_alone():
    """rate_channels="covariance" lowers the cost of a, b, c, and leaves the colours' where
    the term's "all" lowers it. (a, b, c at 6 bits: at 9, the smoothing of 512 levels swamps
    the counts of 40 Gaussians, and the measure hardly moves.)"""
    img = _image()
    cov, col = [2, 3, 4], [5, 6, 7]
    costs = {}
    for weight, channels in ((0.0, "all"), (30.0, "all"), (30.0, "covariance")):
        qat = QATConfig(start_frac=0.5, bits_covariance=6, rate_weight=weight, rate_channels=channels,
                        refit_colors=False)  # the term's own effect
        q, _, _, _ = fit_and_quantize(img, 40, 200, seed=0, device="cpu", config=FitConfig().replace(qat=qat),
                                      backend="reference")
        costs[(weight, channels)] = [_order0_bits(q[:, cols], [(1 << qat.bits()[j]) for j in cols]) / q.shape[0]
                                     for cols in (cov, col)]
    (cov0, col0), (_, col_all), (cov_cov, col_cov) = costs.values()
    assert cov_cov < cov0 - 0.5
    assert col_all < col0 - 0.5
    assert col_cov > col_all + 0.5


def test_rate_channels_is_validated():
    from gipp_codec.fit.config import RATE_CHANNEL_CHOICES
    from gipp_codec.fit.rate_proxy import RATE_CHANNEL_SETS

    assert set(RATE_CHANNEL_CHOICES) == set(RATE_CHANNEL_SETS)  # every accepted name has its channels
    with pytest.raises(ConfigError, match="rate_channels"):
        FitConfig().replace(qat=QATConfig(rate_channels="colours"))
