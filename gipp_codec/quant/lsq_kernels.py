"""numba kernels of the LSQ+ fake quantizer on the CPU: one pass forward, one pass backward.

``LSQPlus.forward`` written with torch operations (``LSQPlus.forward_composed``, the
readable definition) costs some forty small tensor operations forward and as many in
autograd's backward on [N, 8] rows, in every QAT iteration (the whole-encode effect of
these kernels: BENCHMARKS.md §8). These kernels compute the same values element by
element, with the same float32 / binary64 operations in the same order and no fast-math
(so no fused multiply-adds):

    t     = log(max(x, 1e-12)) for the log channels (a, c), else x       float32
    v     = (t - offset) / scale                                          float32
    q     = rint(min(max(v, 0), qmax))                                    half to even
    value = float32(float64(q) * float64(scale) + float64(offset))
    out   = float32(exp(float64(value))) for the log channels, else value

(with ``psd_safe``, b's integer then moves as ``LSQPlus._psd_shift`` moves it: ``psd_safe_level``;
with ``corr``, payload coding 3, b is coded as the correlation

    t_b   = x_b / float32(sqrt(max(x_a, 1e-12) * max(x_c, 1e-12)))         root in float64
    out_b = float32(float64(value_b) * sqrt(float64(out_a) * float64(out_c)))

with the dequantized a and c) and the backward is the chain rule of those lines (round straight through, clamp passing
the gradient where 0 <= v <= qmax), with the gradients of scale and offset summed over the
rows in binary64. What may differ from the composed form is libm against torch's
vectorised log and exp (at most an ulp, rarely visible after rounding) and the order of
those sums. Training code only: the decoder never imports this module.
"""

import math

import numpy as np

from gipp_codec.jit import njit

_OPTS = dict(cache=True, nogil=True, boundscheck=False)  # no fastmath: every rounding as written

LOG_FLOOR = np.float32(1e-12)  # lsq._LOG_FLOOR (tests/test_qat.py checks they agree)
A, B, C = 2, 3, 4  # the channels of the covariance (a, b, c) in a row (lsq.CHANNELS; tested too)


@njit(**_OPTS)
def _coding_value(x, is_log):
    """The value in the quantizer's domain: float32 log(max(x, floor)) or x."""
    if is_log:
        return np.float32(math.log(max(x, LOG_FLOOR)))
    return x


@njit(**_OPTS)
def _level(v, qmax):
    """rint(clamp(v, 0, qmax)), float32 (a NaN stays NaN)."""
    if v < np.float32(0.0):
        v = np.float32(0.0)
    if v > qmax:
        v = qmax
    return np.float32(np.rint(v))


@njit(**_OPTS)
def _dequantized(q, scale, offset):
    """The decoder's value: float32(float64(q) * float64(scale) + float64(offset))."""
    return np.float32(np.float64(q) * np.float64(scale) + np.float64(offset))


@njit(**_OPTS)
def _correlation_root(xa, xc):
    """sqrt(max(xa, floor) * max(xc, floor)) in binary64 (the product of two float32 values
    is exact there): the divisor that takes b to rho is this rounded to float32. (float32
    is not used throughout because torch's float32 sqrt is not correctly rounded on every
    CPU, e.g. AVX-512 builds; a binary64 root rounded to float32 is, but for ties within
    2^-29 of a float32 boundary.)"""
    return math.sqrt(np.float64(max(xa, LOG_FLOOR)) * np.float64(max(xc, LOG_FLOOR)))


@njit(**_OPTS)
def fake_quant_forward(x, scale, offset, qmax, is_log, out, q, v, e, psd_safe=False, corr=False):
    """out [N, C] float32 = the dequantized values of rows x [N, C] float32; also q [N, C]
    float32 = their integers, and for the backward v [N, C] float32 = (t - offset) / scale
    before clamping and e [N, C] float64 = exp(value) on the log channels (with ``corr``,
    sqrt(a c) of the dequantized a and c in b's column; 0 elsewhere).
    scale, offset, qmax [C] float32; is_log [C] bool (channels quantized as logs). With
    ``psd_safe`` each row's b then moves as ``psd_safe_level`` says (``LSQPlus.psd_safe``);
    with ``corr`` b is coded as the correlation rho = b / sqrt(a c) (``LSQPlus.correlation``)."""
    n, nc = x.shape
    for i in range(n):
        for j in range(nc):
            if corr and j == B:
                t = x[i, j] / np.float32(_correlation_root(x[i, A], x[i, C]))
            else:
                t = _coding_value(x[i, j], is_log[j])
            vv = (t - offset[j]) / scale[j]
            v[i, j] = vv
            qq = _level(vv, qmax[j])
            q[i, j] = qq
            value = _dequantized(qq, scale[j], offset[j])
            e[i, j] = 0.0
            if is_log[j]:
                ev = math.exp(np.float64(value))
                e[i, j] = ev
                value = np.float32(ev)
            out[i, j] = value
        if corr:  # b = rho sqrt(a c) with the dequantized a and c, in binary64
            root = math.sqrt(np.float64(out[i, A]) * np.float64(out[i, C]))
            e[i, B] = root
            out[i, B] = np.float32(np.float64(out[i, B]) * root)
        elif psd_safe:
            qb = psd_safe_level(q[i, B], out[i, A], out[i, C], scale[B], offset[B], qmax[B])
            if qb != q[i, B]:
                q[i, B] = qb
                out[i, B] = _dequantized(qb, scale[B], offset[B])


