"""Token histograms and the categorical models built from them (spec: "Histograms").

A histogram is transmitted as one *level* e in 0..MAX_LEVEL per token; the model's
integer count of the token is COUNT(e) (0 for e = 0). Both sides build the constriction
model from those integer counts, so they are bit-identical. The fixed-point model is
constriction's ``Categorical(perfect=False)`` at PRECISION = 24 bits:

    n = number of tokens, T = sum of counts (binary64), scale = (2**24 - n) / T (binary64)
    left[i] = trunc(C_i * scale) + i   with C_i = sum of counts before token i
    freq[i] = left[i + 1] - left[i],   left[n] = 2**24
"""

import math

import constriction
import numpy as np

from gipp_codec.errors import PayloadError

PRECISION = 24
MAX_LEVEL = 47


def level_count(e: np.ndarray) -> np.ndarray:
    """COUNT(e): 0 for e = 0, else (2 + (h & 1)) << (h >> 1) with h = e - 1 (int64)."""
    e = np.asarray(e, dtype=np.int64)
    h = np.maximum(e - 1, 0)
    return np.where(e == 0, 0, (2 + (h & 1)) << (h >> 1))


LOG_COUNTS = np.log(level_count(np.arange(1, MAX_LEVEL + 1)).astype(np.float64))


def choose_levels(hist: np.ndarray) -> np.ndarray:
    """Encoder side: the level whose COUNT is nearest (in log) to 2*hist; 0 for hist = 0."""
    hist = np.asarray(hist, dtype=np.float64)
    out = np.zeros(hist.shape, dtype=np.int64)
    nz = hist > 0
    if nz.any():
        target = np.log(2.0 * hist[nz])
        out[nz] = 1 + np.argmin(np.abs(target[:, None] - LOG_COUNTS[None, :]), axis=1)
    return out


def fixed_point_freqs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left [n], freq [n]) int64 of the 24-bit model of integer counts [n] (n >= 2, sum > 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.size
    total = math.fsum(counts)  # exact: integer counts below 2**53
    scale = float((1 << PRECISION) - n) / total
    cum = np.concatenate([[0.0], np.cumsum(counts)[:-1]])  # exact prefix sums
    left = np.trunc(cum * scale).astype(np.int64) + np.arange(n, dtype=np.int64)
    freq = np.diff(np.append(left, 1 << PRECISION))
    return left, freq


def model_cost_bits(counts: np.ndarray, tokens: np.ndarray) -> float:
    """Information content (bits) of ``tokens`` under the fixed-point model of ``counts``."""
    if counts.size < 2 or tokens.size == 0:
        return 0.0
    _, freq = fixed_point_freqs(counts)
    hist = np.bincount(tokens, minlength=counts.size)
    used = hist > 0
    return float(np.sum(hist[used] * (PRECISION - np.log2(freq[used].astype(np.float64)))))


def categorical(counts: np.ndarray, validated: bool = False):
    """The constriction model of integer counts [n] (n >= 2, at least one count > 0).
    ``validated=True`` skips the checks (the decoder's histogram reader has made them)."""
    counts = np.asarray(counts, dtype=np.float64)
    if validated:
        return constriction.stream.model.Categorical(counts, perfect=False)
    if counts.size < 2 or not np.all(np.isfinite(counts)) or counts.min() < 0 or counts.sum() <= 0:
        raise PayloadError(f"invalid histogram: {counts.size} tokens, all counts zero or negative")
    return constriction.stream.model.Categorical(counts, perfect=False)
