"""The code search's sweeps on CUDA: one Triton launch per phase of the tile schedule.

``code_search.tiled_sweep`` runs the groups of a phase of ``tile_schedule`` on the CPU's
threads, each group's Gaussians one after another; groups of a phase reach disjoint pixels.
Here each group is one Triton program, so a sweep is one launch per phase (about eight)
instead of one visit after another on a few cores. A program visits its group's Gaussians
in order; for each it evaluates all sixteen moves at once (a [16, PIXELS] block per step
over the pixels of the visit's reach box), prices their bits, takes the best move under the
same rules as ``code_search._sweep`` (strictly better than -_MIN_GAIN, the first slot on a
tie: the colours' six, then the geometry's ten), writes its change into the render and
waits for its threads (a barrier) before the next Gaussian. So the moves are those of the
CPU's sweep in the same schedule, up to rounding: the weights here are exp(-m2 / 2) at every
pixel (the CPU's geometry pass takes them along a row by the ratio of neighbours) and the
error sums are added in another order, so a near tie may go the other way.

The arithmetic is binary64 like the CPU's; the attribute values are the decoder's float32
values (``quant.dequant``), with b = float32(rho sqrt(a c)) where b's codes are payload coding
3's correlation (``CORR``), so that a move of a or c moves b too, as on the CPU. Training code only: the decoder never imports this module.
"""

import numpy as np
import torch
import triton
import triton.language as tl

from gipp_codec.fit import code_search as cs
from gipp_codec.format.constants import CH_A, CH_C, CH_RED
from gipp_codec.quant.dequant import dequantize_rows

_TAPER = tl.constexpr(cs._TAPER)  # render convention 2's taper, as the CPU search's
PIXELS = 128  # pixels per step of a program's pass over a reach box
# threads per program: a [16, PIXELS] float64 block over 8 warps fits the registers (228 a
# thread for sm_90, no stack); over 4 it takes all 255 and spills to the stack
# (tools/triton_resources.py, BENCHMARKS.md §7; tests/test_code_search_triton.py keeps it so)
NUM_WARPS = 8
SLOTS = 6 + 2 * CH_RED  # 16: a Gaussian's moves, the colours' six, then the geometry's ten


@triton.jit
def _dequantize(code, s, o):
    """The decoder's float32 value (as float64) of integer ``code`` on the grid (s, o)
    (``quant.dequant.dequantize_rows``)."""
    return (code.to(tl.float64) * s + o).to(tl.float32).to(tl.float64)


@triton.jit
def _log_dequantize(code, s, o):
    """``_dequantize`` of a log channel (a, c): exp of the grid value, rounded to float32."""
    return tl.exp(_dequantize(code, s, o)).to(tl.float32).to(tl.float64)


@triton.jit
def _from_correlation(rho, a, c):
    """b = float32(rho sqrt(a c)) (as float64) from the float32 values rho, a and c held as
    float64 (``code_search._dequantize_row`` with ``corr``; a float64 sqrt is IEEE's)."""
    return (rho * tl.sqrt(a * c)).to(tl.float32).to(tl.float64)


@triton.jit
def _box(px, py, a, b, c, wmax, hmax):
    """(i0, i1, j0, j1) int64 of the 3-sigma bounding square, clipped to columns 0..wmax and
    rows 0..hmax (float64) (``code_search._box``)."""
    half = 0.5 * (a + c)
    lam = half + tl.sqrt(tl.maximum(0.25 * (a - c) * (a - c) + b * b, 0.0))
    r = 3.0 * tl.sqrt(tl.maximum(lam, 0.0))
    i0 = tl.maximum(tl.floor(px - r - 0.5), 0.0).to(tl.int64)
    i1 = tl.minimum(tl.ceil(px + r - 0.5), wmax).to(tl.int64)
    j0 = tl.maximum(tl.floor(py - r - 0.5), 0.0).to(tl.int64)
    j1 = tl.minimum(tl.ceil(py + r - 0.5), hmax).to(tl.int64)
    return i0, i1, j0, j1


@triton.jit
def _usable(a, b, c, margin):
    """Whether (a, b, c) is a safely positive-definite covariance (``code_search._usable``)."""
    return (a > 0.0) & (c > 0.0) & (a * c - b * b > margin * a * c)


