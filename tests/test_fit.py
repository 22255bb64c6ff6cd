"""The fitting pipeline: init, CAF, growth, pruning, optimisation, determinism, validation."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from gipp_codec.errors import ConfigError, InputImageError
from gipp_codec.fit.api import fit_image, resolve_device
from gipp_codec.fit.config import FitConfig
from gipp_codec.fit.densify import (GROW_MIN_STEPS, GrowthSchedule, growth_error, matched_error, matched_error_torch,
                                    matched_variance, new_gaussians, pixel_error, select_pixels)
from gipp_codec.fit.init import caf_lp, density_caf_lp, gradient_density, sample_positions, sparse_init
from gipp_codec.fit.prune import (contrast_importance, importance, keep_mask, local_variance,
                                  removal_contrast_importance, removal_importance)
from gipp_codec.render.convention import valid_mask
from gipp_codec.fit.trainer import RowAdam, _mse, half_resolution, lr_factor, train
from gipp_codec.metrics import psnr
from gipp_codec.render import get_renderer

H, W = 16, 24




def _image(h=H, w=W) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([
        128 + 100 * np.sin(xx / 3.0), 128 + 100 * np.cos(yy / 2.5), (xx * 9 + yy * 5) % 256,
    ], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _fit(n=30, its=60, seed=0, cfg=None):
    return fit_image(_image(), n, its, seed=seed, device="cpu", config=cfg, backend="reference")


def test_caf_lp_formula():
    assert caf_lp(512, 768, 2500) == pytest.approx(512 * 768 / (9 * math.pi * 2500))
    assert caf_lp(512, 768, 10) == 300.0  # capped
    assert caf_lp(512, 768, 10, caf_max=50.0) == 50.0
    with pytest.raises(ValueError):
        caf_lp(10, 10, 0)


def test_sparse_init_ranges_and_caf():
    gen = torch.Generator().manual_seed(3)
    means, covs, colors = sparse_init(500, H, W, gen, caf=True)
    lp = caf_lp(H, W, 500)
    assert means.shape == (500, 2) and covs.shape == (500, 3) and colors.shape == (500, 3)
    assert float(means[:, 0].min()) >= 0 and float(means[:, 0].max()) < W
    assert float(means[:, 1].min()) >= 0 and float(means[:, 1].max()) < H
    a, b, c = covs[:, 0] - lp, covs[:, 1], covs[:, 2] - lp
    assert float(a.min()) >= 0.5 - 1e-5 and float(a.max()) < 1.5 + 1e-5
    assert float(c.min()) >= 0.5 - 1e-5 and float(c.max()) < 1.5 + 1e-5
    assert float(b.min()) >= 0.0 and float(b.max()) < 1.0
    assert torch.count_nonzero(colors) == 0
    _, covs_nocaf, _ = sparse_init(500, H, W, torch.Generator().manual_seed(3), caf=False)
    assert torch.allclose(covs - covs_nocaf, torch.tensor([lp, 0.0, lp]).expand(500, 3), atol=1e-4)


def test_gradient_density_puts_the_non_uniform_share_on_the_edges():
    img = torch.zeros(6, 8, 3)
    img[:, 5:] = 1.0  # a vertical edge between columns 4 and 5
    d = gradient_density(img, 0.3)
    assert d.shape == (6, 8) and float(d.sum()) == pytest.approx(1.0)
    even = 0.3 / 48
    assert torch.allclose(d[:, 4], torch.full((6,), even + 0.7 / 6, dtype=torch.float64))
    others = torch.cat((d[:, :4], d[:, 5:]), dim=1)
    assert torch.allclose(others, torch.full_like(others, even))
    assert torch.allclose(gradient_density(img, 1.0), torch.full((6, 8), 1 / 48, dtype=torch.float64))
    flat = gradient_density(torch.full((3, 5, 3), 0.4), 0.0)  # no gradient anywhere: uniform
    assert torch.allclose(flat, torch.full((3, 5), 1 / 15, dtype=torch.float64))
    assert torch.allclose(gradient_density(torch.rand(1, 1, 3), 0.2), torch.ones(1, 1, dtype=torch.float64))


def test_sample_positions_draw_pixels_by_the_density():
    d = torch.zeros(4, 5, dtype=torch.float64)
    d[1, 3] = 3.0  # unnormalised is fine
    d[2, 0] = 1.0
    pos, idx = sample_positions(d, 4000, torch.Generator().manual_seed(0))
    assert pos.shape == (4000, 2) and pos.dtype == torch.float32
    pix = pos.floor().long()
    assert torch.equal(idx, pix[:, 1] * 5 + pix[:, 0])
    in_13 = (pix[:, 0] == 3) & (pix[:, 1] == 1)
    in_20 = (pix[:, 0] == 0) & (pix[:, 1] == 2)
    assert bool((in_13 | in_20).all())
    assert 0.70 < float(in_13.float().mean()) < 0.80  # 3 : 1
    frac = pos - pos.floor()
    assert float(frac.min()) >= 0.0 and float(frac.max()) < 1.0 and float(frac.std()) > 0.2


def test_gradient_placement_starts_the_gaussians_on_the_edges():
    img = np.zeros((16, 24, 3), dtype=np.uint8)
    img[:, 12:] = 255
    target = torch.from_numpy(img.astype(np.float32) / 255.0)
    gen = torch.Generator().manual_seed(1)
    means, _, _ = sparse_init(400, 16, 24, gen, density=gradient_density(target, 0.0))
    assert bool(((means[:, 0] >= 11.0) & (means[:, 0] < 12.0)).all())
    cfg = FitConfig(init_positions="gradient", init_uniform_share=0.0, grow_stop_frac=0.0, init_fraction_dense=None)
    out = train(target, 20, 1, cfg, get_renderer("reference"), seed=0)  # N/2; one step moves <= 0.7 px
    assert out.means.shape[0] == 10 and bool(((out.means[:, 0] > 10.0) & (out.means[:, 0] < 13.0)).all())
    out = train(target, 20, 1, FitConfig(init_positions="uniform", grow_stop_frac=0.0), get_renderer("reference"), seed=0)
    assert bool(((out.means[:, 0] < 10.0) | (out.means[:, 0] > 13.0)).any())  # uniform: spread out


def test_density_caf_gives_each_gaussian_the_area_where_it_sits():
    even = torch.full((3,), 1.0 / (H * W), dtype=torch.float64)
    assert torch.allclose(density_caf_lp(even, 40), torch.full((3,), caf_lp(H, W, 40)))  # uniform = the paper's
    lp = density_caf_lp(torch.tensor([0.01, 0.001, 1e-9], dtype=torch.float64), 50, caf_max=100.0)
    assert lp.tolist() == pytest.approx([1 / (9 * math.pi * 50 * 0.01), 1 / (9 * math.pi * 50 * 0.001), 100.0], rel=1e-6)
    with pytest.raises(ValueError):
        density_caf_lp(even, 0)
    d = torch.full((16, 24), 0.1 / 384, dtype=torch.float64)
    d[:, 11] += 0.9 / 16  # an edge column holds 90 % of the probability
    gen = torch.Generator().manual_seed(2)
    means, covs, _ = sparse_init(300, 16, 24, gen, density=d, caf_by_density=True)
    on_edge = (means[:, 0] >= 11.0) & (means[:, 0] < 12.0)
    assert 0 < int((~on_edge).sum()) < int(on_edge.sum())
    lp_edge, lp_flat = 1 / (9 * math.pi * 300 * float(d[0, 11])), 1 / (9 * math.pi * 300 * float(d[0, 0]))
    lp = torch.where(on_edge, lp_edge, lp_flat)
    base, base_c = covs[:, 0] - lp, covs[:, 2] - lp  # the random parts, U[0.5, 1.5)
    for part in (base, base_c):
        assert float(part.min()) >= 0.5 - 1e-4 and float(part.max()) < 1.5 + 1e-4
    # the same draws with one lp for all: only the CAF term differs
    _, covs_even, _ = sparse_init(300, 16, 24, torch.Generator().manual_seed(2), density=d)
    assert torch.allclose(covs[:, 1], covs_even[:, 1])
    assert torch.allclose(covs_even[:, 0] - base, torch.full((300,), caf_lp(16, 24, 300)), atol=1e-4)


def test_sampled_growth_pixels_follow_the_error():
    err = torch.zeros(4, 5)
    err[1, 3] = 3.0
    err[2, 0] = 1.0
    err[0, 4] = 0.5
    pix = select_pixels(err, 5, torch.Generator().manual_seed(0))
    assert pix.shape == (5, 2) and len({tuple(p) for p in pix.tolist()}) == 5  # distinct
    assert sorted(map(tuple, pix[:3].tolist())) == [(0, 4), (1, 3), (2, 0)]  # every non-zero one first
    flat = [select_pixels(torch.zeros(4, 5), 3, torch.Generator().manual_seed(s)).tolist() for s in range(4)]
    assert len({str(p) for p in flat}) > 1  # no error anywhere: random pixels, not the first ones
    firsts = [tuple(select_pixels(err, 1, torch.Generator().manual_seed(s))[0].tolist()) for s in range(3000)]
    share = {p: firsts.count(p) / 3000 for p in ((1, 3), (2, 0), (0, 4))}
    assert share[(1, 3)] == pytest.approx(3 / 4.5, abs=0.03) and share[(2, 0)] == pytest.approx(1 / 4.5, abs=0.03)
    sq = [tuple(select_pixels(err, 1, torch.Generator().manual_seed(s), power=2.0)[0].tolist()) for s in range(3000)]
    assert sq.count((1, 3)) / 3000 == pytest.approx(9 / 10.25, abs=0.03)


def test_peak_growth_takes_local_maxima_first():
    err = torch.zeros(5, 6)
    err[1, 1:5] = torch.tensor([4.0, 5.0, 4.5, 3.0])  # an edge: four large errors side by side
    err[4, 5] = 1.0  # a lone, smaller error far from it
    assert sorted(map(tuple, select_pixels(err, 2).tolist())) == [(1, 2), (1, 3)]  # the two largest
    peaks = select_pixels(err, 2, peak_radius=1)
    assert peaks.tolist() == [[1, 2], [4, 5]]  # the edge's peak, then the lone one
    every = select_pixels(err, 30, peak_radius=1).tolist()  # all 30 pixels, each once
    assert every[:2] == [[1, 2], [4, 5]] and len({tuple(p) for p in every}) == 30
    def is_peak(r, c):  # the largest error within one pixel each way (flat zero areas count)
        return all(err[r, c] >= err[i, j] for i in range(max(0, r - 1), min(5, r + 2))
                   for j in range(max(0, c - 1), min(6, c + 2)))
    n_peaks = sum(is_peak(r, c) for r in range(5) for c in range(6))
    assert all(is_peak(r, c) for r, c in every[:n_peaks])
    # the edge's other pixels are not peaks: right after the peaks, largest first
    assert every[n_peaks:n_peaks + 3] == [[1, 3], [1, 1], [1, 4]]
    wide = select_pixels(err, 1, peak_radius=4).tolist()
    assert wide == [[1, 2]]


@pytest.mark.parametrize("h,w,radius", [(40, 56, 1), (40, 56, 3), (31, 17, 6), (5, 3, 4), (1, 1, 2)])
def test_peaks_are_the_pixels_no_neighbour_within_the_radius_exceeds(h, w, radius):
    """On random errors with ties (a few values only), the peaks taken first are exactly the
    pixels whose error is the largest in their (2r+1)-square window clipped to the image,
    counted by brute force; the order follows the error, largest first."""
    err = torch.randint(0, 6, (h, w)).float()
    order = select_pixels(err, h * w, peak_radius=radius).tolist()
    peak = torch.zeros(h, w, dtype=torch.bool)
    for r in range(h):
        for c in range(w):
            window = err[max(0, r - radius):r + radius + 1, max(0, c - radius):c + radius + 1]
            peak[r, c] = bool(err[r, c] >= window.max())
    n = int(peak.sum())
    assert {tuple(x) for x in order[:n]} == {tuple(x) for x in peak.nonzero().tolist()}
    values = [float(err[r, c]) for r, c in order[:n]]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize("h,w,radius", [(40, 56, 1), (31, 17, 6), (5, 3, 4), (1, 1, 2), (2, 9, 0)])
def test_window_max_is_the_square_max_pool(h, w, radius):
    from gipp_codec.fit.densify import window_max

    err = torch.randn(h, w)
    err[0, 0] = float("inf")
    pooled = torch.nn.functional.max_pool2d(err[None, None], 2 * radius + 1, stride=1, padding=radius)[0, 0]
    brute = torch.stack([err[max(0, r - radius):r + radius + 1, max(0, c - radius):c + radius + 1].max()
                         for r in range(h) for c in range(w)]).reshape(h, w)
    assert torch.equal(window_max(err, radius), brute) and torch.equal(pooled, brute)


def test_growth_options_are_validated_and_sampled_growth_trains():
    for bad in (dict(init_caf="local"), dict(grow_pixels="random"), dict(grow_error_power=0.0),
                dict(grow_error_power=float("nan")), dict(grow_peak_radius=-1), dict(grow_peak_radius=1.5),
                dict(grow_peak_radius=65)):
        with pytest.raises(ConfigError):
            FitConfig(**bad).validate()
    target = torch.from_numpy(_image().astype(np.float32) / 255)
    cfg = FitConfig(grow_pixels="sample", init_caf="density", grow_every_frac=0.5, grow_stop_frac=0.5,
                    init_fraction_dense=None, grow_peak_radius_dense=None,  # N/2, one radius
                    lr_halve_every_frac_dense=None)  # one lr schedule (at 0.3 radius 2 picks radius 0's pixels here)
    out = train(target, 40, 20, cfg, get_renderer("reference"), seed=0)
    assert cfg.grow_peak_radius == 2  # the default, which sampled growth ignores
    flat = train(target, 40, 20, cfg.replace(grow_peak_radius=0), get_renderer("reference"), seed=0)
    assert torch.equal(out.means, flat.means)
    top = train(target, 40, 20, cfg.replace(grow_pixels="top", grow_peak_radius=0), get_renderer("reference"), seed=0)
    assert out.means.shape[0] == 40 and top.means.shape[0] == 40  # grown to n_max at iteration 10
    assert not torch.equal(out.means, top.means)
    peaks = train(target, 40, 20, cfg.replace(grow_pixels="top", grow_peak_radius=2), get_renderer("reference"), seed=0)
    assert peaks.means.shape[0] == 40 and not torch.equal(peaks.means, top.means)
    one = FitConfig(init_caf="density", init_uniform_share=0.0, grow_stop_frac=0.0)
    dens = train(target, 20, 1, one, get_renderer("reference"), seed=0)
    even = train(target, 20, 1, one.replace(init_caf="even"), get_renderer("reference"), seed=0)
    assert not torch.allclose(dens.covs, even.covs)  # each its own CAF at the start


def test_dense_fits_can_start_with_fewer_gaussians():
    cfg = FitConfig(init_fraction_dense=0.2, init_fraction_sparse=None)
    assert cfg.init_fraction_at(99, 10_000) == 0.5 and cfg.init_fraction_at(100, 10_000) == 0.2  # 0.01 per pixel
    assert FitConfig.paper().init_fraction_at(10_000, 100) == 0.5  # the paper: N/2 at every density
    assert FitConfig.paper().init_fraction_at(1, 10_000) == 0.5
    default = FitConfig()  # sparse below 0.01 per pixel, dense from 0.01 up to 0.035 (denser from 0.02), N/2 above
    assert [default.init_fraction_at(n, 10_000) for n in (1, 99, 100, 199, 200, 349, 350, 10_000)] == [
        0.35, 0.35, 0.35, 0.35, 0.25, 0.25, 0.5, 0.5]
    assert FitConfig(init_fraction_denser=None).init_fraction_at(349, 10_000) == 0.35  # one dense start
    assert FitConfig(init_denser_from=0.001).init_fraction_at(100, 10_000) == 0.25  # the whole dense range
    assert FitConfig(init_fraction_dense=None).init_fraction_at(349, 10_000) == 0.5  # no dense start at all
    sparse_only = FitConfig(init_fraction_sparse=0.25, init_fraction_dense=None)
    assert [sparse_only.init_fraction_at(n, 10_000) for n in (99, 100, 350)] == [0.25, 0.5, 0.5]
    assert FitConfig(init_dense_until=None).init_fraction_at(10_000, 100) == 0.25  # no upper bound: the denser start
    for bad in (dict(init_fraction_dense=0.0), dict(init_fraction_dense=1.5), dict(init_fraction_sparse=0.0),
                dict(init_fraction_sparse=1.5), dict(init_fraction_sparse=float("nan")), dict(init_dense_from=0.0),
                dict(init_dense_from=float("inf")), dict(init_dense_until=0.01), dict(init_dense_until=0.005),
                dict(init_dense_until=float("inf")), dict(init_dense_until=float("nan")),
                dict(init_fraction_denser=0.0), dict(init_fraction_denser=1.5), dict(init_denser_from=0.0),
                dict(init_denser_from=float("nan"))):
        with pytest.raises(ConfigError):
            cfg.replace(**bad)
    target = torch.from_numpy(_image().astype(np.float32) / 255)  # 384 pixels
    start = FitConfig(grow_stop_frac=0.0, init_fraction_dense=0.2, init_fraction_denser=None, init_dense_from=0.1,
                      init_dense_until=0.12)
    dense = train(target, 40, 1, start, get_renderer("reference"), seed=0)  # 40 >= 0.1 * 384
    sparse = train(target, 38, 1, start, get_renderer("reference"), seed=0)
    above = train(target, 47, 1, start, get_renderer("reference"), seed=0)  # 47 >= 0.12 * 384: N/2 again
    assert dense.means.shape[0] == 8 and sparse.means.shape[0] == 13 and above.means.shape[0] == 24  # 0.35 * 38
    denser = train(target, 40, 1, start.replace(init_fraction_denser=0.1), get_renderer("reference"), seed=0)
    assert denser.means.shape[0] == 4  # 40 / 384 >= init_denser_from (0.02): 0.1 * 40
    half = train(target, 38, 1, start.replace(init_fraction_sparse=None), get_renderer("reference"), seed=0)
    assert half.means.shape[0] == 19


def test_dense_fits_can_grow_at_wider_peaks():
    cfg = FitConfig(grow_peak_radius_dense=3, grow_peak_radius_per_spacing=None, grow_peak_radius_lower_dense=None)
    assert cfg.grow_peak_radius_at(99, 10_000) == 2 and cfg.grow_peak_radius_at(100, 10_000) == 3  # 0.01 per pixel
    ranged = FitConfig(grow_peak_radius_per_spacing=None, grow_peak_radius_lower_dense=None)  # 0.01 up to 0.035
    assert [ranged.grow_peak_radius_at(n, 10_000) for n in (99, 100, 349, 350, 10_000)] == [2, 3, 3, 2, 2]
    # the default: below the range 0.42 of the spacing (sqrt(10_000 / 99) = 10.05: 4), above it at least 2
    # (and radius 4 at the bottom of the dense range, up to 0.015 per pixel)
    assert [FitConfig().grow_peak_radius_at(n, 10_000) for n in (25, 99, 100, 149, 150, 349, 350, 10_000)] \
        == [8, 4, 4, 4, 3, 3, 2, 2]
    assert FitConfig(init_dense_until=None).grow_peak_radius_at(10_000, 100) == 3  # no upper bound
    assert FitConfig.paper().grow_peak_radius_at(10_000, 100) == 0
    for bad in (dict(grow_peak_radius_dense=-1), dict(grow_peak_radius_dense=65), dict(grow_peak_radius_dense=1.5)):
        with pytest.raises(ConfigError):
            cfg.replace(**bad)
    target = torch.from_numpy(_image().astype(np.float32) / 255)  # 384 pixels
    base = FitConfig(grow_every_frac=0.5, grow_stop_frac=0.5, grow_peak_radius=0, grow_peak_radius_dense=None,
                     grow_peak_radius_per_spacing=None, init_dense_from=0.1, init_dense_until=0.12)
    wide = base.replace(grow_peak_radius_dense=2)
    reference = get_renderer("reference")
    dense = train(target, 40, 20, wide, reference, seed=0)  # 40 >= 0.1 * 384: radius 2
    assert torch.equal(dense.means, train(target, 40, 20, base.replace(grow_peak_radius=2), reference, seed=0).means)
    assert not torch.equal(dense.means, train(target, 40, 20, base, reference, seed=0).means)
    sparse = train(target, 38, 20, wide, reference, seed=0)  # below: radius 0
    assert torch.equal(sparse.means, train(target, 38, 20, base, reference, seed=0).means)
    above = train(target, 47, 20, wide, reference, seed=0)  # 47 >= 0.12 * 384: radius 0 again
    assert torch.equal(above.means, train(target, 47, 20, base, reference, seed=0).means)
    assert not torch.equal(above.means, train(target, 47, 20, base.replace(grow_peak_radius=2), reference,
                                              seed=0).means)


def _kodak_n(bpp: float) -> int:
    """The N a default encode of a 768 x 512 image at ``bpp`` fits: the rate model's first guess."""
    from gipp_codec.encoder import default_depths, predict_gaussians

    return predict_gaussians(bpp * 768 * 512, default_depths(FitConfig().qat, None, bpp, 768, 512))


