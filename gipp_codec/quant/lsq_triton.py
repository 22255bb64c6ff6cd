"""LSQ+ on CUDA in Triton: ``LSQPlus.constrain_`` in one launch, and the fake quantizer's
forward and backward passes in one launch each (with a sum of per-program partials). In
torch each is tens of small operations per QAT iteration, whose launch overhead is what a
GPU pays for them (BENCHMARKS.md §7).

The constraints (after every QAT step each scale stays positive, each channel's range keeps
covering what it holds and stays inside the format's limits, and with ``psd_safe`` b's grid
keeps 0 on it; with ``correlation`` rho's grid keeps 0 on it inside +-``CORRELATION_REACH``): lane j for channel j, the same float32 / float64 operations as the torch
form without FMA contraction, so the same values bit for bit (a test).

The fake quantizer's kernels follow ``lsq_kernels`` (the CPU's numba kernels) line for line,
with the same float32 / float64 operations and no FMA contraction in our expressions; what
may differ is the float32 log and the float64 exp against libm's, and the order of the sums
over rows of the scale's and offset's gradients (per program, then over programs). A test
holds them to the numba training step. Training code only: the decoder never imports this.
"""

import torch
import triton
import triton.language as tl

from gipp_codec import triton_path
from gipp_codec.format.constants import CHANNEL_LIMITS

CORRELATION_REACH = 0.999  # lsq.CORRELATION_REACH (a test checks they agree; lsq imports this module lazily)


def _constants(device: torch.device) -> torch.Tensor:
    """[11] float64 on ``device``: the channels' limits less 1e-4 of them [8], then 1e-8,
    1 - 1e-4 and rho's reach (``triton_path.constants``: values a Triton literal would round
    to float32)."""
    return triton_path.constants(tuple(x * (1.0 - 1e-4) for x in CHANNEL_LIMITS) + (1e-8, 1.0 - 1e-4,
                                                                                    CORRELATION_REACH), device)


@triton.jit
def _round_half_even(x):
    """x rounded to the nearest whole number, ties to even, as numpy's rint and torch.round
    (float64 with |x| < 2^51, float32 with |x| < 2^22: x + 0.5 is exact then)."""
    r = tl.floor(x + 0.5)
    tie = (r - x) == 0.5
    odd = (r - 2.0 * tl.floor(r * 0.5)) == 1.0
    return tl.where(tie & odd, r - 1.0, r)


