"""The colour refit after QAT (gipp_codec.fit.color_refit)."""

import numpy as np
import pytest
import torch

from gipp_codec.fit import color_refit
from gipp_codec.fit.api import _refits_colors, fit_and_quantize
from gipp_codec.fit.config import FitConfig, QATConfig
from gipp_codec.quant.dequant import dequantize_linear, dequantize_rows
from gipp_codec.quant.lsq import split_attributes
from gipp_codec.render import get_renderer


def _image(h=24, w=32) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 100 * np.sin(xx / 3.0), 128 + 90 * np.cos(yy / 2.5 + xx / 7.0), (xx * 9 + yy * 5) % 256], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


# The optimiser of the defaults before commit 0afa7cf (and its epsilon, the default until the
# fourteenth session): on this image its QAT ends with colour codes off their least-squares
# optimum, which is what these tests need. (With today's defaults QAT converges further
# here and the refit, rightly, changes nothing.) The scene is also pinned to the position
# ranges QAT learned before the seventeenth session (position_hold "none"): staged rounding
# beats rounding once on the measured Kodak files, not on every scene, and on the scene the
# held ranges give, rounding once ends 0.15 % closer. Growth takes the k largest errors, as
# before the thirty-second session, at every density: with the peaks QAT's colours end at
# their optimum here.
_LOOSER_FIT = dict(lr_means=0.5, lr_covs=0.5, adam_beta2=0.999, adam_eps=1e-8, grow_peak_radius=0,
                   grow_peak_radius_per_spacing=None)


def _qat_fit(refit: bool, img=None, seed: int = 0):
    img = _image() if img is None else img
    # no rate term: the refit runs only where no rate term covers the colours
    cfg = FitConfig().replace(**_LOOSER_FIT).with_qat(start_frac=0.5, refit_colors=refit, code_search_sweeps=0,
                                                      position_hold="none", rate_weight=0.0)
    return fit_and_quantize(img, 40, 160, seed=seed, device="cpu", config=cfg, backend="cpu")


def _scene(q, scales, offsets):
    m, c, _ = (torch.from_numpy(np.ascontiguousarray(x)) for x in split_attributes(dequantize_rows(q, scales, offsets)))
    return m, c


def _squared_error(renderer, m, c, codes, scales, offsets, target):
    colors = torch.from_numpy(dequantize_linear(codes, scales[5:8], offsets[5:8]))
    with torch.no_grad():
        img = renderer(m, c, colors, target.shape[0], target.shape[1]).clamp(0, 1)
    return float(torch.sum((img - target) ** 2))


def test_refit_moves_only_the_colours_and_raises_the_psnr():
    """Over six fits (seeds), the refit leaves every geometry code, scale and offset as it
    is, never lowers the PSNR, and moves the colours of most fits, which raises the PSNR on
    average. (Whether one tiny fit's QAT leaves its colours off their optimum depends on
    the CPU numba compiles for: on a Zen 4 seed 3's are already at it, on the CI's machine
    seed 0's, so no single fit is asserted.)"""
    gains, moved = [], 0
    for seed in range(6):
        q0, s0, o0, rep0 = _qat_fit(False, seed=seed)
        q1, s1, o1, rep1 = _qat_fit(True, seed=seed)
        assert np.array_equal(q0[:, :5], q1[:, :5]) and np.array_equal(s0, s1) and np.array_equal(o0, o1), seed
        assert int(q1[:, 5:8].max()) <= 63
        assert rep1.psnr >= rep0.psnr - 1e-9, seed
        moved += not np.array_equal(q0[:, 5:8], q1[:, 5:8])
        gains.append(rep1.psnr - rep0.psnr)
    # on a Zen 4: five of six moved, gains 0.07 to 0.50 dB, mean 0.25 dB
    assert moved >= 3
    assert np.mean(gains) > 0.05


def test_staged_rounding_beats_rounding_the_least_squares_optimum():
    """Re-solving the free colours after each stage absorbs the rounding of the fixed ones:
    over six fits (seeds) its squared error is below that of the nearest codes to the
    continuous optimum in total, and never above QAT's codes. (Not on every scene: on one
    of these six, on a Zen 4, rounding once ends 0.02 % closer; where QAT's colours are
    already at their optimum, both keep them. One scene alone was too fragile: which fits
    these are depends on the CPU numba compiles for.)"""
    img = _image()
    target = torch.from_numpy(img.astype(np.float32) / np.float32(255.0))
    renderer = get_renderer("cpu", torch.device("cpu"))
    total_staged = total_rounded = 0.0
    for seed in range(6):
        q, scales, offsets, _ = _qat_fit(False, seed=seed)
        m, c = _scene(q, scales, offsets)
        codes = q[:, 5:8]
        staged = color_refit.refit_color_codes(renderer, m, c, codes, scales[5:8], offsets[5:8], 64, target)
        err = lambda k: _squared_error(renderer, m, c, k.astype(np.float64), scales, offsets, target)  # noqa: E731

        # rounding the continuous optimum once: the same first solve, then every value at once
        orig = color_refit.STAGES
        try:
            color_refit.STAGES = (1.0,)
            rounded = color_refit.refit_color_codes(renderer, m, c, codes, scales[5:8], offsets[5:8], 64, target)
        finally:
            color_refit.STAGES = orig
        assert err(staged) <= err(codes), seed
        total_staged += err(staged)
        total_rounded += err(rounded)
    assert total_staged < total_rounded