def test_the_bottom_of_the_dense_range_takes_its_own_peak_radius():
    cfg = FitConfig(grow_peak_radius_per_spacing=None)  # dense from 0.01, radius 4 up to 0.015 per pixel
    assert [cfg.grow_peak_radius_at(n, 10_000) for n in (99, 100, 149, 150, 349, 350)] == [2, 4, 4, 3, 3, 2]
    off = cfg.replace(grow_peak_radius_lower_dense=None)
    assert [off.grow_peak_radius_at(n, 10_000) for n in (100, 149)] == [3, 3]
    # a Kodak-sized encode fits the N the rate model guesses: radius 4 at 0.5 bpp, 3 at 0.75 and 1.0 bpp
    assert [FitConfig().grow_peak_radius_at(_kodak_n(bpp), 768 * 512) for bpp in (0.5, 0.75, 1.0)] == [4, 3, 3]
    assert FitConfig.paper().grow_peak_radius_at(4861, 768 * 512) == 0
    for bad in (dict(grow_peak_radius_lower_dense=-1), dict(grow_peak_radius_lower_dense=2.5),
                dict(grow_peak_radius_lower_until=0.0), dict(grow_peak_radius_lower_until=float("nan")),
                dict(grow_peak_radius_lower_until="0.02")):
        with pytest.raises(ConfigError):
            cfg.replace(**bad)
    # grey and colour targets alike grow at the lower radius there, at the dense radius above
    color = torch.from_numpy(_image().astype(np.float32) / 255)  # [H, W, 3], 384 pixels
    gray = color[:, :, 1:2].expand(-1, -1, 3).contiguous()  # [H, W, 3], three equal channels
    base = FitConfig(grow_every_frac=0.5, grow_stop_frac=0.5, grow_peak_radius=0, grow_peak_radius_dense=0,
                     grow_peak_radius_per_spacing=None, init_dense_from=0.1, init_dense_until=0.2,
                     grow_peak_radius_lower_dense=None, grow_peak_radius_lower_until=0.12)
    wide = base.replace(grow_peak_radius_lower_dense=2)
    reference = get_renderer("reference")
    for target in (gray, color):
        fit = train(target, 40, 20, wide, reference, seed=0)  # 40 / 384 in [0.1, 0.12): radius 2
        assert torch.equal(fit.means, train(target, 40, 20, base.replace(grow_peak_radius_dense=2), reference,
                                            seed=0).means)
        assert not torch.equal(fit.means, train(target, 40, 20, base, reference, seed=0).means)
        above = train(target, 47, 20, wide, reference, seed=0)  # 47 / 384 >= 0.12: the dense radius, 0
        assert torch.equal(above.means, train(target, 47, 20, base, reference, seed=0).means)


