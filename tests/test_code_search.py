"""The greedy search over the integer codes after QAT (gipp_codec.fit.code_search)."""

import numpy as np
import pytest
import torch

from gipp_codec.errors import ConfigError
from gipp_codec.fit.api import _searches_codes, fit_and_quantize
from gipp_codec.fit.code_search import code_bits, order0_bits, search_codes, visit_order
from gipp_codec.fit.config import FitConfig
from gipp_codec.format.model import BitDepths
from gipp_codec.format.synthetic import synthetic_quantized
from gipp_codec.quant.dequant import dequantize_rows
from gipp_codec.render import get_renderer

RENDERER = get_renderer("cpu", torch.device("cpu"))


def _render(q, g) -> np.ndarray:  # [H, W, 3] float32, unclamped
    rows = dequantize_rows(q, g.scales, g.offsets)
    parts = (torch.from_numpy(np.ascontiguousarray(rows[:, i:j])) for i, j in ((0, 2), (2, 5), (5, 8)))
    with torch.no_grad():
        return RENDERER(*parts, g.height, g.width).numpy()


def _error(q, g, target) -> float:  # squared error of the clamped render
    return float(np.sum((np.clip(_render(q, g), 0.0, 1.0).astype(np.float64) - target) ** 2))


def _scene(n=24, width=20, height=16, seed=0, shift=2, bits=BitDepths()):
    """A synthetic quantized set, the clamped render of it as the target, and the same codes
    moved up to ``shift`` steps on every channel (the search's starting point)."""
    g = synthetic_quantized(n, width, height, bits=bits, seed=seed)
    target = np.clip(_render(g.q, g), 0.0, 1.0).astype(np.float64)
    rng = np.random.default_rng(seed)
    top = (1 << np.array(g.bits.per_channel())) - 1
    start = np.clip(g.q.astype(np.int64) + rng.integers(-shift, shift + 1, g.q.shape), 0, top).astype(g.q.dtype)
    return g, target.astype(np.float32), start


def test_the_search_weighs_in_the_encoders_render_convention():
    """The search's own weights subtract the taper of the render convention the encoder
    writes (its literal mirrors ``render.convention``; the sweep tests below check its
    bookkeeping against the renderer in that convention)."""
    from gipp_codec.fit import code_search
    from gipp_codec.render import convention

    assert code_search._TAPER == convention.CONVENTION_TAPERS[convention.ENCODER_CONVENTION]
    assert code_search._weight(np.array([1.0, 0.0, 1.0]), 0.0, 0.0, 0.0, 0.0) == pytest.approx(1.0 - code_search._TAPER)
    assert code_search._weight(np.array([1.0, 0.0, 1.0]), 0.0, 3.0, 0.0, 0.0) == pytest.approx(0.0, abs=1e-15)


def test_a_sweep_lowers_the_true_error_by_what_it_reports():
    """The search's own bookkeeping (the render it updates move by move) matches the real
    renderer: the error it says it removed is what the real render lost."""
    g, target, start = _scene()
    before = _error(start, g, target)
    q, report = search_codes(start, g.scales, g.offsets, g.bits.per_channel(), _render(start, g), target, 1)
    after = _error(q, g, target)
    assert q.dtype == start.dtype and q.shape == start.shape
    assert report.moves[0] > 0 and after < before
    assert before - after == pytest.approx(report.gains[0], rel=1e-3, abs=1e-6)


