"""Regions of a file's image (``gimg decode --crop``, ``decode(crop=)``, ``GimgImage.render``).

A region is (x, y, w, h) in the file's pixels: the w x h pixels from column x, row y. The
kernel renders a window of the image bit for bit as the whole render has it
(``numba_kernels.prepare(window=)``); this module checks regions and picks the Gaussians
that can reach one, so that a region's render need not set up every Gaussian of the file.
Decoder-safe (numpy only).
"""

import numbers

import numpy as np

from gipp_codec.errors import ConfigError
from gipp_codec.render import convention

# Added to each side of a Gaussian's bounding box when picking the ones that reach a region:
# the kernel's own ranges are |x - mx| <= 3 sqrt(a) (and likewise in y) from the pixel
# centres, with a slack of 1e-3 pixel and its own float64 rounding; a whole pixel more keeps
# the pick a superset of what the kernel draws, the boxes' float32 rounding included (under
# 0.13 pixel for positions within the format's 2^20).
_PICK_MARGIN = np.float32(1.0)


def crop_values(crop) -> tuple[int, int, int, int]:
    """``crop`` as four Python ints (x, y, w, h): the left column and top row (from 0) and the
    width and height of a region. A ConfigError unless they are four integers with x, y >= 0
    and w, h >= 1 (whether the region lies in an image is ``crop_box``'s check)."""
    if (isinstance(crop, (str, bytes)) or not hasattr(crop, "__len__") or len(crop) != 4
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in crop)):
        raise ConfigError(f"a crop must be four integers (x, y, width, height), not {crop!r}")
    x, y, w, h = (int(v) for v in crop)
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise ConfigError(f"crop {x},{y},{w},{h}: x and y must be at least 0, the width and height at least 1")
    return x, y, w, h


def crop_box(width: int, height: int, crop) -> tuple[int, int, int, int]:
    """The region (x, y, w, h) of a width x height file that ``crop`` names (``crop_values``),
    as Python ints; a ConfigError unless it lies inside the image."""
    x, y, w, h = crop_values(crop)
    if x + w > width or y + h > height:
        raise ConfigError(f"crop {x},{y},{w},{h} (columns {x} to {x + w - 1}, rows {y} to {y + h - 1}) reaches "
                          f"past the file's {width}x{height} image")
    return x, y, w, h


def gaussian_bounds(means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """Each Gaussian's bounding box mean -+ (3 sigma + a pixel) on each axis: float32 [4, N]
    rows x_lo, x_hi, y_lo, y_hi, from means [N, 2] and covs [N, 3] (float32). A variance that
    is negative or NaN, or a mean that is not finite, gives a box that reaches no region (the
    kernel draws no such Gaussian); other Gaussians that render nothing (not positive
    definite) may be picked, and the kernel skips them."""
    means, covs = np.asarray(means, np.float32), np.asarray(covs, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        rx = np.sqrt(covs[:, 0]) * np.float32(convention.CUTOFF_SIGMA) + _PICK_MARGIN  # [N]
        ry = np.sqrt(covs[:, 2]) * np.float32(convention.CUTOFF_SIGMA) + _PICK_MARGIN
        return np.stack([means[:, 0] - rx, means[:, 0] + rx, means[:, 1] - ry, means[:, 1] + ry])


def reaching(bounds: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    """Indices, ascending, of the Gaussians whose box (``gaussian_bounds``, [4, N]) meets the
    region's pixel centres x + 0.5 .. x + w - 0.5, y + 0.5 .. y + h - 0.5: every Gaussian the
    kernel can draw there, in the file's order, so the region's sums are the same. int64 [M]."""
    x_lo, x_hi, y_lo, y_hi = bounds
    with np.errstate(invalid="ignore"):  # pixel centres up to 65535.5 are exact in float32
        near = (x_hi >= x + 0.5) & (x_lo <= x + w - 0.5) & (y_hi >= y + 0.5) & (y_lo <= y + h - 0.5)
    return np.flatnonzero(near)
