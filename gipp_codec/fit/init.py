"""Sparse initialisation and the content-aware filter (CAF), DESIGN.md §1.

The initial positions are uniform (the paper) or drawn by the image's gradient magnitude
(``gradient_density``, ``sample_positions``; FitConfig.init_positions).

The learnable covariance is the EFFECTIVE one, Sigma_eff = Sigma + lp * I, with lp added
once when a Gaussian is created: ``lp = min(H*W / (9*pi*N_now), caf_max)`` where N_now is
the total count right after that insertion.
"""

import math

import torch


def caf_lp(height: int, width: int, n_now: int, caf_max: float = 300.0) -> float:
    """The content-aware filter variance for Gaussians created when the total becomes ``n_now``."""
    if n_now < 1:
        raise ValueError(f"n_now must be >= 1, got {n_now}")
    return min(height * width / (9.0 * math.pi * n_now), caf_max)


# the mean of random_covariances' a and c (U[0, 1) + 0.5), before the CAF adds its lp
MEAN_INITIAL_VARIANCE = 1.0


def random_covariances(n: int, generator: torch.Generator) -> torch.Tensor:  # [n, 3]
    """(a, b, c) ~ U[0, 1) + (0.5, 0, 0.5), the paper's initial covariance (before CAF)."""
    abc = torch.rand(n, 3, generator=generator, dtype=torch.float32)
    return abc + torch.tensor([0.5, 0.0, 0.5], dtype=torch.float32)


def add_caf(covs: torch.Tensor, lp: float | torch.Tensor) -> torch.Tensor:  # [n, 3]
    """Sigma + lp * I on (a, b, c) rows; ``lp`` one value for all or one per row [n]."""
    if isinstance(lp, torch.Tensor):
        return covs + lp.to(covs.dtype)[:, None] * torch.tensor([1.0, 0.0, 1.0], dtype=covs.dtype, device=covs.device)
    return covs + torch.tensor([lp, 0.0, lp], dtype=covs.dtype, device=covs.device)


def gradient_density(target: torch.Tensor, uniform_share: float) -> torch.Tensor:  # [H, W] float64
    """A probability per pixel of ``target`` [H, W, C]: ``uniform_share`` spread evenly, the rest
    in proportion to the gradient magnitude (channel sum of the forward differences' norms;
    a flat image gets the uniform density). Sums to 1."""
    img = target.detach().to("cpu")
    h, w = int(img.shape[0]), int(img.shape[1])
    gx = torch.zeros(h, w, dtype=torch.float64)
    gy = torch.zeros(h, w, dtype=torch.float64)
    for c in range(int(img.shape[2])):  # a channel at a time: no float64 copy of the whole image
        ch = img[..., c].to(torch.float64)  # [H, W]
        if w > 1:
            gx[:, :-1] += (ch[:, 1:] - ch[:, :-1]).abs()
        if h > 1:
            gy[:-1, :] += (ch[1:] - ch[:-1]).abs()
    mag = torch.sqrt(gx * gx + gy * gy)
    total = float(mag.sum())
    even = torch.full((h, w), 1.0 / (h * w), dtype=torch.float64)
    if not (total > 0.0) or uniform_share >= 1.0:
        return even
    return uniform_share * even + (1.0 - uniform_share) * mag / total


def sample_positions(
    density: torch.Tensor, n: int, generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:  # [n, 2] float32, [n] long
    """``n`` (x, y) positions in pixels: a pixel drawn with the probabilities ``density`` [H, W]
    (inverse CDF, so any image size), then a uniform offset inside it. Also returns each
    position's flat pixel index (row * W + col)."""
    h, w = int(density.shape[0]), int(density.shape[1])
    cdf = torch.cumsum(density.reshape(-1), dim=0)
    cdf = cdf / cdf[-1]
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    idx = torch.searchsorted(cdf, u, right=True).clamp_(max=h * w - 1)
    jitter = torch.rand(n, 2, generator=generator, dtype=torch.float32)
    col = (idx % w).to(torch.float32)
    row = torch.div(idx, w, rounding_mode="floor").to(torch.float32)
    return torch.stack((col, row), dim=1) + jitter, idx


def density_caf_lp(density_at: torch.Tensor, n_now: int, caf_max: float = 300.0) -> torch.Tensor:  # [n] float32
    """Each Gaussian's own CAF variance: the area per Gaussian where it sits,
    min(1 / (9 * pi * n_now * p), caf_max), for ``density_at`` [n] the density p at its pixel.
    A uniform density (p = 1 / (H*W)) gives ``caf_lp``'s value."""
    if n_now < 1:
        raise ValueError(f"n_now must be >= 1, got {n_now}")
    lp = 1.0 / (9.0 * math.pi * n_now * density_at.to(torch.float64))
    return lp.clamp(max=caf_max).to(torch.float32)


def sparse_init(
    n0: int, height: int, width: int, generator: torch.Generator, caf: bool = True, caf_max: float = 300.0,
    density: torch.Tensor | None = None, caf_by_density: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """N0 Gaussians at random positions (uniform, or drawn from ``density`` [H, W] when given),
    random covariance (+ CAF: the same lp for all, or with ``caf_by_density`` and a
    ``density`` each Gaussian's ``density_caf_lp``), zero colour.

    Returns CPU float32 tensors means [n0, 2] (x, y pixels), covs [n0, 3], colors [n0, 3].
    """
    idx = None
    if density is None:
        u = torch.rand(n0, 2, generator=generator, dtype=torch.float32)
        means = u * torch.tensor([float(width), float(height)], dtype=torch.float32)
    else:
        means, idx = sample_positions(density, n0, generator)
    covs = random_covariances(n0, generator)
    if caf and caf_by_density and idx is not None:
        covs = add_caf(covs, density_caf_lp(density.reshape(-1)[idx], n0, caf_max))
    elif caf:
        covs = add_caf(covs, caf_lp(height, width, n0, caf_max))
    colors = torch.zeros(n0, 3, dtype=torch.float32)
    return means, covs, colors
