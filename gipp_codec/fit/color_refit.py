"""After QAT: the colour codes that best fit the image for the finished positions and shapes.

The render is linear in the colours (image = A c, A the Gaussians' weights at each pixel,
fixed once positions and covariances are), so the best continuous colours solve the
least-squares problem min ||A c - y||^2. Conjugate gradients on the normal equations
A^T A c = A^T y solve it with one render and its backward per iteration (A^T A c is the
gradient of ||A c||^2 / 2). QAT's straight-through training leaves its colours short of
that optimum, and rounding the optimum to the colour grid keeps only part of the gain; so
the codes are fixed in stages (sequential rounding): each stage rounds the free colours
that lie closest to a grid value, then re-solves the remaining free ones, which absorb the
rounding error of those just fixed. The result is kept only if its (clamped) render is
closer to the image than QAT's own codes. Measured in BENCHMARKS.md §4.
"""

from collections.abc import Callable

import numpy as np
import torch

from gipp_codec.quant.dequant import dequantize_linear

# fraction of the colour values fixed after each stage (the last stage rounds the rest)
STAGES = (0.5, 0.75, 0.9, 1.0)
CG_ITERATIONS_FIRST = 30  # the unconstrained solve, from QAT's colours
CG_ITERATIONS_STAGE = 12  # each re-solve of the free values


def _cg(apply_normal: Callable, rhs: torch.Tensor, x: torch.Tensor, free: torch.Tensor, iterations: int) -> torch.Tensor:
    """Conjugate gradients on apply_normal(x) = rhs over the entries where ``free`` [N, 3]
    is 1 (the others stay as they are in x [N, 3]); float32 tensors, float64 scalars."""
    r = (rhs - apply_normal(x)) * free
    p = r.clone()
    rs = float(torch.sum(r.double() * r.double()))
    for _ in range(iterations):
        if rs <= 0.0:
            break
        ap = apply_normal(p) * free
        curvature = float(torch.sum(p.double() * ap.double()))
        if not curvature > 0.0:
            break
        alpha = rs / curvature
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = float(torch.sum(r.double() * r.double()))
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x


