"""The rendering convention shared by every renderer (spec: format_spec/gimg.md, "Rendering").

Coordinates are in pixel units with the origin at the top-left corner of the image;
x grows to the right (columns), y grows downwards (rows). The sample point of pixel
(row j, column i) is its centre ``p = (i + 0.5, j + 0.5)``.

A Gaussian k has mean ``mu_k = (mx, my)``, covariance ``Sigma_k = [[a, b], [b, c]]``
(the *effective* covariance: the content-aware filter is already folded in) and
colour ``col_k`` (3 floats, unbounded). It is *valid* iff ``a > 0``, ``c > 0`` and
``a*c - b*b > 0``; invalid Gaussians contribute nothing.

With ``d = p - mu_k`` and ``det = a*c - b*b`` the squared Mahalanobis distance is

    m2 = (c*dx*dx - 2*b*dx*dy + a*dy*dy) / det

and the Gaussian's weight at p is ``exp(-0.5*m2) - taper`` if ``m2 <= CUTOFF_M2`` else 0
(the 3-sigma ellipse, inclusive), where the render convention sets the taper: 0 in
convention 1 (a step of exp(-4.5) ~ 1.1 % of the colour at the ellipse's edge) and
``exp(-0.5*CUTOFF_M2)`` in convention 2 (the weight falls continuously to 0 there). Files
name their convention in the header; the encoder trains and writes ``ENCODER_CONVENTION``.
A pixel's value is the plain sum over Gaussians of
weight * colour, unclamped. No per-tile or per-pixel cap on the number of
contributing Gaussians exists. An 8-bit image is produced as
``floor(clamp(v, 0, 1) * 255 + 0.5)`` per channel.

The rows a Gaussian touches satisfy ``dy*dy <= CUTOFF_M2 * c``; on such a row the
columns satisfy ``|dx - b*dy/c| <= sqrt(det * (CUTOFF_M2*c - dy*dy)) / c``.
The axis-aligned bounding radius is ``3 * sqrt(lambda_max(Sigma))``.
"""

import math

import numpy as np

PIXEL_CENTER_OFFSET = 0.5  # sample point of pixel i is i + 0.5
CUTOFF_SIGMA = 3.0
CUTOFF_M2 = CUTOFF_SIGMA * CUTOFF_SIGMA  # squared Mahalanobis cut-off, inclusive
# the taper subtracted from exp(-m2/2) inside the cut-off, by render convention (spec §7)
CONVENTION_TAPERS = {1: 0.0, 2: math.exp(-0.5 * CUTOFF_M2)}
ENCODER_CONVENTION = 2  # the convention the encoder trains with and writes


def taper_of(convention: int) -> float:
    """The taper (binary64) of render ``convention``; ValueError for an unknown one."""
    try:
        return CONVENTION_TAPERS[int(convention)]
    except KeyError:
        raise ValueError(f"unknown render convention {convention!r}; known: {sorted(CONVENTION_TAPERS)}") from None


def valid_mask(covs: np.ndarray) -> np.ndarray:
    """Boolean mask [N] of Gaussians whose covariance [N, 3] = (a, b, c) is positive definite.

    Only indexing and elementwise operators: works on numpy arrays and torch tensors alike
    (every backend and the trainer's pruning use this one rule)."""
    a, b, c = covs[:, 0], covs[:, 1], covs[:, 2]
    return (a > 0) & (c > 0) & (a * c - b * b > 0)


def bounding_radius(covs: np.ndarray) -> np.ndarray:
    """3-sigma bounding radius [N] in pixels, 3*sqrt(lambda_max) of each covariance [N, 3]."""
    a, b, c = covs[:, 0], covs[:, 1], covs[:, 2]
    half_trace = 0.5 * (a + c)
    lam_max = half_trace + np.sqrt(np.maximum(0.25 * (a - c) ** 2 + b * b, 0.0))
    return CUTOFF_SIGMA * np.sqrt(np.maximum(lam_max, 0.0))


def render_work(means: np.ndarray, covs: np.ndarray, width: int, height: int) -> int:
    """The render work of the spec's limits: the number of pixels, summed over the valid
    Gaussians (means [N, 2], covs [N, 3]), whose centres lie in the Gaussian's bounding
    square (``bounding_radius`` r: |i + 0.5 - mx| <= r and |j + 0.5 - my| <= r), in binary64.
    The statement of the rule; the decoder's parse runs ``numba_kernels.render_work_kernel``,
    which gives exactly this count (tested)."""
    total = 0
    block = 1 << 18  # rows at a time: bounded temporaries for any N
    for start in range(0, means.shape[0], block):
        m = np.asarray(means[start:start + block], np.float64)  # [B, 2]
        c = np.asarray(covs[start:start + block], np.float64)  # [B, 3]
        with np.errstate(invalid="ignore", over="ignore"):
            r = bounding_radius(c)  # [B]
            counts = []
            for axis, size in ((0, width), (1, height)):
                lo = np.clip(np.ceil(m[:, axis] - r - PIXEL_CENTER_OFFSET), 0, size)
                hi = np.clip(np.floor(m[:, axis] + r - PIXEL_CENTER_OFFSET), -1, size - 1)
                counts.append(np.maximum(np.nan_to_num(hi - lo + 1, nan=0.0), 0.0))
        area = counts[0] * counts[1]  # [B], each at most width * height
        total += int(area[valid_mask(c)].sum())
    return total


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Convert an unclamped float image [H, W, 3] in [0, 1] nominal range to uint8 [H, W, 3].

    floor(clamp(v, 0, 1) * 255 + 0.5) evaluated exactly: in binary64, which holds the
    product and sum of a binary32 v without rounding; NaN maps to 0.
    """
    v = np.clip(np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0), 0.0, 1.0)
    return np.floor(v * 255.0 + 0.5).astype(np.uint8)