@triton.jit
def _constrain_kernel(
    scale_ptr, offset_ptr, qmax_ptr,  # [C] float32 (scale and offset updated in place)
    held_ptr,  # [2, C] float64: the range each channel must keep covering (NaN: none)
    consts_ptr,  # [C + 3] float64: the limits, then 1e-8, 1 - 1e-4 and rho's reach
    C: tl.constexpr, B: tl.constexpr, PSD: tl.constexpr, CORR: tl.constexpr, BLOCK: tl.constexpr,
):
    j = tl.arange(0, BLOCK)
    ch = j < C
    scale = tl.maximum(tl.load(scale_ptr + j, mask=ch, other=1.0), 1e-8)  # clamp_(min=1e-8), float32
    offset = tl.load(offset_ptr + j, mask=ch, other=0.0)
    qmax = tl.load(qmax_ptr + j, mask=ch, other=1.0).to(tl.float64)
    held_lo = tl.load(held_ptr + j, mask=ch, other=0.0)
    held_hi = tl.load(held_ptr + C + j, mask=ch, other=0.0)
    lim = tl.load(consts_ptr + j, mask=ch, other=1.0)
    tiny = tl.load(consts_ptr + C)
    if CORR:  # rho's range: inside +-CORRELATION_REACH
        lim = tl.where(j == B, tl.load(consts_ptr + C + 2), lim)
    # 1. widen a range back over what it holds (NaN: compares False, nothing held)
    lo = offset.to(tl.float64)
    hi = lo + qmax * scale.to(tl.float64)
    shrunk = (lo > held_lo) | (hi < held_hi)
    lo_new = tl.where(lo > held_lo, held_lo, lo)
    hi_new = tl.where(hi < held_hi, held_hi, hi)
    offset = tl.where(shrunk, lo_new, lo).to(tl.float32)
    scale = tl.where(shrunk, (hi_new - lo_new) / qmax, scale.to(tl.float64)).to(tl.float32)
    # 2. keep the range inside the format's limits
    lo = offset.to(tl.float64)
    hi = lo + qmax * scale.to(tl.float64)
    out = (lo < -lim) | (hi > lim)
    lo_new = tl.minimum(tl.maximum(lo, -lim), lim)
    hi_new = tl.maximum(tl.minimum(tl.maximum(hi, -lim), lim), lo_new + qmax * tiny)
    offset = tl.where(out, lo_new, lo).to(tl.float32)
    scale = tl.where(out, (hi_new - lo_new) / qmax, scale.to(tl.float64)).to(tl.float32)
    # 3. psd_safe or correlation: b's offset a whole number k of steps below 0 when its range spans 0
    if PSD or CORR:
        s = scale.to(tl.float64)
        lo = offset.to(tl.float64)
        spans = (lo < 0.0) & (lo + qmax * s > 0.0) & (j == B)
        k = tl.minimum(tl.maximum(_round_half_even(-lo / s), 0.0), qmax)
        k = tl.where(-k * s < -lim, k - 1.0, k)
        k = tl.where(-k * s + qmax * s > lim, k + 1.0, k)
        offset = tl.where(spans, (-k * s).to(tl.float32), offset)
    # 4. correlation: a grid holding 0 but reaching past the reach shrinks its step about 0
    if CORR:
        s = scale.to(tl.float64)
        lo = offset.to(tl.float64)
        k = tl.minimum(tl.maximum(_round_half_even(-lo / s), 0.0), qmax)
        outside = (lo < -lim) | (lo + qmax * s > lim)
        fix = outside & (lo < 0.0) & (lo + qmax * s > 0.0) & (j == B)
        step = tl.minimum(s, lim / tl.maximum(k, qmax - k))
        scale = tl.where(fix, step.to(tl.float32), scale)
        offset = tl.where(fix, (-k * step).to(tl.float32), offset)
    tl.store(scale_ptr + j, scale, mask=ch)
    tl.store(offset_ptr + j, offset, mask=ch)


def constrain_triton(scale: torch.Tensor, offset: torch.Tensor, qmax: torch.Tensor, held: torch.Tensor,
                     b_channel: int, psd_safe: bool, correlation: bool = False) -> None:
    """``LSQPlus.constrain_`` of ``scale``, ``offset`` [C] float32 (in place, one launch);
    ``qmax`` [C] float32, ``held`` [2, C] float64, all on one device."""
    c = int(scale.shape[0])
    _constrain_kernel[(1,)](scale, offset, qmax, held.to(device=scale.device).contiguous(),
                            _constants(scale.device), C=c, B=int(b_channel), PSD=bool(psd_safe) and not correlation,
                            CORR=bool(correlation), BLOCK=triton.next_power_of_2(c), num_warps=1,
                            enable_fp_fusion=False)


# ------------------------------------------------------------------ the fake quantizer

ROWS_PER_PROGRAM = 128
# lsq.LOG_CHANNELS and lsq.B_CHANNEL (a test checks they agree), as constants the kernels read
LOG_A = tl.constexpr(2)
B_COL = tl.constexpr(3)
LOG_C = tl.constexpr(4)


@triton.jit
def _dequantized(q, s, o):
    """The decoder's value float32(float64(q) * float64(s) + float64(o))."""
    return (q.to(tl.float64) * s.to(tl.float64) + o.to(tl.float64)).to(tl.float32)


