"""After QAT: a greedy search over the integer codes themselves.

QAT trains float attributes through straight-through rounding, so the codes it ends with
are near, not at, the best codes for the finished set. This search visits each Gaussian in
turn and tries moving one of its eight codes (x, y, log a, b, log c, red, green, blue) one
step up or down; it keeps the move that lowers the squared error of the CLAMPED render the
most (the image the decoder produces, before rounding to 8 bits), updating its own copy of
the render at once, so later Gaussians see earlier moves. A sweep visits every Gaussian
once; the encoder runs a few (``QATConfig.code_search_sweeps``). Every error change is
computed exactly over the pixels the Gaussian touches before and after the move, with the
render convention of the spec (weights exp(-m2/2) inside the 3-sigma ellipse), in binary64;
the ten geometry moves share one pass over the pixels (the six colour moves another), and
along a row a move's weights follow from the first by the ratio of neighbours (two products
a pixel instead of an exp, the same files as with the exp on kodim15 and kodim01,
BENCHMARKS.md §8). A sweep runs on
all threads: the Gaussians are grouped by square tiles of the pixels they reach, and groups
that share no pixel are visited in parallel (``tile_schedule``), so the moves are those of
one serial visit in the schedule's order, whatever the number of threads.

Moves that make a covariance (nearly) singular or put a Gaussian wholly off the image are
not tried. By default the search does not model the rate: a move changes the file's size
only through the entropy coder's statistics (measured in BENCHMARKS.md §4). Given a rate
weight mu (squared error per bit) it minimises squared error + mu * bits instead, the bits
of a code being -log2 of its channel's order-0 frequency among the codes at the start of
the sweep (``code_bits``), or for red and blue with ``QATConfig.rate_color_residuals`` the
frequency of their residual from green's prediction, as the coder codes them (so a green
move reprices them too: ``rate_tables``): the search for files trained with a rate term
(``QATConfig.rate_weight``), whose savings a rate-blind search would partly undo.
``removal_costs`` uses the same footprint arithmetic to price each Gaussian for the encoder's trim to its budget.
Training code only: the decoder never imports this module.
"""

import math
from dataclasses import dataclass

import numpy as np

from gipp_codec.format.constants import CH_A, CH_B, CH_BLUE, CH_C, CH_GREEN, CH_RED
from gipp_codec.jit import njit, prange, set_parallel_chunksize
from gipp_codec.quant.dequant import dequantize_rows

_OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")
_DET_MARGIN = 1e-6  # a move must leave det > _DET_MARGIN * a * c (valid in binary32 too)
# a move must lower the squared error by more than this ((1/255)^2 is 1.5e-5): gains within
# rounding would let two moves undo each other forever
_MIN_GAIN = 1e-9
# the taper of the encoder's render convention 2, exp(-9/2) (``render.convention``; a test
# checks they agree): a literal, so that a change here also renews numba's cached kernels
_TAPER = 0.011108996538242306
_TILE_PERCENTILE = 95


@njit(**_OPTS)
def _dequantize_row(qk, s, o, out, corr=False):
    """Codes qk [8] -> attribute values out [8] (float64 holding the decoder's float32 values):
    ``quant.dequant.dequantize_rows`` for one row, inside the kernels (a test checks the two agree);
    ``corr``: channel b holds the correlation (payload coding 3), b = rho sqrt(a c)."""
    for j in range(8):
        v = np.float32(np.float64(qk[j]) * s[j] + o[j])
        if j == CH_A or j == CH_C:
            v = np.float32(math.exp(np.float64(v)))
        out[j] = v
    if corr:
        out[CH_B] = np.float32(out[CH_B] * math.sqrt(out[CH_A] * out[CH_C]))


@njit(**_OPTS)
def _usable(p):
    """Whether attribute values p [8] form a Gaussian with a safely positive-definite covariance."""
    a, b, c = p[2], p[3], p[4]
    return a > 0.0 and c > 0.0 and a * c - b * b > _DET_MARGIN * a * c


@njit(**_OPTS)
def _box(p, height, width):
    """Pixel box (i0, i1, j0, j1), inclusive and clipped to the image, of the 3-sigma
    bounding square of p [8]; empty (i0 > i1 or j0 > j1) when it misses the image."""
    a, b, c = p[2], p[3], p[4]
    half = 0.5 * (a + c)
    lam = half + math.sqrt(max(0.25 * (a - c) * (a - c) + b * b, 0.0))
    r = 3.0 * math.sqrt(max(lam, 0.0))
    i0 = max(0, int(math.floor(p[0] - r - 0.5)))
    i1 = min(width - 1, int(math.ceil(p[0] + r - 0.5)))
    j0 = max(0, int(math.floor(p[1] - r - 0.5)))
    j1 = min(height - 1, int(math.ceil(p[1] + r - 0.5)))
    return i0, i1, j0, j1