def test_new_gaussians_take_a_share_of_the_residual_below_a_density():
    cfg = FitConfig()  # "residual" below new_color_until Gaussians per pixel, "zero" from there up
    until = cfg.new_color_until
    assert [cfg.new_color_at(n, 10_000) for n in (1, 99, int(until * 10_000) - 1, int(until * 10_000))] \
        == ["residual", "residual", "residual", "zero"]
    assert cfg.replace(new_color_until=None).new_color_at(10_000, 10_000) == "residual"
    assert cfg.replace(new_color="zero").new_color_at(1, 10_000) == "zero"
    assert FitConfig.paper().new_color_at(1, 10_000) == "zero"
    # a Kodak-sized encode fits the N the rate model guesses: residual colours from 0.15 to 0.75 bpp
    assert [cfg.new_color_at(_kodak_n(bpp), 768 * 512) for bpp in (0.15, 0.25, 0.5, 0.75, 1.0, 2.0)] \
        == ["residual", "residual", "residual", "residual", "zero", "zero"]
    for bad in (dict(new_color="mean"), dict(new_color=None), dict(new_color_until=0.0),
                dict(new_color_until=float("inf")), dict(new_color_until="0.02"), dict(new_color_until=True),
                dict(new_color_gain=0.0), dict(new_color_gain=-0.5), dict(new_color_gain=float("nan")),
                dict(new_color_gain=None)):
        with pytest.raises(ConfigError):
            cfg.replace(**bad)
    # new Gaussians take the colours given at their pixels
    pix = torch.tensor([[3, 7], [10, 2]])
    residual = torch.rand(H, W, 3, generator=torch.Generator().manual_seed(1)) - 0.5  # [H, W, 3]
    _, _, col = new_gaussians(pix, 100, H, W, torch.Generator().manual_seed(0), cfg, residual)
    assert torch.equal(col, residual[pix[:, 0], pix[:, 1]])
    # a fit below the bound trains with the scaled residual, one above it as with "zero"
    target = torch.from_numpy(_image().astype(np.float32) / 255)  # [H, W, 3], 384 pixels
    base = FitConfig(grow_every_frac=0.5, grow_stop_frac=0.5, new_color="zero")
    half = base.replace(new_color="residual", new_color_until=0.12, new_color_gain=0.5)
    reference = get_renderer("reference")
    fit = train(target, 40, 20, half, reference, seed=0)  # 40 / 384 < 0.12
    assert torch.equal(fit.colors, train(target, 40, 20, half.replace(new_color_until=None), reference,
                                         seed=0).colors)
    assert not torch.equal(fit.colors, train(target, 40, 20, base, reference, seed=0).colors)
    assert not torch.equal(fit.colors, train(target, 40, 20, half.replace(new_color_gain=1.0), reference,
                                             seed=0).colors)
    above = train(target, 47, 20, half, reference, seed=0)  # 47 / 384 >= 0.12
    assert torch.equal(above.colors, train(target, 47, 20, base, reference, seed=0).colors)


