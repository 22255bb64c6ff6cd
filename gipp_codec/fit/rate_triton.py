"""QAT's rate term on CUDA in two Triton launches: the histogram, then the gradient.

The torch form (``rate_proxy.attribute_bits`` and autograd's backward of it) is some seventy
small operations per QAT iteration; on a GPU their launches, not their arithmetic, are the
cost (BENCHMARKS.md §7). These kernels follow ``rate_kernels.rate_gradient`` (the CPU's numba
kernel) line for line: a first pass counts each channel's integer codes round(v) with atomic
adds, a second adds ``factor`` * d bits / d x to the gradients of the covariance and colour
rows in place. As there, v is rounded to float32 (the quotient is taken in float64 and
rounded once, which gives float32 division's result) and the rest is float64, so both
kernels agree to float32 rounding (tests/test_rate_triton.py), also with red and blue priced as
residuals from green (``RESIDUALS``, ``QATConfig.rate_color_residuals``), and with b coded as
the correlation rho = b / sqrt(a c) (``CORR``, ``LSQPlus.correlation``). The rate term's factor stays a
device tensor (no host sync). Training code only: the decoder never imports this module.
"""

import math

import torch
import triton
import triton.language as tl

from gipp_codec import triton_path
from gipp_codec.fit.rate_kernels import _LOG_FLOOR
from gipp_codec.quant.lsq import LOG_CHANNELS
from gipp_codec.quant.lsq_triton import _round_half_even

ROWS_PER_PROGRAM = 256
FIRST_CHANNEL = 2  # the rate channels are a prefix of (a, b, c, red, green, blue): columns 2..7
_INV_LN2 = 1.0 / math.log(2.0)


@triton.jit
def _coded_value(x_ptr, x_stride, col, rows, live, scale_ptr, offset_ptr, qmax_ptr, ch,
                 IS_LOG: tl.constexpr, LOG_FLOOR: tl.constexpr):
    """v = min(max((t - offset) / scale, 0), qmax) of column ``col`` of rows [BLOCK] (float64
    holding a float32 value) and d v / d x (float64), as ``rate_gradient`` computes them."""
    x = tl.load(x_ptr + rows.to(tl.int64) * x_stride + col, mask=live, other=1.0)  # float32
    if IS_LOG:
        low = x < LOG_FLOOR
        x64 = tl.where(low, 1.0, x.to(tl.float64))
        t = tl.where(low, tl.log(tl.full(x.shape, LOG_FLOOR, tl.float64)), tl.log(x64)).to(tl.float32)
        d = tl.where(low, 0.0, 1.0 / x64)
    else:
        t = x
        d = tl.full(x.shape, 1.0, tl.float64)
    return _on_grid(t, d, scale_ptr, offset_ptr, qmax_ptr, ch)


@triton.jit
def _on_grid(t, d, scale_ptr, offset_ptr, qmax_ptr, ch):
    """(v, d v / d x, qmax) of coding values t [BLOCK] (float32) on channel ``ch``'s grid:
    v = min(max((t - offset) / scale, 0), qmax) (float64 holding a float32 value), with
    ``d`` = d t / d x (float64) divided by the scale, 0 where clamped, halved at a tie with
    qmax (as ``rate_gradient``)."""
    s = tl.load(scale_ptr + ch).to(tl.float64)
    o32 = tl.load(offset_ptr + ch)
    qmax = tl.load(qmax_ptr + ch).to(tl.float64)
    diff = (t - o32).to(tl.float64)  # float32 subtraction, as numpy's
    u = (diff / s).to(tl.float32).to(tl.float64)  # float64 quotient rounded once: float32 division's value
    d = d / s
    below = ~(u >= 0.0)  # below the range, or NaN
    above = u > qmax
    tie = u == qmax
    u = tl.where(below, 0.0, tl.where(above, qmax, u))
    d = tl.where(below | above, 0.0, tl.where(tie, 0.5 * d, d))
    return u, d, qmax