@triton.jit
def _weight(px, py, a, b, c, i, j, i0, i1, j0, j1):
    """exp(-m2 / 2) - taper at the centre of pixel (i, j) inside the box (i0..i1, j0..j1) where
    m2 <= 9, else 0 (``code_search._weight``, its conic in the same order of operations)."""
    det = a * c - b * b
    ca, cb, cc = c / det, -2.0 * b / det, a / det
    dx = i.to(tl.float64) + 0.5 - px
    dy = j.to(tl.float64) + 0.5 - py
    m2 = (ca * dx + cb * dy) * dx + cc * dy * dy
    inside = (i >= i0) & (i <= i1) & (j >= j0) & (j <= j1) & (m2 <= 9.0)
    return tl.where(inside, tl.exp(-0.5 * tl.where(inside, m2, 0.0)) - _TAPER, 0.0)


@triton.jit
def _clamped_sq(v, t):
    """(clamp(v, 0, 1) - t)^2."""
    u = tl.minimum(tl.maximum(v, 0.0), 1.0)
    return (u - t) * (u - t)


@triton.jit
def _channel(cc: tl.constexpr, red, green, blue):
    """The colour channel cc (0, 1, 2) of (red, green, blue)."""
    if cc == 0:
        return red
    elif cc == 1:
        return green
    else:
        return blue


@triton.jit
def _pick(mask, values):
    """The element of values [S] where mask [S] holds (exactly one)."""
    return tl.sum(tl.where(mask, values, 0), axis=0)


@triton.jit
def _bits_change(cost_ptr, link_ptr, row, ch, q, code, LEVELS: tl.constexpr, LINK: tl.constexpr):
    """Per slot [S]: the bits the Gaussian (codes at ``row``) gains when channel ``ch`` [S]
    moves from ``q`` to ``code`` [S], its own and those of the channels predicted from it,
    as ``code_search._rate_change`` (without mu)."""
    src = tl.load(link_ptr + ch * LINK)  # [S]
    held = tl.load(row + tl.maximum(src, 0))
    pred = tl.where(src >= 0, tl.load(link_ptr + ch * LINK + 2 + held), 0)
    base = tl.load(link_ptr + ch * LINK + 1) - pred
    change = tl.load(cost_ptr + ch * LEVELS + code + base) - tl.load(cost_ptr + ch * LEVELS + q + base)
    for c in tl.static_range(8):
        dep = ch == tl.load(link_ptr + c * LINK)  # [S]: channel c is predicted from the slot's
        qc = tl.load(row + c) + tl.load(link_ptr + c * LINK + 1)
        p_new = tl.load(link_ptr + c * LINK + 2 + code, mask=dep, other=0)
        p_old = tl.load(link_ptr + c * LINK + 2 + q, mask=dep, other=0)
        extra = tl.load(cost_ptr + c * LEVELS + qc - p_new, mask=dep, other=0.0) - tl.load(
            cost_ptr + c * LEVELS + qc - p_old, mask=dep, other=0.0)
        change += extra
    return change


