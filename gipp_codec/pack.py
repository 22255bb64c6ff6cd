"""Gaussians from anywhere into a .gimg file (``pack_gaussians``, ``gimg pack``).

Research code that fits 2D Gaussians to an image rarely writes a file. This module writes
its Gaussians (arrays in the layout ``gipp_codec.export`` reads out: means [N, 2] in pixels,
covariances (a, b, c) [N, 3] in pixels^2, colours [N, 3]; the image is the sum of each
Gaussian's weight times its colour, spec §7) as a real .gimg file, so that its size is
measured rather than estimated, and any conforming decoder renders it:

- ``float32=True``: the float32 attribute mode, lossless (32 bytes a Gaussian).
- Arrays that carry a quantized file's ``codes``, ``scales``, ``offsets`` and ``bits`` (an
  export of a quantized .gimg) are written with those codes as they are.
- Otherwise each channel is quantized uniformly between its minimum and maximum at ``bits``
  (positions and colours as they are, a and c in the log domain, b as the correlation
  rho = b / sqrt(a c) over [-max |rho|, max |rho|], so that every Gaussian stays valid) and
  entropy-coded with payload coding 3. No training adapts the Gaussians to the grid, as
  gimg's own encoder does (quantization-aware training and a code search), so expect a
  loss at low depths; ``bits`` defaults to the paper's 12/10/6.

Torch-free.
"""

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gipp_codec.errors import ConfigError, GimgError
from gipp_codec.format import constants as K
from gipp_codec.format.base_layer import MAX_FACTOR_LOG2, MAX_SAMPLE_BITS, MIN_FACTOR_LOG2, BaseLayer, grid_shape
from gipp_codec.format.container import write_gimg
from gipp_codec.format.model import BitDepths, FloatGaussians, QuantizedGaussians
from gipp_codec.render.rescale import valid_mask

PAPER_DEPTHS = BitDepths(12, 10, 6)
MAX_NPZ_BYTES = 1 << 31  # the most of an .npz input read, and of its arrays inflated (2^22 Gaussians in float64: 256 MiB)
DEFAULT_BASE_BITS = 8  # sample depth of a base layer given as values without ``base_bits``


@dataclass
class PackInput:
    """Checked arrays to pack: float32 Gaussians, the image size, and what else the input had."""

    width: int
    height: int
    means: np.ndarray  # [N, 2] float32
    covs: np.ndarray  # [N, 3] float32
    colors: np.ndarray  # [N, 3] float32
    render_convention: int | None  # the input's, if it named one
    base: BaseLayer | None
    quantized: QuantizedGaussians | None  # the input's own codes, if it carried them


def _array(arrays: Mapping, key: str, shape_tail: tuple, required: bool = True) -> np.ndarray | None:
    if key not in arrays:
        if required:
            raise ConfigError(f"the Gaussians need an array {key!r}")
        return None
    a = np.asarray(arrays[key])
    if a.ndim != 1 + len(shape_tail) or tuple(a.shape[1:]) != shape_tail or not np.issubdtype(a.dtype, np.number):
        raise ConfigError(f"array {key!r} must be numbers of shape [N, {', '.join(map(str, shape_tail))}], "
                          f"not {a.dtype} {a.shape}")
    return a


def _integer(arrays: Mapping, key: str, default=None) -> int | None:
    if key not in arrays:
        if default is None:
            raise ConfigError(f"the Gaussians need {key!r} (an integer)")
        return default
    v = np.asarray(arrays[key])
    if v.shape != () or not np.issubdtype(v.dtype, np.integer):
        raise ConfigError(f"{key!r} must be one integer, not {v.dtype} {v.shape}")
    return int(v)