def normal_equations(renderer: Callable, means: torch.Tensor, covs: torch.Tensor,
                     target: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[Callable, torch.Tensor]:
    """(apply_normal, rhs) of min ||A c - y||^2 over the colours c [N, 3] for fixed means
    [N, 2] and covs [N, 3], y = ``target`` [H, W, 3]: apply_normal(c) = A^T A c (the gradient
    of ||A c||^2 / 2: one render and its backward) and rhs = A^T y, float32 [N, 3]. With
    pixel ``weights`` W [H, W, 3] the problem is min ||W^(1/2) (A c - y)||^2: A^T W A c and A^T W y."""
    h, w = int(target.shape[0]), int(target.shape[1])
    means, covs = means.detach(), covs.detach()

    def color_gradient(c: torch.Tensor, loss_of_image: Callable) -> torch.Tensor:  # d loss(A c) / d c: [N, 3]
        leaf = c.detach().float().clone().requires_grad_(True)
        with torch.enable_grad():  # a scalar's backward: explicit grad_outputs would import sympy
            loss_of_image(renderer(means, covs, leaf, h, w).float()).backward()
        return leaf.grad.detach().float()

    def apply_normal(c: torch.Tensor) -> torch.Tensor:  # A^T A c, or A^T W A c
        if weights is None:
            return color_gradient(c, lambda image: 0.5 * torch.sum(image * image))
        return color_gradient(c, lambda image: 0.5 * torch.sum(weights * image * image))

    zeros = torch.zeros((means.shape[0], 3), dtype=torch.float32, device=target.device)
    weighted = target if weights is None else weights * target
    return apply_normal, color_gradient(zeros, lambda image: torch.sum(image * weighted))


def least_squares_colors(renderer: Callable, means: torch.Tensor, covs: torch.Tensor, start: torch.Tensor,
                         target: torch.Tensor, iterations: int = CG_ITERATIONS_FIRST) -> torch.Tensor:
    """Continuous colours [N, 3] that minimise ||A c - target||^2 for fixed means and covs:
    ``iterations`` conjugate-gradient steps from ``start`` [N, 3]."""
    apply_normal, rhs = normal_equations(renderer, means, covs, target)
    return _cg(apply_normal, rhs, start.float(), torch.ones_like(rhs), iterations)


def refit_color_codes(renderer: Callable, means: torch.Tensor, covs: torch.Tensor, codes: np.ndarray,
                      scale: np.ndarray, offset: np.ndarray, levels: int, target: torch.Tensor,
                      base: torch.Tensor | None = None) -> np.ndarray:
    """Colour codes [N, 3] (integers in 0..levels-1) for fixed means [N, 2] and covs [N, 3]
    that render closer to ``target`` [H, W, 3] than ``codes`` [N, 3] (QAT's) do, or
    ``codes`` itself when they do not. A colour is ``code * scale + offset`` (scale,
    offset [3], as the dequantizer computes it); ``renderer(means, covs, colors, H, W)``
    must be differentiable in the colours. With a ``base`` image [H, W, 3] the decoder adds
    to the render, the colours fit ``target - base`` and the check is on render + base."""
    h, w = int(target.shape[0]), int(target.shape[1])
    dev = target.device
    scale64 = np.asarray(scale, np.float32).astype(np.float64)  # [3]
    offset64 = np.asarray(offset, np.float32).astype(np.float64)  # [3]
    means, covs = means.detach(), covs.detach()
    apply_normal, rhs = normal_equations(renderer, means, covs, target if base is None else target - base)

    def colors_of(q: np.ndarray) -> torch.Tensor:  # [N, 3] codes -> float32 colours, as dequantized
        return torch.from_numpy(dequantize_linear(q, scale, offset)).to(dev)

    def render(c: torch.Tensor) -> torch.Tensor:  # A c: [H, W, 3]
        with torch.no_grad():
            image = renderer(means, covs, c, h, w).float()
            return image if base is None else image + base

    def error(q: np.ndarray) -> float:  # squared error of the clamped render
        return float(torch.sum((render(colors_of(q)).clamp(0.0, 1.0) - target) ** 2))

    def to_grid(c: torch.Tensor) -> np.ndarray:  # [N, 3] colours -> nearest codes, clipped
        return np.clip(np.rint((c.cpu().numpy().astype(np.float64) - offset64) / scale64), 0, levels - 1)

    codes = np.asarray(codes)
    x = _cg(apply_normal, rhs, colors_of(codes.astype(np.float64)), torch.ones_like(rhs), CG_ITERATIONS_FIRST)
    free = np.ones(codes.shape, bool)
    fixed_codes = np.zeros(codes.shape, np.float64)
    total = free.size
    for frac in STAGES:
        pos = (x.cpu().numpy().astype(np.float64) - offset64) / scale64
        grid = np.clip(np.rint(pos), 0, levels - 1)
        n_fix = min(int(round(frac * total)), total) - (total - int(free.sum()))
        if n_fix > 0:  # the free values nearest a grid value (outside the range: the farthest)
            distance = np.where(free, np.abs(pos - grid), np.inf).reshape(-1)
            chosen = np.argsort(distance, kind="stable")[:n_fix]
            flat_free, flat_fixed, flat_grid = free.reshape(-1), fixed_codes.reshape(-1), grid.reshape(-1)
            flat_free[chosen] = False
            flat_fixed[chosen] = flat_grid[chosen]
        if not free.any():
            break
        x = torch.where(torch.from_numpy(free).to(dev), x, colors_of(fixed_codes))
        x = _cg(apply_normal, rhs, x, torch.from_numpy(free).to(dev).float(), CG_ITERATIONS_STAGE)
    refit = np.where(free, to_grid(x), fixed_codes)
    if error(refit) < error(codes.astype(np.float64)):
        return refit.astype(codes.dtype)
    return codes