@triton.jit
def _rho_value(covs_ptr, rows, live, scale_ptr, offset_ptr, qmax_ptr, LOG_FLOOR: tl.constexpr):
    """``_coded_value`` of b coded as the correlation, t = b / float32(sqrt(a' c')) with a' =
    max(a, LOG_FLOOR) (the root in float64): v, d v / d b, qmax, and d v / d a and d v / d c
    (float64), as ``rate_gradient`` with ``corr`` computes them."""
    at = rows.to(tl.int64) * 3
    xa = tl.load(covs_ptr + at, mask=live, other=1.0)  # float32
    xb = tl.load(covs_ptr + at + 1, mask=live, other=0.0)
    xc = tl.load(covs_ptr + at + 2, mask=live, other=1.0)
    a64 = tl.maximum(xa, LOG_FLOOR).to(tl.float64)
    c64 = tl.maximum(xc, LOG_FLOOR).to(tl.float64)
    r = tl.sqrt(a64 * c64).to(tl.float32)  # float64 sqrt is IEEE's
    t = tl.div_rn(xb, r)
    u, d, qmax = _on_grid(t, 1.0 / r.to(tl.float64), scale_ptr, offset_ptr, qmax_ptr, 3)
    keep = d * r.to(tl.float64)  # 1 / scale and the clamping, as d / d b has them
    half = -0.5 * t.to(tl.float64)
    da = tl.where((xa >= LOG_FLOOR) & (d != 0.0), half / a64 * keep, 0.0)
    dc = tl.where((xc >= LOG_FLOOR) & (d != 0.0), half / c64 * keep, 0.0)
    return u, d, qmax, da, dc


@triton.jit
def _residual(u, colors_ptr, rows, live, scale_ptr, offset_ptr, qmax_ptr, ch, qmax, LOG_FLOOR: tl.constexpr):
    """A colour's value u [BLOCK] (channel ``ch``, red or blue) as ``rate_gradient`` prices it
    with a ref to green: u - (gain * v_green + shift) clamped to [-qmax, qmax], shifted by
    qmax to 0..2 qmax; and whether it was not clamped."""
    ug, _dg, _qg = _coded_value(colors_ptr, 3, 1, rows, live, scale_ptr, offset_ptr, qmax_ptr, 6, False, LOG_FLOOR)
    sg = tl.load(scale_ptr + 6).to(tl.float64)
    og = tl.load(offset_ptr + 6).to(tl.float64)
    sk = tl.load(scale_ptr + ch).to(tl.float64)
    ok_ = tl.load(offset_ptr + ch).to(tl.float64)
    r = u - ((sg / sk) * ug + (og - ok_) / sk)
    inside = (r >= -qmax) & (r <= qmax)
    r = tl.where(r >= -qmax, tl.where(r > qmax, qmax, r), -qmax)
    return r + qmax, inside


