"""A differentiable estimate of the bits the quantized attributes cost, for a rate term in
QAT (``QATConfig.rate_weight``).

Per channel j (a, b, c and the three colours by default) the histogram of the current
integers q = round(v), v = clamp((t - offset) / scale, 0, 2^bits - 1) in the coding domain
t, gives a probability per grid value (counts + 1/2, normalised; detached). A value's cost
is -log2 of that probability interpolated linearly at v, so its gradient moves v towards
the more probable neighbouring grid value; the sum over the set estimates the channel's
order-0 coded size. Scales and offsets are detached: the term moves the Gaussians, not the
grids (a coarser grid is a bit-depth question, measured in BENCHMARKS.md §4).

With ``residuals`` (``QATConfig.rate_color_residuals``) red and blue are priced as the coder
codes them (its channel predictor, spec "Reconstruction"): as the residual of their value
from green's, mapped onto their grid, v_k - (v_g * s_g + o_g - o_k) / s_k, clamped to
[-qmax, qmax], whose histogram is far narrower than their own (about 3 bits against 5 on
the Kodak files); the gradient then moves green too.
"""

import math

import numpy as np
import torch

from gipp_codec.fit.rate_kernels import rate_gradient
from gipp_codec.quant.lsq import LOG_CHANNELS, LSQPlus, to_coding_domain

RATE_CHANNELS = (2, 3, 4, 5, 6, 7)  # a, b, c, r, g, b: every channel but the positions
# QATConfig.rate_channels -> the channels the rate term covers
RATE_CHANNEL_SETS = {"all": RATE_CHANNELS, "covariance": (2, 3, 4)}
GREEN, RESIDUAL_CHANNELS = 6, (5, 7)  # with ``residuals``: red and blue, from green


def residual_links(channels: tuple, scale: np.ndarray, offset: np.ndarray, residuals: bool):
    """(ref [C] int64, gain [C], shift [C] float64) of ``rate_kernels.rate_gradient`` for
    ``channels`` [C] with the grids ``scale``, ``offset`` [8] (float32 values): with
    ``residuals``, red and blue (when green is priced too) refer to green's column, with
    v_pred = gain * v_green + shift in their grid units; else every ref is -1."""
    cols = list(channels)
    ref = np.full(len(cols), -1, np.int64)
    gain = np.zeros(len(cols), np.float64)
    shift = np.zeros(len(cols), np.float64)
    if residuals and GREEN in cols:
        s = np.asarray(scale, np.float32).astype(np.float64)  # [8]
        o = np.asarray(offset, np.float32).astype(np.float64)
        for k, ch in enumerate(cols):
            if ch in RESIDUAL_CHANNELS:
                ref[k] = cols.index(GREEN)
                gain[k] = s[GREEN] / s[ch]
                shift[k] = (o[GREEN] - o[ch]) / s[ch]
    return ref, gain, shift


def attribute_bits(rows: torch.Tensor, quant: LSQPlus, channels: tuple = RATE_CHANNELS,
                   residuals: bool = False) -> torch.Tensor:
    """Estimated bits of ``channels`` of attribute rows [N, 8] under ``quant`` (a scalar
    tensor, differentiable in ``rows``; see the module docstring)."""
    if residuals:
        return _residual_bits(rows, quant, channels)
    cols = list(channels)
    t = to_coding_domain(rows)[:, cols]  # [N, C]
    scale = quant.scale.detach()[cols]  # [C]
    offset = quant.offset.detach()[cols]
    qmax = quant.qmax[cols]  # [C]
    v = torch.minimum(((t - offset) / scale).clamp_min(0.0), qmax)  # [N, C]
    levels = max((1 << quant.bits[j]) - 1 for j in cols) + 1  # from the depths: no host sync
    n, c = v.shape
    with torch.no_grad():
        base = torch.arange(c, device=v.device) * levels  # [C] row of each channel in the table
        q = torch.round(v).long() + base  # [N, C]
        counts = torch.bincount(q.reshape(-1), minlength=c * levels).reshape(c, levels).double()
        used = (torch.arange(levels, device=v.device)[None, :] <= qmax[:, None])  # [C, levels]
        counts = (counts + 0.5) * used
        prob = (counts / counts.sum(dim=1, keepdim=True)).float()  # [C, levels]
        lo = torch.minimum(torch.floor(v), qmax - 1).clamp_min(0.0)  # [N, C]
        p_lo = prob.reshape(-1)[(lo.long() + base).reshape(-1)].reshape(n, c)
        p_hi = prob.reshape(-1)[(lo.long() + 1 + base).reshape(-1)].reshape(n, c)
    p = p_lo + (v - lo) * (p_hi - p_lo)  # [N, C], differentiable in v
    return -(torch.log(p.clamp_min(1e-12)).sum()) / math.log(2.0)


