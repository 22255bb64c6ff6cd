"""The decoder: bytes -> parse -> dequantize -> render -> image. Never imports torch or
the training code (tests/test_decode.py checks this in a subprocess), unless a decode is
asked to run on a GPU (``device="cuda"`` or ``"auto"``: ``gpu_decode``, the Triton renderer).

Spec: format_spec/gimg.md ("Decoding process").
"""

import contextlib
import os

import numpy as np

from gipp_codec.format.base_layer import grid_rows, upsample
from gipp_codec.errors import FormatError
from gipp_codec.format.container import ParsedGimg, gaussian_floats, parse_gimg, parse_gimg_with_floats
from gipp_codec.imageio import (DEFAULT_PNG_LEVEL, ImageMetadata, check_distinct_paths, check_output_path,
                                read_input_bytes, save_image)
from gipp_codec.output_format import is_gray, output_format, single_channel
from gipp_codec.render.convention import to_uint8  # noqa: F401  (re-exported: floor(clamp(v, 0, 1) * 255 + 0.5))


def gaussians_as_floats(parsed: ParsedGimg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(means [N, 2], covs [N, 3], colors [N, 3]) float32 of a parsed file (of its codes as
    they are now: computed on every call)."""
    return gaussian_floats(parsed.gaussians)


def render_parsed(parsed: ParsedGimg) -> np.ndarray:
    """Render a parsed file in its render convention: float32 [H, W, 3], unclamped."""
    h, w = int(parsed.header["height"]), int(parsed.header["width"])
    means, covs, colors = gaussians_as_floats(parsed)
    if means.shape[0] == 0:
        image = np.zeros((h, w, 3), np.float32)
    else:
        from gipp_codec.render.numba_kernels import forward

        image = np.asarray(forward(means, covs, colors, h, w, int(parsed.header["render_convention"])), dtype=np.float32)
    if parsed.base is not None:
        image += upsample(parsed.base, w, h)  # float32 sums, spec §7
    return image


def render_parsed_uint8(parsed: ParsedGimg, device: str = "cpu", size: tuple[int, int] | None = None,
                        crop: tuple[int, int, int, int] | None = None, gaussians=None, bounds=None) -> np.ndarray:
    """Render a parsed file in its render convention straight to the 8-bit levels: uint8 [H, W, 3]
    (equal to ``to_uint8(render_parsed(parsed))``, without storing the float image). On
    ``device`` "cuda" (or "auto" where CUDA is) the Triton renderer sums the Gaussians
    (``gpu_decode``; a level may differ on a pixel at a rounding boundary).

    ``crop`` (x, y, w, h): only that region of the file's image (``render.region.crop_box``),
    uint8 [h, w, 3], rendered alone from the Gaussians that reach it (``render.region``): on
    the CPU its pixels are the whole decode's, bit for bit. ``size`` (W', H'), when it is not
    the region's (or the file's) own: the image at that size instead, uint8 [H', W', 3], the
    Gaussians sampled on a finer grid along an axis that grows and the render box-filtered
    along one that shrinks (``render.rescale``; not a conforming decode, which is at the
    file's size). ``gaussians``: the file's
    ``gaussians_as_floats``, and ``bounds`` their ``region.gaussian_bounds``, when at hand."""
    h, w = int(parsed.header["height"]), int(parsed.header["width"])
    floats = gaussians_as_floats(parsed) if gaussians is None else gaussians
    x, y, cw, ch = (0, 0, w, h)
    if crop is not None:
        from gipp_codec.render import region

        x, y, cw, ch = region.crop_box(w, h, crop)
        if (cw, ch) != (w, h):  # only the Gaussians that can reach the region, in the file's order
            pick = region.reaching(region.gaussian_bounds(*floats[:2]) if bounds is None else bounds, x, y, cw, ch)
            if pick.size < floats[0].shape[0]:  # a copy only when it leaves some out
                floats = tuple(v[pick] for v in floats)
    if size is None or tuple(size) == (cw, ch):
        return _render_uint8(parsed, device, floats, (cw, ch), origin=(x, y), image_width=w)
    from gipp_codec.errors import ConfigError
    from gipp_codec.format.container import check_render_work_of
    from gipp_codec.render.rescale import block_sides, box_reduce, render_size, rescale_gaussians

    rw, rh = render_size(cw, ch, *size)
    sx, sy = rw / cw, rh / ch
    means, covs, colors = rescale_gaussians(*floats, sx, sy, (x, y))
    check_render_work_of(means, covs, rw, rh, ConfigError)  # an enlargement multiplies large Gaussians' work
    factors = None if parsed.base is None else block_sides(parsed.base.factor, sx, sy)
    image = _render_uint8(parsed, device, (means, covs, colors), (rw, rh), factors, base_origin=(x * sx, y * sy))
    return box_reduce(image, *size)


def _render_uint8(parsed: ParsedGimg, device: str, gaussians, size: tuple[int, int], factors=None, *,
                  origin=(0, 0), image_width: int | None = None, base_origin=None) -> np.ndarray:
    """uint8 [H, W, 3] of ``gaussians`` (means, covs, colors) plus the file's base layer, on
    ``device``: the W x H (``size``) pixels from column, row ``origin`` of an image
    ``image_width`` wide (default W: the whole grid) whose pixels are those of the file's
    plane, or of a grid the Gaussians were mapped to (``render.rescale``), the base layer's
    block side in its pixels being ``factors`` (default the file's F) and the first pixel at
    ``base_origin`` (column, row) of the base's plane in those pixels (default ``origin``)."""
    w, h = size
    means, covs, colors = gaussians
    window = (int(origin[0]), int(origin[1]), w if image_width is None else int(image_width))
    base_origin = tuple(float(v) for v in (origin if base_origin is None else base_origin))
    if device != "cpu":
        from gipp_codec import gpu_decode

        resolved = gpu_decode.resolve_decode_device(device)
        if resolved != "cpu":
            if origin != (0, 0):  # the Triton renderer draws from the origin: the region moved there
                means = (means.astype(np.float64) - np.array(origin, np.float64)).astype(np.float32)
            return to_uint8(gpu_decode.render_parsed_on_device(parsed, resolved, means, covs, colors, (w, h), factors,
                                                               base_origin))
    if means.shape[0] == 0 and parsed.base is None:
        return np.zeros((h, w, 3), np.uint8)
    from gipp_codec.render.numba_kernels import forward_uint8  # also a base layer alone, in bands

    convention = int(parsed.header["render_convention"])
    if parsed.base is None:
        return forward_uint8(means, covs, colors, h, w, convention, window=window)
    fx, fy = (parsed.base.factor, parsed.base.factor) if factors is None else factors
    return forward_uint8(means, covs, colors, h, w, convention, grid_rows(parsed.base, w, fx, base_origin[0]), fy,
                         window=window, base_y0=base_origin[1])


class GimgImage:
    """A .gimg file parsed once, to be rendered many times (``open_gimg``): whole, a region,
    at another size, as ``decode`` does each, without entropy-decoding the file again. Its
    ``width``, ``height``, ``gaussians`` (the count) and ``metadata`` (ICC/EXIF) are the file's."""

    def __init__(self, parsed: ParsedGimg, floats: tuple | None = None):
        """``floats``: ``gaussians_as_floats(parsed)`` when the caller has them (of the codes
        as they are now), else computed here."""
        self._parsed = parsed
        # (means [N, 2], covs [N, 3], colors [N, 3]) float32
        self._floats = gaussians_as_floats(parsed) if floats is None else floats
        self.width, self.height = int(parsed.header["width"]), int(parsed.header["height"])
        self.gaussians = int(parsed.header["gaussian_count"])
        self.metadata = parsed.metadata
        self._bounds = None  # the Gaussians' boxes (region.gaussian_bounds), on the first region rendered

    def render(self, *, crop: tuple[int, int, int, int] | None = None, scale: float | None = None,
               size: tuple[int, int] | None = None, device: str = "cpu") -> np.ndarray:
        """uint8 [H, W, 3]: what ``decode(data, device, crop=, scale=, size=)`` gives for the file."""
        out_size = self.output_size(crop, scale, size)
        if crop is not None and self._bounds is None:
            from gipp_codec.render.region import gaussian_bounds

            self._bounds = gaussian_bounds(*self._floats[:2])  # [4, N]
        return render_parsed_uint8(self._parsed, device, out_size, crop, self._floats, self._bounds)

    def output_size(self, crop=None, scale=None, size=None) -> tuple[int, int]:
        """The (width, height) ``render`` gives for these arguments (a ConfigError for bad ones)."""
        return _decode_size(self._parsed, scale, size, crop)

    def info(self) -> dict:
        """``read_info`` of the file."""
        return {**self._parsed.info(), "grey": decodes_grey(self._parsed, self._floats)}


def open_gimg(data: bytes) -> GimgImage:
    """Parse .gimg bytes once (a ``GimgError`` when they are not a valid file): a ``GimgImage``
    whose ``render(crop=, scale=, size=, device=)`` gives any region or size of the image,
    each call as ``decode`` would give it, paying for the entropy decoding only here (a tile
    viewer's way in)."""
    return GimgImage(*parse_gimg_with_floats(data))  # the parse's floats: nothing can have changed its codes


def decode_float(data: bytes) -> np.ndarray:
    """.gimg bytes -> float32 [H, W, 3], unclamped."""
    return render_parsed(parse_gimg(data))


def decode_with_metadata(data: bytes, device: str = "cpu", *, scale: float | None = None,
                         size: tuple[int, int] | None = None,
                         crop: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, ImageMetadata]:
    """.gimg bytes -> (uint8 [H, W, 3], ICC/EXIF metadata), rendered on ``device``
    ("cpu", "cuda" or "auto": ``render_parsed_uint8``); the file's image or the region
    ``crop`` (x, y, width, height) of it, at its size, or at ``size`` (width, height) or each
    side times ``scale`` (``render.rescale``)."""
    opened = open_gimg(data)
    return opened.render(crop=crop, scale=scale, size=size, device=device), opened.metadata


def decode(data: bytes, device: str = "cpu", *, scale: float | None = None,
           size: tuple[int, int] | None = None, crop: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """.gimg bytes -> uint8 [H, W, 3], rendered on ``device`` ("cpu", "cuda" or "auto":
    ``render_parsed_uint8``). By default the whole image at the file's own size, the
    conforming decode. ``crop`` (x, y, width, height), in the file's pixels: only that
    region, rendered alone, its pixels the whole decode's. ``scale`` (each side times it,
    rounded) or ``size`` (width, height) gives the image (or the region) at another size
    instead: the Gaussians sampled on a finer grid where it grows, the render averaged over
    each output pixel where it shrinks (``render.rescale``)."""
    return decode_with_metadata(data, device, scale=scale, size=size, crop=crop)[0]


def _decode_size(parsed: ParsedGimg, scale, size, crop=None) -> tuple[int, int]:
    """The (width, height) a decode renders: the file's (or ``crop``'s region's), or what
    ``scale``/``size`` ask for."""
    from gipp_codec.render.region import crop_box
    from gipp_codec.render.rescale import output_size

    width, height = int(parsed.header["width"]), int(parsed.header["height"])
    if crop is not None:
        width, height = crop_box(width, height, crop)[2:]
    return output_size(width, height, scale, size)


def read_info(data: bytes) -> dict:
    """Header fields, per-attribute bits and bpp of .gimg bytes (parses the whole file), and
    ``grey``: whether it decodes to an exactly grey image (``decodes_grey``)."""
    return open_gimg(data).info()


def decodes_grey(parsed: ParsedGimg, gaussians=None) -> bool:
    """Whether a parsed file decodes to an exactly grey image, known without rendering: every
    Gaussian's three dequantized colours are equal, and so are the base layer's three samples
    everywhere (the render treats the three channels alike, spec §7). A grey input's file
    (``fit.gray``) is. A file with colours may still decode grey by chance (a 1 x 1 image,
    or one clamped to black); this says False for it. ``gaussians``: its ``gaussians_as_floats``
    when at hand."""
    _, _, colors = gaussians_as_floats(parsed) if gaussians is None else gaussians  # [N, 3]
    return is_gray(colors) and (parsed.base is None or is_gray(parsed.base.samples))  # samples [gh, gw, 3]


# The most bytes of a .gimg input read: what a file within every limit of the spec (§8) holds
# (2^22 Gaussians in float32 mode: 128 MiB over two GAUS chunks; ICC and EXIF chunks of up to
# MAX_CHUNK_LENGTH each), with room for ancillary chunks. A larger file is refused unread.
MAX_GIMG_INPUT_BYTES = 1 << 29


def read_input_file(path: str | os.PathLike) -> bytes:
    """Read a .gimg file (``-``: standard input) of at most ``MAX_GIMG_INPUT_BYTES``; a
    missing, unreadable or larger file, a device or a socket is a GimgError."""
    return read_input_bytes(path, "a .gimg file", max_bytes=MAX_GIMG_INPUT_BYTES)


@contextlib.contextmanager
def naming_file(path: str | os.PathLike):
    """Inside it, a FormatError (a damaged or wrong file) is raised again, of the same class,
    with the name of the file ``path`` it is about leading its message ("standard input" for
    -), so that a script decoding many files learns which one is bad."""
    from gipp_codec.stdio import display_name

    try:
        yield
    except FormatError as exc:
        raise type(exc)(f"{display_name(path)}: {exc}") from None


def decode_file(in_path: str | os.PathLike, out_path: str | os.PathLike, png_level: int = DEFAULT_PNG_LEVEL,
                device: str = "cpu", *, scale: float | None = None, size: tuple[int, int] | None = None,
                crop: tuple[int, int, int, int] | None = None) -> dict:
    """Decode a .gimg file to an image file written atomically, in the lossless format its
    extension names (``output_format``: PNG at zlib level ``png_level`` unless .ppm, .bmp or
    .tif; ICC/EXIF carried where the format can; an exactly grey image as one channel), rendered
    on ``device`` ("cpu", "cuda" or "auto": ``render_parsed_uint8``): the image or the region
    ``crop`` of it, at its size or at the one ``scale`` or ``size`` asks for (``decode``);
    returns the facts ``gimg decode`` prints."""
    check_distinct_paths(in_path, out_path)
    check_output_path(out_path)
    output_format(out_path)  # a lossy extension is refused before the work
    if scale is not None or size is not None or crop is not None:  # a bad value before the work too
        from gipp_codec.render.region import crop_values
        from gipp_codec.render.rescale import output_size

        output_size(1, 1, scale, size)
        if crop is not None:
            crop = crop_values(crop)  # its form and signs; its bounds once the file's size is known
    if device != "cpu":  # an unknown device, or CUDA asked for where there is none: before the work too
        from gipp_codec.gpu_decode import resolve_decode_device

        device = resolve_decode_device(device)
    data = read_input_file(in_path)
    with naming_file(in_path):
        opened = open_gimg(data)
    out_size = opened.output_size(crop, scale, size)
    image = opened.render(crop=crop, scale=scale, size=size, device=device)
    save_image(out_path, image, opened.metadata, png_level)
    width, height = opened.width, opened.height
    return {
        "decoded_width": out_size[0],
        "decoded_height": out_size[1],
        "crop": None if crop is None else list(crop),
        "input": str(in_path),
        "output": str(out_path),
        "width": width,
        "height": height,
        "gaussians": opened.gaussians,
        "bpp": 8 * len(data) / (width * height),
        "bytes": len(data),
        "device": device,
        "grey": single_channel(image, opened.metadata.icc_profile),  # written as one grey channel
    }
