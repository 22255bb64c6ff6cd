"""numba kernel of the rate term's gradient (``rate_proxy.attribute_bits``) on the CPU.

The torch form is about thirty small tensor operations and a pass of autograd's engine on
every QAT iteration, for a set of a few thousand rows: its cost is dispatch, not
arithmetic. Here the histogram and the gradient of the estimated bits are two passes over
the rows, with the torch form's formula:

    t = log(max(x, 1e-12)) for a and c, else x           (the coding domain)
    v = min(max((t - offset) / scale, 0), qmax)
    P = (counts of round(v) + 1/2) / their sum, per channel (detached)
    lo = max(min(floor(v), qmax - 1), 0)
    p = P[lo] + (v - lo) * (P[lo + 1] - P[lo])
    bits = -sum(log2(p))    d bits / d v = -(P[lo + 1] - P[lo]) / (p ln 2)

(with ``corr``, b's coding domain is the correlation t = x_b / float32(sqrt(a' c')), a' =
max(x_a, 1e-12), and its gradient reaches x_a and x_c too: d t / d x_a = -t / (2 a');
a column priced as a residual from another, ``rate_proxy.residual_links``, takes
r = v - (gain * v_ref + shift) for v, over -qmax..qmax, and its gradient goes to both), with
v rounded to float32 as in the torch form (so that both take the same grid cells, and
the same gradient at the ends of a range: a tie with qmax halves it, as torch.minimum
does) and the rest in float64, so the two agree to float32 rounding
(tests/test_rate_proxy.py). Training code only.
"""

import math

import numpy as np

from gipp_codec.jit import njit
from gipp_codec.quant.lsq_kernels import _correlation_root

_OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")
_LOG_FLOOR = 1e-12  # lsq._LOG_FLOOR: where the coding domain's log stops
_A, _B, _C = 2, 3, 4  # the covariance's columns in a row (lsq.CHANNELS)


@njit(**_OPTS)
def rate_gradient(rows, channels, is_log, scale, offset, qmax, factor, grad, want_bits, ref, gain, shift,
                  corr=False):
    """Add ``factor`` * d bits / d rows to grad [N, 8] float32 for rows [N, 8] float32, over
    the columns ``channels`` [C] int64 (``is_log`` [C] bool: coded in the log domain) with
    their grids ``scale``, ``offset`` [C] float64 (float32 values) and ``qmax`` [C] float64;
    returns the estimated bits when ``want_bits`` (a logarithm per value), else 0.

    A column k with ``ref[k]`` = r >= 0 (an index into ``channels``) is priced as the
    residual v_k - (gain[k] * v_r + shift[k]) (its prediction from column r, in k's grid
    units), clamped to [-qmax, qmax], instead of as v_k; ref[k] = -1: v_k itself.
    ``corr``: column b is coded as the correlation b / sqrt(a c) (``LSQPlus.correlation``)."""
    n = rows.shape[0]
    nc = channels.shape[0]
    levels = 1
    for k in range(nc):
        span = 2 * int(qmax[k]) if ref[k] >= 0 else int(qmax[k])
        levels = max(levels, span + 1)
    v = np.empty((n, nc), np.float64)
    dv = np.empty((n, nc), np.float64)  # d v / d x
    da = np.zeros((n, nc), np.float64)  # with corr, in b's column: d v / d x_a and d v / d x_c
    dc = np.zeros((n, nc), np.float64)
    counts = np.zeros((nc, levels), np.float64)
    for i in range(n):
        for k in range(nc):
            x = rows[i, channels[k]]
            d = 1.0
            r = np.float32(1.0)
            if corr and channels[k] == _B:  # rho = b / r, r = float32(sqrt(a' c')) from binary64
                fa = np.float32(_LOG_FLOOR)
                xa = np.float64(max(rows[i, _A], fa))
                xc = np.float64(max(rows[i, _C], fa))
                r = np.float32(_correlation_root(rows[i, _A], rows[i, _C]))  # the quantizer's divisor
                t = x / r
                d = 1.0 / np.float64(r)
                half = -0.5 * np.float64(t)
                da[i, k] = half / xa if rows[i, _A] >= fa else 0.0
                dc[i, k] = half / xc if rows[i, _C] >= fa else 0.0
            elif is_log[k]:
                if x < np.float32(_LOG_FLOOR):
                    t = np.float32(math.log(_LOG_FLOOR))
                    d = 0.0
                else:
                    t = np.float32(math.log(np.float64(x)))
                    d = 1.0 / np.float64(x)
            else:
                t = x
            u = np.float64((t - np.float32(offset[k])) / np.float32(scale[k]))  # float32, as torch's
            d = d / scale[k]
            if not u >= 0.0:  # below the range, or NaN: no gradient, and a valid histogram cell
                u = 0.0
                d = 0.0
            elif u > qmax[k]:
                u = qmax[k]
                d = 0.0
            elif u == qmax[k]:
                d = 0.5 * d  # torch.minimum splits a tie's gradient between its two inputs
            v[i, k] = u
            dv[i, k] = d
            if corr and channels[k] == _B:  # the same 1 / scale and clamping as d / d x_b
                keep = d * np.float64(r)
                da[i, k] = da[i, k] * keep if d != 0.0 else 0.0  # (a NaN rho takes no gradient)
                dc[i, k] = dc[i, k] * keep if d != 0.0 else 0.0
    low = np.zeros(nc, np.float64)  # the smallest value priced: -qmax for a residual
    for k in range(nc):
        if ref[k] >= 0:
            low[k] = -qmax[k]
    x_of = np.empty((n, nc), np.float64)  # the value priced: v, or the residual
    live = np.ones((n, nc), np.bool_)  # False where a residual was clamped: no gradient
    for i in range(n):
        for k in range(nc):
            u = v[i, k]
            if ref[k] >= 0:
                u = u - (gain[k] * v[i, ref[k]] + shift[k])
                if not u >= low[k]:
                    u = low[k]
                    live[i, k] = False
                elif u > qmax[k]:
                    u = qmax[k]
                    live[i, k] = False
            x_of[i, k] = u
            counts[k, int(np.rint(u - low[k]))] += 1.0
    prob = np.zeros((nc, levels), np.float64)
    for k in range(nc):
        top = int(qmax[k] - low[k])
        total = 0.0
        for q in range(top + 1):
            total += counts[k, q] + 0.5
        for q in range(top + 1):
            prob[k, q] = (counts[k, q] + 0.5) / total
    bits = 0.0
    inv_ln2 = 1.0 / math.log(2.0)
    for i in range(n):
        for k in range(nc):
            u = x_of[i, k] - low[k]
            lo = min(math.floor(u), qmax[k] - low[k] - 1.0)
            if lo < 0.0:
                lo = 0.0
            j = int(lo)
            p_lo = prob[k, j]
            slope = prob[k, j + 1] - p_lo
            p = p_lo + (u - lo) * slope
            if p < 1e-12:
                if want_bits:
                    bits -= math.log(1e-12) * inv_ln2
                continue
            if want_bits:
                bits -= math.log(p) * inv_ln2
            g = factor * (-slope / p) * inv_ln2
            if ref[k] < 0:
                grad[i, channels[k]] += np.float32(g * dv[i, k])
                if corr and channels[k] == _B:
                    grad[i, _A] += np.float32(g * da[i, k])
                    grad[i, _C] += np.float32(g * dc[i, k])
            elif live[i, k]:
                grad[i, channels[k]] += np.float32(g * dv[i, k])
                grad[i, channels[ref[k]]] -= np.float32(g * gain[k] * dv[i, ref[k]])
    return bits