def test_sparse_fits_take_a_peak_radius_from_their_spacing():
    cfg = FitConfig(grow_peak_radius_per_spacing=0.33, grow_peak_radius_dense=None, grow_peak_radius_lower_dense=None)
    # the mean spacing sqrt(pixels / n): 10, 20 and 1000 pixels; 0.1 (the radius then is grow_peak_radius)
    assert [cfg.grow_peak_radius_at(n, p) for n, p in ((100, 10_000), (25, 10_000), (1, 1_000_000),
                                                       (1_000_000, 10_000))] == [3, 7, 64, 2]
    assert FitConfig().grow_peak_radius_per_spacing == 0.42  # the default
    kodak = FitConfig()  # N at 0.15 / 0.25 / 0.5 / 1 / 2 bpp on 768 x 512: 0.42 * 16.3 -> 7, 0.42 * 12.5 -> 5,
    # and 0.42 * 4.63 at 2 bpp rounds to 2
    assert [kodak.grow_peak_radius_at(n, 768 * 512) for n in (1478, 2512, 5161, 9479, 18376)] == [7, 5, 4, 3, 2]
    assert [cfg.grow_peak_radius_at(n, 768 * 512) for n in (1478, 2512)] == [5, 4]  # 0.33 of 16.3 and 12.5
    assert FitConfig.paper().grow_peak_radius_at(1, 1_000_000) == 0
    for bad in (0.0, -0.5, float("inf"), float("nan")):
        with pytest.raises(ConfigError):
            cfg.replace(grow_peak_radius_per_spacing=bad)
    target = torch.from_numpy(_image().astype(np.float32) / 255)  # 384 pixels
    base = FitConfig(grow_every_frac=0.5, grow_stop_frac=0.5, grow_peak_radius=0, grow_peak_radius_dense=None,
                     grow_peak_radius_per_spacing=None)
    reference = get_renderer("reference")
    spaced = train(target, 38, 20, base.replace(grow_peak_radius_per_spacing=0.63), reference, seed=0)  # 0.63 * 3.18
    assert torch.equal(spaced.means, train(target, 38, 20, base.replace(grow_peak_radius=2), reference, seed=0).means)
    assert not torch.equal(spaced.means, train(target, 38, 20, base, reference, seed=0).means)


def test_growth_recycles_the_faintest_gaussians_once_the_set_is_full():
    """With grow_recycle_frac the growth step of a full set swaps its least energetic Gaussians
    for new ones at the error's peaks; without it a full set keeps them."""
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError):
            FitConfig(grow_recycle_frac=bad).validate()
    target = torch.from_numpy(_image().astype(np.float32) / 255)
    render = get_renderer("reference", "cpu")
    full = FitConfig(init_fraction=1.0, init_fraction_sparse=None, init_fraction_dense=None,
                     init_fraction_denser=None, grow_every_frac=0.5, grow_stop_frac=0.5,
                     grow_recycle_frac=0.0)  # grows at 10

    def offscreen_after_growth(cfg):  # -> Gaussians still far off screen after step 10, and the count
        state = {"t": 0}

        def marking(means, covs, colors, h, w):
            state["t"] += 1
            if state["t"] == 9:  # four Gaussians made black and moved far off the image
                with torch.no_grad():
                    means.data[:4] = -10.0
                    colors.data[:4] = 0.0
            if state["t"] == 11:
                state["off"], state["n"] = int((means[:, 0] < -5).sum()), int(means.shape[0])
            return render(means, covs, colors, h, w)

        out = train(target, 40, 20, cfg, marking, seed=0)
        assert out.means.shape[0] == 40
        return state["off"], state["n"]

    assert offscreen_after_growth(full) == (4, 40)
    assert offscreen_after_growth(full.replace(grow_recycle_frac=0.1, grow_recycle_by="energy")) == (0, 40)
    by_contrast = full.replace(grow_recycle_frac=0.1, grow_recycle_by="contrast")
    assert offscreen_after_growth(by_contrast) == (0, 40)  # black ones carry no energy at any contrast
    assert offscreen_after_growth(by_contrast.replace(recycle_stop_frac=0.45)) == (4, 40)  # stops before 10
    for by in ("removal", "removal_contrast"):  # off screen, they render nothing: removing them costs nothing
        assert offscreen_after_growth(full.replace(grow_recycle_frac=0.1, grow_recycle_by=by)) == (0, 40), by
    with pytest.raises(ConfigError):
        FitConfig(recycle_stop_frac=1.5).validate()


def test_removal_importance_is_the_clamped_error_each_removal_adds():
    render = get_renderer("reference", "cpu")
    gen = torch.Generator().manual_seed(3)
    means = torch.rand(12, 2, generator=gen) * torch.tensor([24.0, 16.0])  # [12, 2]
    covs = torch.tensor([2.0, 0.4, 1.5]).repeat(12, 1) * (1 + torch.rand(12, 1, generator=gen))  # [12, 3]
    colors = torch.rand(12, 3, generator=gen) * 0.8 - 0.1  # [12, 3]
    colors[0] = 2.0  # saturates the clamp where it sits
    target = torch.rand(16, 24, 3, generator=gen)  # [16, 24, 3]
    base = torch.full((16, 24, 3), 0.2)

    def clamped_sse(img):
        return float(((img + base).clamp(0, 1).double() - target.double()).pow(2).sum())

    full = render(means, covs, colors, 16, 24)  # [16, 24, 3]
    costs = removal_importance(means, covs, colors, full + base, target)  # [12]
    assert costs.dtype == torch.float64 and costs.shape == (12,)
    for k in range(12):
        rest = torch.arange(12) != k
        want = clamped_sse(render(means[rest], covs[rest], colors[rest], 16, 24)) - clamped_sse(full)
        assert float(costs[k]) == pytest.approx(want, rel=1e-4, abs=1e-6), k
    assert float(costs.min()) < 0 < float(costs.max())  # some removals help, some hurt
    variance = local_variance(target, 3)  # [16, 24]
    ranked = removal_contrast_importance(means, covs, colors, full + base, target, variance, 0.01)
    col, row = means[:, 0].long(), means[:, 1].long()
    assert torch.allclose(ranked, costs / (variance[row, col].double() + 0.01))


@pytest.mark.parametrize("h, w, window", [(7, 5, 3), (40, 33, 8), (40, 33, 9), (50, 70, 101), (1, 1, 5), (3, 200, 64)])
def test_box_means_from_summed_area_tables_equal_avg_pool(h, w, window):
    """The summed-area tables that serve wide windows (a fit of very few Gaussians) give
    avg_pool2d's clipped box means, odd and even windows, windows wider than the image."""
    from gipp_codec.fit.prune import box_means

    t = torch.rand(3, h, w, generator=torch.Generator().manual_seed(h * w + window))
    pad = window // 2
    want = torch.nn.functional.avg_pool2d(t[None], window, stride=1, padding=pad, count_include_pad=False)[0]
    got = box_means(t, window, pad)
    assert got.shape == want.shape and torch.allclose(got, want, atol=2e-6, rtol=0)


def test_local_variance_of_a_wide_window_is_the_whole_image_variance():
    """A window wider than twice the image covers all of it at every pixel (the one-Gaussian
    case that took avg_pool2d 40 s on 384 x 256)."""
    target = torch.rand(24, 40, 3, generator=torch.Generator().manual_seed(1))
    variance = local_variance(target, 81)  # [24, 40]
    whole = target.double().var(dim=(0, 1), unbiased=False).sum()
    assert variance.shape == (24, 40) and torch.allclose(variance.double(), whole.expand(24, 40), atol=1e-5)


def test_contrast_importance_favours_faint_gaussians_in_flat_areas():
    target = torch.full((8, 16, 3), 0.5)
    target[:, 8:] = torch.rand(8, 8, 3, generator=torch.Generator().manual_seed(0))  # right half textured
    variance = local_variance(target, 3)  # [8, 16]
    assert float(variance[:, :7].max()) < 1e-12 and float(variance[:, 9:].min()) > 0.01
    means = torch.tensor([[3.5, 4.5], [12.5, 4.5]])  # one in the flat half, one in the textured
    covs = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    colors = torch.full((2, 3), 0.1)
    plain = importance(covs, colors)
    assert float(plain[0]) == float(plain[1])
    ranked = contrast_importance(means, covs, colors, variance, 0.0027)
    assert float(ranked[0]) > 5 * float(ranked[1])
    huge_floor = contrast_importance(means, covs, colors, variance, 1e6)  # the floor swamps the contrast
    assert float(huge_floor[0]) == pytest.approx(float(huge_floor[1]), rel=1e-3)
    with pytest.raises(ConfigError):
        FitConfig(grow_recycle_by="opacity").validate()
    with pytest.raises(ConfigError):
        FitConfig(recycle_variance_floor=0.0).validate()


def test_psd_pruning_mask():
    covs = torch.tensor([[2.0, 0.5, 2.0], [1.0, 1.0, 1.0], [-1.0, 0.0, 2.0], [2.0, 0.0, 0.0], [1.0, -0.9, 1.0]])
    assert valid_mask(covs).tolist() == [True, False, False, False, True]
    means = torch.tensor([[5.0, 5.0], [5.0, 5.0], [5.0, 5.0], [5.0, 5.0], [-50.0, 5.0]])
    assert keep_mask(means, covs, H, W, offscreen=False).tolist() == [True, False, False, False, True]
    assert keep_mask(means, covs, H, W, offscreen=True).tolist() == [True, False, False, False, False]


