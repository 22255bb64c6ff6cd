"""numba kernel of growth's matched error map (``densify.matched_error``) on the CPU.

The map is the residual blurred with a separable Gaussian of a few taps, squared and summed
over the channels. torch's CPU convolutions, built for many channels and large kernels
rather than three channels and five to nine taps, take 30-42 ms for it on a Kodak-sized
image with the one intra-op thread the fit leaves torch (``fit.threads``); this kernel, two
loops over the rows on all of numba's threads, 3-9 ms (``tools/matched_error_speed.py``,
BENCHMARKS.md §8). Each value is summed in binary64 over the taps in tap order and stored
as float32, so the map does not depend on the number of threads. Training code only.
"""

import numpy as np

from gipp_codec.jit import njit, prange

_OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")


@njit(parallel=True, **_OPTS)
def matched_error_map(residual, taps, out):
    """out [H, W] float32 = sum over the channels of the square of residual [H, W, C] float32
    correlated with taps [2r + 1] float64 along each row, then along each column (a separable
    blur, zero outside the image)."""
    height, width, channels = residual.shape
    radius = (taps.shape[0] - 1) // 2
    rows = np.empty((channels, height, width), np.float32)  # the horizontal pass, planar
    for y in prange(height):
        for c in range(channels):
            for x in range(width):
                k0 = max(0, radius - x)
                k1 = min(2 * radius, radius + width - 1 - x)
                acc = 0.0
                for k in range(k0, k1 + 1):
                    acc += taps[k] * np.float64(residual[y, x + k - radius, c])
                rows[c, y, x] = np.float32(acc)
    for y in prange(height):
        k0 = max(0, radius - y)
        k1 = min(2 * radius, radius + height - 1 - y)
        line = np.zeros(width, np.float64)
        for c in range(channels):
            col = np.zeros(width, np.float64)
            for k in range(k0, k1 + 1):
                src = rows[c, y + k - radius]
                t = taps[k]
                for x in range(width):
                    col[x] += t * np.float64(src[x])
            for x in range(width):
                v = np.float64(np.float32(col[x]))
                line[x] += v * v
        for x in range(width):
            out[y, x] = np.float32(line[x])
