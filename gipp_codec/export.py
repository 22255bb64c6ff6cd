"""A file's Gaussians as arrays, for analysis and figures (``read_gaussians``, ``gimg export``).

The image a file decodes to is, at every pixel centre p = (i + 0.5, j + 0.5) (spec §7):

    clamp(Base(p) + sum_k w_k(p) colors[k], 0, 1),
    w_k(p) = exp(-0.5 m2) - T where m2 = d^T covs[k]^-1 d <= 9, d = p - means[k], else 0,

with T = exp(-4.5) in render convention 2 (what gimg writes; 0 in convention 1, files of
format 1.0 and 1.1), Base the bilinear upsampling of the base
layer's block colours (0 without one). So ``colors`` are what each Gaussian adds over the
base, not absolute colours, and may be negative. Decoder-safe (numpy only).
"""

import io
import os
from dataclasses import dataclass

import numpy as np

from gipp_codec.errors import GimgError
from gipp_codec.format.container import parse_gimg
from gipp_codec.format.model import QuantizedGaussians
from gipp_codec.quant.dequant import dequantize
from gipp_codec.render.rescale import valid_mask

EXPORT_FORMATS = (".npz", ".csv")
CSV_COLUMNS = ("x", "y", "cov_xx", "cov_xy", "cov_yy", "red", "green", "blue", "sigma_major", "sigma_minor",
               "angle_deg", "valid", "render_convention")
CSV_CHUNK_ROWS = 1 << 16  # rows formatted at a time


@dataclass
class GaussianSet:
    """The decoded contents of a .gimg file (module docstring for how they make the image)."""

    width: int
    height: int
    render_convention: int
    means: np.ndarray  # [N, 2] float32: (x, y) in pixels, x right, y down, pixel centres at +0.5
    covs: np.ndarray  # [N, 3] float32: (a, b, c), the covariance [[a, b], [b, c]] in pixels^2
    colors: np.ndarray  # [N, 3] float32: RGB peak weight times colour, in [0, 1] units over the base
    base: np.ndarray | None  # [gh, gw, 3] float64 in [0, 1]: one colour per base block, or None
    base_block: int  # the base layer's block side in pixels (0 without one)
    codes: np.ndarray | None  # [N, 8] int64 quantized codes (x, y, a, b, c, red, green, blue), or None (float32 file)
    scales: np.ndarray | None  # [8] float32 LSQ+ step of each channel (quantized files)
    offsets: np.ndarray | None  # [8] float32 LSQ+ offset of each channel (quantized files)
    bits: tuple | None  # (position, covariance, colour) bit depths (quantized files)
    correlation: bool = False  # codes[:, 3] holds the correlation rho, b = rho sqrt(a c) (payload coding 3)
    base_bits: int = 0  # the base layer's sample depth (base = samples / (2^base_bits - 1)), 0 without one

    @property
    def valid(self) -> np.ndarray:
        """[N] bool: the Gaussians that render (a > 0, c > 0, a c - b^2 > 0; spec §7)."""
        return valid_mask(self.covs)

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sigma_major [N], sigma_minor [N], angle_deg [N]): the standard deviations along the
        covariance's axes (pixels) and the major axis's angle from +x towards +y (degrees,
        -90 to 90); NaN for invalid Gaussians."""
        c = self.covs.astype(np.float64)  # [N, 3]
        half_trace = (c[:, 0] + c[:, 2]) / 2
        root = np.sqrt(((c[:, 0] - c[:, 2]) / 2) ** 2 + c[:, 1] ** 2)
        ok = self.valid
        with np.errstate(invalid="ignore", divide="ignore"):
            major2 = half_trace + root  # the larger eigenvalue, computed without cancellation
            major = np.where(ok, np.sqrt(major2), np.nan)
            # the smaller one as det / major2: half_trace - root would cancel for elongated ones
            minor = np.where(ok, np.sqrt((c[:, 0] * c[:, 2] - c[:, 1] ** 2) / major2), np.nan)
        angle = np.where(ok, np.degrees(0.5 * np.arctan2(2 * c[:, 1], c[:, 0] - c[:, 2])), np.nan)
        return major, minor, angle


def read_gaussians(data: bytes) -> GaussianSet:
    """Parse .gimg bytes (any valid file; a FormatError otherwise) into a ``GaussianSet``:
    the dequantized Gaussians exactly as the decoder renders them, the base layer, and, for a
    quantized file, its integer codes with their scales, offsets and bit depths."""
    parsed = parse_gimg(data)
    g = parsed.gaussians
    if isinstance(g, QuantizedGaussians):
        means, covs, colors = dequantize(g)
        codes, scales, offsets = np.asarray(g.q, np.int64), np.asarray(g.scales), np.asarray(g.offsets)
        bits = (g.bits.position, g.bits.covariance, g.bits.color)
        correlation = bool(g.correlation)
    else:
        means, covs, colors = g.means, g.covs, g.colors
        codes = scales = offsets = bits = None
        correlation = False
    base = None if parsed.base is None else parsed.base.values()  # [gh, gw, 3]
    return GaussianSet(int(parsed.header["width"]), int(parsed.header["height"]),
                       int(parsed.header["render_convention"]), np.asarray(means, np.float32),
                       np.asarray(covs, np.float32), np.asarray(colors, np.float32), base,
                       0 if parsed.base is None else parsed.base.factor, codes, scales, offsets, bits, correlation,
                       0 if parsed.base is None else parsed.base.bits)


def export_format(path: str | os.PathLike, strict: bool = True) -> str | None:
    """"npz" or "csv" by ``path``'s extension; for any other, a GimgError (``strict``) or None."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in EXPORT_FORMATS:
        return ext[1:]
    if strict:
        raise GimgError(f"{os.fspath(path)}: an export is written as .npz (everything) or .csv (the Gaussians), "
                        f"not {ext or 'a name without an extension'} (or name the format with --format)")
    return None