@njit(**_OPTS)
def _conic(p):
    """(A, B, C) with m2 = A dx^2 + B dx dy + C dy^2 for the Gaussian p [8]."""
    det = p[2] * p[4] - p[3] * p[3]
    return p[4] / det, -2.0 * p[3] / det, p[2] / det


@njit(**_OPTS)
def _weight(conic, mx, x, row_linear, row_constant):
    """exp(-m2 / 2) - _TAPER if m2 <= 9, else 0 (render convention 2), at column centre x,
    where on this row m2 = A dx^2 + row_linear dx + row_constant (dx = x - mx)."""
    dx = x - mx
    m2 = (conic[0] * dx + row_linear) * dx + row_constant
    if m2 <= 9.0:
        return math.exp(-0.5 * m2) - _TAPER
    return 0.0


@njit(**_OPTS)
def _clamped_sq(v, t):
    """(clamp(v, 0, 1) - t)^2."""
    u = 0.0 if v < 0.0 else (1.0 if v > 1.0 else v)
    return (u - t) * (u - t)


@njit(**_OPTS)
def _row_span(p, y, width):
    """Columns (lo, hi), inclusive and clipped, that may hold p [8]'s 3-sigma ellipse on the
    pixel row whose centre is at y (one column of slack either side; empty when lo > hi)."""
    a, b, c = p[2], p[3], p[4]
    dy = y - p[1]
    room = 9.0 * c - dy * dy
    if room < 0.0:
        return 0, -1
    half = math.sqrt((a * c - b * b) * room) / c
    centre = p[0] + b * dy / c
    return max(0, int(math.floor(centre - half - 0.5)) - 1), min(width - 1, int(math.ceil(centre + half - 0.5)) + 1)


@njit(**_OPTS)
def _apply_change(render, wo, ob, spans, po, pn):
    """Write into render [H, W, 3] the change when the Gaussian po [8] (weights wo over its
    box ob, its row spans [rows, 2] within that box) becomes pn [8]."""
    height, width = render.shape[0], render.shape[1]
    ni0, ni1, nj0, nj1 = _box(pn, height, width)
    conic = _conic(pn)
    for j in range(min(ob[2], nj0), max(ob[3], nj1) + 1):
        y = j + 0.5
        dy = y - pn[1]
        row_linear, row_constant = conic[1] * dy, conic[2] * dy * dy
        lo, hi = width, -1
        if ob[2] <= j <= ob[3]:
            lo, hi = spans[j - ob[2], 0], spans[j - ob[2], 1]
        if nj0 <= j <= nj1:
            nlo, nhi = _row_span(pn, y, width)
            if nlo <= nhi:
                lo, hi = min(lo, nlo), max(hi, nhi)
        for i in range(lo, hi + 1):
            w_old = 0.0
            if ob[2] <= j <= ob[3] and spans[j - ob[2], 0] <= i <= spans[j - ob[2], 1]:
                w_old = wo[j - ob[2], i - ob[0]]
            w_new = _weight(conic, pn[0], i + 0.5, row_linear, row_constant)
            if w_old == 0.0 and w_new == 0.0:
                continue
            for ch in range(3):
                render[j, i, ch] = render[j, i, ch] - w_old * po[CH_RED + ch] + w_new * pn[CH_RED + ch]