def test_training_prunes_non_psd():
    """A Gaussian made non-PSD is gone after the next pruning step."""
    cfg = FitConfig().replace(prune_every=5, grow_stop_frac=0.0)
    render = get_renderer("reference", "cpu")

    target = torch.from_numpy(_image().astype(np.float32) / 255)
    # a wrapped renderer breaks two Gaussians' covariances in place at iteration 3; pruning at 5
    state = {"t": 0}

    def corrupting(means, covs, colors, h, w):
        state["t"] += 1
        if state["t"] == 3:
            with torch.no_grad():
                covs.data[0] = torch.tensor([1.0, 5.0, 1.0])  # a*c - b*b < 0
                covs.data[1] = torch.tensor([-1.0, 0.0, 1.0])
            state["n"] = covs.shape[0]
        return render(means, covs, colors, h, w)

    out = train(target, 20, 5, cfg, corrupting, seed=0)
    assert state["n"] == 10  # N0 = 20 / 2 (20 Gaussians on 384 pixels is above the dense range), no growth
    assert out.means.shape[0] == state["n"] - 2
    assert bool(valid_mask(out.covs).all())


def test_fit_improves_over_init():
    res = _fit(n=30, its=80, cfg=FitConfig(coarse_frac=0.0))  # full resolution from step 1: evaluated there
    first = res.history[0]
    assert first[0] == 1
    black = psnr(np.zeros_like(_image()), _image())
    assert first[1] == pytest.approx(black, abs=0.05)  # colours start at 0: a black render
    assert res.psnr > first[1] + 8.0
    assert res.history[-1][0] == 80


def test_fit_deterministic_for_a_seed():
    a = _fit(seed=5, its=40)
    b = _fit(seed=5, its=40)
    c = _fit(seed=6, its=40)
    assert np.array_equal(a.means, b.means) and np.array_equal(a.covs, b.covs)
    assert np.array_equal(a.colors, b.colors) and a.psnr == b.psnr
    assert not np.array_equal(a.means, c.means)


def test_fit_deterministic_on_the_default_cpu_backend():
    pytest.importorskip("gipp_codec.render.cpu")
    runs = [fit_image(_image(), 30, 40, seed=1, device="cpu") for _ in range(2)]
    assert np.array_equal(runs[0].means, runs[1].means) and np.array_equal(runs[0].covs, runs[1].covs)
    assert np.array_equal(runs[0].colors, runs[1].colors) and runs[0].history == runs[1].history


@pytest.mark.parametrize("cfg", [FitConfig(), FitConfig.paper()], ids=["default", "paper"])
def test_densification_reaches_nmax(cfg):
    cfg = cfg.replace(grow_k=None, grow_k_frac=0.2, grow_every_frac=0.1, grow_stop_frac=0.9,
                      prune_offscreen=False, coarse_frac=0.0)  # evaluated from step 1, before any growth
    res = _fit(n=40, its=50, cfg=cfg)
    ns = [n for (_, _, n) in res.history]
    assert ns[0] == 20  # N0 = Nmax / 2: the paper's, and 40 on 384 pixels is above the default's dense range
    assert max(ns) == 40 and res.gaussians <= 40  # reached Nmax; pruning may remove a few later


def test_growth_schedule():
    cfg = FitConfig.paper()
    s = GrowthSchedule.from_config(cfg, 50_000, 5000)
    assert (s.every, s.stop, s.k_step) == (5000, 45_000, 1000)
    assert s.k_at(4999, 2500) == 0 and s.k_at(5000, 2500) == 1000 and s.k_at(15_000, 4800) == 200
    assert s.k_at(50_000, 100) == 0  # after grow_stop
    s2 = GrowthSchedule.from_config(cfg, 50_000, 5000, grow_until=6000)
    assert s2.k_at(10_000, 2500) == 0


def test_growth_interval_floor():
    cfg = FitConfig()
    every = {k: GrowthSchedule.from_config(cfg, k, 500, grow_until=int(0.8 * k)).every
             for k in (40, 1000, 2000, 5000, 10_000)}
    floor = cfg.grow_every_min
    assert every[5000] == round(cfg.grow_every_frac * 5000)  # the default encoder's schedule is unchanged
    assert every[10_000] == round(cfg.grow_every_frac * 10_000)  # a longer fit: the fraction is longer
    assert every[1000] == every[2000] == floor > round(cfg.grow_every_frac * 2000)  # short fits: the floor
    short = GrowthSchedule.from_config(cfg, 40, 500, grow_until=32)
    steps = [t for t in range(1, 41) if short.grows_at(t)]
    assert len(steps) == GROW_MIN_STEPS and steps[-1] <= 32  # a tiny fit still grows
    plain = GrowthSchedule.from_config(cfg.replace(grow_every_min=None), 1000, 500, grow_until=800)
    assert plain.every == round(cfg.grow_every_frac * 1000)
    assert GrowthSchedule.from_config(FitConfig.paper(), 1000, 500).every == 100  # the paper's 10 %, no floor
    sparse = GrowthSchedule.from_config(cfg, 1000, 500, grow_until=800, pixels=500 * 100)  # 0.01 per pixel
    dense = GrowthSchedule.from_config(cfg, 1000, 500, grow_until=800, pixels=500 * 40)  # 0.025 per pixel
    assert sparse.every == floor and dense.every == round(cfg.grow_every_frac * 1000)
    assert cfg.grow_every_min_at(500, 500 * 100) == floor and cfg.grow_every_min_at(500, 500 * 40) is None
    for bad in (0, -5, True, 2.5):
        with pytest.raises(ConfigError, match="grow_every_min"):
            FitConfig(grow_every_min=bad).validate()
    with pytest.raises(ConfigError, match="grow_every_min_until"):
        FitConfig(grow_every_min_until=0.0).validate()


def test_top_k_pixels_and_new_gaussians():
    err = torch.zeros(H, W)
    err[3, 7] = 5.0
    err[10, 2] = 4.0
    err[0, 0] = 1.0
    pix = select_pixels(err, 2)
    assert pix.tolist() == [[3, 7], [10, 2]]
    cfg = FitConfig()
    m, c, col = new_gaussians(pix, 100, H, W, torch.Generator().manual_seed(0), cfg)
    assert m.tolist() == [[7.5, 3.5], [2.5, 10.5]]  # pixel centres (x, y)
    lp = caf_lp(H, W, 100)
    assert float(c[:, 0].min()) >= 0.5 + lp - 1e-5 and torch.count_nonzero(col) == 0
    render = torch.zeros(H, W, 3)
    target = torch.ones(H, W, 3) * 0.5
    assert torch.allclose(pixel_error(render, target), torch.full((H, W), 1.5))


@pytest.mark.parametrize("form", [matched_error, matched_error_torch])
def test_matched_error_is_the_residual_correlated_with_a_small_gaussian(form):
    variance = 0.5  # sigma 0.707 px: taps out to 3 px
    render = torch.zeros(H, W, 3)
    target = torch.zeros(H, W, 3)
    target[5, 6, 0] = 0.4  # one pixel of residual in one channel
    err = form(render, target, variance)  # [H, W]
    weight = lambda d2: math.exp(-0.5 * d2 / variance)  # noqa: E731  the kernel at squared distance d2
    assert err.shape == (H, W) and err.dtype == torch.float32
    for (row, col), d2 in (((5, 6), 0), ((5, 7), 1), ((4, 6), 1), ((6, 8), 5), ((2, 6), 9)):
        # the blur is separable: its weight at (dy, dx) is weight(dy^2) * weight(dx^2) = weight(d2)
        assert float(err[row, col]) == pytest.approx((0.4 * weight(d2)) ** 2, rel=1e-5)
    assert float(err[5, 10]) == 0 and float(err[1, 6]) == 0  # beyond the 3-sigma taps
    # zero outside the image: an even residual sums every tap inside, the taps within it at the border
    even = torch.zeros(H, W, 3)
    even[..., 1] = 0.1
    err = form(render, even, variance)
    whole, half = sum(weight(d * d) for d in range(-3, 4)), sum(weight(d * d) for d in range(4))
    assert float(err[6, 6]) == pytest.approx((0.1 * whole * whole) ** 2, rel=1e-5)
    assert float(err[0, 6]) == pytest.approx((0.1 * half * whole) ** 2, rel=1e-5)
    assert float(err[H - 1, W - 1]) == pytest.approx((0.1 * half * half) ** 2, rel=1e-5)
    if form is not matched_error:
        return
    # the sign counts: a blob of one sign outranks a checkerboard of the same L1 error
    blob = torch.zeros(H, W, 3)
    blob[2:5, 2:5] = 0.1
    signs = torch.tensor([[1.0, -1, 1], [-1, 1, -1], [1, -1, 1]])
    blob[10:13, 10:13] = 0.1 * signs[:, :, None]
    assert torch.equal(pixel_error(render, blob)[2:5, 2:5], pixel_error(render, blob)[10:13, 10:13])
    matched = growth_error(render, blob, "matched", variance)
    assert select_pixels(matched, 1).tolist() == [[3, 3]]  # the blob's centre
    assert float(matched[2:5, 2:5].max()) > 2 * float(matched[10:13, 10:13].max())
    assert torch.equal(growth_error(render, blob, "l1", variance), pixel_error(render, blob))
    # the kernel: grow_error_scale of a new Gaussian's mean initial variance, 1 plus the CAF lp
    cfg = FitConfig()
    assert matched_variance(512, 768, 4861, cfg) == pytest.approx(0.1 * (1 + 768 * 512 / (9 * math.pi * 4861)))
    assert matched_variance(512, 768, 4861, cfg.replace(caf=False, grow_error_scale=0.3)) == pytest.approx(0.3)