@triton.jit
def _sweep_phase_kernel(
    codes_ptr,  # [N, 8] int64: changed in place
    s_ptr, o_ptr, top_ptr,  # [8] float64, [8] float64, [8] int64
    render_ptr, target_ptr,  # [H, W, 3] float64 (changed in place), float32
    cost_ptr, link_ptr,  # [8, LEVELS] float64 bits of each code, [8, LINK] int64 (``code_search.rate_tables``)
    consts_ptr,  # [5] float64: mu, _MIN_GAIN, _DET_MARGIN, W - 1, H - 1
    items_ptr, offsets_ptr,  # [M] int64 Gaussians of the phase, [G + 1] int64 group bounds
    moves_ptr, gains_ptr,  # [G] int64, [G] float64: each group's moves and total change
    width,
    LEVELS: tl.constexpr, LINK: tl.constexpr, SLOTS: tl.constexpr, PIXELS: tl.constexpr, CORR: tl.constexpr,
):
    g = tl.program_id(0)
    start = tl.load(offsets_ptr + g)
    end = tl.load(offsets_ptr + g + 1)
    mu = tl.load(consts_ptr)
    min_gain = tl.load(consts_ptr + 1)
    margin = tl.load(consts_ptr + 2)
    wmax = tl.load(consts_ptr + 3)
    hmax = tl.load(consts_ptr + 4)
    slot = tl.arange(0, SLOTS)  # [S]
    ch = tl.where(slot < 6, 5 + slot // 2, (slot - 6) // 2)  # [S] the channel a slot moves
    step = 2 * (slot % 2) - 1  # [S] down, up
    is_colour = slot < 6
    is_log = (ch == 2) | (ch == 4)
    lane = tl.arange(0, PIXELS)  # [P]
    moves = tl.zeros([1], tl.int64)
    total = tl.zeros([1], tl.float64)
    for n in range(start, end):
        k = tl.load(items_ptr + n)
        row = codes_ptr + k * 8
        # the Gaussian as it is (scalars)
        px = _dequantize(tl.load(row + 0), tl.load(s_ptr + 0), tl.load(o_ptr + 0))
        py = _dequantize(tl.load(row + 1), tl.load(s_ptr + 1), tl.load(o_ptr + 1))
        pa = _log_dequantize(tl.load(row + 2), tl.load(s_ptr + 2), tl.load(o_ptr + 2))
        pb = _dequantize(tl.load(row + 3), tl.load(s_ptr + 3), tl.load(o_ptr + 3))
        pc = _log_dequantize(tl.load(row + 4), tl.load(s_ptr + 4), tl.load(o_ptr + 4))
        rho = pb  # with CORR, b's grid value is the correlation
        if CORR:
            pb = _from_correlation(rho, pa, pc)
        red = _dequantize(tl.load(row + 5), tl.load(s_ptr + 5), tl.load(o_ptr + 5))
        green = _dequantize(tl.load(row + 6), tl.load(s_ptr + 6), tl.load(o_ptr + 6))
        blue = _dequantize(tl.load(row + 7), tl.load(s_ptr + 7), tl.load(o_ptr + 7))
        oi0, oi1, oj0, oj1 = _box(px, py, pa, pb, pc, wmax, hmax)
        old_ok = _usable(pa, pb, pc, margin) & (oi0 <= oi1) & (oj0 <= oj1)
        # each slot's candidate [S]: its channel one step along
        q = tl.load(row + ch)
        code = q + step
        in_range = (code >= 0) & (code <= tl.load(top_ptr + ch))
        cs_, co_ = tl.load(s_ptr + ch), tl.load(o_ptr + ch)
        v = tl.where(is_log, _log_dequantize(code, cs_, co_), _dequantize(code, cs_, co_))
        nx = tl.where(ch == 0, v, px)
        ny = tl.where(ch == 1, v, py)
        na = tl.where(ch == 2, v, pa)
        nb = tl.where(ch == 3, v, pb)
        nc = tl.where(ch == 4, v, pc)
        if CORR:  # b = rho sqrt(a c): a move of rho, a or c moves b
            nb = _from_correlation(tl.where(ch == 3, v, rho), na, nc)
        ni0, ni1, nj0, nj1 = _box(nx, ny, na, nb, nc, wmax, hmax)
        drawn = _usable(na, nb, nc, margin) & (ni0 <= ni1) & (nj0 <= nj1)
        valid = in_range & (is_colour | drawn) & (old_ok.to(tl.int32) + tl.zeros([SLOTS], tl.int32) != 0)
        ni0 = tl.where(valid, ni0, oi0)
        ni1 = tl.where(valid, ni1, oi1)
        nj0 = tl.where(valid, nj0, oj0)
        nj1 = tl.where(valid, nj1, oj1)
        # the reach: the old box and every tried move's box
        ri0 = tl.minimum(tl.min(ni0, axis=0), oi0)
        rj0 = tl.minimum(tl.min(nj0, axis=0), oj0)
        rw = tl.maximum(tl.max(ni1, axis=0), oi1) - ri0 + 1
        area = tl.where(old_ok, rw * (tl.maximum(tl.max(nj1, axis=0), oj1) - rj0 + 1), 0)
        acc = tl.zeros([SLOTS], tl.float64)
        for base in range(0, area, PIXELS):
            pix = base + lane  # [P]
            live = pix < area
            i = ri0 + pix % rw
            j = rj0 + pix // rw
            at = (j * width + i) * 3
            w_old = _weight(px, py, pa, pb, pc, i, j, oi0, oi1, oj0, oj1)[None, :]  # [1, P]
            w_new = _weight(nx[:, None], ny[:, None], na[:, None], nb[:, None], nc[:, None], i[None, :], j[None, :],
                            ni0[:, None], ni1[:, None], nj0[:, None], nj1[:, None])  # [S, P]
            for cc in tl.static_range(3):
                oc = _channel(cc, red, green, blue)
                ren = tl.load(render_ptr + at + cc, mask=live, other=0.0)[None, :]  # [1, P]
                t = tl.load(target_ptr + at + cc, mask=live, other=0.0).to(tl.float64)[None, :]
                # a colour slot of this channel: its new value over the old footprint; of
                # another channel: no change; a geometry slot: the footprint moves
                colour_new = ren + w_old * (v[:, None] - oc)
                geometry_new = ren - w_old * oc + w_new * oc
                mine = (is_colour & (ch == 5 + cc))[:, None]
                new = tl.where(mine, colour_new, tl.where(is_colour[:, None], ren, geometry_new))
                change = _clamped_sq(new, t) - _clamped_sq(ren, t)
                acc += tl.sum(tl.where(live[None, :], change, 0.0), axis=1)
        # price the bits and take the best move
        rate = mu * _bits_change(cost_ptr, link_ptr, row, ch, q, tl.minimum(tl.maximum(code, 0), LINK - 3),
                                 LEVELS, LINK)
        gain = tl.where(valid, acc + tl.where(mu == 0.0, 0.0, rate), float("inf"))
        best = tl.min(gain, axis=0)
        chosen = tl.min(tl.where(gain == best, slot, SLOTS), axis=0)
        if best < -min_gain:
            pick = slot == chosen
            mch = _pick(pick, ch)
            tl.store(row + mch, _pick(pick, code))
            mx, my, ma, mb, mc = _pick(pick, nx), _pick(pick, ny), _pick(pick, na), _pick(pick, nb), _pick(pick, nc)
            mv = _pick(pick, v)
            bi0, bi1, bj0, bj1 = _pick(pick, ni0), _pick(pick, ni1), _pick(pick, nj0), _pick(pick, nj1)
            ui0 = tl.minimum(oi0, bi0)
            uj0 = tl.minimum(oj0, bj0)
            uw = tl.maximum(oi1, bi1) - ui0 + 1
            uarea = uw * (tl.maximum(oj1, bj1) - uj0 + 1)
            for base in range(0, uarea, PIXELS):
                pix = base + lane
                live = pix < uarea
                i = ui0 + pix % uw
                j = uj0 + pix // uw
                at = (j * width + i) * 3
                w_old = _weight(px, py, pa, pb, pc, i, j, oi0, oi1, oj0, oj1)
                w_new = _weight(mx, my, ma, mb, mc, i, j, bi0, bi1, bj0, bj1)
                touched = live & ((w_old != 0.0) | (w_new != 0.0))
                for cc in tl.static_range(3):
                    oc = _channel(cc, red, green, blue)
                    new_colour = tl.where(mch == 5 + cc, mv, oc)
                    ren = tl.load(render_ptr + at + cc, mask=live, other=0.0)
                    tl.store(render_ptr + at + cc, ren - w_old * oc + w_new * new_colour, mask=touched)
            moves += 1
            total += best
        tl.debug_barrier()  # the next visit reads what this one wrote, from any thread
    tl.store(moves_ptr + g + tl.arange(0, 1), moves)
    tl.store(gains_ptr + g + tl.arange(0, 1), total)


def tiled_sweep_triton(codes: torch.Tensor, s: np.ndarray, o: np.ndarray, top: np.ndarray, order: np.ndarray,
                       render: torch.Tensor, target: torch.Tensor, cost: np.ndarray, mu: float,
                       link: np.ndarray | None = None, correlation: bool = False) -> tuple[int, float]:
    """One sweep as ``code_search.tiled_sweep`` (same arguments, but codes [N, 8] int64, render
    [H, W, 3] float64 and target [H, W, 3] float32 are tensors on the device, changed in
    place): each phase of ``tile_schedule`` in one launch, a program per group. The
    schedule comes from the codes' reach boxes on the host (one copy of the codes).
    Returns (moves made, total change)."""
    dev = codes.device
    height, width = int(render.shape[0]), int(render.shape[1])
    host = codes.cpu().numpy()
    reach = np.empty((host.shape[0], 4), np.int64)  # [N, 4]
    cs._reach_boxes(host, s, o, top, height, width, reach, bool(correlation))
    s_d = torch.as_tensor(s, dtype=torch.float64, device=dev)
    o_d = torch.as_tensor(o, dtype=torch.float64, device=dev)
    top_d = torch.as_tensor(top, dtype=torch.int64, device=dev)
    cost_d = torch.as_tensor(np.ascontiguousarray(cost, np.float64), device=dev)
    link = cs.no_links(cost.shape[1]) if link is None else link
    link_d = torch.as_tensor(np.ascontiguousarray(link, np.int64), device=dev)
    consts = torch.tensor([float(mu), cs._MIN_GAIN, cs._DET_MARGIN, width - 1, height - 1], dtype=torch.float64,
                          device=dev)
    moves, total = 0, 0.0
    for groups in cs.tile_schedule(order, reach, height, width):
        items = torch.as_tensor(np.concatenate(groups).astype(np.int64), device=dev)  # [M]
        offsets = torch.as_tensor(np.cumsum([0] + [g.size for g in groups]).astype(np.int64), device=dev)  # [G + 1]
        group_moves = torch.zeros(len(groups), dtype=torch.int64, device=dev)
        group_gains = torch.zeros(len(groups), dtype=torch.float64, device=dev)
        _sweep_phase_kernel[(len(groups),)](codes, s_d, o_d, top_d, render, target, cost_d, link_d, consts, items,
                                            offsets, group_moves, group_gains, width, LEVELS=int(cost.shape[1]),
                                            LINK=int(link.shape[1]), SLOTS=SLOTS, PIXELS=PIXELS,
                                            CORR=bool(correlation), num_warps=NUM_WARPS, enable_fp_fusion=False)
        moves += int(group_moves.sum())
        total += float(group_gains.sum())
    return moves, total


def search_codes_triton(q: np.ndarray, scales: np.ndarray, offsets: np.ndarray, bits: tuple, render: torch.Tensor,
                        target: torch.Tensor, sweeps: int, rate_weight: float = 0.0,
                        rate_channels: tuple = (), residuals: bool = False,
                        correlation: bool = False) -> tuple[np.ndarray, cs.SearchReport]:
    """``code_search.search_codes`` with its sweeps on the device of ``render`` [H, W, 3] (the
    unclamped render of q) and ``target`` [H, W, 3] (the image in [0, 1]): the same
    arguments, the same rules; returns the codes [N, 8] (q's dtype) and the report."""
    dev = render.device
    codes = torch.as_tensor(np.ascontiguousarray(q, dtype=np.int64), device=dev).clone()  # [N, 8]
    s = np.asarray(scales, np.float32).astype(np.float64)  # [8]
    o = np.asarray(offsets, np.float32).astype(np.float64)
    top = np.array([(1 << int(b)) - 1 for b in bits], np.int64)
    current = render.to(torch.float64).clone()
    image = target.to(torch.float32).contiguous()
    order = cs.visit_order(dequantize_rows(q, scales, offsets, correlation))
    pixels = int(image.shape[0]) * int(image.shape[1])
    report = cs.SearchReport(moves=[], gains=[])
    cost = np.zeros((8, 2 * (int(top.max()) + 1)), np.float64)
    link = cs.no_links(int(top.max()) + 1)
    mu = 0.0
    for _ in range(int(sweeps)):
        if rate_weight > 0 and rate_channels:
            cost, link = cs.rate_tables(codes.cpu().numpy(), bits, rate_channels, scales, offsets, residuals)
            error = float(torch.sum((current.clamp(0.0, 1.0) - image.to(torch.float64)) ** 2))
            mu = cs.bit_price(rate_weight, error, pixels)
        moves, change = tiled_sweep_triton(codes, s, o, top, order, current, image, cost, mu, link, correlation)
        report.moves.append(int(moves))
        report.gains.append(float(-change))
        if moves == 0:
            break
    return codes.cpu().numpy().astype(q.dtype), report


# the kernel's argument types and table widths (12-bit codes), for compiles ahead of time
# without a GPU (tests, tools/triton_resources.py)
AOT_SIGNATURE = {"codes_ptr": "*i64", "s_ptr": "*fp64", "o_ptr": "*fp64", "top_ptr": "*i64", "render_ptr": "*fp64",
                 "target_ptr": "*fp32", "cost_ptr": "*fp64", "link_ptr": "*i64", "consts_ptr": "*fp64",
                 "items_ptr": "*i64", "offsets_ptr": "*i64", "moves_ptr": "*i64", "gains_ptr": "*fp64", "width": "i32"}
AOT_TABLES = {"LEVELS": 2 * 4096, "LINK": 4096 + 2}

assert CH_A == 2 and CH_C == 4 and CH_RED == 5  # the kernel's channel layout
