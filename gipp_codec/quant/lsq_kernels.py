"""numba kernels of the LSQ+ fake quantizer on the CPU: one pass forward, one pass backward.

``LSQPlus.forward`` written with torch operations (``LSQPlus.forward_composed``, the
readable definition) costs some forty small tensor operations forward and as many in
autograd's backward on [N, 8] rows: about 2 ms per QAT iteration at N = 4000, a third of
the iteration (BENCHMARKS.md §8). These kernels compute the same values element by
element, with the same float32 / binary64 operations in the same order and no fast-math
(so no fused multiply-adds):

    t     = log(max(x, 1e-12)) for the log channels (a, c), else x       float32
    v     = (t - offset) / scale                                          float32
    q     = rint(min(max(v, 0), qmax))                                    half to even
    value = float32(float64(q) * float64(scale) + float64(offset))
    out   = float32(exp(float64(value))) for the log channels, else value

and the backward is the chain rule of those lines (round straight through, clamp passing
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
def _forward_block(x, j0, scale, offset, qmax, is_log, out, q, v, e):
    """fake_quant_forward on one attribute block x [N, C] whose channel j is channel j0 + j."""
    n, nc = x.shape
    for i in range(n):
        for j in range(nc):
            ch = j0 + j
            vv = (_coding_value(x[i, j], is_log[ch]) - offset[ch]) / scale[ch]
            v[i, ch] = vv
            qq = _level(vv, qmax[ch])
            q[i, ch] = qq
            value = _dequantized(qq, scale[ch], offset[ch])
            e[i, ch] = 0.0
            if is_log[ch]:
                ev = math.exp(np.float64(value))
                e[i, ch] = ev
                value = np.float32(ev)
            out[i, j] = value


@njit(**_OPTS)
def fake_quant_forward(means, covs, colors, scale, offset, qmax, is_log, out_means, out_covs, out_colors, q, v, e):
    """The dequantized values of the attribute rows, block by block: means [N, 2] (channels
    x, y), covs [N, 3] (a, b, c), colors [N, 3] (r, g, b), float32, into out_means, out_covs,
    out_colors of the same shapes; also q [N, 8] float32 = their integers, and for the
    backward v [N, 8] float32 = (t - offset) / scale before clamping and e [N, 8] float64 =
    exp(value) on the log channels (0 elsewhere). scale, offset, qmax [8] float32; is_log [8]
    bool (channels quantized as logs)."""
    _forward_block(means, 0, scale, offset, qmax, is_log, out_means, q, v, e)
    _forward_block(covs, 2, scale, offset, qmax, is_log, out_covs, q, v, e)
    _forward_block(colors, 5, scale, offset, qmax, is_log, out_colors, q, v, e)


@njit(**_OPTS)
def _backward_block(x, j0, v, e, scale, qmax, is_log, grad_out, grad_x, sums):
    """fake_quant_backward on one block (see _forward_block); sums [4, 8] float64 gathers the
    per-channel sums of the scale's and the offset's two uses."""
    n, nc = x.shape
    for i in range(n):
        for j in range(nc):
            ch = j0 + j
            s = scale[ch]
            vv = v[i, ch]
            g = grad_out[i, j]
            if is_log[ch]:  # d exp(value) / d value = exp(value), in binary64 as torch's chain
                g = np.float32(np.float64(g) * e[i, ch])
            g64 = np.float64(g)
            sums[0, ch] += g64 * np.float64(_level(vv, qmax[ch]))  # scale, in value
            sums[2, ch] += g64  # offset, in value
            gq = np.float32(g64 * np.float64(s))  # d value / d q, straight through the rounding
            gv = gq if (vv >= np.float32(0.0) and vv <= qmax[ch]) else np.float32(0.0)
            gt = gv / s
            sums[1, ch] += np.float64(-gv * (vv / s))  # scale, in v
            sums[3, ch] -= np.float64(gt)  # offset, in v
            if is_log[ch]:
                xv = x[i, j]
                gt = gt / xv if xv >= LOG_FLOOR else np.float32(0.0)
            grad_x[i, j] = gt


@njit(**_OPTS)
def fake_quant_backward(means, covs, colors, v, e, scale, qmax, is_log, grad_means, grad_covs, grad_colors,
                        out_means, out_covs, out_colors, grad_scale, grad_offset):
    """Gradients of fake_quant_forward (straight-through rounding) from its v and e: the loss
    gradients grad_means, grad_covs, grad_colors of its outputs give out_means [N, 2],
    out_covs [N, 3], out_colors [N, 3] float32 for its inputs, and grad_scale, grad_offset [8]
    float32, the unscaled LSQ+ gradients (the caller applies LSQ's gradient scale)."""
    sums = np.zeros((4, scale.shape[0]), np.float64)
    _backward_block(means, 0, v, e, scale, qmax, is_log, grad_means, out_means, sums)
    _backward_block(covs, 2, v, e, scale, qmax, is_log, grad_covs, out_covs, sums)
    _backward_block(colors, 5, v, e, scale, qmax, is_log, grad_colors, out_colors, sums)
    for j in range(scale.shape[0]):
        grad_scale[j] = np.float32(sums[0, j]) + np.float32(sums[1, j])
        grad_offset[j] = np.float32(sums[2, j]) + np.float32(sums[3, j])
