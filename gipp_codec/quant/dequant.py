"""The pure-numpy dequantizer (spec: "Dequantization"); never imports torch.

    value_j = float32(float64(q_j) * float64(scale_j) + float64(offset_j))
              (product and sum each rounded to binary64, no fused multiply-add)
    a = float32(exp(float64(value_a))),  c = float32(exp(float64(value_c)))
    everything else is value_j itself.

The training-time LSQ+ quantizers (``gipp_codec.quant.lsq``) reproduce this bit for bit.
"""

import numpy as np

from gipp_codec.format.constants import LOG_CHANNELS
from gipp_codec.format.model import QuantizedGaussians


def dequantize_rows(q: np.ndarray, scales: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Integers q [N, 8] -> float32 attribute rows [N, 8] (x, y, a, b, c, red, green, blue)."""
    s = np.asarray(scales, dtype=np.float32).astype(np.float64)  # [8]
    o = np.asarray(offsets, dtype=np.float32).astype(np.float64)  # [8]
    value = np.asarray(q).astype(np.float64)  # [N, 8]
    value *= s
    value += o
    out = value.astype(np.float32)  # [N, 8]
    for j in LOG_CHANNELS:
        out[:, j] = np.exp(out[:, j].astype(np.float64))
    return out


def dequantize(g: QuantizedGaussians) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QuantizedGaussians -> (means [N, 2], covs [N, 3], colors [N, 3]) float32, C-contiguous."""
    rows = dequantize_rows(g.q, g.scales, g.offsets)
    return (
        np.ascontiguousarray(rows[:, 0:2]),
        np.ascontiguousarray(rows[:, 2:5]),
        np.ascontiguousarray(rows[:, 5:8]),
    )
