"""Pruning: drop Gaussians whose effective covariance is not positive definite (DESIGN.md §1),
and optionally those whose 3-sigma box lies entirely outside the image (they render nothing)."""

import torch

from gipp_codec.render.convention import CUTOFF_SIGMA, valid_mask


def onscreen_mask(means: torch.Tensor, covs: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """True where the axis-aligned 3-sigma box of a Gaussian can touch a pixel centre.

    Extent along x is 3*sqrt(a), along y 3*sqrt(c) (exact for the ellipse's bounding box).
    Invalid covariances give False-free NaN handling: use together with ``convention.valid_mask``.
    """
    rx = CUTOFF_SIGMA * torch.sqrt(covs[:, 0].clamp_min(0))
    ry = CUTOFF_SIGMA * torch.sqrt(covs[:, 2].clamp_min(0))
    x, y = means[:, 0], means[:, 1]
    # pixel centres span [0.5, W - 0.5] x [0.5, H - 0.5]
    return (x + rx >= 0.5) & (x - rx <= width - 0.5) & (y + ry >= 0.5) & (y - ry <= height - 0.5)


def keep_mask(means: torch.Tensor, covs: torch.Tensor, height: int, width: int, offscreen: bool) -> torch.Tensor:
    """Gaussians to keep: PSD, and on screen when ``offscreen`` pruning is on."""
    keep = valid_mask(covs)
    if offscreen:
        keep &= onscreen_mask(means, covs, height, width)
    return keep


def importance(covs: torch.Tensor, colors: torch.Tensor) -> torch.Tensor:  # [N]
    """Rendered energy of each Gaussian: its contribution has squared L2 norm
    |colour|^2 * pi * sqrt(det) / 4 over the plane (ignoring overlap and the cut-off), so
    |colour|^2 * sqrt(det) ranks what removing it costs."""
    det = (covs[:, 0] * covs[:, 2] - covs[:, 1] * covs[:, 1]).clamp_min(0)
    return colors.pow(2).sum(dim=1) * det.sqrt()


def most_important(covs: torch.Tensor, colors: torch.Tensor, n_keep: int) -> torch.Tensor:  # [n_keep] long
    """Indices (ascending) of the ``n_keep`` Gaussians of largest ``importance``."""
    energy = importance(covs, colors)
    n_keep = max(0, min(int(n_keep), int(energy.shape[0])))
    return torch.sort(torch.topk(energy, n_keep).indices).values