def test_the_result_is_a_local_optimum_of_single_steps():
    """After the search has converged no single one-step move of any code lowers the real
    clamped error: checked by brute force with the renderer. (Coarse bit depths: with fine
    ones the search keeps finding tiny gains for hundreds of sweeps.)"""
    g, target, start = _scene(n=10, width=14, height=12, seed=1, bits=BitDepths(6, 6, 5))
    q, report = search_codes(start, g.scales, g.offsets, g.bits.per_channel(), _render(start, g), target, 200)
    assert report.moves[-1] == 0  # converged
    top = (1 << np.array(g.bits.per_channel())) - 1
    best = _error(q, g, target)
    for k in range(q.shape[0]):
        for ch in range(8):
            for d in (-1, 1):
                trial = q.astype(np.int64)
                trial[k, ch] += d
                if not 0 <= trial[k, ch] <= top[ch]:
                    continue
                rows = dequantize_rows(trial, g.scales, g.offsets)
                a, b, c = rows[k, 2], rows[k, 3], rows[k, 4]
                if not a * c - b * b > 1e-6 * a * c:
                    continue
                assert _error(trial.astype(q.dtype), g, target) >= best - 1e-6 * max(best, 1e-3)


def test_codes_stay_in_range_and_gaussians_valid():
    """Codes at the ends of their range are not stepped past them, and no move leaves a
    covariance that is not positive definite."""
    g, target, start = _scene(n=40, seed=2, shift=0)
    top = (1 << np.array(g.bits.per_channel())) - 1
    start = start.astype(np.int64)
    start[::2, 5:8] = top[5:8]  # colours at the top of their range
    start[1::2, 5:8] = 0
    start = start.astype(g.q.dtype)
    q, _ = search_codes(start, g.scales, g.offsets, g.bits.per_channel(), _render(start, g), target, 5)
    assert (q.astype(np.int64) >= 0).all() and (q.astype(np.int64) <= top).all()
    rows = dequantize_rows(q, g.scales, g.offsets)
    a, b, c = rows[:, 2], rows[:, 3], rows[:, 4]
    assert ((a > 0) & (c > 0) & (a * c - b * b > 0)).all()


def _image(h=24, w=32) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 100 * np.sin(xx / 3.0), 128 + 90 * np.cos(yy / 2.5 + xx / 7.0), (xx * 9 + yy * 5) % 256], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_the_encoder_pipeline_gains_from_the_search():
    img = _image()
    runs = {}
    for sweeps in (0, 4):
        cfg = FitConfig().with_qat(start_frac=0.5, code_search_sweeps=sweeps)
        runs[sweeps] = fit_and_quantize(img, 40, 160, seed=0, device="cpu", config=cfg, backend="cpu")
    q0, s0, o0, rep0 = runs[0]
    q1, s1, o1, rep1 = runs[4]
    assert np.array_equal(s0, s1) and np.array_equal(o0, o1) and q0.shape == q1.shape
    assert not np.array_equal(q0[:, :5], q1[:, :5])  # geometry moved too, not only colours
    assert rep1.psnr > rep0.psnr + 0.1


def test_a_short_fit_runs_proportionally_fewer_sweeps():
    q = FitConfig().qat
    assert [q.sweeps_for(k) for k in (1, 1000, 1500, 2000, 3000, 4000, 4999, 5000, 10_000)] == \
        [4, 4, 5, 6, 10, 13, 16, 16, 16]
    from dataclasses import replace

    assert replace(q, code_search_full_from=None).sweeps_for(100) == 16
    assert replace(q, code_search_sweeps=0).sweeps_for(100) == 0  # off stays off (--paper)
    assert replace(q, code_search_sweeps=2).sweeps_for(100) == 2  # the minimum never raises the count
    assert replace(q, code_search_min_sweeps=1).sweeps_for(100) == 1
    for bad in ({"code_search_full_from": 0}, {"code_search_full_from": 2.5}, {"code_search_min_sweeps": 0},
                {"code_search_min_sweeps": True}):
        with pytest.raises(ConfigError, match="QATConfig.code_search_"):
            FitConfig().with_qat(**bad)


def test_fit_and_quantize_searches_with_the_sweeps_of_its_iteration_count(monkeypatch):
    import gipp_codec.fit.api as api

    seen = []
    real = api.search_codes

    def counting(*args, **kwargs):
        seen.append(args[6])  # sweeps: after q, scales, offsets, bits, render, target
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "search_codes", counting)
    cfg = FitConfig().with_qat(start_frac=0.5)
    fit_and_quantize(_image(), 40, 160, seed=0, device="cpu", config=cfg, backend="cpu")
    assert seen and set(seen) == {cfg.qat.sweeps_for(160)} == {4}
    seen.clear()
    fit_and_quantize(_image(), 40, 160, seed=0, device="cpu", config=cfg.with_qat(code_search_full_from=None),
                     backend="cpu")
    assert seen and set(seen) == {16}