def _residual_bits(rows: torch.Tensor, quant: LSQPlus, channels: tuple) -> torch.Tensor:
    """``attribute_bits`` with ``residuals``: each column's value v [N] (as there), or for
    red and blue the residual from green (``residual_links``), priced by -log2 of its
    histogram's probability interpolated linearly (a residual's histogram over -qmax..qmax)."""
    cols = list(channels)
    t = to_coding_domain(rows)[:, cols]  # [N, C]
    scale = quant.scale.detach()[cols]  # [C]
    offset = quant.offset.detach()[cols]
    qmax = quant.qmax[cols]  # [C]
    v = torch.minimum(((t - offset) / scale).clamp_min(0.0), qmax)  # [N, C]
    ref, gain, shift = residual_links(channels, quant.scale.detach().cpu().numpy(),
                                      quant.offset.detach().cpu().numpy(), True)
    total = rows.new_zeros((), dtype=torch.float64)
    for k in range(len(cols)):
        top = float(quant.qmax[cols[k]])
        x = v[:, k].double()
        low = 0.0
        if ref[k] >= 0:
            low = -top
            x = (x - (float(gain[k]) * v[:, int(ref[k])].double() + float(shift[k]))).clamp(low, top)
        u = x - low  # [N], in 0..span
        span = int(top - low)
        with torch.no_grad():
            counts = torch.bincount(torch.round(u).long(), minlength=span + 1)[:span + 1].double() + 0.5
            prob = counts / counts.sum()  # [span + 1]
            lo = torch.minimum(torch.floor(u), torch.tensor(span - 1.0, dtype=u.dtype, device=u.device)).clamp_min(0.0)
            p_lo, p_hi = prob[lo.long()], prob[lo.long() + 1]
        p = p_lo + (u - lo) * (p_hi - p_lo)  # [N], differentiable in u
        total = total - torch.log(p.clamp_min(1e-12)).sum() / math.log(2.0)
    return total.float()


def add_rate_gradients(params: list[torch.Tensor], quant: LSQPlus, channels: tuple, factor: float,
                       want_bits: bool = False, residuals: bool = False) -> float | None:
    """Add ``factor`` * d ``attribute_bits`` / d params to the ``.grad`` of ``params`` (means
    [N, 2], covs [N, 3], colors [N, 3]: the rows' columns in order, float32 CPU leaves), as
    ``(attribute_bits(cat(params), quant, channels, residuals) * factor).backward()`` would, by the
    kernel of ``rate_kernels`` (without autograd's engine); returns the estimated bits with
    ``want_bits`` (which costs a logarithm per value), else None."""
    rows = torch.cat([p.detach() for p in params], dim=1).numpy()  # [N, 8] float32
    cols = np.asarray(channels, np.int64)  # [C]
    is_log = np.array([c in LOG_CHANNELS for c in channels], np.bool_)  # [C]
    scale = quant.scale.detach().double().numpy()[cols]  # [C]
    offset = quant.offset.detach().double().numpy()[cols]
    qmax = quant.qmax.detach().double().numpy()[cols]
    grad = np.zeros(rows.shape, np.float32)  # [N, 8]
    ref, gain, shift = residual_links(channels, quant.scale.detach().numpy(), quant.offset.detach().numpy(), residuals)
    bits = rate_gradient(rows, cols, is_log, scale, offset, qmax, float(factor), grad, bool(want_bits), ref, gain, shift)
    start = 0
    for p in params:
        width = int(p.shape[1])
        part = torch.from_numpy(grad[:, start:start + width])
        if p.grad is None:
            p.grad = part.contiguous()
        else:
            p.grad.add_(part)
        start += width
    return float(bits) if want_bits else None
