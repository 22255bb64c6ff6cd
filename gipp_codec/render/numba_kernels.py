"""Torch-free numba kernels of the sum-of-Gaussians renderer (forward and backward).

Follows the convention of ``gipp_codec.render.convention`` (spec: format_spec/gimg.md,
"Rendering"); the constants below mirror it one to one (this module must not import
that package, whose ``__init__`` loads torch; a test checks they agree).

Maths, per Gaussian (mean mu, covariance [[a, b], [b, c]], det = a*c - b*b) and per
pixel row with ``dy = y - my``. Completing the square in ``dx = x - mx`` gives

    m2 = qa * e*e + dy*dy / c,   e = dx - (b / c) * dy,   qa = c / det

so on a row the weight depends on the well-conditioned offset ``e`` from the row's
ellipse centre ``xc = mx + (b/c)*dy``; the columns inside the 3-sigma ellipse satisfy
``|e| <= sqrt((9 - dy*dy/c) * det / c)`` (the convention's column range). Both kernels
evaluate the wider bounding-box range ``|x - mx| <= 3*sqrt(a)`` on every row instead
(``_column_box``); the exact test ``m2 <= CUTOFF_M2`` is applied per pixel, so the range
(padded to whole blocks of ``LANES`` columns so that every inner loop is one
SIMD-friendly block) only bounds the work.

exp without a vector math library: ``exp(-m2/2) = exp(-9/4) * exp(v)**16`` with
``v = 9/64 - m2/32`` in [-9/64, 9/64]; exp(v) is the degree-4 polynomial of least
largest relative error there (``_EXP_POLY``, from ``tools/fit_exp_polynomial.py``:
3.3e-8, 5.2e-7 after the four squarings, 2.0e-6 evaluated in binary32 against 1.7e-6
for the degree-5 Taylor polynomial it replaced, with one multiply-add fewer) and the
constant exp(-9/4) is folded into the colours. Everything is plain multiply-adds, which LLVM vectorises.

Backward: with s = w * (g . colour) per pixel and u = Q d (Q = Sigma^-1, d = p - mu),
dL/dmu = sum s*u and dL/dSigma = 0.5 * sum s*u*u^T; on a row u = (qa*e, qb*e + dyc)
(qb = -b/det, dyc = dy/c), so five sums over the Gaussian's pixels (s*e, s*e*e, s*dyc,
s*e*dyc, s*dyc*dyc) give every gradient; they are kept per SIMD lane across rows.

Parallelism, both race-free and dynamically scheduled (set_parallel_chunksize, so a
thread descheduled on a loaded machine does not hold the others up): the forward runs
over bands of rows, each with a private buffer, the Gaussians binned to bands first;
the backward runs over Gaussians (chunks of _BWD_CHUNK), each owning its gradient slots.
LANES is the host's float32 vector width (16 with AVX-512, else 8), so rows need no scalar
remainder loop.
"""

import math
import operator
import threading

import numpy as np

from gipp_codec.jit import host_vector_lanes, njit, prange, set_parallel_chunksize

# Mirrors gipp_codec.render.convention (checked by tests/test_render.py).
PIXEL_CENTER_OFFSET = 0.5
CUTOFF_SIGMA = 3.0
CUTOFF_M2 = CUTOFF_SIGMA * CUTOFF_SIGMA
CONVENTION_TAPERS = {1: 0.0, 2: math.exp(-0.5 * CUTOFF_M2)}  # exp(-m2/2) less this inside, by convention
ENCODER_CONVENTION = 2

LANES = host_vector_lanes()  # columns per inner block: one float32 vector (16 with AVX-512, else 8)
BAND_ROWS = 16  # rows per forward band (a power of two: _bin divides by it)

_V_SHIFT = CUTOFF_M2 / 64.0  # v = 9/64 - m2/32
_EXP_SCALE = math.exp(-16.0 * _V_SHIFT)  # exp(-9/4): exp(-m2/2) = _EXP_SCALE * exp(v)**16
# exp(v) ~ sum _EXP_POLY[n] * v**n on [-9/64, 9/64] (float32; `python tools/fit_exp_polynomial.py`)
_EXP_POLY = (1.0, 0.9999989867210388, 0.5000011920928955, 0.16687242686748505, 0.04163234680891037)
# Slack (pixels) on the analytic ranges; the per-pixel m2 test is the authority.
_RANGE_SLACK = 1e-3

# fastmath without nnan/ninf: NaN-producing inputs must still fail the m2 test.
_FM = {"contract", "afn", "arcp", "reassoc", "nsz"}
_OPTS = dict(fastmath=_FM, cache=True, nogil=True, error_model="numpy", boundscheck=False)
# The backward's sums without reassoc: with it, numba's fresh compile of _backward_gauss and
# the copy it loads from its cache round differently, so an encode with a cold cache wrote
# other files than one with a warm cache (BENCHMARKS.md §4, "A cold numba cache writes other
# files"); its per-lane sums are already in vector form and need no reassociation
_OPTS_ORDERED = dict(_OPTS, fastmath=_FM - {"reassoc"})


