"""Attribute mode 2 (format 1.5): the quantization grid in half the bytes.

A quantized header normally stores each channel's grid as a binary32 ``scale`` and
``offset`` (64 bytes for the eight channels). Attribute mode 2 stores the same grid as a
binary16 scale ``s16`` and a binary16 offset counted in steps, ``t16``, so that

    scale  = binary32(s16)            (exact)
    offset = binary32(t16 * s16)      (exact: two 11-bit significands give at most 22 bits)

and every later step of decoding is mode 0's. A grid has this form when both values come
back exactly; the writer then uses mode 2 on its own (``compact_form``), and the encoder
keeps QAT's grid on such values (``quant.lsq.LSQPlus``'s compact grid) so that its files
do. Numpy only: the decoder imports this.
"""

import numpy as np

from gipp_codec.format.constants import NUM_CHANNELS


def expand(scales16: np.ndarray, steps16: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """binary16 scales [8] and offsets in steps [8] -> the float32 scales [8] and offsets [8]
    they stand for (exact; spec §3, attribute mode 2)."""
    s = np.asarray(scales16, dtype=np.float16).astype(np.float64)  # [8]
    t = np.asarray(steps16, dtype=np.float16).astype(np.float64)  # [8]
    return s.astype(np.float32), (t * s).astype(np.float32)


def compact_form(scales: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(scales16 [8], steps16 [8]) as float16 arrays that ``expand`` to exactly these float32
    scales [8] and offsets [8], or None when some channel has no such form."""
    s32 = np.asarray(scales, dtype=np.float32).reshape(-1)
    o32 = np.asarray(offsets, dtype=np.float32).reshape(-1)
    if s32.shape != (NUM_CHANNELS,) or o32.shape != (NUM_CHANNELS,):
        return None
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        s16 = s32.astype(np.float16)  # [8] round to nearest even
        t16 = (o32.astype(np.float64) / s16.astype(np.float64)).astype(np.float16)  # [8]
    if not (np.all(np.isfinite(s16)) and np.all(s16 > 0) and np.all(np.isfinite(t16))):
        return None
    s_back, o_back = expand(s16, t16)
    if np.array_equal(s_back, s32) and np.array_equal(o_back, o32):
        return s16, t16
    return None


def round_to_compact(scales: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest compact grid to float32 scales [8] and offsets [8], channel by channel:
    (scales [8], offsets [8]) float32, where a channel that has no binary16 form (a scale
    below binary16's range, an offset beyond 65504 steps) keeps its own values. The offset's
    step count is rounded from offset / scale, so a grid that holds 0 at step k (b's grid in
    QAT) keeps it while k is a binary16 integer (|k| <= 2048)."""
    s32 = np.asarray(scales, dtype=np.float32).reshape(-1)
    o32 = np.asarray(offsets, dtype=np.float32).reshape(-1)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        s16 = s32.astype(np.float16)  # [8]
        t16 = (o32.astype(np.float64) / s32.astype(np.float64)).astype(np.float16)  # [8]
    ok = np.isfinite(s16) & (s16 > 0) & np.isfinite(t16)  # [8]
    s_new, o_new = expand(np.where(ok, s16, 1.0), np.where(ok, t16, 0.0))
    return np.where(ok, s_new, s32).astype(np.float32), np.where(ok, o_new, o32).astype(np.float32)