@njit(**_OPTS)
def _pair_changes(render, target, wo, ob, spans, po, cand, boxes, n, out):
    """out[m] = the change of the clamped squared error when the Gaussian po [8] (weights
    wo over its box ob, its row spans [rows, 2] within that box) becomes cand[m] [8] (box
    boxes[m] [4]), for m < n (all of a Gaussian's geometry moves, evaluated in one pass over
    the pixels: each move's sum takes its terms in the same order as in a pass of its own)."""
    width = render.shape[1]
    a_coef = np.empty(n)
    b_coef = np.empty(n)
    c_coef = np.empty(n)
    lin = np.empty(n)
    const = np.empty(n)
    decay = np.empty(n)
    w_run = np.empty(n)
    w_new = np.empty(n)
    e_old = np.empty(3)
    ratio = np.empty(n)
    j0, j1 = ob[2], ob[3]
    for m in range(n):
        out[m] = 0.0
        j0, j1 = min(j0, boxes[m, 2]), max(j1, boxes[m, 3])
        a_coef[m], b_coef[m], c_coef[m] = _conic(cand[m])
        decay[m] = math.exp(-a_coef[m])
    for j in range(j0, j1 + 1):
        y = j + 0.5
        olo, ohi = width, -1
        if ob[2] <= j <= ob[3]:
            olo, ohi = spans[j - ob[2], 0], spans[j - ob[2], 1]
        lo, hi = olo, ohi
        for m in range(n):
            dy = y - cand[m, 1]
            lin[m], const[m] = b_coef[m] * dy, c_coef[m] * dy * dy
            w_run[m] = -1.0  # the running weight on this row (< 0: not started)
            if boxes[m, 2] <= j <= boxes[m, 3]:
                nlo, nhi = _row_span(cand[m], y, width)
                if nlo <= nhi:
                    lo, hi = min(lo, nlo), max(hi, nhi)
        for i in range(lo, hi + 1):
            w_old = 0.0
            if olo <= i <= ohi:
                w_old = wo[j - ob[2], i - ob[0]]
            touched = w_old != 0.0
            for m in range(n):
                # exp(-m2 / 2) along the row by its recurrence: one exp where the ellipse
                # starts, then the ratio of neighbours, itself falling by exp(-A) a column
                dx = i + 0.5 - cand[m, 0]
                m2 = (a_coef[m] * dx + lin[m]) * dx + const[m]
                w_new[m] = 0.0
                if m2 <= 9.0:
                    if w_run[m] < 0.0:
                        w_run[m] = math.exp(-0.5 * m2)
                        ratio[m] = math.exp(-0.5 * (a_coef[m] * (2.0 * dx + 1.0) + lin[m]))
                    w_new[m] = w_run[m] - _TAPER
                    touched = True
                if w_run[m] >= 0.0:
                    w_run[m] *= ratio[m]
                    ratio[m] *= decay[m]
            if not touched:
                continue
            for ch in range(3):
                e_old[ch] = _clamped_sq(render[j, i, ch], target[j, i, ch])
            for m in range(n):
                if w_old == 0.0 and w_new[m] == 0.0:
                    continue
                for ch in range(3):
                    new = render[j, i, ch] - w_old * po[CH_RED + ch] + w_new[m] * cand[m, CH_RED + ch]
                    out[m] += _clamped_sq(new, target[j, i, ch]) - e_old[ch]


@njit(**_OPTS)
def _bits_at(cost, link, q, k, ch, code, src_code):
    """Bits of code ``code`` in channel ``ch`` of Gaussian k of q [N, 8], its source channel
    (link[ch, 0], if any) holding ``src_code`` (``rate_tables``)."""
    if link[ch, 0] < 0:
        return cost[ch, code]
    return cost[ch, code - link[ch, 2 + src_code] + link[ch, 1]]


@njit(**_OPTS)
def _rate_change(cost, link, mu, q, k, ch, new):
    """mu * the change of Gaussian k's bits (``rate_tables``' cost [8, W] and link [8, L + 2])
    when its code in channel ``ch`` moves from q[k, ch] to ``new``: its own, and those of
    the channels predicted from it (0 when mu is 0)."""
    if mu == 0.0:
        return 0.0
    old = q[k, ch]
    src = link[ch, 0]
    held = q[k, src] if src >= 0 else 0
    change = _bits_at(cost, link, q, k, ch, new, held) - _bits_at(cost, link, q, k, ch, old, held)
    for c in range(link.shape[0]):
        if link[c, 0] == ch:
            change += _bits_at(cost, link, q, k, c, q[k, c], new) - _bits_at(cost, link, q, k, c, q[k, c], old)
    return mu * change


@njit(**_OPTS)
def _visited_box(q, k, s, o, height, width, p, corr=False):
    """The box (i0, i1, j0, j1) of Gaussian k of q [N, 8] that a sweep visits, its attribute
    values written to p [8]; an empty box (i0 > i1) when the sweep skips it (a covariance not
    safely positive definite, or wholly off the image)."""
    _dequantize_row(q[k], s, o, p, corr)
    if not _usable(p):
        return 0, -1, 0, -1
    return _box(p, height, width)


