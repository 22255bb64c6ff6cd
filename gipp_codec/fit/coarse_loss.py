"""A loss term on the residual's coarse scales: weight * sum over the block sides s = 2, 4,
..., 2^levels of mean over pixels of ((U_s D_s r)^2), with r = render - target, D_s the mean
of each s x s block (a partial block at the right or bottom edge: the mean of its pixels) and
U_s that mean given back to each of the block's pixels. MS-SSIM compares images at such
scales (2 x 2 means between them) and weighs the coarser ones more than PSNR does; this term
lets the fit do the same (``FitConfig.loss_coarse_weight``). Its gradient is weight * sum_s
U_s D_s g, g = 2 r / numel the MSE's: each block's mean gradient, on its pixels."""

from typing import Callable

import torch
import torch.nn.functional as F


def _sum2(x: torch.Tensor) -> torch.Tensor:
    """The sums of the 2 x 2 blocks of x [C, H, W] (a partial block at an odd edge: its
    pixels'): [C, ceil(H/2), ceil(W/2)]."""
    height, width = x.shape[-2:]
    if height % 2 or width % 2:
        x = F.pad(x, (0, width % 2, 0, height % 2))  # zeros: they add nothing to a sum
    return x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2]


def _up2(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Each value of x [C, h, w] on its 2 x 2 block, cut to [C, height, width]."""
    return F.interpolate(x.unsqueeze(0), scale_factor=2, mode="nearest")[0, :, :height, :width]


def _pyramid_counts(height: int, width: int, levels: int, dtype) -> list[torch.Tensor]:
    """How many pixels each block of each level holds: [1, h_l, w_l] for l = 0 .. levels."""
    counts = [torch.ones((1, height, width), dtype=dtype)]
    for _ in range(levels):
        counts.append(_sum2(counts[-1]))
    return counts


def block_mean(x: torch.Tensor, side: int) -> torch.Tensor:
    """Each pixel's ``side`` x ``side`` block mean (blocks from the top left; a partial block at
    the edge is the mean of its pixels), for every plane of x [C, H, W]; ``side`` a power of 2."""
    levels = side.bit_length() - 1
    return _coarse_sum(x, [side], _pyramid_counts(*x.shape[-2:], levels, x.dtype))


def _coarse_sum(x: torch.Tensor, sides: list[int], counts: list[torch.Tensor]) -> torch.Tensor:
    """sum over ``sides`` (powers of 2 from 2 up) of block_mean(x, side), by one pyramid of 2 x 2
    sums (``counts``: ``_pyramid_counts`` of x's shape, to the largest side): [C, H, W]."""
    levels = max(sides).bit_length() - 1
    sums, shapes = [x], []
    for _ in range(levels):
        shapes.append(tuple(sums[-1].shape[1:]))
        sums.append(_sum2(sums[-1]))
    acc = None  # coarse to fine: the means of the sides asked for, each spread over its block
    for level in range(levels, 0, -1):
        if 2 ** level in sides:
            mean = sums[level] / counts[level]  # [C, h, w]
            acc = mean if acc is None else acc + mean
        if acc is not None:
            acc = _up2(acc, *shapes[level - 1])
    return acc


def coarse_grad_filter(weight: float, levels: int) -> Callable[[torch.Tensor], None]:
    """``add_(g)``: adds weight * sum over s = 2 .. 2^levels of block_mean(g, s) to the MSE's
    image gradient g [3, H, W] in place (``render.mse_step``'s ``grad_filter``)."""
    sides = [2 ** j for j in range(1, levels + 1)]
    cached: dict = {}  # (H, W, dtype) -> the block counts

    def add_(g: torch.Tensor) -> None:
        key = (*g.shape[-2:], g.dtype)
        if key not in cached:
            cached[key] = _pyramid_counts(*key[:2], levels, g.dtype)
        g.add_(_coarse_sum(g, sides, cached[key]), alpha=weight)

    return add_
