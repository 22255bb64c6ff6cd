"""Synthetic Gaussian sets for tests, conformance vectors and coder development (numpy only).

They mimic fitted GaussianImage++ sets loosely: most positions cluster along random
edges (small, elongated Gaussians), the rest are spread out (larger, rounder ones);
colours are correlated across channels and peaked near 0. Quantization is min/max
LSQ-style with the same dequantization as the decoder.
"""

import numpy as np

from gipp_codec.format.constants import CH_B, LOG_CHANNELS
from gipp_codec.format.model import BitDepths, FloatGaussians, QuantizedGaussians


def synthetic_float(n: int, width: int, height: int, seed: int = 0, color_scale: float = 0.35) -> FloatGaussians:
    """N float Gaussians on a width x height canvas."""
    rng = np.random.default_rng(seed)
    n_edge = int(0.65 * n)
    n_edges = max(1, n // 150)
    p0 = rng.random((n_edges, 2)) * [width, height]
    ang = rng.random(n_edges) * np.pi
    length = (0.2 + 0.6 * rng.random(n_edges)) * max(width, height)
    which = rng.integers(0, n_edges, n_edge)
    t = rng.random(n_edge) - 0.5
    dirs = np.stack([np.cos(ang), np.sin(ang)], 1)
    edge_pos = p0[which] + dirs[which] * (t * length[which])[:, None] + rng.normal(0, 1.0, (n_edge, 2))
    free_pos = rng.random((n - n_edge, 2)) * [width, height]
    means = np.concatenate([edge_pos, free_pos]).clip([0, 0], [width - 1e-3, height - 1e-3])
    # size: small along edges, larger elsewhere; anisotropic along the edge direction
    area = max(1.0, width * height / max(n, 1))
    log_s = np.concatenate([rng.normal(np.log(area) * 0.35, 0.5, n_edge), rng.normal(np.log(area) * 0.5 + 0.5, 0.6, n - n_edge)])
    log_aspect = np.concatenate([np.abs(rng.normal(1.2, 0.5, n_edge)), np.abs(rng.normal(0.0, 0.5, n - n_edge))])
    theta = np.concatenate([ang[which] + rng.normal(0, 0.2, n_edge), rng.random(n - n_edge) * np.pi])
    l1, l2 = np.exp(log_s + log_aspect), np.exp(log_s - log_aspect)
    cs, sn = np.cos(theta), np.sin(theta)
    a = l1 * cs * cs + l2 * sn * sn
    b = (l1 - l2) * cs * sn
    c = l1 * sn * sn + l2 * cs * cs
    luma = rng.laplace(0.0, color_scale, n)
    colors = luma[:, None] + rng.laplace(0.0, color_scale * 0.25, (n, 3))
    perm = rng.permutation(n)
    return FloatGaussians(width, height, means[perm], np.stack([a, b, c], 1)[perm], colors[perm])


def quantize_minmax(g: FloatGaussians, bits: BitDepths = BitDepths()) -> QuantizedGaussians:
    """Uniform min/max quantization (log domain for a and c) with the decoder's dequantization."""
    rows = g.rows().astype(np.float64)  # [N, 8]
    rows[:, list(LOG_CHANNELS)] = np.log(np.maximum(rows[:, list(LOG_CHANNELS)], 1e-12))
    depth = np.array(bits.per_channel())
    lo = rows.min(axis=0) if len(rows) else np.zeros(8)
    hi = rows.max(axis=0) if len(rows) else np.ones(8)
    scales = np.maximum((hi - lo) / ((1 << depth) - 1), 1e-6).astype(np.float32)
    offsets = lo.astype(np.float32)
    q = np.rint((rows - offsets.astype(np.float64)) / scales.astype(np.float64))
    q = np.clip(q, 0, (1 << depth) - 1).astype(np.uint16)
    return QuantizedGaussians(g.width, g.height, bits, q, scales, offsets)


def synthetic_quantized(n: int, width: int, height: int, bits: BitDepths = BitDepths(), seed: int = 0) -> QuantizedGaussians:
    """``synthetic_float``'s n Gaussians quantized at ``bits`` with min/max ranges."""
    return quantize_minmax(synthetic_float(n, width, height, seed), bits)


def synthetic_correlation(n: int, width: int, height: int, bits: BitDepths = BitDepths(), seed: int = 0,
                          reach: float = 0.95) -> QuantizedGaussians:
    """``synthetic_float``'s n Gaussians quantized for payload coding 3 (format 1.4): as
    ``quantize_minmax``, except that channel b holds the correlation rho = b / sqrt(a c) on a
    uniform grid over [-reach, reach] (reach <= 1)."""
    f = synthetic_float(n, width, height, seed)
    g = quantize_minmax(f, bits)
    covs = f.covs.astype(np.float64)  # [N, 3]
    rho = covs[:, 1] / np.sqrt(covs[:, 0] * covs[:, 2])  # [N]
    qmax = (1 << bits.covariance) - 1
    scales, offsets, q = np.array(g.scales, copy=True), np.array(g.offsets, copy=True), np.array(g.q, copy=True)
    scales[CH_B] = np.float32(2.0 * reach / qmax)
    offsets[CH_B] = np.float32(-reach)
    q[:, CH_B] = np.clip(np.rint((rho - float(offsets[CH_B])) / float(scales[CH_B])), 0, qmax).astype(np.uint16)
    return QuantizedGaussians(width, height, bits, q, scales, offsets, correlation=True)
