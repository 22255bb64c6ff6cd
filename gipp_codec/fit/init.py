"""Sparse initialisation and the content-aware filter (CAF), DESIGN.md §1.

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


def random_covariances(n: int, generator: torch.Generator) -> torch.Tensor:  # [n, 3]
    """(a, b, c) ~ U[0, 1) + (0.5, 0, 0.5), the paper's initial covariance (before CAF)."""
    abc = torch.rand(n, 3, generator=generator, dtype=torch.float32)
    return abc + torch.tensor([0.5, 0.0, 0.5], dtype=torch.float32)


def add_caf(covs: torch.Tensor, lp: float) -> torch.Tensor:  # [n, 3]
    """Sigma + lp * I on (a, b, c) rows."""
    return covs + torch.tensor([lp, 0.0, lp], dtype=covs.dtype, device=covs.device)


def sparse_init(
    n0: int, height: int, width: int, generator: torch.Generator, caf: bool = True, caf_max: float = 300.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """N0 Gaussians at uniform random positions, random covariance (+ CAF), zero colour.

    Returns CPU float32 tensors means [n0, 2] (x, y pixels), covs [n0, 3], colors [n0, 3].
    """
    u = torch.rand(n0, 2, generator=generator, dtype=torch.float32)
    means = u * torch.tensor([float(width), float(height)], dtype=torch.float32)
    covs = random_covariances(n0, generator)
    if caf:
        covs = add_caf(covs, caf_lp(height, width, n0, caf_max))
    colors = torch.zeros(n0, 3, dtype=torch.float32)
    return means, covs, colors
