"""The reference renderer: plain torch, differentiable by autograd, any torch device.

It evaluates every Gaussian densely at every pixel centre (O(N*H*W)), in chunks of
Gaussians with activation checkpointing so memory stays O(chunk*H*W). It is the
readable oracle the fast backends are tested against, not a production path.
"""

import torch
from torch.utils.checkpoint import checkpoint

from gipp_codec.render.convention import CUTOFF_M2, ENCODER_CONVENTION, PIXEL_CENTER_OFFSET, taper_of, valid_mask

# Elements of one chunk's [n, H, W] weight tensor; bounds the reference's working memory.
_CHUNK_ELEMENTS = 1 << 22


def _chunk_contribution(
    means: torch.Tensor,  # [n, 2]
    covs: torch.Tensor,  # [n, 3]
    colors: torch.Tensor,  # [n, 3]
    xs: torch.Tensor,  # [W] pixel-centre x
    ys: torch.Tensor,  # [H] pixel-centre y
    taper: float,
) -> torch.Tensor:  # [H, W, 3]
    a, b, c = covs[:, 0], covs[:, 1], covs[:, 2]
    det = a * c - b * b
    valid = valid_mask(covs)
    safe_det = torch.where(valid, det, torch.ones_like(det))
    dx = xs[None, None, :] - means[:, 0, None, None]  # [n, 1, W]
    dy = ys[None, :, None] - means[:, 1, None, None]  # [n, H, 1]
    m2 = (
        c[:, None, None] * dx * dx
        - 2.0 * b[:, None, None] * dx * dy
        + a[:, None, None] * dy * dy
    ) / safe_det[:, None, None]  # [n, H, W]
    inside = (m2 <= CUTOFF_M2) & valid[:, None, None]
    # exp only of masked values: an invalid Gaussian's m2 can be hugely negative, and
    # exp's inf would turn where()'s zero gradient into NaN (0 * inf)
    m2_in = torch.where(inside, m2, torch.zeros_like(m2))
    weight = torch.where(inside, torch.exp(-0.5 * m2_in) - taper, torch.zeros_like(m2))  # [n, H, W]
    return torch.einsum("nhw,nc->hwc", weight, colors)


def render_reference(
    means: torch.Tensor,  # [N, 2] (x, y) in pixels
    covs: torch.Tensor,  # [N, 3] (a, b, c) effective covariance
    colors: torch.Tensor,  # [N, 3]
    height: int,
    width: int,
    convention: int = ENCODER_CONVENTION,
) -> torch.Tensor:  # [H, W, 3] unclamped
    """Render Gaussians by dense evaluation following ``convention.py``, in render
    ``convention`` (spec §7; the encoder's by default)."""
    taper = taper_of(convention)
    device, dtype = means.device, means.dtype
    xs = torch.arange(width, device=device, dtype=dtype) + PIXEL_CENTER_OFFSET
    ys = torch.arange(height, device=device, dtype=dtype) + PIXEL_CENTER_OFFSET
    out = torch.zeros(height, width, 3, device=device, dtype=dtype)
    n = means.shape[0]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, height * width))
    needs_grad = torch.is_grad_enabled() and (
        means.requires_grad or covs.requires_grad or colors.requires_grad
    )
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        args = (means[sl], covs[sl], colors[sl], xs, ys, taper)
        if needs_grad:
            out = out + checkpoint(_chunk_contribution, *args, use_reentrant=False)
        else:
            out = out + _chunk_contribution(*args)
    return out
