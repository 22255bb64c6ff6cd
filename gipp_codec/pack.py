"""Gaussians from anywhere into a .gimg file (``pack_gaussians``, ``gimg pack``).

Research code that fits 2D Gaussians to an image rarely writes a file. This module writes
its Gaussians (arrays in the layout ``gipp_codec.export`` reads out: means [N, 2] in pixels,
covariances (a, b, c) [N, 3] in pixels^2, colours [N, 3]; the image is the sum of each
Gaussian's weight times its colour, spec §7) as a real .gimg file, so that its size is
measured rather than estimated, and any conforming decoder renders it:

- ``float32=True``: the float32 attribute mode, lossless (32 bytes a Gaussian).
- Arrays that carry a quantized file's ``codes``, ``scales``, ``offsets`` and ``bits`` (an
  export of a quantized .gimg) are written with those codes as they are, if they dequantize
  to exactly the float arrays beside them (an edited export is refused).
- Otherwise each channel is quantized uniformly between its minimum and maximum at ``bits``
  (given, else the input's own ``bits`` array, else the paper's 12/10/6; positions and colours as they are, a and c in the log domain, b as the correlation
  rho = b / sqrt(a c) over [-max |rho|, max |rho|], so that every Gaussian stays valid) and
  entropy-coded with payload coding 3. No training adapts the Gaussians to the grid, as
  gimg's own encoder does (quantization-aware training and a code search), so expect a
  loss at low depths.

Torch-free.
"""

import dataclasses
import io
import lzma
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gipp_codec.errors import ConfigError, FormatError, GimgError
from gipp_codec.format import constants as K
from gipp_codec.format.base_layer import MAX_FACTOR_LOG2, MAX_SAMPLE_BITS, MIN_FACTOR_LOG2, BaseLayer, grid_shape
from gipp_codec.format.container import write_gimg
from gipp_codec.format.header import header_from_gaussians, validate_header
from gipp_codec.format.model import BitDepths, FloatGaussians, QuantizedGaussians
from gipp_codec.quant.dequant import dequantize
from gipp_codec.render.rescale import valid_mask

PAPER_DEPTHS = BitDepths(12, 10, 6)
MAX_NPZ_BYTES = 1 << 30  # the most of an .npz input read, and of its arrays inflated (2^22 Gaussians: 512 MiB with codes)
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
    bits: object = None  # the input's own ``bits`` array as given (checked by ``_their_bits`` only where used)


REAL_KINDS = "iuf"  # numpy dtype kinds taken as numbers: signed and unsigned integers, floats
KNOWN_ARRAYS = ("width", "height", "means", "covs", "colors", "render_convention", "base", "base_block", "base_bits",
                "codes", "scales", "offsets", "bits", "correlation")


def _array(arrays: Mapping, key: str, shape_tail: tuple, kinds: str = REAL_KINDS,
           what: str = "real numbers") -> np.ndarray:
    if key not in arrays:
        raise ConfigError(f"the Gaussians need an array {key!r}")
    a = np.asarray(arrays[key])
    if a.ndim != 1 + len(shape_tail) or tuple(a.shape[1:]) != shape_tail or a.dtype.kind not in kinds:
        raise ConfigError(f"array {key!r} must be {what} of shape [N, {', '.join(map(str, shape_tail))}], "
                          f"not {a.dtype} {a.shape}")
    return a