def test_matched_error_kernel_agrees_with_the_torch_convolutions():
    """The CPU's numba map (``matched_kernels``) against the torch form other devices use:
    equal to float32 rounding on shapes smaller than the kernel too, and the same bits at
    any thread count."""
    import numba

    gen = torch.Generator().manual_seed(3)
    for h, w in ((1, 1), (3, 40), (40, 3), (37, 53)):
        render, target = torch.rand(h, w, 3, generator=gen), torch.rand(h, w, 3, generator=gen)
        for variance in (0.11, 0.5, 5.0):
            numba_map = matched_error(render, target, variance)  # [h, w]
            torch_map = matched_error_torch(render, target, variance)
            assert numba_map.shape == (h, w)
            assert float((numba_map - torch_map).abs().max()) <= 1e-5 * float(torch_map.abs().max())
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = matched_error(render, target, 0.5)
    finally:
        numba.set_num_threads(threads)
    assert torch.equal(one, matched_error(render, target, 0.5))


def test_growth_takes_its_pixels_from_the_configured_error_map():
    cfg = FitConfig()  # "matched" below grow_error_until Gaussians per pixel, "l1" from there up
    until = cfg.grow_error_until
    assert [cfg.grow_error_at(n, 10_000) for n in (1, int(until * 10_000) - 1, int(until * 10_000))] \
        == ["matched", "matched", "l1"]
    assert cfg.replace(grow_error_until=None).grow_error_at(10_000, 10_000) == "matched"
    assert FitConfig.paper().grow_error_at(1, 10_000) == "l1"
    # a Kodak-sized encode fits the N the rate model guesses: "matched" from 0.15 to 0.75 bpp
    assert [cfg.grow_error_at(_kodak_n(bpp), 768 * 512) for bpp in (0.15, 0.25, 0.5, 0.75, 1.0, 2.0)] \
        == ["matched", "matched", "matched", "matched", "l1", "l1"]
    for bad in (dict(grow_error="l2"), dict(grow_error=None), dict(grow_error_scale=0.0),
                dict(grow_error_scale=-0.1), dict(grow_error_scale=float("nan")), dict(grow_error_scale=True),
                dict(grow_error_scale="0.1"), dict(grow_error_until=0.0), dict(grow_error_until=float("inf")),
                dict(grow_error_until="0.02")):
        with pytest.raises(ConfigError):
            cfg.replace(**bad)
    # a fit below the bound grows from the matched map, one above it as with "l1"
    target = torch.from_numpy(_image().astype(np.float32) / 255)  # [H, W, 3], 384 pixels
    base = FitConfig(grow_every_frac=0.5, grow_stop_frac=0.5, grow_error_until=0.12)
    reference = get_renderer("reference")
    fit = train(target, 40, 20, base, reference, seed=0)  # 40 / 384 < 0.12
    assert torch.equal(fit.means, train(target, 40, 20, base.replace(grow_error_until=None), reference,
                                        seed=0).means)
    assert not torch.equal(fit.means, train(target, 40, 20, base.replace(grow_error="l1"), reference, seed=0).means)
    assert not torch.equal(fit.means, train(target, 40, 20, base.replace(grow_error_scale=2.0), reference,
                                            seed=0).means)
    above = train(target, 47, 20, base, reference, seed=0)  # 47 / 384 >= 0.12
    assert torch.equal(above.means, train(target, 47, 20, base.replace(grow_error="l1"), reference, seed=0).means)


