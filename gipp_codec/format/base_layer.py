"""The base layer (spec: "BASE chunk", format 1.3): a coarse image added under the Gaussians.

A file may carry a grid of gh x gw RGB samples, one per F x F block of the image (F = 2^f,
gw = ceil(width / F), gh = ceil(height / F)), each of ``bits`` bits. The decoder upsamples
it bilinearly to the image's size and adds it to the Gaussians' render before clamping: the
Gaussians then code only what the smooth base misses. Decoder-safe (numpy only).

Samples are coded channel by channel in raster order, each as its residual from the MED
(LOCO-I) prediction of its left, upper and upper-left neighbours, zigzag-folded and
Rice-coded with the parameter k the payload gives.
"""

from dataclasses import dataclass

import numpy as np

from gipp_codec.entropy import token_kernels
from gipp_codec.entropy.bitio import BitReader, BitWriter
from gipp_codec.errors import ChunkError, LimitError, PayloadError

MIN_FACTOR_LOG2 = 3  # F = 8
MAX_FACTOR_LOG2 = 10  # F = 1024
MAX_SAMPLE_BITS = 8
MAX_RICE_K = 7
PREFIX_SIZE = 3  # factor_log2, sample_bits, rice_k (u8 each)
UPSAMPLE_BAND_ROWS = 64  # rows ``upsample`` computes at a time
MAX_BASE_CELLS = 1 << 16  # gh * gw (spec §8): bounds a decoder's work and memory for the grid


@dataclass
class BaseLayer:
    """A base grid: ``samples`` uint8 [gh, gw, 3] of ``bits`` bits, one per 2^``factor_log2`` block."""

    factor_log2: int
    bits: int
    samples: np.ndarray  # [gh, gw, 3] integers in 0..2^bits - 1

    @property
    def factor(self) -> int:
        """F, the side of a block in pixels."""
        return 1 << self.factor_log2

    def values(self) -> np.ndarray:
        """The samples as binary64 values s / (2^bits - 1): [gh, gw, 3]."""
        return self.samples.astype(np.float64) / float((1 << self.bits) - 1)


