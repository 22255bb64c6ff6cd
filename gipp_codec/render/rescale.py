"""Rendering a file at another size than its own (``gimg decode --scale / --size``).

Not part of the format: the spec (§7) defines a file's image at its own width and height,
and a decode at that size is exactly that. At another size W' x H':

- Along an axis that grows, the Gaussians are sampled on the finer grid: output pixel
  (i', j') samples the file's plane at ((i' + 0.5) W / W', (j' + 0.5) H / H'), which is
  rendering by §7 the Gaussians mapped by S = diag(sx, sy), sx = W' / W, sy = H' / H (means
  S m, covariances S Σ S), with the base layer upsampled at the same points.
- Along an axis that shrinks, the image is rendered at the file's size and averaged over
  each output pixel's area (a box filter, Pillow's ``Image.resize(..., BOX)``). Sampling
  the Gaussians on the coarser grid instead, even with a filter of the box's variance added
  to each (energy kept), measured 0.46 / 2.61 / 6.86 dB below this at 1/2, 1/4 and 1/8 on
  four Kodak files at 0.5 bpp, against the originals' box reductions (BENCHMARKS.md §6,
  "Decoding at another size"): a fit makes Gaussians narrower than a pixel (6 % of them under
  half a pixel across their narrow axis there), and those mean what their samples at the
  file's pixel centres add up to, not what a coarser grid would catch of them.

A region of the file (``gimg decode --crop``, ``render.region``) at another size is the same
with the region's width and height for W and H, the means moved by its corner (x, y) first
(S (m - (x, y))) and the base layer sampled from the region's origin.

So a decode renders at (max(W, W'), max(H, H')) and box-filters down to W' x H' where that
differs; that grid is held to the format's MAX_PIXELS, as a decode at the file's size is.
The base layer's block side in output pixels, F times the scale, is rounded to binary32 on
every path (``block_sides``), the value the render kernel takes. Decoder-safe (numpy and
Pillow).
"""

import math
import numbers

import numpy as np

from gipp_codec.errors import ConfigError
from gipp_codec.render import convention
from gipp_codec.format.constants import MAX_HEIGHT, MAX_PIXELS, MAX_WIDTH


def output_size(width: int, height: int, scale: float | None = None,
                size: tuple[int, int] | None = None) -> tuple[int, int]:
    """(W', H') of a decode of a width x height file: ``size`` as given, or each side times
    ``scale`` rounded, halves up (at least 1), or the file's own size when neither is given. A
    ConfigError when both are given, a value is not positive and finite, or the result is
    over the format's limits (65535 a side, 2^28 pixels)."""
    if scale is not None and size is not None:
        raise ConfigError("give a scale or a size, not both")
    if size is not None:
        if (isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2
                or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in size)):
            raise ConfigError(f"size must be two integers (width, height), not {size!r}")
        w2, h2 = int(size[0]), int(size[1])
        if w2 < 1 or h2 < 1:
            raise ConfigError(f"size {w2}x{h2}: both sides must be at least 1")
    elif scale is not None:
        if not isinstance(scale, numbers.Real) or isinstance(scale, bool):
            raise ConfigError(f"scale must be a positive number, not {scale!r}")
        s = float(scale)
        if not math.isfinite(s) or s <= 0:
            raise ConfigError(f"scale must be a positive number, not {scale!r}")
        wf, hf = width * s, height * s
        if wf > 1e12 or hf > 1e12:
            raise ConfigError(f"scale {s:g} gives an image far over the format's limits")
        w2, h2 = max(1, math.floor(wf + 0.5)), max(1, math.floor(hf + 0.5))
    else:
        return int(width), int(height)
    if w2 > MAX_WIDTH or h2 > MAX_HEIGHT or w2 * h2 > MAX_PIXELS:
        raise ConfigError(f"a decode of {w2}x{h2} is over the format's limits "
                          f"(at most {MAX_WIDTH} a side and {MAX_PIXELS} pixels)")
    return w2, h2


def valid_mask(covs: np.ndarray) -> np.ndarray:
    """Which Gaussians of covs [N, 3] (a, b, c) render, by spec §7: ``convention.valid_mask``'s
    rule evaluated in binary64 from the binary32 values, as the decoder does. [N] bool."""
    return convention.valid_mask(np.asarray(covs, np.float32).astype(np.float64))


def rescale_gaussians(means: np.ndarray, covs: np.ndarray, colors: np.ndarray, sx: float, sy: float,
                      origin: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The valid Gaussians (means [N, 2], covs [N, 3], colors [N, 3]) moved by -origin (the
    corner of a region of the file) and mapped by diag(sx, sy): float32 arrays of the M <= N
    valid ones (invalid Gaussians render nothing anyway, and mapping them could make one
    valid by rounding)."""
    keep = valid_mask(covs)
    m = (np.asarray(means, np.float64)[keep] - np.array(origin, np.float64)) * np.array([sx, sy])  # [M, 2]
    cv = np.asarray(covs, np.float64)[keep]  # [M, 3]
    out_covs = np.stack([cv[:, 0] * sx * sx, cv[:, 1] * sx * sy, cv[:, 2] * sy * sy], axis=1)  # [M, 3]
    return m.astype(np.float32), out_covs.astype(np.float32), np.asarray(colors, np.float32)[keep]


def render_size(width: int, height: int, out_width: int, out_height: int) -> tuple[int, int]:
    """The grid (W_r, H_r) the Gaussians are rendered on for a W' x H' decode of a W x H file:
    the larger of the two on each axis (module docstring). A ConfigError when it is over the
    format's MAX_PIXELS (an axis enlarged while the other is reduced: a 1 x 65535 file at
    65535 x 1 would be rendered on 65535 x 65535 pixels first)."""
    rw, rh = max(int(width), int(out_width)), max(int(height), int(out_height))
    if rw * rh > MAX_PIXELS:
        raise ConfigError(f"a decode at {out_width}x{out_height} of a {width}x{height} file is rendered on "
                          f"{rw}x{rh} pixels first (the Gaussians sampled along the axis that grows, the "
                          f"render averaged along the one that shrinks), over the format's {MAX_PIXELS} pixels")
    return rw, rh


def block_sides(factor: int, sx: float, sy: float) -> tuple[float, float]:
    """The base layer's block side F in pixels of a grid scaled by (sx, sy): F s rounded to
    binary32 on both axes, as the render kernel takes it, so that every path (the kernel,
    ``base_layer.upsample``, the GPU's) samples the base at the same points."""
    return float(np.float32(factor * sx)), float(np.float32(factor * sy))


def box_reduce(image: np.ndarray, out_width: int, out_height: int) -> np.ndarray:
    """uint8 [H, W, 3] averaged over each output pixel's area to uint8 [H', W', 3]
    (H' <= H, W' <= W; Pillow's box filter)."""
    from PIL import Image

    if image.shape[:2] == (out_height, out_width):
        return image
    return np.asarray(Image.fromarray(image).resize((int(out_width), int(out_height)), Image.Resampling.BOX))