def test_the_search_is_skipped_with_zero_sweeps_only():
    assert _searches_codes(FitConfig())
    assert _searches_codes(FitConfig().with_qat(rate_weight=0.5))
    assert not _searches_codes(FitConfig().with_qat(code_search_sweeps=0))
    assert not _searches_codes(FitConfig.paper())


def test_with_a_rate_weight_a_sweep_lowers_error_plus_weighted_bits_by_what_it_reports():
    """With a rate weight the sweep's bookkeeping is squared error + mu * bits (bits from the
    code histograms at the sweep's start, mu = w * error / pixels): its reported gain is
    what the real render and those bits lost; and the weighted search ends with fewer
    order-0 bits than the rate-blind one."""
    g, target, start = _scene(n=60, width=24, height=20, seed=3, shift=3)
    bits = g.bits.per_channel()
    channels = (2, 3, 4, 5, 6, 7)
    w = 2.0
    cost = code_bits(start, bits, channels)  # [8, L]
    mu = w * _error(start, g, target) / (g.width * g.height)

    def objective(q):
        return _error(q, g, target) + mu * sum(cost[j, q[:, j].astype(np.int64)].sum() for j in channels)

    q, report = search_codes(start, g.scales, g.offsets, bits, _render(start, g), target, 1,
                             rate_weight=w, rate_channels=channels)
    assert report.moves[0] > 0
    assert objective(start) - objective(q) == pytest.approx(report.gains[0], rel=1e-3, abs=1e-6)
    blind, _ = search_codes(start, g.scales, g.offsets, bits, _render(start, g), target, 4)
    weighted, _ = search_codes(start, g.scales, g.offsets, bits, _render(start, g), target, 4,
                               rate_weight=w, rate_channels=channels)
    assert order0_bits(weighted, bits, channels) < order0_bits(blind, bits, channels) - 1.0


def test_residual_pricing_is_what_the_search_gains():
    """With ``residuals`` (``QATConfig.rate_color_residuals``) a sweep prices red and blue by
    their residual from green's prediction, so a green move also changes their bits: the
    gain it reports is still exactly what the squared error plus mu * bits under the
    sweep's tables lost, and the search ends with fewer of those bits than a rate-blind one."""
    from gipp_codec.fit.code_search import rate_tables, table_bits

    g, target, start = _scene(n=60, width=24, height=20, seed=3, shift=3)
    bits = g.bits.per_channel()
    channels = (2, 3, 4, 5, 6, 7)
    w = 2.0
    cost, link = rate_tables(start, bits, channels, g.scales, g.offsets, True)
    assert link[5, 0] == 6 and link[7, 0] == 6 and (link[[2, 3, 4, 6], 0] == -1).all()
    mu = w * _error(start, g, target) / (g.width * g.height)

    def objective(q):
        return _error(q, g, target) + mu * table_bits(q, cost, link, channels)

    q, report = search_codes(start, g.scales, g.offsets, bits, _render(start, g), target, 1,
                             rate_weight=w, rate_channels=channels, residuals=True)
    assert report.moves[0] > 0
    assert (q[:, 6] != start[:, 6]).any()  # green moved: its dependants' bits were priced too
    assert objective(start) - objective(q) == pytest.approx(report.gains[0], rel=1e-3, abs=1e-6)
    blind, _ = search_codes(start, g.scales, g.offsets, bits, _render(start, g), target, 4)
    weighted, _ = search_codes(start, g.scales, g.offsets, bits, _render(start, g), target, 4,
                               rate_weight=w, rate_channels=channels, residuals=True)

    def own_bits(codes):
        c, k = rate_tables(codes, bits, channels, g.scales, g.offsets, True)
        return table_bits(codes, c, k, channels)

    assert own_bits(weighted) < own_bits(blind) - 1.0