@njit(**_OPTS)
def _finite_row(bits, k):
    """All float32 entries of row k (viewed as uint32) finite: exponent bits not all ones.
    Integer test, so fastmath cannot fold it away."""
    for q in range(bits.shape[1]):
        if (bits[k, q] & np.uint32(0x7F800000)) == np.uint32(0x7F800000):
            return False
    return True


@njit(**_OPTS)
def _setup(means, covs, colors, height, width, oy, par, rows):
    """Per-Gaussian constants par [N, 8] (float64) and row ranges rows [N, 2] clipped to the
    ``height`` rows of a window whose first row is row ``oy`` of the image (0: the image
    itself), counted from the window's first row.

    par: mx, my, b/c, 1/c, det/c, qa = c/det, qb = -b/det, unused. Invalid Gaussians
    (not positive definite, or any non-finite attribute) get an empty row range.
    """
    n = means.shape[0]
    mbits = means.view(np.uint32)
    cbits = covs.view(np.uint32)
    colbits = colors.view(np.uint32)
    for k in range(n):
        mx = np.float64(means[k, 0])
        my = np.float64(means[k, 1])
        a = np.float64(covs[k, 0])
        b = np.float64(covs[k, 1])
        c = np.float64(covs[k, 2])
        det = a * c - b * b
        finite = _finite_row(mbits, k) and _finite_row(cbits, k) and _finite_row(colbits, k)
        ok = finite and a > 0.0 and c > 0.0 and det > 0.0 and det < np.inf
        rows[k, 0] = 0
        rows[k, 1] = -1
        if not ok:
            continue
        ry = math.sqrt(CUTOFF_M2 * c)
        lo = my - ry - PIXEL_CENTER_OFFSET - _RANGE_SLACK - oy
        hi = my + ry - PIXEL_CENTER_OFFSET + _RANGE_SLACK - oy
        if lo < 0.0:
            lo = 0.0
        if hi > height - 1.0:
            hi = height - 1.0
        if not (lo <= hi):
            continue
        j0 = int(math.ceil(lo))
        j1 = int(math.floor(hi))
        if j1 < j0:
            continue
        rows[k, 0] = j0
        rows[k, 1] = j1
        par[k, 0] = mx
        par[k, 1] = my
        par[k, 2] = b / c
        par[k, 3] = 1.0 / c
        par[k, 4] = det / c
        par[k, 5] = c / det
        par[k, 6] = -b / det


