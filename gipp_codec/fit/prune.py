"""Pruning: drop Gaussians whose effective covariance is not positive definite (DESIGN.md §1),
and optionally those whose 3-sigma box lies entirely outside the image (they render nothing);
and the scores by which growth recycles the least important ones."""

import torch

from gipp_codec.fit.code_search import row_removal_costs
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


def largest(scores: torch.Tensor, n_keep: int) -> torch.Tensor:  # [n_keep] long
    """Indices (ascending) of the ``n_keep`` largest of ``scores`` [N] (at most N)."""
    n_keep = max(0, min(int(n_keep), int(scores.shape[0])))
    return torch.sort(torch.topk(scores, n_keep).indices).values


# Above this window the box means come from summed-area tables: avg_pool2d's cost grows with
# the window's area (a 313-pixel window on 384 x 256 pixels, a one-Gaussian fit's, took 40 s),
# the tables' does not. Up to it avg_pool2d stays, so that files of the usual densities are
# the same bytes as before the tables (a 31-pixel window is about 320 Gaussians on Kodak).
SUMMED_AREA_FROM_WINDOW = 32


def local_variance(target: torch.Tensor, window: int) -> torch.Tensor:  # [H, W]
    """The target's variance in the ``window`` x ``window`` box around each pixel, summed over
    the channels (edges: the box clipped to the image). target: [H, W, C]."""
    x = target.permute(2, 0, 1)[None].float()  # [1, C, H, W]
    pad = window // 2

    def pool(t):  # [1, C, H', W'] box means, the box clipped at the edges
        if window >= SUMMED_AREA_FROM_WINDOW:
            return box_means(t[0], window, pad)[None]
        return torch.nn.functional.avg_pool2d(t, window, stride=1, padding=pad, count_include_pad=False)

    mean = pool(x)
    var = (pool(x * x) - mean * mean).clamp_min(0)  # [1, C, H', W'] (H' = H for odd windows)
    return var[0].sum(dim=0)[: target.shape[0], : target.shape[1]]


def box_means(t: torch.Tensor, window: int, pad: int) -> torch.Tensor:  # [C, H, W] -> [C, H', W'] float32
    """avg_pool2d(t, window, stride 1, padding pad, count_include_pad=False) from summed-area
    tables in float64: each output pixel's box, rows and columns [i - pad, i - pad + window)
    clipped to the image, summed in four lookups, whatever the window (H' = H + 2 pad -
    window + 1, likewise W')."""
    c, h, w = t.shape
    table = torch.zeros((c, h + 1, w + 1), dtype=torch.float64, device=t.device)
    table[:, 1:, 1:] = t.double().cumsum(1).cumsum(2)  # table[:, i, j]: the sum over rows < i, columns < j

    def bounds(n):  # [n'] first and one-past-last index of each output's box, clipped
        start = torch.arange(n + 2 * pad - window + 1, device=t.device) - pad
        return start.clamp(0, n), (start + window).clamp(0, n)

    r0, r1 = bounds(h)
    c0, c1 = bounds(w)
    sums = (table[:, r1][:, :, c1] - table[:, r0][:, :, c1] - table[:, r1][:, :, c0] + table[:, r0][:, :, c0])
    count = ((r1 - r0)[:, None] * (c1 - c0)[None, :]).double()  # [H', W']
    return (sums / count).float()


def contrast_importance(means: torch.Tensor, covs: torch.Tensor, colors: torch.Tensor,
                        variance: torch.Tensor, floor: float) -> torch.Tensor:  # [N]
    """``importance`` over the local variance of the target where each Gaussian sits (plus
    ``floor``): a faint Gaussian counts for more in a flat area, where structure-based
    metrics (MS-SSIM) normalise by that contrast, than among strong edges."""
    return importance(covs, colors) / (variance_at(means, variance) + floor)


def variance_at(means: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:  # [N]
    """The local variance [H, W] at the pixel under each Gaussian's centre (means [N, 2], x
    then y; centres off the image take the nearest edge pixel)."""
    h, w = variance.shape
    col = means[:, 0].floor().long().clamp(0, w - 1)
    row = means[:, 1].floor().long().clamp(0, h - 1)
    return variance[row, col]


def removal_importance(means: torch.Tensor, covs: torch.Tensor, colors: torch.Tensor, render: torch.Tensor,
                       target: torch.Tensor) -> torch.Tensor:  # [N] float64
    """How much the squared error of the clamped render grows if each Gaussian alone is
    removed (negative where removing it helps): the encoder's trim cost
    (``code_search.row_removal_costs``), on the CPU whatever the tensors' device. means
    [N, 2], covs [N, 3], colors [N, 3]; render [H, W, 3] is their unclamped render (plus any
    base layer), target [H, W, 3] the image, in [0, 1] units. Unlike ``importance`` it sees
    overlap, the cut-off and the clamp."""
    rows = torch.cat((means, covs, colors), dim=1).detach().double().cpu().numpy()  # [N, 8]
    costs = row_removal_costs(rows, render.detach().cpu().numpy(), target.detach().cpu().numpy())
    return torch.from_numpy(costs).to(means.device)


def removal_contrast_importance(means: torch.Tensor, covs: torch.Tensor, colors: torch.Tensor,
                                render: torch.Tensor, target: torch.Tensor, variance: torch.Tensor,
                                floor: float) -> torch.Tensor:  # [N] float64
    """``removal_importance`` over the local variance of the target where each Gaussian sits
    (plus ``floor``), as ``contrast_importance`` weighs ``importance``."""
    return removal_importance(means, covs, colors, render, target) / (variance_at(means, variance).double() + floor)