@triton.jit
def _correlation_root(x_ptr, base, live):
    """float64 sqrt(max(x_a, 1e-12) * max(x_c, 1e-12)) of the rows at ``base``
    (``lsq_kernels._correlation_root``; the product of two float32 values is exact, and a
    float64 tl.sqrt is IEEE's, sqrt.rn.f64: a test reads the PTX)."""
    xa = tl.maximum(tl.load(x_ptr + base + LOG_A, mask=live, other=1.0), 1e-12)
    xc = tl.maximum(tl.load(x_ptr + base + LOG_C, mask=live, other=1.0), 1e-12)
    return tl.sqrt(xa.to(tl.float64) * xc.to(tl.float64))


@triton.jit
def _fake_quant_forward_kernel(
    x_ptr,  # [N, 8] float32 rows
    scale_ptr, offset_ptr, qmax_ptr,  # [8] float32
    consts_ptr,  # float64 constants (``_constants``)
    out_ptr, q_ptr, v_ptr,  # [N, 8] float32: dequantized rows, integers, (t - offset) / scale
    e_ptr,  # [N, 8] float64: exp(value) on the log channels (with CORR, sqrt(a c) in b's), else 0
    n,
    PSD: tl.constexpr, CORR: tl.constexpr, NCH: tl.constexpr, BLOCK: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = rows < n
    base = rows.to(tl.int64) * 8
    for j in tl.static_range(8):
        x = tl.load(x_ptr + base + j, mask=live, other=1.0)
        s = tl.load(scale_ptr + j)
        o = tl.load(offset_ptr + j)
        qm = tl.load(qmax_ptr + j)
        if j == LOG_A or j == LOG_C:
            t = tl.log(tl.maximum(x, 1e-12))
        elif CORR and j == B_COL:  # rho = b / float32(sqrt(a' c')), the root in float64
            t = tl.div_rn(x, _correlation_root(x_ptr, base, live).to(tl.float32))
        else:
            t = x
        v = tl.div_rn(t - o, s)
        q = _round_half_even(tl.minimum(tl.maximum(v, 0.0), qm))
        value = _dequantized(q, s, o)
        if j == LOG_A or j == LOG_C:
            e = tl.exp(value.to(tl.float64))
            value = e.to(tl.float32)
        else:
            e = tl.zeros_like(value).to(tl.float64)
        tl.store(v_ptr + base + j, v, mask=live)
        tl.store(q_ptr + base + j, q, mask=live)
        tl.store(e_ptr + base + j, e, mask=live)
        tl.store(out_ptr + base + j, value, mask=live)
    if CORR:  # b = rho sqrt(a c) with the dequantized a and c, in float64
        a = tl.load(out_ptr + base + LOG_A, mask=live, other=1.0)
        c = tl.load(out_ptr + base + LOG_C, mask=live, other=1.0)
        root = tl.sqrt(a.to(tl.float64) * c.to(tl.float64))
        rho = tl.load(out_ptr + base + B_COL, mask=live, other=0.0)
        tl.store(e_ptr + base + B_COL, root, mask=live)
        tl.store(out_ptr + base + B_COL, (rho.to(tl.float64) * root).to(tl.float32), mask=live)
    if PSD:  # b's integer moves to the nearest one that keeps a c - b b > 0 (lsq_kernels.psd_safe_level)
        a = tl.load(out_ptr + base + LOG_A, mask=live, other=1.0)
        c = tl.load(out_ptr + base + LOG_C, mask=live, other=1.0)
        qb = tl.load(q_ptr + base + B_COL, mask=live, other=0.0)
        sb32 = tl.load(scale_ptr + B_COL)
        ob32 = tl.load(offset_ptr + B_COL)
        sb = sb32.to(tl.float64)
        ob = ob32.to(tl.float64)
        qm = tl.load(qmax_ptr + B_COL).to(tl.float64)
        keep = tl.load(consts_ptr + NCH + 1)  # 1 - 1e-4
        q64 = qb.to(tl.float64)
        bound = tl.sqrt(a.to(tl.float64) * c.to(tl.float64)) * keep
        lo = tl.minimum(tl.maximum(tl.ceil((-bound - ob) / sb), 0.0), qm)
        hi = tl.minimum(tl.maximum(tl.floor((bound - ob) / sb), 0.0), qm)
        target = tl.where(lo <= hi, tl.minimum(tl.maximum(q64, lo), hi), q64)
        zero = tl.minimum(tl.maximum(_round_half_even(-ob / sb), 0.0), qm)
        for _ in tl.static_range(4):
            vb = (target * sb + ob).to(tl.float32)
            done = (a * c - vb * vb > 0.0) | (target == zero)
            target = tl.where(done, target, target + tl.where(zero > target, 1.0, -1.0))
        qnew = target.to(tl.float32)
        moved = live & (qnew != qb)
        tl.store(q_ptr + base + B_COL, qnew, mask=moved)
        tl.store(out_ptr + base + B_COL, _dequantized(qnew, sb32, ob32), mask=moved)


@triton.jit
def _fake_quant_backward_kernel(
    x_ptr, q_ptr, v_ptr, e_ptr,  # the forward's x, q, v [N, 8] float32 and e [N, 8] float64
    scale_ptr, offset_ptr, qmax_ptr,  # [8] float32 (offset: b's value, with CORR)
    grad_out_ptr,  # [N, 8] float32: the loss gradient of the dequantized rows
    grad_x_ptr,  # [N, 8] float32 output
    partial_ptr,  # [programs, 8, 4] float64 output: this program's sums of the scale's and offset's terms
    n,
    CORR: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    live = rows < n
    base = rows.to(tl.int64) * 8
    if CORR:  # b's gradient reaches the dequantized a and c through sqrt(a c), in float64
        root = tl.load(e_ptr + base + B_COL, mask=live, other=1.0)
        value_b = _dequantized(tl.load(q_ptr + base + B_COL, mask=live, other=0.0), tl.load(scale_ptr + B_COL),
                               tl.load(offset_ptr + B_COL))
        gb = tl.load(grad_out_ptr + base + B_COL, mask=live, other=0.0)
        gprod = (gb.to(tl.float64) * value_b.to(tl.float64)) / (2.0 * root)  # float64 / is IEEE
        out_a = tl.load(e_ptr + base + LOG_A, mask=live, other=0.0).to(tl.float32)
        out_c = tl.load(e_ptr + base + LOG_C, mask=live, other=0.0).to(tl.float32)
        extra_a = (gprod * out_c.to(tl.float64)).to(tl.float32)
        extra_c = (gprod * out_a.to(tl.float64)).to(tl.float32)
    for j in tl.static_range(8):
        s = tl.load(scale_ptr + j)
        qm = tl.load(qmax_ptr + j)
        v = tl.load(v_ptr + base + j, mask=live, other=0.0)
        q = tl.load(q_ptr + base + j, mask=live, other=0.0)
        g = tl.load(grad_out_ptr + base + j, mask=live, other=0.0)
        if CORR and j == LOG_A:
            g = g + extra_a
        if CORR and j == LOG_C:
            g = g + extra_c
        if j == LOG_A or j == LOG_C or (CORR and j == B_COL):  # d out / d value: exp(value), or sqrt(a c)
            g = (g.to(tl.float64) * tl.load(e_ptr + base + j, mask=live, other=0.0)).to(tl.float32)
        g64 = g.to(tl.float64)
        s_value = tl.sum(tl.where(live, g64 * q.to(tl.float64), 0.0), axis=0)
        o_value = tl.sum(tl.where(live, g64, 0.0), axis=0)
        gq = (g64 * s.to(tl.float64)).to(tl.float32)  # d value / d q, straight through the rounding
        gv = tl.where((v >= 0.0) & (v <= qm), gq, 0.0)
        gt = tl.div_rn(gv, s)
        s_ratio = tl.sum(tl.where(live, (-gv * tl.div_rn(v, s)).to(tl.float64), 0.0), axis=0)
        o_ratio = -tl.sum(tl.where(live, gt.to(tl.float64), 0.0), axis=0)
        if j == LOG_A or j == LOG_C:
            xv = tl.load(x_ptr + base + j, mask=live, other=1.0)
            gt = tl.where(xv >= 1e-12, tl.div_rn(gt, xv), 0.0)
        if CORR and j == B_COL:  # t_b = x_b / r: to x_b, and through r = float32(sqrt(a' c')) to x_a, x_c
            r64 = _correlation_root(x_ptr, base, live)
            r = r64.to(tl.float32)
            xb = tl.load(x_ptr + base + B_COL, mask=live, other=0.0)
            gr = -gt * tl.div_rn(tl.div_rn(xb, r), r)
            gp = gr.to(tl.float64) / (2.0 * r64)
            xa = tl.load(x_ptr + base + LOG_A, mask=live, other=1.0)
            xc = tl.load(x_ptr + base + LOG_C, mask=live, other=1.0)
            ga = tl.where(xa >= 1e-12, (gp * tl.maximum(xc, 1e-12).to(tl.float64)).to(tl.float32), 0.0)
            gc = tl.where(xc >= 1e-12, (gp * tl.maximum(xa, 1e-12).to(tl.float64)).to(tl.float32), 0.0)
            tl.store(grad_x_ptr + base + LOG_A, tl.load(grad_x_ptr + base + LOG_A, mask=live, other=0.0) + ga,
                     mask=live)
            gt = tl.div_rn(gt, r)
        if CORR and j == LOG_C:
            gt = gt + gc
        tl.store(grad_x_ptr + base + j, gt, mask=live)
        at = partial_ptr + (pid * 8 + j) * 4
        tl.store(at + 0, s_value)
        tl.store(at + 1, s_ratio)
        tl.store(at + 2, o_value)
        tl.store(at + 3, o_ratio)


def fake_quant_forward_triton(x: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, qmax: torch.Tensor,
                              psd_safe: bool, correlation: bool = False) -> tuple[torch.Tensor, tuple]:
    """(dequantized rows [N, 8] float32, the state the backward needs) of rows ``x`` [N, 8]
    float32: ``lsq_kernels.fake_quant_forward`` in one launch (``correlation``: b coded as
    rho = b / sqrt(a c))."""
    n = int(x.shape[0])
    x = x.contiguous()
    out = torch.empty_like(x)
    q = torch.empty_like(x)
    v = torch.empty_like(x)
    e = torch.empty(x.shape, dtype=torch.float64, device=x.device)
    if n > 0:
        _fake_quant_forward_kernel[(triton.cdiv(n, ROWS_PER_PROGRAM),)](
            x, scale.detach(), offset.detach(), qmax, _constants(x.device), out, q, v, e, n,
            PSD=bool(psd_safe) and not correlation, CORR=bool(correlation), NCH=len(CHANNEL_LIMITS),
            BLOCK=ROWS_PER_PROGRAM, num_warps=4, enable_fp_fusion=False)
    return out, (x, q, v, e, bool(correlation))


def fake_quant_backward_triton(state: tuple, scale: torch.Tensor, offset: torch.Tensor, qmax: torch.Tensor,
                               grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_x [N, 8], grad_scale [8], grad_offset [8]) float32, the unscaled LSQ+ gradients
    (``lsq_kernels.fake_quant_backward``) from the forward's ``state`` and ``grad_out`` [N, 8]."""
    x, q, v, e, correlation = state
    n = int(x.shape[0])
    programs = max(triton.cdiv(n, ROWS_PER_PROGRAM), 1)
    grad_x = torch.empty_like(x)
    partial = torch.zeros(programs, 8, 4, dtype=torch.float64, device=x.device)
    if n > 0:
        _fake_quant_backward_kernel[(programs,)](
            x, q, v, e, scale.detach(), offset.detach(), qmax, grad_out.float().contiguous(), grad_x, partial, n,
            CORR=correlation, BLOCK=ROWS_PER_PROGRAM, num_warps=4, enable_fp_fusion=False)
    sums = partial.sum(dim=0).float()  # [8, 4]: scale (value, ratio), offset (value, ratio)
    return grad_x, sums[:, 0] + sums[:, 1], sums[:, 2] + sums[:, 3]