@njit(**_OPTS)
def _bin(rows, nbands):
    """Gaussian indices per band of BAND_ROWS rows: (offsets [nbands + 1], items) in CSR
    form. BAND_ROWS is a compile-time constant (a power of two), so the row-to-band
    divisions are shifts."""
    n = rows.shape[0]
    counts = np.zeros(nbands + 1, np.int64)
    for k in range(n):
        if rows[k, 1] >= rows[k, 0]:
            for bd in range(rows[k, 0] // BAND_ROWS, rows[k, 1] // BAND_ROWS + 1):
                counts[bd + 1] += 1
    for bd in range(nbands):
        counts[bd + 1] += counts[bd]
    items = np.empty(counts[nbands], np.int32)
    fill = counts[:nbands].copy()
    for k in range(n):
        if rows[k, 1] >= rows[k, 0]:
            for bd in range(rows[k, 0] // BAND_ROWS, rows[k, 1] // BAND_ROWS + 1):
                items[fill[bd]] = k
                fill[bd] += 1
    return counts, items


@njit(**_OPTS)
def _lane_offsets(wp):
    """[wp] float32 0, 1, 2, ...: the column offsets the inner loops add, loaded instead of
    converted from the loop counter (AVX2 has no packed int64-to-float conversion, so
    np.float32(i) costs eight scalar conversions per vector; the values are the same)."""
    lane = np.empty(wp, np.float32)
    for i in range(wp):
        lane[i] = np.float32(i)
    return lane


@njit(**_OPTS)
def _padded_width(width):
    return ((width + LANES - 1) // LANES + 1) * LANES


@njit(**_OPTS)
def _column_box(par, k, width, ox, image_width):
    """Columns every row of Gaussian k covers: the bounding box ``|x - mx| <= 3*sqrt(a)``
    clipped to an image ``image_width`` columns wide, whose first column ``anchor`` is where
    the row offsets are measured from, and its part in the window of ``width`` columns from
    column ``ox``: (anchor, first column counted from ``ox``, count of LANES-column blocks),
    the count 0 when it misses. Measuring from the image's anchor, not the window's edge,
    makes a window's pixels equal the image's (each lane adds its column offset to the
    anchor's in binary32). One range per Gaussian (a constant trip count, no square root per
    row) costs less than the extra lanes, which the m2 test zeroes. The last block may run
    up to LANES - 1 columns past the window: buffers are padded (see _padded_width)."""
    a = par[k, 4] + par[k, 2] * par[k, 2] / par[k, 3]  # det/c + (b/c)^2 * c
    rx = math.sqrt(CUTOFF_M2 * a)
    lo = max(par[k, 0] - rx - PIXEL_CENTER_OFFSET - _RANGE_SLACK, 0.0)
    hi = min(par[k, 0] + rx - PIXEL_CENTER_OFFSET + _RANGE_SLACK, image_width - 1.0)
    if not (lo <= hi):
        return 0, 0, 0
    i0 = int(math.ceil(lo))
    i1 = min(int(math.floor(hi)), ox + width - 1)
    first = max(i0, ox)
    if i1 < first:
        return 0, 0, 0
    return i0, first - ox, (i1 - first) // LANES + 1


@njit(**_OPTS)
def _row_start(par, k, j, i0):
    """Row j of Gaussian k: (offset e of column i0 from the row's ellipse centre, dy*dy/c), float32."""
    dy = j + PIXEL_CENTER_OFFSET - par[k, 1]
    return np.float32(i0 + PIXEL_CENTER_OFFSET - (par[k, 0] + par[k, 2] * dy)), np.float32(dy * dy * par[k, 3])


@njit(**_OPTS)
def _weight(e, qa, m2r, taper):
    """Block-lane weight (exp(-m2/2) - taper) / exp(-9/4) (the scale lives in the colours;
    ``taper`` comes scaled so, ``kernel_taper``), 0 outside."""
    m2 = qa * e * e + m2r
    v = np.float32(_V_SHIFT) - m2 * np.float32(1.0 / 32.0)
    p = np.float32(_EXP_POLY[0]) + v * (np.float32(_EXP_POLY[1]) + v * (np.float32(_EXP_POLY[2]) + v * (
        np.float32(_EXP_POLY[3]) + v * np.float32(_EXP_POLY[4]))))
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p - taper if m2 <= np.float32(CUTOFF_M2) else np.float32(0.0)


@njit(**_OPTS)
def _accumulate_band(par, rows, colors, offsets, items, bd, r0, r1, width, lane, buf, taper, ox, oy, image_width):
    """Add every Gaussian binned to band bd (rows r0..r1 of the window of ``width`` columns
    at column ``ox``, row ``oy`` of an image ``image_width`` wide) into buf [3, band_rows, Wp];
    lane [>= image_width + LANES] holds 0, 1, 2, ... as float32 (see _lane_offsets)."""
    wp = buf.shape[2]
    plane = np.uint64(buf.shape[1] * wp)
    flat = buf.reshape(buf.size)  # rows addressed by offset: no array view (and refcount) per row
    for it in range(offsets[bd], offsets[bd + 1]):
        k = items[it]
        anchor, first, nblk = _column_box(par, k, width, ox, image_width)
        ub = np.uint64(first)
        skip = first + ox - anchor  # the image's columns left of the window in the box: 0 unless it is cut
        lanes = lane if skip == 0 else lane[skip:]  # the offsets of the window's columns from the anchor
        c0 = np.float32(colors[k, 0] * _EXP_SCALE)
        c1 = np.float32(colors[k, 1] * _EXP_SCALE)
        c2 = np.float32(colors[k, 2] * _EXP_SCALE)
        qa = np.float32(par[k, 5])
        for j in range(max(rows[k, 0], r0), min(rows[k, 1], r1) + 1):
            off, m2r = _row_start(par, k, j + oy, anchor)
            b0 = np.uint64((j - r0) * wp) + ub
            b1 = b0 + plane
            b2 = b1 + plane
            for i in range(nblk * LANES):
                w = _weight(off + lanes[i], qa, m2r, taper)
                ui = np.uint64(i)
                flat[b0 + ui] += w * c0
                flat[b1 + ui] += w * c1
                flat[b2 + ui] += w * c2


@njit(**_OPTS)
def _level(v):
    """The convention's 8-bit level of one float32 value: floor(clamp(v, 0, 1) * 255 + 0.5),
    evaluated exactly (binary64 holds v * 255 + 0.5 without rounding, fused or not).
    Selects instead of branches, so the loop vectorises; truncation is floor here (x >= 0.5)."""
    x = np.float64(v)
    x = x if x > 0.0 else 0.0  # also NaN
    x = x if x < 1.0 else 1.0
    return np.uint8(np.int32(x * 255.0 + 0.5))


@njit(**_OPTS)
def _store_levels(buf, out, r0, r1, width, planes, with_base, base, factor, y0):
    """Rows r0..r1 of out [H, W, 3] uint8 = the 8-bit levels of band buffer buf [3, rows, Wp],
    plus, ``with_base``, the base layer of grid rows ``base`` (float32 [3, gh, W]) (``_base_row``) added to
    each value in float32 on the way: levels plane by plane into planes [3, Wp], then
    interleaved into the output row, which is addressed flat (as [3 * W]: faster than
    indexing it [W, 3], BENCHMARKS.md §6, "Output rows stored flat ...")."""
    p0 = planes[0]
    p1 = planes[1]
    p2 = planes[2]
    for rr in range(r1 - r0 + 1):
        if with_base:
            i0, i1, s = _base_row(base.shape[1], factor, r0 + rr, y0)
            for ch in range(3):
                src = buf[ch, rr]
                h0 = base[ch, i0]
                h1 = base[ch, i1]
                dst = planes[ch]
                for i in range(width):
                    dst[i] = _level(src[i] + np.float32((1.0 - s) * np.float64(h0[i]) + s * np.float64(h1[i])))
        else:
            for ch in range(3):
                src = buf[ch, rr]
                dst = planes[ch]
                for i in range(width):
                    dst[i] = _level(src[i])
        orow = out[r0 + rr].reshape(3 * width)  # [3 * W], a view: out is C-contiguous
        for i in range(width):
            orow[3 * i] = p0[i]
            orow[3 * i + 1] = p1[i]
            orow[3 * i + 2] = p2[i]


@njit(**_OPTS)
def _store_floats(buf, out, r0, r1, width):
    """Rows r0..r1 of out [H, W, 3] float32 = band buffer buf [3, rows, Wp], interleaved
    (each output row addressed flat, as in _store_levels)."""
    for rr in range(r1 - r0 + 1):
        orow = out[r0 + rr].reshape(3 * width)  # [3 * W], a view: out is C-contiguous
        s0 = buf[0, rr]
        s1 = buf[1, rr]
        s2 = buf[2, rr]
        for i in range(width):
            orow[3 * i] = s0[i]
            orow[3 * i + 1] = s1[i]
            orow[3 * i + 2] = s2[i]


@njit(**_OPTS)
def _store_residual(buf, target_planar, scale, gp, r0, r1, width):
    """Rows r0..r1 of gp [3, H, Wp] = (buf - target) * scale, each value rounded as
    ``(image - target) * scale`` in float32 (no fused multiply-add: _OPTS has no fastmath);
    target_planar [3, H, W]; padding columns zero. All planar: contiguous, vectorised.
    Returns the rows' sum of squared residuals (buf - target)^2, summed in float64."""
    total = 0.0
    for ch in range(3):
        for rr in range(r1 - r0 + 1):
            src = buf[ch, rr]
            tgt = target_planar[ch, r0 + rr]
            dst = gp[ch, r0 + rr]
            for i in range(width):
                d = src[i] - tgt[i]
                dst[i] = d * scale
                total += np.float64(d) * np.float64(d)
            for i in range(width, dst.shape[0]):
                dst[i] = 0.0
    return total


@njit(**_OPTS)
def _base_row(gh, factor, row, y0):
    """The base layer's vertical pass at window row ``row``: (i0, i1, s), the two grid rows
    (of the gh horizontally upsampled ones) and the weight s of the second, so that its
    values are float32((1 - s) h0 + s h1) in binary64 (``format.base_layer.upsample``).
    ``factor``: the block side F (a power of two, so u is exact; at another size than the
    file's, F times the scale, ``render.rescale.block_sides``). ``y0``: the row of the
    base's plane that the window's first row is (0.0 for the whole image; an integer keeps
    u exact)."""
    u = (np.float64(row) + y0 + 0.5) / factor - 0.5
    i0 = int(math.floor(u))
    s = u - i0
    if i0 < 0 or i0 >= gh - 1:
        i0 = min(max(i0, 0), gh - 1)
        s = 0.0
    return i0, min(i0 + 1, gh - 1), s


OUT_FLOATS, OUT_LEVELS, OUT_FLOATS_AND_RESIDUAL, OUT_RESIDUAL = 0, 1, 2, 3  # _forward_bands output modes
OUT_LEVELS_BASE = 4  # OUT_LEVELS with a base layer added first: target_planar holds its grid rows, scale its F


@njit(parallel=True, **_OPTS)
def _forward_bands(par, rows, colors, offsets, items, height, width, band_rows, out, mode,
                   target_planar, scale, gp, sse, taper, ox, oy, image_width, base_y0):
    """One prange iteration per band (scheduled dynamically by the caller's chunk size);
    a band accumulates in a private planar buffer [channel, row, column] (L2-resident)
    that is then interleaved into out [H, W, 3]: float32 values (OUT_FLOATS), or (and a
    uint8 out) the convention's 8-bit levels (OUT_LEVELS), so the decoder never stores a
    float image. OUT_FLOATS_AND_RESIDUAL also writes, from the same buffers, the MSE
    gradient gp [3, H, Wp] = (out - target) * scale (target_planar [3, H, W]) in the
    backward's planar layout, and OUT_RESIDUAL writes only that gradient (out unused); both
    also write each band's sum of squared residuals to sse [nbands] float64. The other
    modes ignore target_planar, scale, gp and sse, except OUT_LEVELS_BASE, which adds a
    base layer (``_base_row``: target_planar its grid rows [3, gh, W], scale its factor F)
    to the values as it stores the levels (at row ``base_y0`` of its plane).

    The image is a window of ``width`` x ``height`` pixels from column ``ox``, row ``oy`` of
    one ``image_width`` columns wide (0, 0 and ``width`` for a whole image; par and rows from
    ``_setup`` with the same ``oy``): its pixels are the whole image's, bit for bit."""
    nbands = (height + band_rows - 1) // band_rows
    wp = _padded_width(width)
    lane = _lane_offsets(_padded_width(image_width))
    for bd in prange(nbands):
        buf = np.zeros((3, band_rows, wp), np.float32)
        r0 = bd * band_rows
        r1 = min(r0 + band_rows, height) - 1
        _accumulate_band(par, rows, colors, offsets, items, bd, r0, r1, width, lane, buf, taper, ox, oy, image_width)
        if mode == OUT_LEVELS or mode == OUT_LEVELS_BASE:  # the base, if any, added on the way
            _store_levels(buf, out, r0, r1, width, np.empty((3, wp), np.uint8), mode == OUT_LEVELS_BASE,
                          target_planar, np.float64(scale), base_y0)
        elif mode != OUT_RESIDUAL:
            _store_floats(buf, out, r0, r1, width)
        if mode == OUT_FLOATS_AND_RESIDUAL or mode == OUT_RESIDUAL:
            sse[bd] = _store_residual(buf, target_planar, scale, gp, r0, r1, width)


@njit(parallel=True, **_OPTS)
def _planar_grad(grad_image, height, width, gp):
    """grad_image [H, W, 3] -> gp [3, H, Wp] (padding columns zero)."""
    for j in prange(height):
        for i in range(width):
            gp[0, j, i] = grad_image[j, i, 0]
            gp[1, j, i] = grad_image[j, i, 1]
            gp[2, j, i] = grad_image[j, i, 2]
        for i in range(width, gp.shape[2]):
            gp[0, j, i] = 0.0
            gp[1, j, i] = 0.0
            gp[2, j, i] = 0.0


@njit(**_OPTS)
def _spatial_order(par, rows, height, width, cell):
    """Indices of the drawable Gaussians ordered by the cell x cell pixel cell of their
    (clipped) centre, row-major: neighbours in the order touch the same gradient rows,
    so the backward reads them from cache instead of memory."""
    n = rows.shape[0]
    ncx = (width + cell - 1) // cell
    ncy = (height + cell - 1) // cell
    key = np.empty(n, np.int64)
    counts = np.zeros(ncx * ncy + 1, np.int64)
    for k in range(n):
        if rows[k, 1] < rows[k, 0]:
            key[k] = -1
            continue
        cx = min(max(par[k, 0], 0.0), width - 1.0)
        cy = min(max(par[k, 1], 0.0), height - 1.0)
        q = int(cy) // cell * ncx + int(cx) // cell
        key[k] = q
        counts[q + 1] += 1
    for q in range(ncx * ncy):
        counts[q + 1] += counts[q]
    order = np.empty(counts[ncx * ncy], np.int64)
    for k in range(n):
        q = key[k]
        if q >= 0:
            order[counts[q]] = k
            counts[q] += 1
    return order


_ACC = 8  # per-lane accumulators of the backward: colour sums (3), then A1, A2, B0, B1, C0


@njit(parallel=True, **_OPTS_ORDERED)
def _backward_gauss(par, rows, colors, gp, width, order, g_means, g_covs, g_colors, taper):
    """Gradients of Gaussian order[t], one prange item each (chunks of _BWD_CHUNK).

    With s = w * (g . colour) (w = exp(-m2/2) here, without the taper, whose derivative it
    shares), e the row offset and dyc = dy / c of each pixel, the
    gradients need five sums over the Gaussian's pixels (module docstring):
    A1 = sum s*e, A2 = sum s*e*e, B0 = sum s*dyc, B1 = sum s*e*dyc, C0 = sum s*dyc*dyc,
    and the colour sums sum (w - taper)*g. Each is kept per lane (acc [_ACC, LANES], float32) over
    all rows and reduced once per Gaussian, so a row costs no horizontal reduction."""
    wp = gp.shape[2]
    lane = _lane_offsets(wp)
    plane = np.uint64(gp.shape[1] * wp)
    flat = gp.reshape(gp.size)  # rows addressed by offset: no array view (and refcount) per row
    for t in prange(order.shape[0]):
        k = order[t]
        g_means[k, 0] = 0.0
        g_means[k, 1] = 0.0
        g_covs[k, 0] = 0.0
        g_covs[k, 1] = 0.0
        g_covs[k, 2] = 0.0
        g_colors[k, 0] = 0.0
        g_colors[k, 1] = 0.0
        g_colors[k, 2] = 0.0
        if rows[k, 1] < rows[k, 0]:
            continue
        c0 = np.float32(colors[k, 0] * _EXP_SCALE)
        c1 = np.float32(colors[k, 1] * _EXP_SCALE)
        c2 = np.float32(colors[k, 2] * _EXP_SCALE)
        qa64 = par[k, 5]
        qb64 = par[k, 6]
        qa = np.float32(qa64)
        _, b0, nblk = _column_box(par, k, width, 0, width)
        acc = np.zeros((_ACC, LANES), np.float32)
        for j in range(rows[k, 0], rows[k, 1] + 1):
            off, m2r = _row_start(par, k, j, b0)
            dyc = np.float32((j + PIXEL_CENTER_OFFSET - par[k, 1]) * par[k, 3])
            base0 = np.uint64(j * wp + b0)
            base1 = base0 + plane
            base2 = base1 + plane
            for blk in range(nblk):
                for ln in range(LANES):  # one SIMD vector: the acc rows stay in registers
                    i = np.uint64(blk * LANES + ln)
                    e = off + lane[i]
                    wx = _weight(e, qa, m2r, np.float32(0.0))  # exp(-m2/2): its derivative
                    w = _weight(e, qa, m2r, taper)  # the rendered weight (the same polynomial, shared)
                    g0 = flat[base0 + i]
                    g1 = flat[base1 + i]
                    g2 = flat[base2 + i]
                    acc[0, ln] += w * g0
                    acc[1, ln] += w * g1
                    acc[2, ln] += w * g2
                    s = wx * (g0 * c0 + g1 * c1 + g2 * c2)
                    se = s * e
                    sd = s * dyc
                    acc[3, ln] += se
                    acc[4, ln] += se * e
                    acc[5, ln] += sd
                    acc[6, ln] += se * dyc
                    acc[7, ln] += sd * dyc
        tot = np.zeros(_ACC)  # float64 sums of the lanes
        for q in range(_ACC):
            for ln in range(LANES):
                tot[q] += acc[q, ln]
        a1, a2, b0s, b1s, c0s = tot[3], tot[4], tot[5], tot[6], tot[7]
        g_means[k, 0] = qa64 * a1
        g_means[k, 1] = qb64 * a1 + b0s
        g_covs[k, 0] = 0.5 * qa64 * qa64 * a2
        g_covs[k, 1] = qa64 * (qb64 * a2 + b1s)
        g_covs[k, 2] = 0.5 * (qb64 * qb64 * a2 + 2.0 * qb64 * b1s + c0s)
        g_colors[k, 0] = tot[0] * _EXP_SCALE
        g_colors[k, 1] = tot[1] * _EXP_SCALE
        g_colors[k, 2] = tot[2] * _EXP_SCALE


_FWD_CHUNK = 1  # bands per dynamically scheduled forward work item
_NO_PLANES = np.zeros((3, 0, 0), np.float32)  # target_planar and gp of the modes that write no residual
_NO_IMAGE = np.zeros((0, 0, 3), np.float32)  # out of OUT_RESIDUAL, which stores no image
_NO_SSE = np.zeros(0, np.float64)  # sse of the modes that write no residual
_BWD_CHUNK = 64  # Gaussians per dynamically scheduled backward work item
_tls = threading.local()  # per-thread scratch: concurrent callers never share buffers


def _scratch(name, shape, dtype):
    """A per-thread scratch array reused across calls (reallocated when the shape changes)."""
    buf = getattr(_tls, name, None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = np.empty(shape, dtype)
        setattr(_tls, name, buf)
    return buf


def _f32(x, cols):
    x = np.asarray(x)
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, dtype=np.float32)
    return x.reshape(-1, cols)


class Prepared:
    """Per-Gaussian constants of one scene, shared by forward and backward; of a window of
    it when ``window`` (x, y, image_width) is given: the height x width pixels from column
    x, row y of an image ``image_width`` columns wide (forward only)."""

    __slots__ = ("means", "covs", "colors", "height", "width", "par", "rows", "convention", "taper", "window")

    def __init__(self, means, covs, colors, height, width, convention=ENCODER_CONVENTION, window=None):
        means, covs, colors = _f32(means, 2), _f32(covs, 3), _f32(colors, 3)
        n = means.shape[0]
        if covs.shape[0] != n or colors.shape[0] != n:
            raise ValueError(
                f"means [N,2], covs [N,3] and colors [N,3] must agree on N, got "
                f"{means.shape}, {covs.shape}, {colors.shape}"
            )
        height, width = int(height), int(width)
        if height < 1 or width < 1:
            raise ValueError(f"image size must be positive, got {height}x{width}")
        ox, oy, image_width = (0, 0, width) if window is None else (operator.index(v) for v in window)
        if ox < 0 or oy < 0 or ox + width > image_width:
            raise ValueError(f"a {width}-column window at column {ox}, row {oy} does not lie in an image "
                             f"{image_width} columns wide")
        self.window = (ox, oy, image_width)
        self.means, self.covs, self.colors = means, covs, colors
        self.height, self.width = height, width
        self.convention = int(convention)
        self.taper = kernel_taper(self.convention)
        self.par = np.empty((n, 8), np.float64)
        self.rows = np.empty((n, 2), np.int64)
        _setup(means, covs, colors, height, width, oy, self.par, self.rows)


def kernel_taper(convention: int) -> np.float32:
    """Render ``convention``'s taper in the kernels' weight units (divided by _EXP_SCALE)."""
    if convention not in CONVENTION_TAPERS:
        raise ValueError(f"unknown render convention {convention!r}; known: {sorted(CONVENTION_TAPERS)}")
    return np.float32(CONVENTION_TAPERS[convention] / _EXP_SCALE)


def prepare(means, covs, colors, height, width, convention=ENCODER_CONVENTION, window=None):
    """Validate and convert the inputs once (float32, C order) and compute the
    per-Gaussian constants, for render ``convention`` (spec §7; the encoder's by default);
    pass the result to forward_prepared / backward_prepared. ``window`` (x, y, image_width):
    render only the height x width pixels from column x, row y of the image (``Prepared``)."""
    return Prepared(means, covs, colors, height, width, convention, window)


def forward_prepared(pp, out=None, uint8=False, base_rows=None, base_factor=0, base_y0=0.0):
    """Render into out [H, W, 3] (allocated when None) and return it: float32 unclamped, or
    with ``uint8=True`` the convention's 8-bit levels (floor(clamp(v, 0, 1) * 255 + 0.5)),
    of the render plus, when ``base_rows`` (float32 [3, gh, W], ``format.base_layer.grid_rows``)
    are given (``uint8`` only), the base layer of block side ``base_factor``, the output's
    first row being row ``base_y0`` of the base's plane. A window's pixels (``prepare``) are
    the whole image's, bit for bit."""
    h, w = pp.height, pp.width
    ox, oy, image_width = pp.window
    if out is None:
        out = np.empty((h, w, 3), np.uint8 if uint8 else np.float32)
    elif out.shape != (h, w, 3) or out.dtype != (np.uint8 if uint8 else np.float32) or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {'uint8' if uint8 else 'float32'} array of shape {(h, w, 3)}, "
                         f"got {out.dtype} {out.shape}")
    nbands = (h + BAND_ROWS - 1) // BAND_ROWS
    offsets, items = _bin(pp.rows, nbands)
    old = set_parallel_chunksize(_FWD_CHUNK)
    try:
        if base_rows is not None:
            if not uint8:
                raise ValueError("a base layer is added on the 8-bit render only")
            _forward_bands(pp.par, pp.rows, pp.colors, offsets, items, h, w, BAND_ROWS, out, OUT_LEVELS_BASE,
                           np.ascontiguousarray(base_rows, dtype=np.float32), np.float32(base_factor), _NO_PLANES,
                           _NO_SSE, pp.taper, ox, oy, image_width, float(base_y0))
        else:
            _forward_bands(pp.par, pp.rows, pp.colors, offsets, items, h, w, BAND_ROWS, out,
                           OUT_LEVELS if uint8 else OUT_FLOATS, _NO_PLANES, np.float32(0.0), _NO_PLANES, _NO_SSE,
                           pp.taper, ox, oy, image_width, float(base_y0))
    finally:
        set_parallel_chunksize(old)
    return out


def forward_residual_prepared(pp, target_planar, scale, image=True):
    """Render (float32 [H, W, 3], unclamped) and, from the same band buffers, the gradient of
    ``sum((image - target)^2) * scale / 2``: gp [3, H, Wp] = (image - target) * scale, in
    the per-thread buffer ``backward_planar_prepared`` reads. target_planar [3, H, W]
    float32 (the target's channels as planes). Returns (image, gp, sse), sse the sum of
    (image - target)^2 over the image (summed in float64); with ``image=False`` the image
    is not stored and None takes its place."""
    h, w = pp.height, pp.width
    _whole_image(pp)
    target_planar = np.ascontiguousarray(target_planar, dtype=np.float32)
    if target_planar.shape != (3, h, w):
        raise ValueError(f"target_planar must be [3, {h}, {w}], got {target_planar.shape}")
    out = np.empty((h, w, 3), np.float32) if image else _NO_IMAGE
    gp = _scratch("gp", (3, h, _padded_width(w)), np.float32)
    nbands = (h + BAND_ROWS - 1) // BAND_ROWS
    sse = np.zeros(nbands, np.float64)  # [nbands]
    offsets, items = _bin(pp.rows, nbands)
    old = set_parallel_chunksize(_FWD_CHUNK)
    try:
        _forward_bands(pp.par, pp.rows, pp.colors, offsets, items, h, w, BAND_ROWS, out,
                       OUT_FLOATS_AND_RESIDUAL if image else OUT_RESIDUAL, target_planar, np.float32(scale), gp,
                       sse, pp.taper, 0, 0, w, 0.0)
    finally:
        set_parallel_chunksize(old)
    return (out if image else None), gp, float(sse.sum())


def _whole_image(pp):
    """A ValueError unless ``pp`` was prepared for a whole image: the training passes have no window."""
    if pp.window != (0, 0, pp.width):
        raise ValueError("a window of an image is rendered by forward_prepared only")


def _output_grads(pp, g_means, g_covs, g_colors):
    """The gradient arrays (means [N,2], covs [N,3], colors [N,3]) float32, allocated when
    None, zeroed."""
    n = pp.means.shape[0]
    if g_means is None:
        g_means = np.empty((n, 2), np.float32)
    if g_covs is None:
        g_covs = np.empty((n, 3), np.float32)
    if g_colors is None:
        g_colors = np.empty((n, 3), np.float32)
    g_means[:] = 0.0
    g_covs[:] = 0.0
    g_colors[:] = 0.0
    return g_means, g_covs, g_colors


def backward_planar_prepared(pp, gp, g_means=None, g_covs=None, g_colors=None):
    """Gradients (means [N,2], covs [N,3], colors [N,3]) float32 of sum(G * image) for the
    image gradient G given as planes gp [3, H, Wp] (padding columns zero), written into the
    given arrays (allocated when None)."""
    h, w = pp.height, pp.width
    _whole_image(pp)
    if gp.shape != (3, h, _padded_width(w)) or gp.dtype != np.float32:
        raise ValueError(f"gp must be float32 [3, {h}, {_padded_width(w)}], got {gp.dtype} {gp.shape}")
    g_means, g_covs, g_colors = _output_grads(pp, g_means, g_covs, g_colors)
    order = _spatial_order(pp.par, pp.rows, h, w, 32)
    if order.shape[0]:
        old = set_parallel_chunksize(_BWD_CHUNK)
        try:
            _backward_gauss(pp.par, pp.rows, pp.colors, gp, w, order, g_means, g_covs, g_colors, pp.taper)
        finally:
            set_parallel_chunksize(old)
    return g_means, g_covs, g_colors


def backward_prepared(pp, grad_image, g_means=None, g_covs=None, g_colors=None):
    """Gradients (means [N,2], covs [N,3], colors [N,3]) float32 of sum(grad_image * image),
    written into the given arrays (allocated when None)."""
    h, w = pp.height, pp.width
    grad_image = np.asarray(grad_image)
    if grad_image.dtype != np.float32:
        grad_image = grad_image.astype(np.float32)
    if grad_image.shape != (h, w, 3):
        raise ValueError(f"grad_image must be [{h}, {w}, 3], got {grad_image.shape}")
    gp = _scratch("gp", (3, h, _padded_width(w)), np.float32)
    old = set_parallel_chunksize(_BWD_CHUNK)
    try:
        _planar_grad(grad_image, h, w, gp)
    finally:
        set_parallel_chunksize(old)
    return backward_planar_prepared(pp, gp, g_means, g_covs, g_colors)


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _clip_nan(x, lo, hi):
    """x clipped to [lo, hi] as numpy's clip does it: NaN stays NaN."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _centres_within(m, r, size):
    """How many of the pixel centres 0.5 .. size - 0.5 lie within r of m on one axis, as
    ``convention.render_work`` counts them (binary64; NaN anywhere counts 0)."""
    lo = _clip_nan(np.ceil(m - r - PIXEL_CENTER_OFFSET), 0.0, np.float64(size))
    hi = _clip_nan(np.floor(m + r - PIXEL_CENTER_OFFSET), -1.0, np.float64(size - 1))
    count = hi - lo + 1.0
    if not count > 0.0:  # negative, or NaN
        return 0
    return np.int64(count)


# No fastmath: every operation rounds to binary64 as the numpy statement's does.
@njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def render_work_kernel(means, covs, width, height):
    """The spec's render work (spec §8) of means [N, 2] and covs [N, 3] float32: the pixels of
    the valid Gaussians' bounding squares, equal to ``convention.render_work`` (its numpy
    statement, which it replaces on the decode path: one pass, no temporaries), summed in int64."""
    total = np.int64(0)
    for k in range(means.shape[0]):
        a = np.float64(covs[k, 0])
        b = np.float64(covs[k, 1])
        c = np.float64(covs[k, 2])
        if not (a > 0.0 and c > 0.0 and a * c - b * b > 0.0):
            continue
        d = a - c
        # the statement's maximum(., 0) guards never bind here: with a, c > 0 both are >= 0 (or NaN)
        lam_max = 0.5 * (a + c) + np.sqrt(0.25 * (d * d) + b * b)
        r = CUTOFF_SIGMA * np.sqrt(lam_max)
        total += _centres_within(np.float64(means[k, 0]), r, width) * _centres_within(np.float64(means[k, 1]), r, height)
    return total


def forward(means, covs, colors, height, width, convention=ENCODER_CONVENTION):
    """Render [H, W, 3] float32 (unclamped) from means [N,2], covs [N,3], colors [N,3]."""
    return forward_prepared(prepare(means, covs, colors, height, width, convention))


def forward_uint8(means, covs, colors, height, width, convention=ENCODER_CONVENTION, base_rows=None, base_factor=0,
                  window=None, base_y0=0.0):
    """Render [H, W, 3] uint8 (the convention's 8-bit levels) from means [N,2], covs [N,3], colors [N,3],
    plus a base layer given by its grid rows [3, gh, W], block side and first row in its plane;
    of a window (x, y, image_width) of the image when given (``prepare``, ``forward_prepared``)."""
    return forward_prepared(prepare(means, covs, colors, height, width, convention, window), uint8=True,
                            base_rows=base_rows, base_factor=base_factor, base_y0=base_y0)


def backward(means, covs, colors, height, width, grad_image, convention=ENCODER_CONVENTION):
    """Gradients (means [N,2], covs [N,3], colors [N,3]) float32 of sum(grad_image * forward)."""
    return backward_prepared(prepare(means, covs, colors, height, width, convention), grad_image)


@njit(cache=True, nogil=True, boundscheck=False)  # no fastmath: each product and sum one binary64 operation
def base_rows_kernel(values, j0, j1, t, out):
    """The base layer's horizontal pass (spec "BASE chunk"): out[c, i, x] =
    float32((1 - t[x]) * values[i, j0[x], c] + t[x] * values[i, j1[x], c]) in binary64, for
    values float64 [gh, gw, 3], j0, j1 int64 [W], t float64 [W], out float32 [3, gh, W]."""
    gh = values.shape[0]
    width = t.shape[0]
    for c in range(3):
        for i in range(gh):
            for x in range(width):
                out[c, i, x] = np.float32((1.0 - t[x]) * values[i, j0[x], c] + t[x] * values[i, j1[x], c])
