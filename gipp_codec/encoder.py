"""Encoding: image -> fit -> quantization-aware training -> .gimg bytes.

    encode(image_uint8 [H, W, 3], gaussians=N | bpp=B, ...) -> bytes
    encode_with_report(...) -> (bytes, EncodeReport)
    encode_float(image, gaussians=N, ...) -> (bytes, FitResult)   # lossless float32 mode

The report's bpp, PSNR and MS-SSIM are measured on the written bytes: the file is
decoded with the standalone decoder and compared with the input, so what the encoder
says is what a user gets. Rate control (``bpp=``) predicts N from a bits-per-Gaussian
estimate, encodes, and, when the rate misses the target by more than
``BPP_TOLERANCE``, re-encodes once with N corrected by the measured bits per Gaussian
and fixed overhead (container and model side information), keeping the closer result.
"""

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from gipp_codec.errors import ConfigError
from gipp_codec.format.container import write_gimg
from gipp_codec.format.model import BitDepths, FloatGaussians, QuantizedGaussians
from gipp_codec.imageio import ImageMetadata
from gipp_codec.metrics import ms_ssim, psnr

# First rate-control guess at 12/10/6: bits per Gaussian = the Morton-gap position code,
# about log2(4**12 / N) + POSITION_EXCESS_BITS, plus ATTRIBUTE_BITS for covariance and colour
# (measured on Kodak encodes, BENCHMARKS.md §5); the correction pass uses the measured
# value of the first encode.
POSITION_EXCESS_BITS = 1.2
ATTRIBUTE_BITS = 36.3
BPP_TOLERANCE = 0.04  # relative; the CLI promises +-5 %
MAX_BPP = 64.0


@dataclass
class EncodeReport:
    """What an encode produced, measured on the written file."""

    bytes: int
    bpp: float
    psnr: float  # dB, decoded file vs input
    ms_ssim: float | None
    gaussians: int
    seconds: float
    width: int
    height: int
    bits: tuple
    bits_per_gaussian: float
    attribute_bits: dict = field(default_factory=dict)
    psnr_encoder: float = float("nan")  # the trainer's own figure for the quantized state
    iterations: int = 0
    passes: int = 1
    device: str = "cpu"
    target_bpp: float | None = None

    def summary(self) -> dict:
        """JSON-friendly dict of the report."""
        d = asdict(self)
        d["bits"] = list(self.bits)
        return d


