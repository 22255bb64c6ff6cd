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
        ref, gain, shift = residual_links(channels, quant.scale.detach().cpu().numpy(),
                                          quant.offset.detach().cpu().numpy(), True)
        own = tuple(ch for ch, r in zip(channels, ref) if r < 0)
        return attribute_bits(rows, quant, own) + _residual_bits(rows, quant, channels, ref, gain, shift)
    cols = list(channels)
    v, qmax = _grid_values(rows, quant, cols)  # [N, C], [C]
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


def _grid_values(rows: torch.Tensor, quant: LSQPlus, cols: list) -> tuple[torch.Tensor, torch.Tensor]:
    """(v [N, C], qmax [C]): columns ``cols`` of rows [N, 8] in grid units, clamped to
    0..qmax, differentiable in ``rows`` (scales and offsets detached)."""
    t = to_coding_domain(rows, quant.correlation)[:, cols]  # [N, C]
    scale = quant.scale.detach()[cols]  # [C]
    offset = quant.offset.detach()[cols]
    qmax = quant.qmax[cols]  # [C]
    return torch.minimum(((t - offset) / scale).clamp_min(0.0), qmax), qmax


def _residual_bits(rows: torch.Tensor, quant: LSQPlus, channels: tuple, ref, gain, shift) -> torch.Tensor:
    """Estimated bits of the columns of ``channels`` priced as residuals (``residual_links``'
    ref >= 0): r = v - (gain * v_ref + shift) clamped to [-qmax, qmax], priced by -log2 of
    its histogram's probability (counts + 1/2 over the 2 qmax + 1 cells) interpolated
    linearly, as ``attribute_bits`` prices a value."""
    v, _ = _grid_values(rows, quant, list(channels))  # [N, C]
    total = rows.new_zeros((), dtype=torch.float32)
    for k in (k for k in range(len(channels)) if ref[k] >= 0):
        top = float(quant.qmax[channels[k]])
        r = v[:, k].double() - (float(gain[k]) * v[:, int(ref[k])].double() + float(shift[k]))
        u = r.clamp(-top, top) + top  # [N], in 0..2 top
        span = int(2 * top)
        with torch.no_grad():
            counts = torch.bincount(torch.round(u).long(), minlength=span + 1)[:span + 1].double() + 0.5
            prob = counts / counts.sum()  # [span + 1]
            lo = torch.clamp(torch.floor(u), 0.0, span - 1.0)  # [N]
            p_lo, p_hi = prob[lo.long()], prob[lo.long() + 1]
        p = p_lo + (u - lo) * (p_hi - p_lo)  # [N], differentiable in u
        total = total - (torch.log(p.clamp_min(1e-12)).sum() / math.log(2.0)).float()
    return total


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
    bits = rate_gradient(rows, cols, is_log, scale, offset, qmax, float(factor), grad, bool(want_bits), ref, gain, shift,
                         quant.correlation)
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
