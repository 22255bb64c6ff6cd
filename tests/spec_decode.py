"""The PSNR of a file as the spec's own reference decoder (``conformance/reference_decoder.py``,
written from the spec alone, in binary64) decodes it: a figure independent of
``gipp_codec.decoder``, which the encoder's reported PSNR is measured with."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
import reference_decoder  # noqa: E402


def reference_decode(data: bytes) -> np.ndarray:
    """uint8 [H, W, 3] of .gimg bytes by the reference decoder."""
    return reference_decoder.decode(reference_decoder.parse(data))


def reference_psnr(data: bytes, image: np.ndarray) -> float:
    """PSNR (dB) of the reference decoder's image of ``data`` against uint8 ``image`` [H, W, 3]."""
    err = np.mean((reference_decode(data).astype(np.float64) - np.asarray(image, np.float64)) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(255.0 ** 2 / err))