def _check_image(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ConfigError(f"expected a uint8 image of shape [H, W, 3], got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


def _encode_once(arr, gaussians, iterations, bits: BitDepths, seed, device, config, metadata, progress):
    """One fit + QAT + serialisation at a fixed N; returns (bytes, QuantReport)."""
    from gipp_codec.fit.api import fit_and_quantize

    q, scales, offsets, qreport = fit_and_quantize(
        arr, gaussians, iterations=iterations, bits=(bits.position, bits.covariance, bits.color),
        seed=seed, device=device, config=config, progress=progress,
    )
    h, w = arr.shape[:2]
    qg = QuantizedGaussians(width=w, height=h, bits=bits, q=q, scales=scales, offsets=offsets)
    return write_gimg(qg, metadata), qreport


def _measure(data: bytes, arr: np.ndarray) -> tuple[float, float | None, dict]:
    """Decode ``data`` with the standalone decoder; PSNR, MS-SSIM and the file's bit accounting."""
    from gipp_codec.decoder import decode, read_info

    decoded = decode(data)
    return psnr(decoded, arr), ms_ssim(decoded, arr), read_info(data)


def predict_gaussians(budget_bits: float, bits: BitDepths) -> int:
    """N whose file should take about ``budget_bits`` at bit depths ``bits`` (first rate guess).

    Solves N * (log2(4**p / N) + POSITION_EXCESS_BITS + ATTRIBUTE_BITS * s) = budget by
    fixed-point iteration, with p the position depth and s the covariance and colour
    depths relative to 10/6.
    """
    grid_bits = 2.0 * bits.position
    per_attr = ATTRIBUTE_BITS * (3 * bits.covariance + 3 * bits.color) / 48.0
    n = max(1.0, budget_bits / (grid_bits + per_attr))
    for _ in range(20):
        per = max(1.0, grid_bits - np.log2(n) + POSITION_EXCESS_BITS) + per_attr
        n = max(1.0, budget_bits / per)
    return max(1, int(round(n)))


def encode_with_report(
    image: np.ndarray,
    gaussians: int | None = None,
    bpp: float | None = None,
    iterations: int | None = None,
    seed: int = 0,
    device: str = "auto",
    bits: BitDepths | tuple = BitDepths(),
    config=None,
    metadata: ImageMetadata | None = None,
    progress: Callable | None = None,
) -> tuple[bytes, EncodeReport]:
    """Encode an 8-bit RGB image [H, W, 3] at N Gaussians or a target bpp; return bytes and a report."""
    arr = _check_image(image)
    h, w = arr.shape[:2]
    if not isinstance(bits, BitDepths):
        bits = BitDepths(*bits)
    bits.check(ConfigError)
    if (gaussians is None) == (bpp is None):
        raise ConfigError("give exactly one of gaussians= or bpp=")
    t0 = time.perf_counter()
    passes = 1
    if gaussians is not None:
        data, qreport = _encode_once(arr, gaussians, iterations, bits, seed, device, config, metadata, progress)
    else:
        if not (isinstance(bpp, (int, float)) and np.isfinite(bpp) and 0 < bpp <= MAX_BPP):
            raise ConfigError(f"bpp must be a number in (0, {MAX_BPP}], got {bpp!r}")
        budget = bpp * h * w
        n = predict_gaussians(budget, bits)
        data, qreport = _encode_once(arr, n, iterations, bits, seed, device, config, metadata, progress)
        achieved = len(data) * 8 / (h * w)
        if abs(achieved / bpp - 1.0) > BPP_TOLERANCE and qreport.gaussians > 0:
            from gipp_codec.decoder import read_info

            accounting = read_info(data)["bits"]
            fixed = accounting["container"] + accounting["coding_overhead"] + accounting["metadata"]
            per_gaussian = max(1.0, (8 * len(data) - fixed) / qreport.gaussians)  # measured
            survival = qreport.gaussians / n  # fraction of requested Gaussians kept by pruning
            n2 = max(1, int(round(max(budget - fixed, per_gaussian) / per_gaussian / survival)))
            data2, qreport2 = _encode_once(arr, n2, iterations, bits, seed, device, config, metadata, progress)
            passes = 2
            if abs(len(data2) * 8 / (h * w) / bpp - 1.0) <= abs(achieved / bpp - 1.0):
                data, qreport = data2, qreport2
    seconds = time.perf_counter() - t0
    p, m, info = _measure(data, arr)
    n_final = int(info.get("gaussian_count", qreport.gaussians))
    report = EncodeReport(
        bytes=len(data), bpp=len(data) * 8 / (h * w), psnr=p, ms_ssim=m, gaussians=n_final,
        seconds=seconds, width=w, height=h, bits=(bits.position, bits.covariance, bits.color),
        bits_per_gaussian=len(data) * 8 / max(1, n_final),
        attribute_bits=info.get("bits", {}), psnr_encoder=qreport.psnr, iterations=qreport.iterations,
        passes=passes, device=qreport.device, target_bpp=bpp,
    )
    return data, report


def encode(image: np.ndarray, gaussians: int | None = None, bpp: float | None = None, **kwargs) -> bytes:
    """Encode an 8-bit RGB image [H, W, 3] to .gimg bytes (see ``encode_with_report`` for options)."""
    data, _ = encode_with_report(image, gaussians=gaussians, bpp=bpp, **kwargs)
    return data


def encode_float(image: np.ndarray, gaussians: int, iterations: int | None = None, seed: int = 0,
                 device: str = "auto", config=None, metadata: ImageMetadata | None = None,
                 progress: Callable | None = None):
    """Fit without quantization and store float32 attributes losslessly; returns (bytes, FitResult)."""
    from gipp_codec.fit.api import fit_image

    arr = _check_image(image)
    result = fit_image(arr, gaussians, iterations=iterations, seed=seed, device=device, config=config,
                       progress=progress)
    h, w = arr.shape[:2]
    fg = FloatGaussians(width=w, height=h, means=result.means, covs=result.covs, colors=result.colors)
    return write_gimg(fg, metadata), result