def test_refit_never_returns_codes_that_render_farther():
    """Whatever codes come in, the ones returned render at least as close to the image."""
    q, scales, offsets, _ = _qat_fit(False)
    target = torch.from_numpy(_image().astype(np.float32) / np.float32(255.0))
    renderer = get_renderer("cpu", torch.device("cpu"))
    m, c = _scene(q, scales, offsets)
    rng = np.random.default_rng(0)
    for codes in (q[:, 5:8], rng.integers(0, 64, size=(q.shape[0], 3)).astype(q.dtype)):
        out = color_refit.refit_color_codes(renderer, m, c, codes, scales[5:8], offsets[5:8], 64, target)
        assert out.dtype == codes.dtype and out.shape == codes.shape
        assert _squared_error(renderer, m, c, out.astype(np.float64), scales, offsets, target) <= \
            _squared_error(renderer, m, c, codes.astype(np.float64), scales, offsets, target)


def test_a_refit_that_renders_farther_is_not_taken(monkeypatch):
    """When the solve goes wrong (here: every colour pushed to the top of its range), the
    codes that came in are returned as they are."""
    q, scales, offsets, _ = _qat_fit(False)
    target = torch.from_numpy(_image().astype(np.float32) / np.float32(255.0))
    renderer = get_renderer("cpu", torch.device("cpu"))
    m, c = _scene(q, scales, offsets)
    monkeypatch.setattr(color_refit, "_cg", lambda apply_normal, rhs, x, free, iterations: x + 10.0)
    out = color_refit.refit_color_codes(renderer, m, c, q[:, 5:8], scales[5:8], offsets[5:8], 64, target)
    assert np.array_equal(out, q[:, 5:8])


@pytest.mark.parametrize("qat,refits", [
    (QATConfig(), False),  # the default rate term covers the colours
    (QATConfig(rate_weight=0.0), True),
    (QATConfig(rate_weight=0.0, refit_colors=False), False),
    (QATConfig(rate_weight=0.5), False),  # the term covers the colours: a refit would undo it
    (QATConfig(rate_weight=0.5, rate_channels="covariance"), True),
])
def test_refit_is_skipped_where_a_rate_term_covers_the_colours(qat, refits):
    assert _refits_colors(FitConfig(qat=qat)) is refits
    assert _refits_colors(FitConfig.paper()) is False  # the published protocol has none


def test_weighted_normal_equations_solve_the_masked_least_squares():
    """With pixel weights, conjugate gradients on the normal equations reach the least-squares
    colours of the masked problem, solved densely from the render's columns; weights of one
    give exactly the unweighted equations."""
    rng = np.random.default_rng(3)
    n, h, w = 6, 10, 12
    m = torch.from_numpy(rng.uniform(1.0, 11.0, (n, 2)).astype(np.float32))
    var = rng.uniform(2.0, 6.0, (n, 2))
    c = torch.from_numpy(np.stack([var[:, 0], rng.uniform(-0.5, 0.5, n), var[:, 1]], 1).astype(np.float32))
    target = torch.from_numpy(rng.uniform(0.0, 1.0, (h, w, 3)).astype(np.float32))
    mask = torch.from_numpy((rng.uniform(size=(h, w, 3)) < 0.6).astype(np.float32))
    renderer = get_renderer("cpu")
    columns = []  # the render of each Gaussian at colour 1: A's columns, [H * W] each
    for i in range(n):
        one = torch.zeros((n, 3))
        one[i, 0] = 1.0
        columns.append(renderer(m, c, one, h, w)[..., 0].double().reshape(-1).numpy())
    a = np.stack(columns, 1)  # [H * W, N]
    expected = np.stack([np.linalg.lstsq(a * mask[..., k].double().reshape(-1, 1).numpy(),
                                         (mask[..., k] * target[..., k]).double().reshape(-1).numpy(), rcond=None)[0]
                         for k in range(3)], 1)  # [N, 3]
    apply_normal, rhs = color_refit.normal_equations(renderer, m, c, target, mask)
    got = color_refit._cg(apply_normal, rhs, torch.zeros((n, 3)), torch.ones((n, 3)), 60).double().numpy()
    assert np.allclose(got, expected, rtol=1e-3, atol=1e-3)
    plain = color_refit.normal_equations(renderer, m, c, target)
    ones = color_refit.normal_equations(renderer, m, c, target, torch.ones_like(target))
    probe = torch.from_numpy(rng.uniform(-1, 1, (n, 3)).astype(np.float32))
    assert torch.equal(plain[1], ones[1]) and torch.equal(plain[0](probe), ones[0](probe))
    unmasked = np.linalg.lstsq(a, target[..., 0].double().reshape(-1).numpy(), rcond=None)[0]
    assert not np.allclose(unmasked, expected[:, 0], rtol=1e-3, atol=1e-3)  # the mask matters here