def _fixed(arrays: Mapping, key: str, shape: tuple, kinds: str, what: str) -> np.ndarray:
    a = np.asarray(arrays[key])
    if a.shape != shape or a.dtype.kind not in kinds:
        raise ConfigError(f"{key!r} must be {what} of shape {shape}, not {a.dtype} {a.shape}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ConfigError(f"{key!r} holds a value that is not finite")
    return a


def _integer(arrays: Mapping, key: str, default=None) -> int | None:
    if key not in arrays:
        if default is None:
            raise ConfigError(f"the Gaussians need {key!r} (an integer)")
        return default
    return int(_fixed(arrays, key, (), "iu", "one integer"))


def _base_layer(arrays: Mapping, width: int, height: int) -> BaseLayer | None:
    """The input's base layer (``base`` [gh, gw, 3] values in [0, 1], ``base_block`` pixels,
    optional ``base_bits``), or None."""
    if "base" not in arrays:
        return None
    block = _integer(arrays, "base_block")
    bits = _integer(arrays, "base_bits", DEFAULT_BASE_BITS)
    if block < 1 or block & (block - 1) or not MIN_FACTOR_LOG2 <= block.bit_length() - 1 <= MAX_FACTOR_LOG2:
        raise ConfigError(f"base_block {block} must be a power of two from {1 << MIN_FACTOR_LOG2} to "
                          f"{1 << MAX_FACTOR_LOG2}")
    if not 1 <= bits <= MAX_SAMPLE_BITS:
        raise ConfigError(f"base_bits {bits} must be from 1 to {MAX_SAMPLE_BITS}")
    f = block.bit_length() - 1
    shape = (*grid_shape(width, height, f), 3)
    values = _fixed(arrays, "base", shape, REAL_KINDS,
                    f"real numbers (for a {width}x{height} image in {block}-pixel blocks)").astype(np.float64)
    if values.size and not (values.min() >= 0.0 and values.max() <= 1.0):
        raise ConfigError(f"base values must be within [0, 1] (a colour per block, as export writes them), not "
                          f"[{values.min():g}, {values.max():g}]")
    top = (1 << bits) - 1
    return BaseLayer(f, bits, np.rint(values * top).astype(np.uint8))


def _their_codes(arrays: Mapping, width: int, height: int, n: int) -> QuantizedGaussians | None:
    """The input's own quantized codes (an export of a quantized file), or None."""
    if "codes" not in arrays:
        return None
    codes = _array(arrays, "codes", (8,), "iu", "integers")
    if codes.shape[0] != n:
        raise ConfigError(f"codes hold {codes.shape[0]} Gaussians and means {n}; they must hold the same number")
    for key in ("scales", "offsets", "bits"):
        if key not in arrays:
            raise ConfigError(f"codes need {key!r} beside them")
    scales = _fixed(arrays, "scales", (8,), REAL_KINDS, "real numbers")
    offsets = _fixed(arrays, "offsets", (8,), REAL_KINDS, "real numbers")
    bits = _fixed(arrays, "bits", (3,), "iu", "integers")
    correlation = _fixed(arrays, "correlation", (), "biu", "one boolean") if "correlation" in arrays else False
    depths = BitDepths(*(int(b) for b in bits))
    depths.check(ConfigError)
    g = QuantizedGaussians(width, height, depths, codes.astype(np.int64), scales, offsets, bool(correlation))
    edited = "; were the arrays edited? drop 'codes' to quantize the arrays, or give bits"
    try:
        g.check_values(ConfigError)
    except ConfigError as exc:
        raise ConfigError(f"the codes do not fit the bits beside them ({exc}){edited}") from None
    if not np.all(np.asarray(g.scales) > 0):
        raise ConfigError("scales must be positive")
    try:  # the grid a file of these codes, scales, offsets and bits would declare (spec §3's range check)
        validate_header(header_from_gaussians(g, compact=False))
    except FormatError as exc:
        raise ConfigError(f"the scales, offsets and bits do not make a valid grid ({exc}){edited}") from None
    return g


def _their_bits(bits) -> BitDepths | None:
    """The input's own ``bits`` array as three depths (position, covariance, colour), or None
    without one; a ConfigError when it is malformed (asked only where the depths are used)."""
    if bits is None:
        return None
    depths = BitDepths(*(int(b) for b in _fixed({"bits": bits}, "bits", (3,), "iu", "integers")))
    depths.check(ConfigError)
    return depths


def read_pack_input(arrays: Mapping) -> PackInput:
    """Check the arrays of a Gaussian set (module docstring; ``read_npz`` for a file): a
    ConfigError naming what is missing or malformed. A ``GaussianSet`` (``read_gaussians``)
    is taken as its fields, and a field that is None counts as absent."""
    if dataclasses.is_dataclass(arrays) and not isinstance(arrays, type):
        arrays = dataclasses.asdict(arrays)
    if not isinstance(arrays, Mapping):
        raise ConfigError(f"expected a mapping of arrays (width, height, means, covs, colors, ...) or a "
                          f"GaussianSet, got {type(arrays).__name__}")
    arrays = {k: v for k, v in arrays.items() if v is not None}
    width, height = _integer(arrays, "width"), _integer(arrays, "height")
    if not (1 <= width <= K.MAX_WIDTH and 1 <= height <= K.MAX_HEIGHT and width * height <= K.MAX_PIXELS):
        raise ConfigError(f"a {width}x{height} image is outside the format's limits (1 to {K.MAX_WIDTH} a side, "
                          f"{K.MAX_PIXELS} pixels)")
    means = _array(arrays, "means", (2,))
    covs = _array(arrays, "covs", (3,))
    colors = _array(arrays, "colors", (3,))
    if not means.shape[0] == covs.shape[0] == colors.shape[0]:
        raise ConfigError(f"means, covs and colors hold {means.shape[0]}, {covs.shape[0]} and {colors.shape[0]} "
                          f"Gaussians; they must hold the same number")
    if means.shape[0] > K.MAX_GAUSSIANS:
        raise ConfigError(f"{means.shape[0]} Gaussians are over the format's {K.MAX_GAUSSIANS}")
    convention = _integer(arrays, "render_convention") if "render_convention" in arrays else None
    if convention is not None and convention not in K.RENDER_CONVENTIONS:
        raise ConfigError(f"render_convention {convention} unknown, expected one of {K.RENDER_CONVENTIONS}")
    with np.errstate(over="ignore"):  # beyond float32: infinite, refused just below
        f32 = [np.asarray(a, np.float32) for a in (means, covs, colors)]
    if not all(np.all(np.isfinite(a)) for a in f32):
        raise ConfigError("the Gaussians hold a value that is not finite (or not within float32)")
    return PackInput(width, height, *f32, convention, _base_layer(arrays, width, height),
                     _their_codes(arrays, width, height, means.shape[0]), arrays.get("bits"))


def read_npz(data: bytes) -> dict:
    """The arrays of .npz bytes that a Gaussian set uses (``KNOWN_ARRAYS``; no pickled
    objects, and no more than ``MAX_NPZ_BYTES`` once inflated); a GimgError for anything else."""
    if data.startswith(K.SIGNATURE[:4]):
        raise GimgError("a .gimg file, not a NumPy .npz file: `gimg export` makes the .npz of its Gaussians")
    if not data.startswith(b"PK"):
        raise GimgError("not a NumPy .npz file (a zip archive of .npy arrays, as numpy.savez writes)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:  # what the arrays will take, before inflating any
            declared = sum(info.file_size for info in archive.infolist()
                           if info.filename.removesuffix(".npy") in KNOWN_ARRAYS)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise GimgError(f"not a NumPy .npz file of arrays ({exc})") from None
    if declared > MAX_NPZ_BYTES:
        raise GimgError(f"the .npz file's arrays would take {declared} bytes inflated, over the {MAX_NPZ_BYTES} read")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files if k in KNOWN_ARRAYS}
    except MemoryError:
        raise GimgError("not a NumPy .npz file of arrays (an array's header declares more than memory holds)") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # damaged, or a pickled object
        raise GimgError(f"not a NumPy .npz file of arrays ({exc})") from None
    except (RuntimeError, NotImplementedError) as exc:  # zipfile: an encrypted member, an unknown compression
        raise GimgError(f"a .npz file whose arrays cannot be read ({exc}); numpy.savez writes readable ones") from None
    except (zlib.error, lzma.LZMAError) as exc:  # a damaged deflate or LZMA member
        raise GimgError(f"a damaged .npz file ({type(exc).__name__}: {exc})") from None


# how far inside the format's limits a channel's grid is kept (so that its float32 ends stay inside)
RANGE_MARGIN = 1e-6
MAX_RHO = 1.0 - 2.0 ** -20  # the correlation's grid ends well inside (-1, 1)


def _fit_scale(lo: float, hi: float, top: int, limit: float) -> tuple[np.float32, np.float32]:
    """float32 (scale, offset) of a uniform grid of ``top`` + 1 codes from ``lo`` to ``hi``
    whose dequantized ends (spec §6, binary32) stay within +-``limit``."""
    offset = np.float32(lo)
    scale = np.float32(max((hi - lo) / top, 1e-6))
    while float(np.float32(float(top) * float(scale) + float(offset))) > limit and scale > 0:
        scale = np.nextafter(scale, np.float32(0))  # rounding the step up can pass the limit by an ulp
    return scale, offset


def quantize_minmax(inp: PackInput, bits: BitDepths) -> QuantizedGaussians:
    """Each channel uniformly between its minimum and maximum at ``bits`` (module docstring),
    b as the correlation on a grid within +-(1 - 2^-20) (far enough inside +-1 that no
    rounding of b to binary32 makes a Gaussian invalid; tested). A ConfigError if a
    Gaussian is not valid (a > 0, c > 0, a c > b^2), a position or colour is beyond the
    format's limits, or a variance beyond its log-variance limit."""
    ok = valid_mask(inp.covs)
    if not ok.all():
        bad = int((~ok).sum())
        raise ConfigError(f"{bad} of {ok.size} Gaussians {'is' if bad == 1 else 'are'} not valid (a > 0, c > 0, a c > b^2; "
                          f"the first is number {int(np.flatnonzero(~ok)[0])}): a quantized file cannot hold them "
                          f"(--float32 can)")
    c = inp.covs.astype(np.float64)  # [N, 3]
    for name, values, limit in (("a position", inp.means, K.MAX_ABS_POSITION), ("a colour", inp.colors, K.MAX_ABS_COLOR)):
        if values.size and np.abs(values).max() > limit:
            raise ConfigError(f"{name} beyond +-{limit:g}, the format's limit, cannot be written")
    logs = np.log(c[:, [0, 2]])  # [N, 2]
    if logs.size and np.abs(logs).max() > K.MAX_ABS_LOG_VARIANCE:
        raise ConfigError(f"a variance a or c outside e^-{K.MAX_ABS_LOG_VARIANCE:g}..e^{K.MAX_ABS_LOG_VARIANCE:g} "
                          f"(the format's log-variance limit) cannot be quantized (--float32 keeps variances "
                          f"below e^-{K.MAX_ABS_LOG_VARIANCE:g}; its own limit on a, b and c is 2^46)")
    rho = np.clip(c[:, 1] / np.sqrt(c[:, 0] * c[:, 2]), -MAX_RHO, MAX_RHO)  # [N]
    rows = np.column_stack([inp.means, logs[:, 0], rho, logs[:, 1], inp.colors]).astype(np.float64)  # [N, 8]
    depth = np.array(bits.per_channel())
    top = (1 << depth) - 1
    limits = np.array(K.CHANNEL_LIMITS, np.float64) * (1 - RANGE_MARGIN)
    limits[3] = MAX_RHO
    lo = np.maximum(rows.min(axis=0), -limits) if len(rows) else np.zeros(8)
    hi = np.minimum(rows.max(axis=0), limits) if len(rows) else np.ones(8)
    reach = min(max(float(np.abs(rho).max(initial=0.0)), 1e-6), MAX_RHO)
    lo[3], hi[3] = -reach, reach
    grid = [_fit_scale(lo[j], hi[j], int(top[j]), float(limits[j])) for j in range(8)]
    scales = np.array([g[0] for g in grid], np.float32)  # [8]
    offsets = np.array([g[1] for g in grid], np.float32)  # [8]
    q = np.clip(np.rint((rows - offsets.astype(np.float64)) / scales.astype(np.float64)), 0, top).astype(np.int64)
    g = QuantizedGaussians(inp.width, inp.height, bits, q.astype(np.uint16), scales, offsets, correlation=True)
    return g


def _same_as_floats(g: QuantizedGaussians, inp: PackInput) -> bool:
    """Whether codes dequantize (spec §6) to exactly the arrays beside them, as an export's do."""
    means, covs, colors = dequantize(g)
    return all(np.array_equal(a, b) for a, b in ((means, inp.means), (covs, inp.covs), (colors, inp.colors)))


def pack_gaussians(arrays: Mapping, bits: BitDepths | tuple | None = None, float32: bool = False,
                   render_convention: int | None = None) -> bytes:
    """.gimg bytes of a Gaussian set (module docstring): ``arrays`` holds ``width``, ``height``,
    ``means`` [N, 2], ``covs`` [N, 3], ``colors`` [N, 3], and optionally ``render_convention``,
    a base layer (``base`` [gh, gw, 3] in [0, 1], ``base_block``, ``base_bits``, default 8) and
    a quantized file's ``codes``, ``scales``, ``offsets``, ``bits``, ``correlation``. Codes are
    kept when ``bits`` and ``float32`` are not given, and only if they dequantize to exactly
    ``means``, ``covs`` and ``colors`` (an edited export must drop them, or give ``bits``).
    Without codes the floats are quantized at ``bits``, else at the input's own ``bits``
    array, else at the paper's 12/10/6.
    ``render_convention`` (1 or 2) overrides the input's; without either it is 2, what gimg
    writes. No ICC profile or EXIF block is written. Quantized Gaussians whose grid is binary16
    exactly (kept codes of a 1.5 file, or given scales such as 2^-k) are written in attribute
    mode 2 (format 1.5, ``write_gimg``'s choice). A ConfigError for anything malformed or
    over the format's limits, the render work included."""
    from gipp_codec.format.container import check_render_work

    inp = read_pack_input(arrays)
    if render_convention is not None and render_convention not in K.RENDER_CONVENTIONS:
        raise ConfigError(f"render_convention {render_convention!r} unknown, expected one of {K.RENDER_CONVENTIONS}")
    convention = (render_convention if render_convention is not None else
                  inp.render_convention if inp.render_convention is not None else K.RENDER_CONVENTION_V2)
    if bits is not None and not isinstance(bits, BitDepths):
        try:
            depths = list(bits)
            if len(depths) != 3 or any(isinstance(b, (bool, np.bool_)) or int(b) != b for b in depths):
                raise TypeError
            bits = BitDepths(*(int(b) for b in depths))
        except (TypeError, ValueError):
            raise ConfigError(f"bits must be three depths (position, covariance, colour), not {bits!r}") from None
    if not isinstance(float32, (bool, np.bool_)):
        raise ConfigError(f"float32 must be True or False, not {float32!r}")
    if bits is not None:
        bits.check(ConfigError)
    if float32:
        if bits is not None:
            raise ConfigError("float32 files hold no bit depths: give float32 or bits, not both")
        gaussians = FloatGaussians(inp.width, inp.height, inp.means, inp.covs, inp.colors)
    elif inp.quantized is not None and bits is None:
        if not _same_as_floats(inp.quantized, inp):
            raise ConfigError("the codes do not dequantize to the means, covs and colors beside them (were the "
                              "arrays edited?): drop 'codes' to quantize the arrays, or give bits")
        gaussians = inp.quantized
    else:
        gaussians = quantize_minmax(inp, bits or _their_bits(inp.bits) or PAPER_DEPTHS)
    check_render_work(gaussians, ConfigError)
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