@triton.jit
def _rate_histogram_kernel(
    covs_ptr, colors_ptr,  # [N, 3] float32 each
    scale_ptr, offset_ptr, qmax_ptr,  # [8] float32: the quantizer's grids
    counts_ptr,  # [C, LEVELS] int32, zeroed: the codes' counts per channel (added to here)
    n,
    CHANNELS: tl.constexpr, LEVELS: tl.constexpr, LOG_FLOOR: tl.constexpr, BLOCK: tl.constexpr,
    RESIDUALS: tl.constexpr, CORR: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = rows < n
    for k in tl.static_range(CHANNELS):
        if CORR and k == 1:
            u, d, qmax, _da, _dc = _rho_value(covs_ptr, rows, live, scale_ptr, offset_ptr, qmax_ptr, LOG_FLOOR)
        elif k < 3:
            u, d, qmax = _coded_value(covs_ptr, 3, k, rows, live, scale_ptr, offset_ptr, qmax_ptr, k + 2,
                                      k != 1, LOG_FLOOR)
        else:
            u, d, qmax = _coded_value(colors_ptr, 3, k - 3, rows, live, scale_ptr, offset_ptr, qmax_ptr, k + 2,
                                      False, LOG_FLOOR)
        if RESIDUALS and (k == 3 or k == 5):
            u, _ok = _residual(u, colors_ptr, rows, live, scale_ptr, offset_ptr, qmax_ptr, k + 2, qmax, LOG_FLOOR)
        cell = _round_half_even(u).to(tl.int32)  # np.rint, as the numba kernel's histogram
        tl.atomic_add(counts_ptr + k * LEVELS + cell, tl.full(cell.shape, 1, tl.int32), mask=live)


@triton.jit
def _bits_slope(u, span, counts_ptr, k, n, live, LEVELS: tl.constexpr):
    """d(-ln p) / d u [BLOCK] at u in 0..span, p channel k's histogram (span + 1 cells, every
    row counted once, counts + 1/2) interpolated linearly; and where p is above 1e-12."""
    lo = tl.maximum(tl.minimum(tl.floor(u), span - 1.0), 0.0)
    j = lo.to(tl.int32)
    total = n.to(tl.float64) + 0.5 * (span + 1.0)
    c_lo = tl.load(counts_ptr + k * LEVELS + j, mask=live, other=0).to(tl.float64)
    c_hi = tl.load(counts_ptr + k * LEVELS + j + 1, mask=live, other=0).to(tl.float64)
    p_lo = (c_lo + 0.5) / total
    slope = (c_hi + 0.5) / total - p_lo
    p = p_lo + (u - lo) * slope
    return -slope / p, p >= 1e-12


@triton.jit
def _channel_gradient(x_ptr, g_ptr, col, rows, live, scale_ptr, offset_ptr, qmax_ptr, counts_ptr, ch, k, n,
                      factor, inv_ln2, IS_LOG: tl.constexpr, LOG_FLOOR: tl.constexpr, LEVELS: tl.constexpr):
    """Add factor * d bits / d x of one channel to the gradient column ``col`` of g [N, 3]."""
    u, d, qmax = _coded_value(x_ptr, 3, col, rows, live, scale_ptr, offset_ptr, qmax_ptr, ch, IS_LOG, LOG_FLOOR)
    dbits, above = _bits_slope(u, qmax, counts_ptr, k, n, live, LEVELS)
    step = factor * dbits * inv_ln2 * d
    keep = live & above
    at = rows.to(tl.int64) * 3 + col
    g = tl.load(g_ptr + at, mask=keep, other=0.0)
    tl.store(g_ptr + at, g + step.to(tl.float32), mask=keep)


@triton.jit
def _rho_gradient(covs_ptr, g_ptr, rows, live, scale_ptr, offset_ptr, qmax_ptr, counts_ptr, n, factor, inv_ln2,
                  LOG_FLOOR: tl.constexpr, LEVELS: tl.constexpr):
    """``_channel_gradient`` of b coded as the correlation (``_rho_value``): add factor * d bits /
    d x to b's column of g [N, 3], and through rho's divisor to a's and c's."""
    u, d, qmax, da, dc = _rho_value(covs_ptr, rows, live, scale_ptr, offset_ptr, qmax_ptr, LOG_FLOOR)
    dbits, above = _bits_slope(u, qmax, counts_ptr, 1, n, live, LEVELS)
    step = factor * dbits * inv_ln2
    keep = live & above
    at = rows.to(tl.int64) * 3
    g = tl.load(g_ptr + at + 1, mask=keep, other=0.0)
    tl.store(g_ptr + at + 1, g + (step * d).to(tl.float32), mask=keep)
    g = tl.load(g_ptr + at, mask=keep, other=0.0)
    tl.store(g_ptr + at, g + (step * da).to(tl.float32), mask=keep)
    g = tl.load(g_ptr + at + 2, mask=keep, other=0.0)
    tl.store(g_ptr + at + 2, g + (step * dc).to(tl.float32), mask=keep)


@triton.jit
def _residual_gradient(colors_ptr, g_ptr, col, rows, live, scale_ptr, offset_ptr, qmax_ptr, counts_ptr, ch, k, n,
                       factor, inv_ln2, LOG_FLOOR: tl.constexpr, LEVELS: tl.constexpr):
    """``_channel_gradient`` of red or blue priced as its residual from green (``_residual``):
    add factor * d bits / d x to its column ``col`` of g [N, 3], and minus gain times that to
    green's."""
    u, d, qmax = _coded_value(colors_ptr, 3, col, rows, live, scale_ptr, offset_ptr, qmax_ptr, ch, False, LOG_FLOOR)
    ug, dg, _qg = _coded_value(colors_ptr, 3, 1, rows, live, scale_ptr, offset_ptr, qmax_ptr, 6, False, LOG_FLOOR)
    r, inside = _residual(u, colors_ptr, rows, live, scale_ptr, offset_ptr, qmax_ptr, ch, qmax, LOG_FLOOR)
    dbits, above = _bits_slope(r, 2.0 * qmax, counts_ptr, k, n, live, LEVELS)
    step = factor * dbits * inv_ln2
    keep = live & above & inside
    at = rows.to(tl.int64) * 3
    gain = tl.load(scale_ptr + 6).to(tl.float64) / tl.load(scale_ptr + ch).to(tl.float64)
    g = tl.load(g_ptr + at + col, mask=keep, other=0.0)
    tl.store(g_ptr + at + col, g + (step * d).to(tl.float32), mask=keep)
    g = tl.load(g_ptr + at + 1, mask=keep, other=0.0)
    tl.store(g_ptr + at + 1, g - (step * gain * dg).to(tl.float32), mask=keep)


@triton.jit
def _rate_gradient_kernel(
    covs_ptr, colors_ptr, covs_grad_ptr, colors_grad_ptr,  # [N, 3] float32 each; the gradients added to
    scale_ptr, offset_ptr, qmax_ptr, counts_ptr, factor_ptr, consts_ptr,  # [8] f32 x3, [C, LEVELS] i32, [1] f32, [1] f64
    n,
    CHANNELS: tl.constexpr, LEVELS: tl.constexpr, LOG_FLOOR: tl.constexpr, BLOCK: tl.constexpr,
    RESIDUALS: tl.constexpr, CORR: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = rows < n
    factor = tl.load(factor_ptr).to(tl.float64)
    inv_ln2 = tl.load(consts_ptr)
    nn = n + tl.zeros([BLOCK], tl.int32)  # an int argument equal to 1 arrives as a Python int
    for k in tl.static_range(CHANNELS):
        if CORR and k == 1:
            _rho_gradient(covs_ptr, covs_grad_ptr, rows, live, scale_ptr, offset_ptr, qmax_ptr, counts_ptr, nn, factor,
                          inv_ln2, LOG_FLOOR, LEVELS)
        elif k < 3:
            _channel_gradient(covs_ptr, covs_grad_ptr, k, rows, live, scale_ptr, offset_ptr, qmax_ptr, counts_ptr,
                              k + 2, k, nn, factor, inv_ln2, k != 1, LOG_FLOOR, LEVELS)
        elif RESIDUALS and (k == 3 or k == 5):
            _residual_gradient(colors_ptr, colors_grad_ptr, k - 3, rows, live, scale_ptr, offset_ptr, qmax_ptr,
                               counts_ptr, k + 2, k, nn, factor, inv_ln2, LOG_FLOOR, LEVELS)
        else:
            _channel_gradient(colors_ptr, colors_grad_ptr, k - 3, rows, live, scale_ptr, offset_ptr, qmax_ptr,
                              counts_ptr, k + 2, k, nn, factor, inv_ln2, False, LOG_FLOOR, LEVELS)


def fits(params: list[torch.Tensor], channels: tuple) -> bool:
    """Whether ``add_rate_gradients_triton`` serves these params (means [N, 2], covs [N, 3],
    colors [N, 3]) and rate ``channels``: float32 contiguous tensors with contiguous float32
    gradients, and channels a prefix of 2..7."""
    if len(params) != 3 or tuple(channels) != tuple(range(FIRST_CHANNEL, FIRST_CHANNEL + len(channels))):
        return False
    return all(p.dtype == torch.float32 and p.is_contiguous() and p.grad is not None
               and p.grad.dtype == torch.float32 and p.grad.is_contiguous() for p in params[1:])


def add_rate_gradients_triton(params: list[torch.Tensor], scale: torch.Tensor, offset: torch.Tensor,
                              qmax: torch.Tensor, bits: tuple, channels: tuple, factor: torch.Tensor,
                              residuals: bool = False, correlation: bool = False) -> None:
    """Add ``factor`` * d bits / d params to the ``.grad`` of covs and colors in place, as
    ``(attribute_bits(cat(params), quant, channels) * factor).backward()`` would (``fits``
    must hold); ``scale``, ``offset``, ``qmax`` [8] float32 are the quantizer's, ``bits`` its
    depths (the table's width, known on the host), ``factor`` a scalar (a tensor on the
    device, so that nothing syncs); ``residuals``: red and blue priced as residuals from
    green, as ``attribute_bits(..., residuals=True)`` (with all six channels); ``correlation``:
    b coded as rho = b / sqrt(a c) (``LSQPlus.correlation``)."""
    assert LOG_CHANNELS == (2, 4)  # the kernels take channels 2 and 4 (a and c) in the log domain
    covs, colors = params[1], params[2]
    n = int(covs.shape[0])
    if n == 0:
        return
    c = len(channels)
    residuals = bool(residuals) and c == 6
    levels = max(1 << int(bits[j]) for j in channels) * (2 if residuals else 1)  # a residual: 0..2 qmax
    counts = torch.zeros((c, levels), dtype=torch.int32, device=covs.device)
    grid = (triton.cdiv(n, ROWS_PER_PROGRAM),)
    common = dict(CHANNELS=c, LEVELS=levels, LOG_FLOOR=_LOG_FLOOR, BLOCK=ROWS_PER_PROGRAM, RESIDUALS=residuals,
                  CORR=bool(correlation) and c >= 2, num_warps=4, enable_fp_fusion=False)
    s, o, q = scale.detach(), offset.detach(), qmax.detach()
    _rate_histogram_kernel[grid](covs.detach(), colors.detach(), s, o, q, counts, n, **common)
    factor = torch.as_tensor(factor, dtype=torch.float32, device=covs.device).detach().reshape(1)
    _rate_gradient_kernel[grid](covs.detach(), colors.detach(), covs.grad, colors.grad, s, o, q, counts, factor, triton_path.constants((_INV_LN2,), covs.device),
                                n, **common)