def test_residual_tables_follow_the_coders_channel_predictor():
    """``rate_tables`` with residuals: red's cost is -log2 of the smoothed frequency of
    red - P(green), P the coder's ``channel_prediction``; without residuals, or without
    green among the channels, the order-0 tables of ``code_bits``."""
    from gipp_codec.entropy.gaussian_coder import channel_prediction
    from gipp_codec.fit.code_search import rate_tables, table_bits

    rng = np.random.default_rng(5)
    bits = (8, 8, 5, 5, 5, 4, 4, 4)
    q = rng.integers(0, 16, size=(200, 8)).astype(np.int64)
    q[:, 5] = np.clip(q[:, 6] + rng.integers(-1, 2, 200), 0, 15)  # red close to green
    scales = np.array([1, 1, 1, 1, 1, 0.1, 0.1, 0.1], np.float32)
    offsets = np.zeros(8, np.float32)
    cost, link = rate_tables(q, bits, (5, 6, 7), scales, offsets, True)
    pred = channel_prediction(q[:, 6], 6, 5, scales, offsets, 15)
    r = q[:, 5] - pred
    counts = np.bincount(r + 15, minlength=31) + 0.5
    expected = -np.log2(counts / counts.sum())[r + 15].sum()
    assert table_bits(q, cost, link, (5,)) == pytest.approx(expected)
    assert table_bits(q, cost, link, (5,)) < order0_bits(q, bits, (5,)) - 100  # the residual is narrow
    for residuals, channels in ((False, (5, 6, 7)), (True, (5, 7))):
        c, k = rate_tables(q, bits, channels, scales, offsets, residuals)
        assert (k[:, 0] == -1).all() and np.array_equal(c[:, :256], code_bits(q, bits, channels))


def test_code_bits_are_the_order0_costs_of_each_channel():
    q = np.array([[0, 0, 1, 0, 0, 3, 0, 0], [0, 0, 1, 0, 0, 3, 0, 0], [0, 0, 2, 0, 0, 0, 0, 0]], np.uint16)
    bits = (2, 2, 2, 2, 2, 2, 2, 2)
    cost = code_bits(q, bits, (2, 5))
    p = np.array([0.5, 2.5, 1.5, 0.5]) / 5.0  # channel 2: counts 0, 2, 1, 0 plus 1/2
    assert np.allclose(cost[2, :4], -np.log2(p)) and np.allclose(cost[5, :4], -np.log2(np.array([1.5, .5, .5, 2.5]) / 5))
    assert not cost[[0, 1, 3, 4, 6, 7]].any()
    assert order0_bits(q, bits, (2, 5)) == pytest.approx(cost[2, [1, 1, 2]].sum() + cost[5, [3, 3, 0]].sum())


def test_moves_to_a_nearly_singular_covariance_are_not_tried():
    """The search's validity rule is stricter than the spec's det > 0, so that a searched
    Gaussian is valid however a decoder rounds (binary32 or binary64)."""
    from gipp_codec.fit.code_search import _DET_MARGIN, _usable

    row = np.array([5.0, 5.0, 2.0, 0.0, 2.0, 0.1, 0.1, 0.1])
    assert _usable(row)
    for b, ok in ((1.99, True), (2.0 * np.sqrt(1.0 - 2 * _DET_MARGIN), True),
                  (2.0 * np.sqrt(1.0 - 0.5 * _DET_MARGIN), False), (2.0, False), (2.5, False)):
        row[3] = b
        assert _usable(row) == ok, b
    row[3], row[2] = 0.0, -1.0
    assert not _usable(row)