def npz_bytes(gs: GaussianSet) -> bytes:
    """Every field of ``gs`` as a NumPy .npz archive (absent fields left out)."""
    arrays = {"width": np.int64(gs.width), "height": np.int64(gs.height),
              "render_convention": np.int64(gs.render_convention), "means": gs.means, "covs": gs.covs,
              "colors": gs.colors, "valid": gs.valid, "base_block": np.int64(gs.base_block)}
    if gs.base is not None:
        arrays.update(base=gs.base, base_bits=np.int64(gs.base_bits))
    if gs.codes is not None:
        arrays.update(codes=gs.codes, scales=gs.scales, offsets=gs.offsets, bits=np.asarray(gs.bits, np.int64),
                      correlation=np.bool_(gs.correlation))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def csv_bytes(gs: GaussianSet) -> bytes:
    """One row per Gaussian (``CSV_COLUMNS``: position, covariance, colour, the axes' standard
    deviations and angle, whether it renders, the file's render convention, which sets T in
    the module docstring's weight), with a header row."""
    major, minor, angle = gs.axes()
    out = bytearray((",".join(CSV_COLUMNS) + "\n").encode())
    n = gs.means.shape[0]
    valid = gs.valid
    for start in range(0, n, CSV_CHUNK_ROWS):  # in chunks: the text of one chunk at a time besides the output
        rows = slice(start, min(start + CSV_CHUNK_ROWS, n))
        table = np.column_stack([gs.means[rows], gs.covs[rows], gs.colors[rows], major[rows], minor[rows],
                                 angle[rows], valid[rows], np.full(rows.stop - rows.start, gs.render_convention)])
        text = io.StringIO()
        # %.9g gives back each binary32 value exactly; the derived axes are binary64
        np.savetxt(text, table, fmt=["%.9g"] * 8 + ["%.17g"] * 3 + ["%d", "%d"], delimiter=",")
        out += text.getvalue().encode()
    return bytes(out)