def _base_layer(arrays: Mapping, width: int, height: int) -> BaseLayer | None:
    """The input's base layer (``base`` [gh, gw, 3] values in [0, 1], ``base_block`` pixels,
    optional ``base_bits``), or None."""
    if "base" not in arrays:
        return None
    values = np.asarray(arrays["base"], dtype=np.float64)
    block = _integer(arrays, "base_block")
    bits = _integer(arrays, "base_bits", DEFAULT_BASE_BITS)
    if block < 1 or block & (block - 1) or not MIN_FACTOR_LOG2 <= block.bit_length() - 1 <= MAX_FACTOR_LOG2:
        raise ConfigError(f"base_block {block} must be a power of two from {1 << MIN_FACTOR_LOG2} to "
                          f"{1 << MAX_FACTOR_LOG2}")
    if not 1 <= bits <= MAX_SAMPLE_BITS:
        raise ConfigError(f"base_bits {bits} must be from 1 to {MAX_SAMPLE_BITS}")
    f = block.bit_length() - 1
    if values.shape != (*grid_shape(width, height, f), 3) or not np.all(np.isfinite(values)):
        raise ConfigError(f"base must be finite values of shape {(*grid_shape(width, height, f), 3)} for a "
                          f"{width}x{height} image in {block}-pixel blocks, not {values.shape}")
    top = (1 << bits) - 1
    samples = np.clip(np.rint(values * top), 0, top).astype(np.uint8)
    return BaseLayer(f, bits, samples)


def _their_codes(arrays: Mapping, width: int, height: int) -> QuantizedGaussians | None:
    """The input's own quantized codes (an export of a quantized file), or None."""
    if "codes" not in arrays:
        return None
    codes = _array(arrays, "codes", (8,))
    if not np.issubdtype(codes.dtype, np.integer):
        raise ConfigError(f"codes must be integers, not {codes.dtype}")
    scales, offsets, bits = (np.asarray(arrays.get(k, ())) for k in ("scales", "offsets", "bits"))
    if scales.shape != (8,) or offsets.shape != (8,) or bits.shape != (3,):
        raise ConfigError("codes need scales [8], offsets [8] and bits [3] beside them")
    depths = BitDepths(*(int(b) for b in bits))
    depths.check(ConfigError)
    g = QuantizedGaussians(width, height, depths, codes.astype(np.int64), scales, offsets,
                           bool(np.asarray(arrays.get("correlation", False))))
    g.check_values(ConfigError)
    return g


def read_pack_input(arrays: Mapping) -> PackInput:
    """Check the arrays of a Gaussian set (module docstring; ``read_npz`` for a file): a
    ConfigError naming what is missing or malformed."""
    width, height = _integer(arrays, "width"), _integer(arrays, "height")
    means = _array(arrays, "means", (2,))
    covs = _array(arrays, "covs", (3,))
    colors = _array(arrays, "colors", (3,))
    if not means.shape[0] == covs.shape[0] == colors.shape[0]:
        raise ConfigError(f"means, covs and colors hold {means.shape[0]}, {covs.shape[0]} and {colors.shape[0]} "
                          f"Gaussians; they must hold the same number")
    if means.shape[0] > K.MAX_GAUSSIANS:
        raise ConfigError(f"{means.shape[0]} Gaussians are over the format's {K.MAX_GAUSSIANS}")
    convention = _integer(arrays, "render_convention", -1)
    if convention != -1 and convention not in K.RENDER_CONVENTIONS:
        raise ConfigError(f"render_convention {convention} unknown, expected one of {K.RENDER_CONVENTIONS}")
    with np.errstate(over="ignore"):  # beyond float32: infinite, refused just below
        f32 = [np.asarray(a, np.float32) for a in (means, covs, colors)]
    if not all(np.all(np.isfinite(a)) for a in f32):
        raise ConfigError("the Gaussians hold a value that is not finite (or not within float32)")
    return PackInput(width, height, *f32, None if convention == -1 else convention,
                     _base_layer(arrays, width, height), _their_codes(arrays, width, height))