@njit(**_OPTS)
def _geometry_moves(q, k, s, o, top, height, width, candidates, moved, boxes, corr=False):
    """The usable one-step moves of Gaussian k's geometry codes (x, y, log a, b, log c, each
    down and up) that leave it on the image; returns their count n and writes, for each,
    the attribute values candidates[m] [8], the move moved[m] = (channel, step) and the
    clipped box boxes[m] = (i0, i1, j0, j1), m < n. q [N, 8] is restored as it was."""
    n_try = 0
    for jch in range(CH_RED):
        for d in (-1, 1):
            code = q[k, jch] + d
            if code < 0 or code > top[jch]:
                continue
            q[k, jch] = code
            _dequantize_row(q[k], s, o, candidates[n_try], corr)
            q[k, jch] = code - d
            if not _usable(candidates[n_try]):
                continue
            ni0, ni1, nj0, nj1 = _box(candidates[n_try], height, width)
            if ni0 > ni1 or nj0 > nj1:
                continue
            moved[n_try, 0], moved[n_try, 1] = jch, d
            boxes[n_try, 0], boxes[n_try, 1], boxes[n_try, 2], boxes[n_try, 3] = ni0, ni1, nj0, nj1
            n_try += 1
    return n_try


@njit(**_OPTS)
def _sweep(q, s, o, top, order, render, target, cost, link, mu, corr=False):
    """Visit the Gaussians of q [N, 8] (int64, changed in place) in ``order`` [N], applying
    each one's best single-code move; render [H, W, 3] float64 (kept current) and target
    [H, W, 3] float32. s, o [8]: the float32 scales and offsets as float64; top [8]: the
    largest code of each channel; cost [8, W] and link [8, L + 2] the bits of each code
    (``rate_tables``), weighed by mu (squared error per bit; 0: the rate is ignored). Returns (moves made, total change of
    squared error + mu * bits)."""
    height, width = render.shape[0], render.shape[1]
    po = np.empty(8)
    pn = np.empty(8)
    color_new = np.empty((3, 2))
    color_gain = np.empty((3, 2))
    ob = np.empty(4, np.int64)
    candidates = np.empty((2 * CH_RED, 8))
    moved = np.empty((2 * CH_RED, 2), np.int64)
    changes = np.empty(2 * CH_RED)
    boxes = np.empty((2 * CH_RED, 4), np.int64)
    moves = 0
    total = 0.0
    for k in order:
        i0, i1, j0, j1 = _visited_box(q, k, s, o, height, width, po, corr)
        if i0 > i1 or j0 > j1:
            continue
        ob[0], ob[1], ob[2], ob[3] = i0, i1, j0, j1
        wo = np.zeros((j1 - j0 + 1, i1 - i0 + 1))
        spans = np.empty((j1 - j0 + 1, 2), np.int64)
        conic = _conic(po)
        for j in range(j0, j1 + 1):
            lo, hi = _row_span(po, j + 0.5, width)
            lo, hi = max(lo, i0), min(hi, i1)
            spans[j - j0, 0], spans[j - j0, 1] = lo, hi
            dy = j + 0.5 - po[1]
            for i in range(lo, hi + 1):
                wo[j - j0, i - i0] = _weight(conic, po[0], i + 0.5, conic[1] * dy, conic[2] * dy * dy)
        # the six colour moves share the old footprint: one pass
        for ch in range(3):
            for d in range(2):
                code = q[k, CH_RED + ch] + (2 * d - 1)
                color_new[ch, d] = np.float32(np.float64(code) * s[CH_RED + ch] + o[CH_RED + ch])
                color_gain[ch, d] = math.inf
                if 0 <= code <= top[CH_RED + ch]:
                    color_gain[ch, d] = _rate_change(cost, link, mu, q, k, CH_RED + ch, code)
        for j in range(j0, j1 + 1):
            for i in range(spans[j - j0, 0], spans[j - j0, 1] + 1):
                w = wo[j - j0, i - i0]
                if w == 0.0:
                    continue
                for ch in range(3):
                    old = render[j, i, ch]
                    t = target[j, i, ch]
                    e_old = _clamped_sq(old, t)
                    for d in range(2):
                        color_gain[ch, d] += _clamped_sq(old + w * (color_new[ch, d] - po[CH_RED + ch]), t) - e_old
        best, best_j, best_d = -_MIN_GAIN, -1, 0
        for ch in range(3):
            for d in range(2):
                if color_gain[ch, d] < best:
                    best, best_j, best_d = color_gain[ch, d], CH_RED + ch, 2 * d - 1
        # the ten geometry moves (x, y, log a, b, log c one step either way)
        n_try = _geometry_moves(q, k, s, o, top, height, width, candidates, moved, boxes, corr)
        # all of them in one pass over the pixels (serially: a parallel region a Gaussian cost
        # more than it saved: BENCHMARKS.md §8), the old error of each pixel taken once
        if n_try > 0:
            _pair_changes(render, target, wo, ob, spans, po, candidates, boxes, n_try, changes)
        for m in range(n_try):
            changes[m] += _rate_change(cost, link, mu, q, k, moved[m, 0], q[k, moved[m, 0]] + moved[m, 1])
        for m in range(n_try):
            if changes[m] < best:
                best, best_j, best_d = changes[m], moved[m, 0], moved[m, 1]
        if best_j < 0:
            continue
        q[k, best_j] += best_d
        _dequantize_row(q[k], s, o, pn, corr)
        _apply_change(render, wo, ob, spans, po, pn)
        moves += 1
        total += best
    return moves, total