def test_tensor_adam_takes_torch_adams_steps_exactly():
    """The quantizer's optimizer: the same values as torch.optim.Adam on the CPU, bit for
    bit, through learning-rate changes and steps where one tensor has no gradient."""
    from gipp_codec.fit.tensor_adam import TensorAdam

    gen = torch.Generator().manual_seed(3)
    ours = [torch.randn(8, generator=gen).requires_grad_(True), torch.randn(8, generator=gen).requires_grad_(True)]
    theirs = [p.detach().clone().requires_grad_(True) for p in ours]
    mine, ref = TensorAdam(ours, lr=0.02), torch.optim.Adam(theirs, lr=0.02)
    for step in range(12):
        lr = 0.02 * 0.5 ** (step // 4)
        mine.lr = lr
        for group in ref.param_groups:
            group["lr"] = lr
        mine.zero_grad()
        ref.zero_grad(set_to_none=True)
        for i, (p, q) in enumerate(zip(ours, theirs)):
            if i == 1 and step % 5 == 2:
                continue  # no gradient: neither steps it (nor counts the step)
            g = torch.randn(8, generator=gen) * 10.0 ** (step % 3 - 1)
            p.grad, q.grad = g.clone(), g.clone()
        mine.step()
        ref.step()
        for p, q in zip(ours, theirs):
            assert torch.equal(p, q), step


def test_an_encode_never_imports_torch_dynamo_or_sympy():
    """torch.optim's first optimizer imports torch._dynamo, and autograd given explicit
    gradients imports torch's symbolic shapes (and sympy): seconds of start-up that an
    encode (float phase and QAT) must not pay."""
    script = (
        "import sys, numpy as np\n"
        "from gipp_codec.encoder import encode\n"
        "img = (np.random.default_rng(0).random((12, 16, 3)) * 255).astype(np.uint8)\n"
        "encode(img, gaussians=20, iterations=30)\n"
        "late = [m for m in ('torch._dynamo', 'torch.fx.experimental.symbolic_shapes', 'sympy') if m in sys.modules]\n"
        "assert not late, f'imported {late}'\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def test_fitting_threads_hold_torch_at_one_thread_once_numba_starts_its_pool():
    """numba's OpenMP pool, started by its first parallel kernel, resets the process's OpenMP
    thread count (torch's intra-op count) to all cores: the first fit of a process ran its
    torch work on every core (in a fresh process: the conftest's setting does not apply)."""
    script = (
        "import numba, numpy as np, torch\n"
        "from gipp_codec.fit.threads import cpu_fitting_threads\n"
        "@numba.njit(parallel=True)\n"
        "def total(x):\n"
        "    s = 0.0\n"
        "    for i in numba.prange(x.shape[0]):\n"
        "        s += x[i]\n"
        "    return s\n"
        "with cpu_fitting_threads(torch.device('cpu')):\n"
        "    total(np.ones(4096))\n"
        "    print(torch.get_num_threads())\n"
    )
    env = dict(os.environ, NUMBA_NUM_THREADS="2")  # a pool of two even on one core
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["1"]


def test_the_first_encode_of_a_process_equals_the_next():
    """The same image and seed give the same file whether or not the process has encoded
    before: with torch on all cores the first encode's QAT rate term summed the squared
    error in another order. The image is large enough (over 32768 values) for torch to
    split that sum between threads."""
    script = (
        "import numpy as np\n"
        "from gipp_codec.encoder import encode\n"
        "y, x = np.mgrid[0:112, 0:112]\n"
        "img = np.stack([128 + 90 * np.sin(x / 5.0), 128 + 90 * np.cos(y / 7.0), (x * 3 + y * 5) % 256], -1)\n"
        "img = np.clip(img, 0, 255).astype(np.uint8)\n"
        "a, b = (encode(img, gaussians=120, iterations=150) for _ in range(2))\n"
        "print(a == b)\n"
    )
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["True"]


def test_an_encode_is_the_same_on_one_thread_and_on_two():
    """Every parallel part of an encode (the render kernels, QAT's loss summed band by band,
    the code search's tiled sweeps) gives the same numbers on any number of threads, so
    the file does not depend on the machine's core count. 112 x 96 pixels: several tiles, so the
    search runs groups in parallel."""
    script = (
        "import hashlib, numpy as np\n"
        "from gipp_codec.encoder import encode\n"
        "y, x = np.mgrid[0:112, 0:96]\n"
        "img = np.stack([128 + 90 * np.sin(x / 5.0), 128 + 90 * np.cos(y / 7.0), (x * 3 + y * 5) % 256], -1)\n"
        "img = np.clip(img, 0, 255).astype(np.uint8)\n"
        "print(hashlib.sha256(encode(img, gaussians=150, iterations=150)).hexdigest())\n"
    )
    digests = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        digests.append(r.stdout.split()[-1])
    assert digests[0] == digests[1]


def test_the_trainers_mse_is_the_written_out_mean_to_the_bit():
    """The trainer's MSE (the PSNR its best-state tracking compares) must be the very
    float32 value of mean((img - target) ** 2), or encodes would change with the speed-up."""
    gen = torch.Generator().manual_seed(3)
    for h, w in ((1, 1), (7, 3), (64, 96), (181, 257)):
        img = torch.rand(h, w, 3, generator=gen) * 1.4 - 0.2  # some values outside [0, 1]
        target = torch.rand(h, w, 3, generator=gen)
        assert _mse(img, target) == float(torch.mean((img - target) ** 2))
        assert _mse(img, target, clamp=True) == float(torch.mean((img.clamp(0.0, 1.0) - target) ** 2))
        assert _mse(img, target, clamp=True) != _mse(img, target)


def test_row_adam_matches_torch_adam_and_resizes():
    p = torch.randn(6, 3, requires_grad=True)
    q = p.detach().clone().requires_grad_(True)
    mine = RowAdam([p], [0.01])
    ref = torch.optim.Adam([q], lr=0.01)
    for i in range(5):
        g = torch.randn(6, 3, generator=torch.Generator().manual_seed(i))
        p.grad = g.clone()
        q.grad = g.clone()
        mine.step()
        ref.step()
    assert torch.allclose(p, q, atol=1e-6)
    keep = torch.tensor([True, False, True, True, False, True])
    p2 = torch.cat((p.detach()[keep], torch.zeros(2, 3))).requires_grad_(True)
    mine.replace([p2], keep, 2)
    assert mine.steps.squeeze(1).tolist() == [5, 5, 5, 5, 0, 0]
    p2.grad = torch.ones(6, 3)
    before = p2.detach().clone()
    mine.step()
    # a fresh row's first Adam step has size lr exactly (bias-corrected)
    assert torch.allclose((before - p2.detach())[4:], torch.full((2, 3), 0.01), atol=1e-6)


def test_row_adam_takes_torch_adams_steps_with_other_decays():
    """The decays reach both of RowAdam's step forms: with betas (0.8, 0.99) its kernel step
    and its torch step each equal torch's Adam with those betas, not with the defaults."""
    gen = torch.Generator().manual_seed(3)
    start = torch.randn(8, 3, generator=gen)
    kern, comp, ref, dflt = (start.clone().requires_grad_(True) for _ in range(4))
    a, b = RowAdam([kern], [0.01], betas=(0.8, 0.99)), RowAdam([comp], [0.01], betas=(0.8, 0.99))
    torch_ref = torch.optim.Adam([ref], lr=0.01, betas=(0.8, 0.99))
    torch_dflt = torch.optim.Adam([dflt], lr=0.01)
    for _ in range(6):
        g = torch.randn(8, 3, generator=gen)
        for p in (kern, comp, ref, dflt):
            p.grad = g.clone()
        a.step()
        b.step_composed()
        torch_ref.step()
        torch_dflt.step()
    assert torch.allclose(kern, ref, rtol=0, atol=1e-6) and torch.allclose(comp, ref, rtol=0, atol=1e-6)
    assert not torch.allclose(ref, dflt, rtol=0, atol=1e-4)  # the decays matter over these steps


def test_the_fit_uses_the_configured_adam_decays():
    base = _fit(its=40)
    other = _fit(its=40, cfg=FitConfig().replace(adam_beta2=0.5))
    assert base.means.shape != other.means.shape or not np.allclose(base.means, other.means, rtol=0, atol=1e-4)


def test_the_fit_uses_the_configured_adam_epsilon():
    base = _fit(its=40)
    other = _fit(its=40, cfg=FitConfig().replace(adam_eps=1e-3))  # far above the gradients
    assert base.means.shape != other.means.shape or not np.allclose(base.means, other.means, rtol=0, atol=1e-4)


def test_row_adam_kernel_step_agrees_with_the_torch_step():
    """RowAdam.step on CPU float32 rows runs adam_kernels; step_composed is the torch form.
    They agree to float32 rounding through steps, a row removal and appended rows (whose
    step counts differ from the others')."""
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(40, c, generator=gen) for c in (2, 3)]
    kern = [t.clone().requires_grad_(True) for t in start]
    comp = [t.clone().requires_grad_(True) for t in start]
    a, b = RowAdam(kern, [0.01, 0.003]), RowAdam(comp, [0.01, 0.003])
    for i in range(12):
        if i == 5:  # drop rows, append fresh ones: runs of different step counts
            keep = torch.arange(40) % 3 != 0
            kern = [torch.cat((p.detach()[keep], torch.ones(7, p.shape[1]))).requires_grad_(True) for p in kern]
            comp = [torch.cat((p.detach()[keep], torch.ones(7, p.shape[1]))).requires_grad_(True) for p in comp]
            a.replace(kern, keep, 7)
            b.replace(comp, keep, 7)
        for pk, pc in zip(kern, comp):
            g = torch.randn(pk.shape, generator=gen)
            pk.grad, pc.grad = g.clone(), g.clone()
        before = [p.detach().clone() for p in kern]
        a.step()
        b.step_composed()
    assert torch.equal(a.steps, b.steps) and sorted(set(a.steps.view(-1).tolist())) == [7.0, 12.0]
    for pk, pc, mk, mc, vk, vc, p0 in zip(kern, comp, a.m, b.m, a.v, b.v, before):
        assert torch.allclose(pk, pc, rtol=0, atol=2e-6)
        assert torch.allclose(mk, mc, rtol=1e-5, atol=1e-7) and torch.allclose(vk, vc, rtol=1e-5, atol=1e-7)
        assert bool((pk.detach() != p0).all())  # the last step moved every value


def test_lr_schedules():
    paper = FitConfig.paper()
    assert lr_factor(1, 50_000, paper) == 1.0
    assert lr_factor(20_000, 50_000, paper) == 1.0 and lr_factor(20_001, 50_000, paper) == 0.5
    assert lr_factor(40_001, 50_000, paper) == 0.25
    cos = FitConfig().replace(lr_schedule="cosine", lr_final_frac=0.1, lr_warmup_frac=0.0)
    assert lr_factor(0, 100, cos) == pytest.approx(1.0)
    assert lr_factor(100, 100, cos) == pytest.approx(0.1)
    assert lr_factor(50, 100, cos) == pytest.approx(0.55)


def test_dense_fits_halve_the_lr_sooner():
    default = FitConfig()  # every 30 % from 0.01 Gaussians per pixel up (no upper bound), 40 % below
    assert [default.lr_halve_every_frac_at(n, 10_000) for n in (1, 99, 100, 350, 10_000)] == [
        0.4, 0.4, 0.3, 0.3, 0.3]
    assert [lr_factor(t, 1000, default, 0.3) for t in (300, 301, 601, 901)] == [1.0, 0.5, 0.25, 0.125]
    assert FitConfig(lr_halve_every_frac_dense=None).lr_halve_every_frac_at(10_000, 100) == 0.4
    assert FitConfig(init_dense_from=0.02).lr_halve_every_frac_at(199, 10_000) == 0.4  # follows init_dense_from
    assert FitConfig.paper().lr_halve_every_frac_at(10_000, 100) == 0.4
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ConfigError):
            default.replace(lr_halve_every_frac_dense=bad)
    # the trainer takes the interval by the density: a dense fit with the dense interval set to
    # 0.4 is the fit with no dense interval; a sparse fit ignores it
    target = torch.from_numpy(_image().astype(np.float32) / 255)  # 384 pixels
    base = FitConfig(init_dense_from=0.1, init_dense_until=None, grow_stop_frac=0.0, lr_halve_every_frac_dense=None)
    reference = get_renderer("reference")
    plain = train(target, 40, 20, base, reference, seed=0)  # 40 >= 0.1 * 384: dense
    assert torch.equal(plain.means, train(target, 40, 20, base.replace(lr_halve_every_frac_dense=0.4), reference,
                                          seed=0).means)
    assert not torch.equal(plain.means, train(target, 40, 20, base.replace(lr_halve_every_frac_dense=0.2),
                                              reference, seed=0).means)
    sparse = train(target, 38, 20, base, reference, seed=0)
    assert torch.equal(sparse.means, train(target, 38, 20, base.replace(lr_halve_every_frac_dense=0.2), reference,
                                           seed=0).means)


def test_half_resolution_is_the_block_mean_and_renders_gaussians_halved():
    """Pixel (j, i) of the half image is the mean of the 2x2 block (an odd last row and
    column dropped), centred at full-resolution (2i + 1, 2j + 1): Gaussians with mean / 2
    and covariance / 4 render there what the block averages of their full render hold."""
    img = torch.arange(5 * 7 * 3, dtype=torch.float32).reshape(5, 7, 3)
    half = half_resolution(img)
    assert half.shape == (2, 3, 3)
    assert torch.equal(half[1, 2], img[2:4, 4:6].mean(dim=(0, 1)))
    render = get_renderer("reference")
    means = torch.tensor([[10.3, 8.7], [22.1, 15.2]])  # [2, 2]
    covs = torch.tensor([[9.0, 2.0, 6.0], [4.0, -1.0, 5.0]])  # [2, 3], broad: smooth over a block
    colors = torch.tensor([[1.0, 0.5, 0.2], [0.3, 0.9, 0.4]])  # [2, 3]
    blocks = half_resolution(render(means, covs, colors, 24, 32))  # [12, 16, 3]
    halved = render(means / 2, covs / 4, colors, 12, 16)
    assert float(((halved - blocks) ** 2).mean().sqrt()) < 0.01  # a quarter-pixel shift gives 0.028
    assert float((halved - blocks).abs().max()) < 0.08