@njit(**_OPTS)
def psd_safe_level(qb, a, c, scale, offset, qmax):
    """The integer of b (float32) nearest its rounded one ``qb`` whose value keeps
    a * c - b * b > 0 in float32 with the dequantized a and c (float32), as
    ``LSQPlus._psd_shift`` computes it: the bound sqrt(a c) (1 - 1e-4) in binary64 gives the
    safe integers; then at most four steps towards the integer nearest b = 0 while float32
    still says otherwise. qb itself where no integer is safe."""
    sb = np.float64(scale)
    ob = np.float64(offset)
    qm = np.float64(qmax)
    q64 = np.float64(qb)
    bound = math.sqrt(np.float64(a) * np.float64(c)) * (1.0 - 1e-4)
    lo = min(max(math.ceil((-bound - ob) / sb), 0.0), qm)
    hi = min(max(math.floor((bound - ob) / sb), 0.0), qm)
    target = min(max(q64, lo), hi) if lo <= hi else q64
    zero = min(max(np.rint(-ob / sb), 0.0), qm)
    for _ in range(4):
        vb = np.float32(target * sb + ob)
        if a * c - vb * vb > np.float32(0.0) or target == zero:
            break
        target += 1.0 if zero > target else -1.0
    return np.float32(target)


@njit(**_OPTS)
def fake_quant_backward(x, q, v, e, scale, offset, qmax, is_log, grad_out, grad_x, grad_scale, grad_offset,
                        corr=False):
    """Gradients of fake_quant_forward (straight-through rounding) from its x, q, v and e:
    grad_x [N, C] float32; grad_scale and grad_offset [C] float32, the unscaled LSQ+
    gradients (the caller applies LSQ's gradient scale). grad_out [N, C] float32 is the
    loss gradient of out; offset [C] float32 (read with ``corr`` only, for b's value).
    With ``corr`` the chain runs as autograd's through ``LSQPlus.forward_composed`` does:
    b's gradient also reaches the dequantized a and c through sqrt(a c), and rho's reaches
    x_a and x_c through the divisor."""
    n, nc = x.shape
    # per channel: the two uses of scale (in v and in value) and of offset, summed apart
    s_value = np.zeros(nc, np.float64)
    s_ratio = np.zeros(nc, np.float64)
    o_value = np.zeros(nc, np.float64)
    o_ratio = np.zeros(nc, np.float64)
    for i in range(n):
        extra_a = np.float32(0.0)  # with corr: d out_b / d out_a and out_c, times b's gradient
        extra_c = np.float32(0.0)
        if corr:
            root = e[i, B]
            groot = np.float64(grad_out[i, B]) * np.float64(_dequantized(q[i, B], scale[B], offset[B]))
            gprod = groot / (2.0 * root)  # through sqrt, then the product a c, in binary64
            extra_a = np.float32(gprod * np.float64(np.float32(e[i, C])))
            extra_c = np.float32(gprod * np.float64(np.float32(e[i, A])))
        for j in range(nc):
            s = scale[j]
            vv = v[i, j]
            g = grad_out[i, j]
            if corr and j == A:
                g = g + extra_a
            elif corr and j == C:
                g = g + extra_c
            if is_log[j] or (corr and j == B):  # d out / d value: exp(value), or sqrt(a c) for rho
                g = np.float32(np.float64(g) * e[i, j])
            g64 = np.float64(g)
            s_value[j] += g64 * np.float64(q[i, j])
            o_value[j] += g64
            gq = np.float32(g64 * np.float64(s))  # d value / d q, straight through the rounding
            gv = gq if (vv >= np.float32(0.0) and vv <= qmax[j]) else np.float32(0.0)
            gt = gv / s
            s_ratio[j] += np.float64(-gv * (vv / s))
            o_ratio[j] -= np.float64(gt)
            if is_log[j]:
                xv = x[i, j]
                gt = gt / xv if xv >= LOG_FLOOR else np.float32(0.0)
            grad_x[i, j] = gt
        if corr:  # t_b = x_b / r, r = float32(sqrt(a' c')) in binary64, a' = max(x_a, floor)
            gt = grad_x[i, B]
            xb = x[i, B]
            r64 = _correlation_root(x[i, A], x[i, C])
            r = np.float32(r64)
            grad_x[i, B] = gt / r
            gr = -gt * ((xb / r) / r)  # float32, as torch's division backward
            gp = np.float64(gr) / (2.0 * r64)  # through sqrt and the product, in binary64
            if x[i, A] >= LOG_FLOOR:
                grad_x[i, A] = grad_x[i, A] + np.float32(gp * np.float64(max(x[i, C], LOG_FLOOR)))
            if x[i, C] >= LOG_FLOOR:
                grad_x[i, C] = grad_x[i, C] + np.float32(gp * np.float64(max(x[i, A], LOG_FLOOR)))
    for j in range(nc):
        grad_scale[j] = np.float32(s_value[j]) + np.float32(s_ratio[j])
        grad_offset[j] = np.float32(o_value[j]) + np.float32(o_ratio[j])