@njit(**_OPTS)
def _reach_boxes(q, s, o, top, height, width, out, corr=False):
    """out [N, 4]: the box (i0, i1, j0, j1), inclusive, of the pixels a visit of each
    Gaussian of q [N, 8] reads or writes (the union of its box and the boxes of its geometry
    moves, ``_sweep``'s arithmetic); (0, -1, 0, -1) for a Gaussian the sweep skips."""
    p = np.empty(8)
    candidates = np.empty((2 * CH_RED, 8))
    moved = np.empty((2 * CH_RED, 2), np.int64)
    boxes = np.empty((2 * CH_RED, 4), np.int64)
    for k in range(q.shape[0]):
        out[k, 0], out[k, 1], out[k, 2], out[k, 3] = 0, -1, 0, -1
        i0, i1, j0, j1 = _visited_box(q, k, s, o, height, width, p, corr)
        if i0 > i1 or j0 > j1:
            continue
        for m in range(_geometry_moves(q, k, s, o, top, height, width, candidates, moved, boxes, corr)):
            i0, i1 = min(i0, boxes[m, 0]), max(i1, boxes[m, 1])
            j0, j1 = min(j0, boxes[m, 2]), max(j1, boxes[m, 3])
        out[k, 0], out[k, 1], out[k, 2], out[k, 3] = i0, i1, j0, j1


@njit(parallel=True, **_OPTS)
def _sweep_groups(q, s, o, top, items, offsets, render, target, cost, link, mu, moves, changes, corr=False):
    """``_sweep`` over the groups items[offsets[g]:offsets[g + 1]] in parallel, one task per
    group; the groups' Gaussians must reach disjoint pixels (``tile_schedule``), so no two
    tasks touch the same pixel. moves, changes [G]: each group's result."""
    for g in prange(offsets.shape[0] - 1):
        m, c = _sweep(q, s, o, top, items[offsets[g]:offsets[g + 1]], render, target, cost, link, mu, corr)
        moves[g] = m
        changes[g] = c


def tile_schedule(order: np.ndarray, reach: np.ndarray, height: int, width: int) -> list:
    """How a sweep visits the Gaussians in ``order`` [N] on several threads with no two
    touching one pixel at once: a list of phases run one after another, each a list of
    groups (int64 arrays of Gaussians, in ``order``'s order) that may run in parallel.
    ``reach`` [N, 4]: the box (i0, i1, j0, j1) each visit touches (``_reach_boxes``).

    The image is cut into square tiles of S pixels, S the 95th percentile of the reach
    boxes' longer sides (at least 16); an axis shorter than 2 S is one tile. A Gaussian whose
    reach starts in tile (fy, fx) and ends within tiles fy + 1 and fx + 1 joins group (fy,
    fx); the groups with fy and fx both even make one phase, then (even, odd), (odd, even)
    and (odd, odd), so two groups of a phase are two tiles apart along one axis at least and
    never share a pixel. The Gaussians left (a reach over S + 1 pixels) go the same way with
    tiles twice as large, and so on, until both axes are one tile: those make a last phase of
    one group. (Rows alone, as before the fortieth session, gave kodim23 at 0.5 bpp four
    phases of at most four groups: at most 2.5 threads' worth of work.)"""
    drawn = (reach[:, 1] >= reach[:, 0]) & (reach[:, 3] >= reach[:, 2])  # [N]
    left = np.asarray(order, np.int64)
    if not drawn.any():
        return [[left]]
    sides = np.maximum(reach[:, 1] - reach[:, 0], reach[:, 3] - reach[:, 2]) + 1  # [N]
    tile = max(16, int(np.ceil(np.percentile(sides[drawn], _TILE_PERCENTILE))))
    phases = []
    while left.size and (2 * tile <= height or 2 * tile <= width):
        fx, fits_x = _tiles(reach[left, 0], reach[left, 1], tile, width)
        fy, fits_y = _tiles(reach[left, 2], reach[left, 3], tile, height)
        fits = fits_x & fits_y
        for py, px in ((0, 0), (0, 1), (1, 0), (1, 1)):
            take = fits & (fy % 2 == py) & (fx % 2 == px)
            if take.any():
                chosen, ids = left[take], fy[take] * (width + 1) + fx[take]
                phases.append([chosen[ids == f] for f in np.unique(ids)])  # each keeps the order
        left = left[~fits]
        tile *= 2
    if left.size:
        phases.append([left])
    return phases


