"""The dequantizer (spec: "Dequantization"); never imports torch.

    value_j = float32(float64(q_j) * float64(scale_j) + float64(offset_j))
              (product and sum each rounded to binary64, no fused multiply-add)
    a = float32(exp(float64(value_a))),  c = float32(exp(float64(value_c)))
    payload coding 3: b = float32(float64(value_b) * sqrt(float64(a) * float64(c)))
    everything else is value_j itself.

The training-time LSQ+ quantizers (``gipp_codec.quant.lsq``) reproduce this bit for bit.
``dequantize_rows`` is the numpy statement of it; ``dequantize`` (the decoder's) computes
the same values in one numba pass straight into the three attribute arrays (a test checks
that the two agree bit for bit).
"""

import numpy as np

from gipp_codec.format.constants import CH_A, CH_B, CH_C, LOG_CHANNELS
from gipp_codec.format.model import QuantizedGaussians
from gipp_codec.jit import njit


def dequantize_linear(q: np.ndarray, scales: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """value_j of integers q [N, K] with float32 scales and offsets [K]: float32 [N, K]
    (any K channels; the log channels' values before exponentiation)."""
    s = np.asarray(scales, dtype=np.float32).astype(np.float64)  # [K]
    o = np.asarray(offsets, dtype=np.float32).astype(np.float64)  # [K]
    value = np.asarray(q).astype(np.float64)  # [N, K]
    value *= s
    value += o
    return value.astype(np.float32)


def correlation_to_b(rho: np.ndarray, a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Payload coding 3's b from the float32 values rho, a, c [N]: float32(binary64(rho) *
    sqrt(binary64(a) * binary64(c))), each operation rounded once (numpy's sqrt is correctly
    rounded)."""
    root = np.sqrt(np.asarray(a, np.float32).astype(np.float64) * np.asarray(c, np.float32).astype(np.float64))
    return (np.asarray(rho, np.float32).astype(np.float64) * root).astype(np.float32)


def dequantize_rows(q: np.ndarray, scales: np.ndarray, offsets: np.ndarray, correlation: bool = False) -> np.ndarray:
    """Integers q [N, 8] -> float32 attribute rows [N, 8] (x, y, a, b, c, red, green, blue);
    with ``correlation`` (payload coding 3) channel b's value is rho and b = rho sqrt(a c)."""
    out = dequantize_linear(q, scales, offsets)  # [N, 8]
    for j in LOG_CHANNELS:
        out[:, j] = np.exp(out[:, j].astype(np.float64))
    if correlation:
        out[:, CH_B] = correlation_to_b(out[:, CH_B], out[:, CH_A], out[:, CH_C])
    return out


@njit(cache=True, nogil=True, boundscheck=False)
def _dequantize_kernel(q, s, o, means, covs, colors, logs):
    """q [N, 8] (any integer type) -> means [N, 2], b into covs[:, 1], colors [N, 3]
    (float32), and the log-variances of a and c into logs [2, N] (float64 of their float32
    values; the caller exponentiates them). s, o [8]: the float32 scales and offsets
    widened to float64. No fastmath: the product and the sum are each rounded to binary64,
    as the spec says."""
    for i in range(q.shape[0]):
        for j in range(8):
            v = np.float32(np.float64(q[i, j]) * s[j] + o[j])
            if j < 2:
                means[i, j] = v
            elif j == CH_A:
                logs[0, i] = v
            elif j == CH_C:
                logs[1, i] = v
            elif j < 5:
                covs[i, 1] = v
            else:
                colors[i, j - 5] = v


def dequantize(g: QuantizedGaussians) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QuantizedGaussians -> (means [N, 2], covs [N, 3], colors [N, 3]) float32, C-contiguous."""
    n = g.q.shape[0]
    means = np.empty((n, 2), np.float32)
    covs = np.empty((n, 3), np.float32)
    colors = np.empty((n, 3), np.float32)
    logs = np.empty((2, n), np.float64)
    s = np.asarray(g.scales, dtype=np.float32).astype(np.float64)  # [8]
    o = np.asarray(g.offsets, dtype=np.float32).astype(np.float64)  # [8]
    _dequantize_kernel(g.q, s, o, means, covs, colors, logs)
    np.exp(logs, out=logs)  # numpy's exp, as dequantize_rows
    covs[:, 0] = logs[0]
    covs[:, 2] = logs[1]
    if g.correlation:  # payload coding 3: covs[:, 1] holds rho's value
        covs[:, 1] = correlation_to_b(covs[:, 1], covs[:, 0], covs[:, 2])
    return means, covs, colors