def read_npz(data: bytes) -> dict:
    """The arrays of .npz bytes (no pickled objects); a GimgError for anything else."""
    if not data.startswith(b"PK"):
        raise GimgError("not a NumPy .npz file (a zip archive of .npy arrays, as numpy.savez writes)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:  # what the arrays will take, before inflating any
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise GimgError(f"not a NumPy .npz file of arrays ({exc})") from None
    if declared > MAX_NPZ_BYTES:
        raise GimgError(f"the .npz file's arrays would take {declared} bytes inflated, over the {MAX_NPZ_BYTES} read")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # damaged, or a pickled object
        raise GimgError(f"not a NumPy .npz file of arrays ({exc})") from None


def quantize_minmax(inp: PackInput, bits: BitDepths) -> QuantizedGaussians:
    """Each channel uniformly between its minimum and maximum at ``bits`` (module docstring),
    b as the correlation; a ConfigError if a Gaussian is not valid (a > 0, c > 0, a c > b^2)."""
    ok = valid_mask(inp.covs)
    if not ok.all():
        raise ConfigError(f"{int((~ok).sum())} of {ok.size} Gaussians are not valid (a > 0, c > 0, a c > b^2; "
                          f"the first is number {int(np.flatnonzero(~ok)[0])}): a quantized file cannot hold them "
                          f"(--float32 can)")
    c = inp.covs.astype(np.float64)  # [N, 3]
    rho = c[:, 1] / np.sqrt(c[:, 0] * c[:, 2])  # [N], |rho| < 1
    rows = np.column_stack([inp.means, np.log(c[:, 0]), rho, np.log(c[:, 2]), inp.colors]).astype(np.float64)
    depth = np.array(bits.per_channel())
    top = (1 << depth) - 1
    lo = rows.min(axis=0) if len(rows) else np.zeros(8)
    hi = rows.max(axis=0) if len(rows) else np.ones(8)
    reach = min(max(float(np.abs(rho).max(initial=0.0)), 1e-6), float(np.nextafter(np.float32(1), np.float32(0))))
    lo[3], hi[3] = -reach, reach
    scales = np.maximum((hi - lo) / top, 1e-6).astype(np.float32)  # [8]
    offsets = lo.astype(np.float32)  # [8]
    q = np.clip(np.rint((rows - offsets.astype(np.float64)) / scales.astype(np.float64)), 0, top)
    return QuantizedGaussians(inp.width, inp.height, bits, q.astype(np.uint16), scales, offsets, correlation=True)


def pack_gaussians(arrays: Mapping, bits: BitDepths | tuple | None = None, float32: bool = False,
                   render_convention: int | None = None) -> bytes:
    """.gimg bytes of a Gaussian set (module docstring): ``arrays`` holds ``width``, ``height``,
    ``means`` [N, 2], ``covs`` [N, 3], ``colors`` [N, 3], and optionally ``render_convention``,
    a base layer (``base``, ``base_block``, ``base_bits``) and a quantized file's ``codes``,
    ``scales``, ``offsets``, ``bits``, ``correlation``. ``render_convention`` (1 or 2)
    overrides the input's; without either it is 2, what gimg writes. A ConfigError for
    anything malformed or over the format's limits."""
    inp = read_pack_input(arrays)
    convention = render_convention or inp.render_convention or K.RENDER_CONVENTION_V2
    if bits is not None and not isinstance(bits, BitDepths):
        try:
            bits = BitDepths(*bits)
        except TypeError:
            raise ConfigError(f"bits must be three depths (position, covariance, colour), not {bits!r}") from None
    if bits is not None:
        bits.check(ConfigError)
    if float32:
        if bits is not None:
            raise ConfigError("float32 files hold no bit depths: give float32 or bits, not both")
        gaussians = FloatGaussians(inp.width, inp.height, inp.means, inp.covs, inp.colors)
    elif inp.quantized is not None and bits is None:
        gaussians = inp.quantized
    else:
        gaussians = quantize_minmax(inp, bits or PAPER_DEPTHS)
    coding = K.PAYLOAD_CODING_CORRELATION if getattr(gaussians, "correlation", False) else K.PAYLOAD_CODING_ENTROPY_V2
    return write_gimg(gaussians, render_convention=convention, base=inp.base, payload_coding=coding)


def bits_summary(data: bytes) -> dict:
    """Bytes, bpp and bits per Gaussian of .gimg bytes (from its header)."""
    from gipp_codec.format.container import parse_gimg

    parsed = parse_gimg(data)
    w, h, n = (int(parsed.header[k]) for k in ("width", "height", "gaussian_count"))
    return {"bytes": len(data), "bpp": 8 * len(data) / (w * h), "gaussians": n, "width": w, "height": h,
            "bits_per_gaussian": 8 * len(data) / n if n else None,
            "mode": "float32" if isinstance(parsed.gaussians, FloatGaussians) else "quantized",
            "render_convention": int(parsed.header["render_convention"])}