def _tiles(lo: np.ndarray, hi: np.ndarray, tile: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis of ``size`` pixels cut into tiles of ``tile`` (one tile when shorter
    than two): the tile [M] in which each span lo..hi [M] starts, and whether it ends by the
    next one (always, on a single tile)."""
    if 2 * tile > size:
        return np.zeros(lo.shape, np.int64), np.ones(lo.shape, bool)
    first = np.maximum(lo, 0) // tile
    return first, np.maximum(hi, lo) // tile <= first + 1


@njit(parallel=True, **_OPTS)
def _removal_costs(rows, render, target, out):
    """out[k] = the change of the clamped squared error if Gaussian k (attribute values rows
    [N, 8]) alone were removed from render [H, W, 3] (target [H, W, 3])."""
    height, width = render.shape[0], render.shape[1]
    for k in prange(rows.shape[0]):
        p = rows[k]
        out[k] = 0.0
        if not (p[2] > 0.0 and p[4] > 0.0 and p[2] * p[4] - p[3] * p[3] > 0.0):
            continue
        i0, i1, j0, j1 = _box(p, height, width)
        conic = _conic(p)
        total = 0.0
        for j in range(j0, j1 + 1):
            lo, hi = _row_span(p, j + 0.5, width)
            dy = j + 0.5 - p[1]
            for i in range(max(lo, i0), min(hi, i1) + 1):
                w = _weight(conic, p[0], i + 0.5, conic[1] * dy, conic[2] * dy * dy)
                if w == 0.0:
                    continue
                for ch in range(3):
                    old = render[j, i, ch]
                    total += _clamped_sq(old - w * p[CH_RED + ch], target[j, i, ch]) - _clamped_sq(old, target[j, i, ch])
        out[k] = total


def removal_costs(q: np.ndarray, scales: np.ndarray, offsets: np.ndarray, render: np.ndarray,
                  target: np.ndarray, correlation: bool = False) -> np.ndarray:
    """[N] float64: how much the squared error of the clamped render grows if each Gaussian of
    q [N, 8] alone is removed (negative where removing it helps); ``render`` [H, W, 3] is the
    unclamped render of q, ``target`` [H, W, 3] the image, in [0, 1] units. The encoder trims
    to its budget by this, the cheapest first. ``correlation``: b's codes are payload coding
    3's correlation."""
    return row_removal_costs(dequantize_rows(q, scales, offsets, correlation), render, target)


def row_removal_costs(rows: np.ndarray, render: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[N] float64: ``removal_costs`` for Gaussians given as attribute values rows [N, 8]
    (x, y, a, b, c, red, green, blue) rather than codes; ``render`` [H, W, 3] is their
    unclamped render, ``target`` [H, W, 3] the image, in [0, 1] units."""
    out = np.empty(rows.shape[0], np.float64)
    _removal_costs(np.ascontiguousarray(rows, dtype=np.float64), np.ascontiguousarray(render, dtype=np.float32),
                   np.ascontiguousarray(target, dtype=np.float32), out)
    return out


@dataclass
class SearchReport:
    """What ``search_codes`` did: per sweep, the moves made and the squared error (plus, with
    a rate weight, mu * bits) they removed."""

    moves: list
    # decrease of the clamped squared error (sum over pixels and channels, [0, 1] units),
    # plus mu * bits with a rate weight
    gains: list


def visit_order(rows: np.ndarray) -> np.ndarray:
    """The order [N] int64 in which a sweep visits the Gaussians of attribute rows [N, 8]:
    by bands of 16 pixel rows of their centre, then by x (neighbours in the order share
    pixels, which stay in cache)."""
    return np.lexsort((rows[:, 0], np.floor(rows[:, 1] / 16.0))).astype(np.int64)


def tiled_sweep(codes: np.ndarray, s: np.ndarray, o: np.ndarray, top: np.ndarray, order: np.ndarray,
                render: np.ndarray, target: np.ndarray, cost: np.ndarray, mu: float,
                link: np.ndarray | None = None, correlation: bool = False) -> tuple[int, float]:
    """One sweep of ``_sweep`` (same arguments; ``link`` None: ``no_links``) in the phases
    and groups of ``tile_schedule``, each phase's groups in parallel: the same moves as
    ``_sweep`` visiting the Gaussians in the schedule's order (phase by phase, group by
    group), whatever the number of threads (``correlation``: b's codes are payload coding 3's
    correlation). Returns (moves made, total change)."""
    if link is None:
        link = no_links(cost.shape[1])
    reach = np.empty((codes.shape[0], 4), np.int64)  # [N, 4]
    _reach_boxes(codes, s, o, top, render.shape[0], render.shape[1], reach, correlation)
    moves, total = 0, 0.0
    for groups in tile_schedule(order, reach, render.shape[0], render.shape[1]):
        items = np.concatenate(groups).astype(np.int64)  # [M]
        offsets = np.cumsum([0] + [g.size for g in groups]).astype(np.int64)  # [G + 1]
        group_moves = np.zeros(len(groups), np.int64)
        group_changes = np.zeros(len(groups), np.float64)
        old = set_parallel_chunksize(1)  # groups differ in size: a thread takes the next when done
        try:
            _sweep_groups(codes, s, o, top, items, offsets, render, target, cost, link, mu, group_moves, group_changes,
                          correlation)
        finally:
            set_parallel_chunksize(old)
        moves += int(group_moves.sum())
        total += float(group_changes.sum())
    return moves, total


def code_bits(q: np.ndarray, bits: tuple, channels: tuple) -> np.ndarray:
    """[8, 2^max(bits)] float64: for each of ``channels``, -log2 of each code's frequency in
    q [N, 8] (counts + 1/2 over the channel's 2^bits codes, as ``rate_proxy``); 0 elsewhere."""
    levels = 1 << max(int(b) for b in bits)
    cost = np.zeros((8, levels), np.float64)
    for j in channels:
        n = 1 << int(bits[j])
        counts = np.bincount(np.asarray(q[:, j], np.int64), minlength=n)[:n] + 0.5
        cost[j, :n] = -np.log2(counts / counts.sum())
    return cost


def no_links(levels: int) -> np.ndarray:
    """link [8, levels + 2] int64 of ``rate_tables`` where every channel is priced by its own
    code (no source channel)."""
    link = np.zeros((8, int(levels) + 2), np.int64)
    link[:, 0] = -1
    return link


def rate_tables(q: np.ndarray, bits: tuple, channels: tuple, scales: np.ndarray, offsets: np.ndarray,
                residuals: bool) -> tuple[np.ndarray, np.ndarray]:
    """(cost [8, 2 L] float64, link [8, L + 2] int64), L = 2^max(bits): the bits of each code
    of ``channels`` of q [N, 8]. A channel j with link[j, 0] = -1 costs cost[j, code]
    (``code_bits``). With ``residuals`` (``QATConfig.rate_color_residuals``) red and blue,
    when green is priced too, are priced as the coder's channel predictor codes them: by
    the residual r = code - P(green's code), P = link[j, 2 + green's code] (the coder's
    ``channel_prediction``), at cost[j, r + link[j, 1]], link[j, 0] = green, link[j, 1] = j's
    largest code; each table entry -log2 of the frequency (counts + 1/2) in q."""
    from gipp_codec.entropy.gaussian_coder import channel_prediction  # torch-free, numba-free

    levels = 1 << max(int(b) for b in bits)
    cost = np.zeros((8, 2 * levels), np.float64)
    cost[:, :levels] = code_bits(q, bits, channels)
    link = no_links(levels)
    if not (residuals and CH_GREEN in channels):
        return cost, link
    q = np.asarray(q, np.int64)
    green_codes = np.arange(1 << int(bits[CH_GREEN]), dtype=np.int64)
    for j in (CH_RED, CH_BLUE):
        if j not in channels:
            continue
        top = (1 << int(bits[j])) - 1
        pred = channel_prediction(green_codes, CH_GREEN, j, scales, offsets, top)  # [2^B_green]
        counts = np.bincount(q[:, j] - pred[q[:, CH_GREEN]] + top, minlength=2 * top + 1) + 0.5  # [2 top + 1]
        cost[j, :] = 0.0
        cost[j, :2 * top + 1] = -np.log2(counts / counts.sum())
        link[j, 0], link[j, 1] = CH_GREEN, top
        link[j, 2:2 + pred.size] = pred
    return cost, link


def table_bits(q: np.ndarray, cost: np.ndarray, link: np.ndarray, channels: tuple) -> float:
    """Bits of ``channels`` of q [N, 8] under ``rate_tables``' cost and link."""
    q = np.asarray(q, np.int64)
    total = 0.0
    for j in channels:
        index = q[:, j].copy()  # [N]
        if link[j, 0] >= 0:
            index += link[j, 1] - link[j, 2 + q[:, link[j, 0]]]
        total += float(cost[j, index].sum())
    return total


def bit_price(rate_weight: float, squared_error: float, pixels: int) -> float:
    """mu, the squared error one bit is worth: ``rate_weight`` * squared error / pixels, the
    trainer's rate term (loss = mse + w * mse * bits / pixels) in units of squared error."""
    return float(rate_weight) * float(squared_error) / int(pixels)


def order0_bits(q: np.ndarray, bits: tuple, channels: tuple) -> float:
    """Order-0 bits of ``channels`` of q [N, 8] under their own histograms (``code_bits``)."""
    cost = code_bits(q, bits, channels)
    return float(sum(cost[j, np.asarray(q[:, j], np.int64)].sum() for j in channels))


def search_codes(q: np.ndarray, scales: np.ndarray, offsets: np.ndarray, bits: tuple, render: np.ndarray,
                 target: np.ndarray, sweeps: int, rate_weight: float = 0.0,
                 rate_channels: tuple = (), residuals: bool = False,
                 correlation: bool = False) -> tuple[np.ndarray, SearchReport]:
    """Codes [N, 8] (same dtype as q [N, 8]) after up to ``sweeps`` sweeps of the greedy search
    (module docstring), and a report. ``scales``, ``offsets`` [8] float32 and ``bits`` (8 bit
    depths) are the file's; ``render`` [H, W, 3] is the unclamped render of q and ``target``
    [H, W, 3] the image, both in [0, 1] units. With ``rate_weight`` w > 0 each sweep minimises
    squared error + mu * bits of ``rate_channels`` (``code_bits`` at the sweep's start), mu
    = ``bit_price`` of the squared error at the sweep's start; ``residuals``: red and blue
    priced as residuals from green (``rate_tables``); ``correlation``: b's codes are payload
    coding 3's correlation (b = rho sqrt(a c)). Stops early after a sweep that moved nothing."""
    codes = np.ascontiguousarray(q, dtype=np.int64).copy()  # [N, 8]
    s = np.asarray(scales, np.float32).astype(np.float64)  # [8]
    o = np.asarray(offsets, np.float32).astype(np.float64)  # [8]
    top = np.array([(1 << int(b)) - 1 for b in bits], np.int64)  # [8]
    current = np.ascontiguousarray(render, dtype=np.float64).copy()  # [H, W, 3]
    image = np.ascontiguousarray(target, dtype=np.float32)  # [H, W, 3] (widened exactly where read)
    rows = dequantize_rows(q, scales, offsets, correlation)  # [N, 8]
    order = visit_order(rows)
    pixels = image.shape[0] * image.shape[1]
    report = SearchReport(moves=[], gains=[])
    cost = np.zeros((8, 2 * (int(top.max()) + 1)), np.float64)
    link = no_links(int(top.max()) + 1)
    mu = 0.0
    for _ in range(int(sweeps)):
        if rate_weight > 0 and rate_channels:
            cost, link = rate_tables(codes, bits, rate_channels, scales, offsets, residuals)
            mu = bit_price(rate_weight, np.sum((np.clip(current, 0.0, 1.0) - image) ** 2), pixels)
        moves, change = tiled_sweep(codes, s, o, top, order, current, image, cost, mu, link, correlation)
        report.moves.append(int(moves))
        report.gains.append(float(-change))
        if moves == 0:
            break
    return codes.astype(q.dtype), report
