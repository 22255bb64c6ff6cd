"""Distortion-driven densification: new Gaussians at the peaks of an error map (the per-pixel L1
error, or the matched error of ``matched_error``).

The schedule (when and how many) lives in ``GrowthSchedule``; ``select_pixels`` and
``new_gaussians`` build the new rows.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from gipp_codec.fit.init import MEAN_INITIAL_VARIANCE, add_caf, caf_lp, random_covariances
from gipp_codec.fit.matched_kernels import matched_error_map


GROW_MIN_STEPS = 4  # FitConfig.grow_every_min never leaves fewer growth steps than this


@dataclass(frozen=True)
class GrowthSchedule:
    """Grow every ``every`` iterations up to ``stop`` (inclusive), k = min(k_step, Nmax - N)."""

    every: int
    stop: int
    k_step: int
    n_max: int

    @classmethod
    def from_config(cls, cfg, iterations: int, n_max: int, grow_until: int | None = None,
                    pixels: int | None = None) -> "GrowthSchedule":
        """The schedule of FitConfig ``cfg`` for a run of ``iterations`` to ``n_max`` Gaussians
        on ``pixels`` pixels (None: the interval's floor whatever the density); no growth after
        ``grow_until`` (QAT's start) when given."""
        every = max(1, round(cfg.grow_every_frac * iterations))
        stop = int(cfg.grow_stop_frac * iterations)
        if grow_until is not None:
            stop = min(stop, grow_until)
        floor = cfg.grow_every_min if pixels is None else cfg.grow_every_min_at(n_max, pixels)
        if floor is not None:  # a floor, but GROW_MIN_STEPS steps still fit by stop
            every = max(every, min(floor, stop // GROW_MIN_STEPS))
        k_step = cfg.grow_k if cfg.grow_k is not None else max(1, math.ceil(cfg.grow_k_frac * n_max))
        return cls(every=every, stop=stop, k_step=k_step, n_max=n_max)

    def grows_at(self, iteration: int) -> bool:
        """Whether ``iteration`` (1-based) is a growth step."""
        return iteration >= 1 and iteration % self.every == 0 and iteration <= self.stop

    def k_at(self, iteration: int, n_now: int) -> int:
        """How many Gaussians to add after ``iteration`` (1-based) when ``n_now`` exist; 0 if none."""
        if not self.grows_at(iteration):
            return 0
        return max(0, min(self.k_step, self.n_max - n_now))


def pixel_error(render: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # [H, W]
    """Per-pixel L1 error summed over channels, on the unclamped render."""
    return (render - target).abs().sum(dim=-1)


def gaussian_taps(variance: float, device=None) -> tuple[torch.Tensor, int]:  # ([2r+1], r)
    """The unnormalised weights exp(-x^2 / (2 variance)) of a 1-D Gaussian at x = -r..r, cut at
    r = max(1, ceil(3 sigma)), and r."""
    sigma = math.sqrt(float(variance))
    radius = max(1, math.ceil(3.0 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    return torch.exp(-0.5 * (taps / sigma) ** 2), radius


def matched_error(render: torch.Tensor, target: torch.Tensor, variance: float) -> torch.Tensor:  # [H, W]
    """How much one new Gaussian of isotropic ``variance`` (px^2) centred on each pixel could
    lower the squared error, up to a constant factor: the residual target - render [H, W, C]
    correlated with that Gaussian's weights (a separable blur cut at 3 sigma, zero outside the
    image), squared and summed over the channels. With its best colour such a Gaussian G
    removes (r * G)^2 / sum(G^2), so coherent errors rank above pixel noise of the same size.
    On the CPU a numba kernel (``matched_kernels``), elsewhere two torch convolutions
    (``matched_error_torch``); the two agree to float32 rounding."""
    if render.device.type != "cpu":
        return matched_error_torch(render, target, variance)
    kernel, _ = gaussian_taps(variance)  # [2r+1]
    residual = (target - render).detach().float().contiguous().numpy()  # [H, W, C]
    out = np.empty(residual.shape[:2], np.float32)  # [H, W]
    matched_error_map(residual, kernel.double().numpy(), out)
    return torch.from_numpy(out)


def matched_error_torch(render: torch.Tensor, target: torch.Tensor, variance: float) -> torch.Tensor:  # [H, W]
    """``matched_error`` by torch convolutions on the tensors' device: one depthwise
    convolution per axis (twice as fast on the CPU as C single-channel ones)."""
    kernel, radius = gaussian_taps(variance, render.device)  # [2r+1]
    r = (target - render).detach().float().permute(2, 0, 1)[None]  # [1, C, H, W]
    c = r.shape[1]
    r = torch.nn.functional.conv2d(r, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    r = torch.nn.functional.conv2d(r, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)
    return r[0].pow(2).sum(dim=0)


def matched_variance(height: int, width: int, n_after: int, cfg) -> float:
    """The variance (px^2) of ``matched_error``'s kernel when a growth step takes the set to
    ``n_after`` Gaussians: ``cfg.grow_error_scale`` times a new Gaussian's mean initial
    variance (``MEAN_INITIAL_VARIANCE`` plus the CAF lp when ``cfg.caf``)."""
    lp = caf_lp(height, width, n_after, cfg.caf_max) if cfg.caf else 0.0
    return cfg.grow_error_scale * (MEAN_INITIAL_VARIANCE + lp)


def growth_error(render: torch.Tensor, target: torch.Tensor, how: str, variance: float) -> torch.Tensor:  # [H, W]
    """The map growth takes its pixels from (FitConfig.grow_error): "l1" ``pixel_error``, or
    "matched" ``matched_error`` for new Gaussians of isotropic ``variance``."""
    if how == "matched":
        return matched_error(render, target, variance)
    return pixel_error(render, target)


def window_max(error: torch.Tensor, radius: int) -> torch.Tensor:  # [H, W]
    """The largest entry of ``error`` [H, W] in the (2r+1) x (2r+1) window around each pixel,
    clipped to the image: a row max then a column max, each as 2r elementwise maxima of
    shifted slices of a copy padded with -inf: the values of one square max_pool2d, whose CPU
    form is slow for these 1-D windows (BENCHMARKS.md §8, "Growth's window max by shifted
    slices")."""
    h, w = error.shape
    padded = torch.full((h, w + 2 * radius), float("-inf"), dtype=error.dtype, device=error.device)
    padded[:, radius:radius + w] = error
    rows = padded[:, :w].clone()  # [H, W]
    for k in range(1, 2 * radius + 1):
        torch.maximum(rows, padded[:, k:k + w], out=rows)
    padded = torch.full((h + 2 * radius, w), float("-inf"), dtype=error.dtype, device=error.device)
    padded[radius:radius + h] = rows
    out = padded[:h].clone()  # [H, W]
    for k in range(1, 2 * radius + 1):
        torch.maximum(out, padded[k:k + h], out=out)
    return out


def select_pixels(
    error: torch.Tensor, k: int, generator: torch.Generator | None = None, power: float = 1.0,
    peak_radius: int = 0,
) -> torch.Tensor:  # [k', 2] long (row, col)
    """The (row, col) of the k largest entries of ``error`` [H, W] (ties broken by torch.topk),
    or with a ``generator`` k distinct pixels drawn with probability proportional to
    ``error ** power`` (Gumbel top-k, so any image size; zero-error pixels only once the
    others are used up). Without a generator and with ``peak_radius`` r > 0 the local
    peaks come first: the pixels whose error is the largest in the (2r+1) x (2r+1) window
    around them, largest first, then the other pixels, largest first."""
    h, w = error.shape
    k = min(k, h * w)
    flat = error.reshape(-1)
    if generator is None and peak_radius > 0:
        peak = (error >= window_max(error, peak_radius)).reshape(-1)  # [H*W]
        key = flat.detach().to(torch.float64)
        # every peak above every other pixel: shift the peaks by more than the error's range
        key = torch.where(peak, key + (key.max() - key.min() + 1.0), key)
        idx = torch.topk(key, k, sorted=True).indices
    elif generator is not None:
        weight = flat.detach().to("cpu", torch.float64).clamp(min=0.0).pow(power)  # [H*W]
        u = torch.rand(flat.shape[0], generator=generator, dtype=torch.float64).clamp_(min=1e-300)
        gumbel = -(-u.log()).log()  # [H*W]
        # zero-error pixels after all others, in random order
        key = torch.where(weight > 0, weight.log() + gumbel, -1e300 * (1.0 + u))
        idx = torch.topk(key, k, sorted=True).indices.to(error.device)
    else:
        idx = torch.topk(flat, k, sorted=True).indices
    return torch.stack((idx // w, idx % w), dim=1)


def new_gaussians(
    pixels: torch.Tensor,  # [k, 2] (row, col)
    n_after: int,
    height: int,
    width: int,
    generator: torch.Generator,
    cfg,
    residual: torch.Tensor | None = None,  # [H, W, 3] target - render: the colours (None: 0)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows for new Gaussians: position = pixel centre; covariance as at initialisation (+ CAF
    computed with N_now = ``n_after``) or from the spacing of the selected pixels; colour the
    ``residual`` at the pixel, or 0 without one.

    Returns CPU float32 means [k, 2], covs [k, 3], colors [k, 3].
    """
    k = pixels.shape[0]
    pix = pixels.cpu()
    means = torch.stack((pix[:, 1].float() + 0.5, pix[:, 0].float() + 0.5), dim=1)
    covs = random_covariances(k, generator)
    if cfg.new_cov == "error_scale":
        # Local scale: a new Gaussian's isotropic variance is (d/2)^2, d the distance to the
        # nearest other selected pixel (clustered errors -> fine Gaussians), capped by the CAF lp.
        cap = caf_lp(height, width, n_after, cfg.caf_max) if cfg.caf else cfg.caf_max
        var = _nearest_spacing(means).div(2.0).pow(2).clamp(0.25, cap)  # [k]
        covs = torch.stack((var + 0.5, torch.zeros_like(var), var + 0.5), dim=1)
    elif cfg.caf:
        covs = add_caf(covs, caf_lp(height, width, n_after, cfg.caf_max))
    if residual is not None:
        colors = residual[pix[:, 0], pix[:, 1]].detach().float().cpu().clone()
    else:
        colors = torch.zeros(k, 3, dtype=torch.float32)
    return means, covs, colors


def _nearest_spacing(points: torch.Tensor, chunk: int = 1024) -> torch.Tensor:  # [k]
    """Distance from each of ``points`` [k, 2] to its nearest other point (inf if k == 1)."""
    k = points.shape[0]
    out = torch.full((k,), float("inf"))
    for s in range(0, k, chunk):
        d = torch.cdist(points[s:s + chunk], points)  # [c, k]
        d[torch.arange(d.shape[0]), torch.arange(s, s + d.shape[0])] = float("inf")
        out[s:s + chunk] = d.min(dim=1).values
    return out