def test_coarse_phase_renders_at_half_resolution_and_trains_the_gaussians():
    """With coarse_frac the float phase's first iterations render at half size, and the
    gradients reach the Gaussians through the 1/2 and 1/4 scaling."""
    reference = get_renderer("reference")
    sizes = []

    def spy(means, covs, colors, height, width):
        if torch.is_grad_enabled():  # a training render, not a no-grad one (growth, final)
            sizes.append((height, width))
        return reference(means, covs, colors, height, width)

    target = torch.from_numpy(_image().astype(np.float32) / 255.0)  # [16, 24, 3]
    cfg = FitConfig().replace(coarse_frac=0.5, grow_every_frac=1.0)
    train(target, 30, 40, cfg, spy, seed=0)
    assert sizes == [(H // 2, W // 2)] * 20 + [(H, W)] * 20
    # every iteration but the last at half size: the set still learns the image
    black = psnr(np.zeros_like(_image()), _image())
    coarse = train(target, 30, 40, cfg.replace(coarse_frac=1.0), reference, seed=0)
    assert coarse.history[0][0] == 40  # no evaluation at half size: the first one is the final render
    assert coarse.psnr > black + 6.0


def test_best_state_is_kept():
    """Colours wiped late in the fit: the state returned is the best one evaluated, from before
    the wipe, not the final one."""
    cfg = FitConfig().replace(coarse_frac=0.0, grow_stop_frac=0.0)
    render = get_renderer("reference", "cpu")
    target = torch.from_numpy(_image().astype(np.float32) / 255)
    state = {"t": 0}

    def wiping(means, covs, colors, h, w):
        state["t"] += 1
        if state["t"] == 45:
            with torch.no_grad():
                colors.data.zero_()
        return render(means, covs, colors, h, w)

    out = train(target, 20, 50, cfg, wiping, seed=0)
    black = psnr(np.zeros_like(_image()), _image())
    best = max(p for (_, p, _) in out.history)
    assert best > black + 6.0
    assert out.history[-1][1] < best - 3.0  # the state after the wipe is far worse ...
    assert out.psnr == best and out.best_iteration < 45  # ... and not the one returned
    assert float(out.colors.abs().max()) > 0.1


@pytest.mark.parametrize(
    "n,its,exc,msg",
    [
        (0, 10, ConfigError, ">= 1"),
        (-5, 10, ConfigError, ">= 1"),
        (4 * H * W + 1, 10, ConfigError, "too large"),
        (10, 0, ConfigError, "iterations"),
        (2.5, 10, ConfigError, "integer"),
        (True, 10, ConfigError, "integer"),
    ],
)
def test_fit_validation(n, its, exc, msg):
    with pytest.raises(exc, match=msg):
        fit_image(_image(), n, its, device="cpu", backend="reference")


def test_fit_rejects_bad_images_and_devices():
    with pytest.raises(InputImageError):
        fit_image(np.zeros((4, 4, 2), np.uint8), 3, 2, device="cpu", backend="reference")  # [H, W] is grey
    with pytest.raises(InputImageError):
        fit_image(np.zeros((4, 4, 3), np.float32), 3, 2, device="cpu", backend="reference")
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_config_validation_and_presets():
    with pytest.raises(ConfigError):
        FitConfig().replace(lr_means=0)
    with pytest.raises(ConfigError):
        FitConfig().replace(lr_schedule="linear")
    for name, bad in (("adam_beta1", -0.1), ("adam_beta2", 1.0), ("adam_beta2", float("nan")),
                      ("init_positions", "edges"), ("init_uniform_share", 1.5), ("init_uniform_share", -0.1)):
        with pytest.raises(ConfigError, match=name):
            FitConfig().replace(**{name: bad})
    p = FitConfig.paper()
    assert (p.lr_means, p.lr_covs, p.lr_colors) == (0.018, 0.018, 0.018)
    assert p.grow_k == 1000 and p.grow_every_frac == 0.1 and p.grow_recycle_frac == 0.0 and p.lr_schedule == "step"
    assert p.qat.bits() == (12, 12, 10, 10, 10, 6, 6, 6) and p.qat.start_frac == 0.12
    assert (p.adam_beta1, p.adam_beta2) == (0.9, 0.999)  # torch's defaults, as the paper's code
    assert p.adam_eps == 1e-8 and FitConfig().adam_eps < 1e-8
    assert not p.qat.psd_safe and FitConfig().qat.psd_safe  # the paper pruned what rounding broke
    assert p.init_positions == "uniform" and FitConfig().init_positions == "gradient"
    assert p.init_caf == "even" and p.grow_pixels == "top"  # one filter for all, the k largest errors
    assert p.grow_peak_radius == 0 and FitConfig().grow_peak_radius == 2
    FitConfig().validate()


def test_row_adam_appended_rows_start_at_zero_or_at_the_median_second_moment():
    """new_rows="median": rows appended by replace() start with the kept rows' median v per
    column (their m still 0); "zero": a fresh state. FitConfig refuses any other value."""
    gen = torch.Generator().manual_seed(1)
    for mode in ("zero", "median"):
        p = torch.randn(6, 3, generator=gen).requires_grad_(True)
        opt = RowAdam([p], [0.01], betas=(0.9, 0.9), new_rows=mode)
        for _ in range(3):
            p.grad = torch.randn(6, 3, generator=gen)
            opt.step()
        keep = torch.tensor([True, True, False, True, True, True])
        want = opt.v[0][keep].median(dim=0).values if mode == "median" else torch.zeros(3)
        grown = torch.cat((p.detach()[keep], torch.zeros(2, 3)), dim=0).requires_grad_(True)
        opt.replace([grown], keep, 2)
        assert opt.v[0].shape == (7, 3) and torch.equal(opt.v[0][5:], torch.stack([want, want]))
        assert not bool(opt.m[0][5:].any()) and bool((want > 0).all()) == (mode == "median")
    with pytest.raises(ConfigError, match="adam_new_rows"):
        FitConfig().replace(adam_new_rows="mean")


def test_the_fit_uses_the_configured_start_of_added_rows():
    base = _fit(its=40)
    other = _fit(its=40, cfg=FitConfig().replace(adam_new_rows="median"))
    assert base.means.shape != other.means.shape or not np.allclose(base.means, other.means, rtol=0, atol=1e-4)


def test_row_adam_warmup_scales_each_rows_steps_by_its_own_age():
    """warmup=W: a row's step is the plain Adam step times min(1, age / W), age counted in
    the row's own steps, so an appended row starts small while older rows are unchanged.
    The kernel step and the torch step agree; FitConfig refuses a negative or non-integer W."""
    gen = torch.Generator().manual_seed(5)
    start = torch.randn(10, 3, generator=gen)
    plain, kern, comp = (start.clone().requires_grad_(True) for _ in range(3))
    opts = [RowAdam([plain], [0.01]), RowAdam([kern], [0.01], warmup=4), RowAdam([comp], [0.01], warmup=4)]
    keep = torch.ones(10, dtype=torch.bool)
    keep[2] = False
    for i in range(8):
        if i == 5:  # append two fresh rows to every optimiser
            rows = []
            for o, p in zip(opts, (plain, kern, comp)):
                grown = torch.cat((p.detach()[keep], torch.zeros(2, 3))).requires_grad_(True)
                o.replace([grown], keep, 2)
                rows.append(grown)
            plain, kern, comp = rows
        g = torch.randn(plain.shape, generator=gen)
        before = [p.detach().clone() for p in (plain, kern, comp)]
        for p in (plain, kern, comp):
            p.grad = g.clone()
        opts[0].step()
        opts[1].step()
        opts[2].step_composed()
        steps = [b - p.detach() for b, p in zip(before, (plain, kern, comp))]
        age = opts[1].steps  # [N, 1]
        want = steps[0] * (age / 4).clamp(max=1.0)
        assert torch.allclose(steps[1], want, rtol=0, atol=2e-7)
        assert torch.allclose(steps[2], want, rtol=0, atol=2e-7)
    assert opts[1].steps.view(-1).tolist() == [8.0] * 9 + [3.0, 3.0]
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="adam_row_warmup"):
            FitConfig().replace(adam_row_warmup=bad)


def test_the_fit_uses_the_configured_row_warmup():
    base = _fit(its=40)
    other = _fit(its=40, cfg=FitConfig().replace(adam_row_warmup=30))
    assert base.means.shape != other.means.shape or not np.allclose(base.means, other.means, rtol=0, atol=1e-4)


def test_lr_density_ref_scales_the_geometry_lr_by_the_spacing():
    """lr_density_ref at 4x the fit's density (N / pixels) halves its spacing against the
    reference, so positions and covariances train exactly as with twice their lr; colours
    keep theirs; a fit denser than the reference keeps its lr. Validation refuses a
    reference <= 0."""
    from gipp_codec.fit.trainer import geometry_lr_scale

    density = 30 / (H * W)  # _fit's N over the test image's pixels: an exact binary fraction
    assert geometry_lr_scale(30, H, W, FitConfig(lr_density_ref=None)) == 1.0
    assert geometry_lr_scale(30, H, W, FitConfig(lr_density_ref=4 * density)) == 2.0
    assert geometry_lr_scale(30, H, W, FitConfig(lr_density_ref=density / 4)) == 1.0  # denser: as given
    base = FitConfig(lr_density_ref=None)
    scaled = _fit(its=40, cfg=base.replace(lr_density_ref=4 * density))
    doubled = _fit(its=40, cfg=base.replace(lr_means=2 * base.lr_means, lr_covs=2 * base.lr_covs))
    plain = _fit(its=40, cfg=base)
    assert np.array_equal(scaled.means, doubled.means) and np.array_equal(scaled.colors, doubled.colors)
    assert scaled.means.shape != plain.means.shape or not np.allclose(scaled.means, plain.means, rtol=0, atol=1e-4)
    for bad in (0.0, -0.01, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="lr_density_ref"):
            FitConfig().replace(lr_density_ref=bad)