def grid_shape(width: int, height: int, factor_log2: int) -> tuple[int, int]:
    """(gh, gw) = (ceil(height / F), ceil(width / F)) for F = 2^factor_log2."""
    f = 1 << factor_log2
    return -(-int(height) // f), -(-int(width) // f)


def base_from_image(image: np.ndarray, factor_log2: int, bits: int) -> BaseLayer:
    """The encoder's base: each block's mean colour of image uint8 [H, W, 3] (blocks cut by
    the image's edge average the pixels they hold), rounded to ``bits`` bits."""
    h, w = image.shape[:2]
    gh, gw = grid_shape(w, h, factor_log2)
    f = 1 << factor_log2
    padded = np.zeros((gh * f, gw * f, 3), np.float64)
    padded[:h, :w] = image
    counts = np.zeros((gh * f, gw * f), np.float64)
    counts[:h, :w] = 1.0
    sums = padded.reshape(gh, f, gw, f, 3).sum(axis=(1, 3))  # [gh, gw, 3]
    n = counts.reshape(gh, f, gw, f).sum(axis=(1, 3))[..., None]  # [gh, gw, 1]
    levels = (1 << bits) - 1
    samples = np.clip(np.rint(sums / n / 255.0 * levels), 0, levels).astype(np.uint8)
    return BaseLayer(int(factor_log2), int(bits), samples)


def axis_weights(size: int, grid: int, factor: float, start: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index0, index1, fraction) [size] of each pixel p = start, start + 1, ... along one
    axis: u = (p + 0.5) / F - 0.5, index0 = floor(u) and fraction = u - index0, clamped to
    the first and last sample (all exact in binary64 when F is a power of two and ``start``
    an integer, as at the file's size; a decode at another size passes the block side in
    its pixels, F times the scale in binary32, ``render.rescale.block_sides``)."""
    u = (np.arange(size, dtype=np.float64) + start + 0.5) / factor - 0.5
    i0 = np.floor(u)
    frac = u - i0
    low, high = i0 < 0, i0 >= grid - 1
    i0 = np.clip(i0, 0, grid - 1).astype(np.int64)
    frac[low | high] = 0.0
    i1 = np.minimum(i0 + 1, grid - 1)
    return i0, i1, frac


def grid_rows(base: BaseLayer, width: int, factor: float | None = None, x0: float = 0.0) -> np.ndarray:
    """The first, horizontal pass of the upsampling (spec "BASE chunk"): each grid row at every
    column, float32((1 - t) v0 + t v1) in binary64: planar float32 [3, gh, W]. ``factor``: the
    block side in output columns, for a decode at another size (default F); ``x0``: the
    column of the plane the first output column is (a window's left edge)."""
    from gipp_codec.render.numba_kernels import base_rows_kernel

    v = base.values()  # [gh, gw, 3]
    j0, j1, t = axis_weights(width, v.shape[1], base.factor if factor is None else factor, x0)
    out = np.empty((3, v.shape[0], t.shape[0]), np.float32)  # [3, gh, W]
    base_rows_kernel(np.ascontiguousarray(v), np.ascontiguousarray(j0, np.int64), np.ascontiguousarray(j1, np.int64),
                     np.ascontiguousarray(t, np.float64), out)
    return out


def upsample(base: BaseLayer, width: int, height: int, factors: tuple[float, float] | None = None,
             origin: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The base at every pixel: float32 [H, W, 3]. The horizontal pass (``grid_rows``), then
    vertically float32((1 - s) h0 + s h1) in binary64, as the decoder's kernel adds it.
    ``factors``: the block side in output (columns, rows), for a decode at another size;
    ``origin``: the (column, row) of the plane that the output's first pixel is (a window's)."""
    fx, fy = (base.factor, base.factor) if factors is None else factors
    rows = grid_rows(base, width, fx, origin[0]).astype(np.float64)  # [3, gh, W]
    i0, i1, s = axis_weights(height, rows.shape[1], fy, origin[1])
    out = np.empty((height, width, 3), np.float32)
    for r in range(0, height, UPSAMPLE_BAND_ROWS):  # in bands: binary64 temporaries of one band only
        band = slice(r, min(r + UPSAMPLE_BAND_ROWS, height))
        t = s[band][None, :, None]
        out[band] = ((1.0 - t) * rows[:, i0[band]] + t * rows[:, i1[band]]).astype(np.float32).transpose(1, 2, 0)
    return out


def _residuals(samples: np.ndarray, bits: int) -> np.ndarray:
    """Zigzag-folded residuals u [3 * gh * gw] of samples [gh, gw, 3] in coding order, from the
    decoder's own MED prediction (``token_kernels.med_prediction``)."""
    half = 1 << (bits - 1)
    out = []
    for ch in range(3):
        s = np.ascontiguousarray(samples[:, :, ch], dtype=np.int64)  # [gh, gw]
        for i in range(s.shape[0]):
            for j in range(s.shape[1]):
                e = int(s[i, j]) - int(token_kernels.med_prediction(s, i, j, half))
                out.append(2 * e - 1 if e > 0 else -2 * e)
    return np.asarray(out, np.int64)


def _rice_bits(u: np.ndarray, k: int) -> int:
    return int(((u >> k) + 1 + k).sum())


def encode_base_payload(base: BaseLayer) -> bytes:
    """The BASE chunk's payload: f, bits, k (u8 each), then the Rice-coded residuals, with
    the k that makes them shortest."""
    u = _residuals(base.samples, base.bits)
    k = min(range(MAX_RICE_K + 1), key=lambda kk: _rice_bits(u, kk))
    w = BitWriter()
    for value in u.tolist():
        q = value >> k
        w.u(1, q + 1)  # q zero bits, then a one bit
        w.u(value & ((1 << k) - 1), k)
    return bytes((base.factor_log2, base.bits, k)) + w.getvalue()


def decode_base_payload(payload: bytes, width: int, height: int, offset: int = 0) -> BaseLayer:
    """Parse and validate a BASE payload for a width x height image (``offset``: the payload's
    position in the file, for messages); raise a FormatError subclass on any problem."""
    if len(payload) < PREFIX_SIZE:
        raise ChunkError(f"BASE payload at byte {offset} has {len(payload)} bytes, expected at least {PREFIX_SIZE}")
    f, bits, k = payload[0], payload[1], payload[2]
    if not MIN_FACTOR_LOG2 <= f <= MAX_FACTOR_LOG2:
        raise ChunkError(f"BASE factor_log2 {f} (byte {offset}) is not in {MIN_FACTOR_LOG2}..{MAX_FACTOR_LOG2}")
    if not 1 <= bits <= MAX_SAMPLE_BITS:
        raise ChunkError(f"BASE sample_bits {bits} (byte {offset + 1}) is not in 1..{MAX_SAMPLE_BITS}")
    if k > MAX_RICE_K:
        raise ChunkError(f"BASE rice_k {k} (byte {offset + 2}) is not in 0..{MAX_RICE_K}")
    gh, gw = grid_shape(width, height, f)
    if gh * gw > MAX_BASE_CELLS:
        raise LimitError(f"BASE grid of {gw}x{gh} blocks (F = {1 << f}) exceeds MAX_BASE_CELLS {MAX_BASE_CELLS}")
    count = 3 * gh * gw
    if count > 8 * (len(payload) - PREFIX_SIZE):  # every sample takes at least one bit
        raise LimitError(f"BASE payload at byte {offset}: {count} samples cannot fit in {len(payload) - PREFIX_SIZE} bytes")
    r = BitReader(payload[PREFIX_SIZE:], "BASE", offset + PREFIX_SIZE)
    levels = (1 << bits) - 1
    planes = np.zeros((3, gh, gw), np.int64)  # [3, gh, gw]
    info = np.zeros(2, np.int64)
    pos = token_kernels.base_samples(r.array, r.nbits, 0, k, (2 * levels) >> k, levels, planes, info)
    if pos == token_kernels.OVERRUN:
        raise PayloadError(f"BASE stream overrun at byte {r.base_offset + int(info[0]) // 8}: "
                           f"need {int(info[1])} more bits, {r.nbits - int(info[0])} left")
    if pos == token_kernels.TOO_LONG:
        raise PayloadError(f"BASE stream: a Rice prefix longer than {(2 * levels) >> k} at byte "
                           f"{r.base_offset + int(info[0]) // 8}")
    if pos == token_kernels.OUT_OF_RANGE:
        ch, rest = divmod(int(info[0]), gh * gw)
        raise PayloadError(f"BASE sample ({rest // gw}, {rest % gw}, {ch}) decodes to {int(info[1])}, "
                           f"outside 0..{levels}")
    r.pos = int(pos)
    r.finish()
    return BaseLayer(int(f), int(bits), np.ascontiguousarray(planes.astype(np.uint8).transpose(1, 2, 0)))