def test_the_encoder_trims_before_the_refit_and_the_search():
    """``reduce`` (the encoder's trim to the budget) sees QAT's own codes, and the colour
    refit and the search then tune only the rows it kept (without a rate term: with one it
    trims after the search, next test)."""
    img = _image()
    cfg = FitConfig().with_qat(start_frac=0.5, rate_weight=0.0)
    plain = fit_and_quantize(img, 40, 160, seed=0, device="cpu", config=cfg.with_qat(refit_colors=False,
                                                                                     code_search_sweeps=0),
                             backend="cpu")[0]
    seen = []

    def reduce(q, scales, offsets, priority):
        seen.append(q.copy())
        assert priority.shape == (q.shape[0],)
        return q[: q.shape[0] // 2]

    q, _, _, report = fit_and_quantize(img, 40, 160, seed=0, device="cpu", config=cfg, backend="cpu", reduce=reduce)
    assert len(seen) == 1 and np.array_equal(seen[0], plain)
    assert q.shape[0] == plain.shape[0] // 2 == report.gaussians
    assert not np.array_equal(q, plain[: q.shape[0]])


def test_with_a_rate_term_the_set_is_trimmed_after_the_search_and_searched_again():
    """With a rate term the search saves bits, so ``reduce`` is applied after it, not before
    (it then sees searched codes) and the rows it keeps are searched again; the encoder's
    file stays within its budget."""
    from gipp_codec.encoder import encode_with_report

    img = _image()
    cfg = FitConfig().with_qat(start_frac=0.5, rate_weight=0.5)
    unsearched = fit_and_quantize(img, 40, 160, seed=0, device="cpu", config=cfg.with_qat(code_search_sweeps=0),
                                  backend="cpu")[0]
    seen = []

    def reduce(q, scales, offsets, priority):
        seen.append(q.copy())
        return q[: q.shape[0] // 2]

    q = fit_and_quantize(img, 40, 160, seed=0, device="cpu", config=cfg, backend="cpu", reduce=reduce)[0]
    assert len(seen) == 1 and seen[0].shape == unsearched.shape and not np.array_equal(seen[0], unsearched)
    assert q.shape[0] == unsearched.shape[0] // 2
    assert not np.array_equal(q, seen[0][: q.shape[0]])  # searched again after the trim
    data, report = encode_with_report(img, bpp=3.0, iterations=160, config=cfg, device="cpu")
    assert 8 * len(data) <= 3.0 * img.shape[0] * img.shape[1]


def test_removal_costs_are_what_removing_each_gaussian_costs():
    """``removal_costs`` against the renderer: the clamped error without Gaussian k, minus
    the error with all of them (some removals help: the costs are signed)."""
    from gipp_codec.fit.code_search import removal_costs

    g, target, start = _scene(n=16, seed=4, shift=3)
    costs = removal_costs(start, g.scales, g.offsets, _render(start, g), target)
    full = _error(start, g, target)
    for k in range(start.shape[0]):
        without = np.delete(start, k, axis=0)
        assert costs[k] == pytest.approx(_error(without, g, target) - full, rel=1e-3, abs=1e-7)
    assert (costs > 0).any() and (costs < 0).any()


def test_the_kernels_dequantize_as_the_decoder():
    """The search's per-row dequantizer gives the decoder's float32 values bit for bit."""
    from gipp_codec.fit.code_search import _dequantize_row

    g = synthetic_quantized(50, 40, 30, seed=6)
    s = np.asarray(g.scales, np.float32).astype(np.float64)
    o = np.asarray(g.offsets, np.float32).astype(np.float64)
    expected = dequantize_rows(g.q, g.scales, g.offsets)
    out = np.empty(8)
    for k in range(g.q.shape[0]):
        _dequantize_row(g.q[k].astype(np.int64), s, o, out)
        assert np.array_equal(out.astype(np.float32), expected[k]) and np.array_equal(out, expected[k].astype(np.float64))


def _sweep_inputs(g, start, target):
    """What a sweep kernel takes: codes [N, 8] int64, scales and offsets [8] float64, top [8],
    the spatial order [N], the unclamped render [H, W, 3] float64 and the target."""
    rows = dequantize_rows(start, g.scales, g.offsets)
    order = visit_order(rows)
    top = ((1 << np.array(g.bits.per_channel())) - 1).astype(np.int64)
    return (start.astype(np.int64), g.scales.astype(np.float64), g.offsets.astype(np.float64), top, order,
            _render(start, g).astype(np.float64), np.ascontiguousarray(target, dtype=np.float32))


def test_a_tiled_sweep_is_the_serial_sweep_in_the_schedules_order():
    """The sweep runs the groups of each phase of ``tile_schedule`` in parallel; that is
    race-free and deterministic only if no two groups of a phase reach the same pixel. Then
    it makes exactly the moves the serial sweep makes visiting the Gaussians phase by phase,
    group by group: the same codes and the same render, bit for bit. The schedule visits
    every Gaussian once, keeps the search's order inside a group, and on these scenes (one
    tall and narrow: tiles along one axis only; one wide: along both) has phases of several
    groups (else nothing here would run in parallel)."""
    from gipp_codec.fit import code_search as cs

    for n, width, height, seed in ((160, 24, 240, 4), (200, 160, 96, 5)):
        g, target, start = _scene(n=n, width=width, height=height, seed=seed, shift=2)
        codes, s, o, top, order, render, image = _sweep_inputs(g, start, target)
        reach = np.empty((codes.shape[0], 4), np.int64)
        cs._reach_boxes(codes, s, o, top, g.height, g.width, reach)
        phases = cs.tile_schedule(order, reach, g.height, g.width)
        visited = np.concatenate([grp for phase in phases for grp in phase])
        assert sorted(visited.tolist()) == list(range(codes.shape[0]))
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        assert max(len(phase) for phase in phases) >= 2
        for phase in phases:
            for grp in phase:
                assert np.all(np.diff(rank[grp]) > 0)
            covered = np.zeros((g.height, g.width), np.int64)
            for number, grp in enumerate(phase):
                for i0, i1, j0, j1 in reach[grp]:
                    if i0 <= i1 and j0 <= j1:
                        block = covered[j0:j1 + 1, i0:i1 + 1]
                        assert np.isin(block, (0, number + 1)).all()  # no pixel of another group
                        block[...] = number + 1
        cost, mu = np.zeros((8, int(top.max()) + 1)), 0.0
        tiled_codes, tiled_render = codes.copy(), render.copy()
        moves, change = cs.tiled_sweep(tiled_codes, s, o, top, order, tiled_render, image, cost, mu)
        serial_codes, serial_render = codes.copy(), render.copy()
        m2, c2 = cs._sweep(serial_codes, s, o, top, visited.astype(np.int64), serial_render, image, cost,
                          cs.no_links(cost.shape[1]), mu)
        assert moves == m2 > 0 and change == pytest.approx(c2, rel=1e-9)
        assert np.array_equal(tiled_codes, serial_codes) and np.array_equal(tiled_render, serial_render)


def test_the_schedule_runs_the_tiles_of_a_wide_image_side_by_side():
    """On an image wider and taller than two tiles, a phase holds groups side by side along
    both axes (which rows alone could not run at once), and a Gaussian reaching over half
    the image falls to the last phase, alone."""
    from gipp_codec.fit.code_search import tile_schedule

    # 64 small boxes on an 8 x 8 grid of 20-pixel cells, then one huge box
    reach = [(20 * cx + 2, 20 * cx + 10, 20 * cy + 2, 20 * cy + 10) for cy in range(8) for cx in range(8)]
    reach = np.array(reach + [(0, 150, 0, 150)], np.int64)
    phases = tile_schedule(np.arange(reach.shape[0]), reach, 160, 160)
    assert len(phases[-1]) == 1 and phases[-1][0].tolist() == [64]
    first = phases[0]
    rows = {int(reach[grp[0], 2]) // 16 for grp in first}
    cols = {int(reach[grp[0], 0]) // 16 for grp in first}
    assert len(first) >= 9 and len(rows) >= 3 and len(cols) >= 3
    assert sum(len(grp) for phase in phases for grp in phase) == 65
