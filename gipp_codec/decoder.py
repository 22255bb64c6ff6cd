"""The decoder: bytes -> parse -> dequantize -> render -> image. Never imports torch or
the training code (tests/test_decode.py checks this in a subprocess).

Spec: format_spec/gimg.md ("Decoding process").
"""

import os
from pathlib import Path

import numpy as np

from gipp_codec.errors import GimgError
from gipp_codec.format.container import ParsedGimg, parse_gimg
from gipp_codec.format.model import QuantizedGaussians
from gipp_codec.imageio import ImageMetadata, check_distinct_paths, save_png
from gipp_codec.quant.dequant import dequantize
from gipp_codec.render.convention import to_uint8  # floor(clamp(v, 0, 1) * 255 + 0.5)


def gaussians_as_floats(parsed: ParsedGimg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(means [N, 2], covs [N, 3], colors [N, 3]) float32 of a parsed file."""
    g = parsed.gaussians
    if isinstance(g, QuantizedGaussians):
        return dequantize(g)
    return g.means, g.covs, g.colors


def render_parsed(parsed: ParsedGimg) -> np.ndarray:
    """Render a parsed file: float32 [H, W, 3], unclamped."""
    h, w = int(parsed.header["height"]), int(parsed.header["width"])
    means, covs, colors = gaussians_as_floats(parsed)
    if means.shape[0] == 0:
        return np.zeros((h, w, 3), np.float32)
    from gipp_codec.render.numba_kernels import forward

    return np.asarray(forward(means, covs, colors, h, w), dtype=np.float32)


def decode_float(data: bytes) -> np.ndarray:
    """.gimg bytes -> float32 [H, W, 3], unclamped."""
    return render_parsed(parse_gimg(data))


def decode_with_metadata(data: bytes) -> tuple[np.ndarray, ImageMetadata]:
    """.gimg bytes -> (uint8 [H, W, 3], ICC/EXIF metadata)."""
    parsed = parse_gimg(data)
    return to_uint8(render_parsed(parsed)), parsed.metadata


def decode(data: bytes) -> np.ndarray:
    """.gimg bytes -> uint8 [H, W, 3]."""
    return decode_with_metadata(data)[0]


def read_info(data: bytes) -> dict:
    """Header fields, per-attribute bits and bpp of .gimg bytes (parses the whole file)."""
    return parse_gimg(data).info()


def read_input_file(path: str | os.PathLike) -> bytes:
    """Read a .gimg file; a missing or unreadable file is a GimgError."""
    path = Path(path)
    if not path.exists():
        raise GimgError(f"{path}: no such file")
    if path.is_dir():
        raise GimgError(f"{path}: is a directory, expected a .gimg file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise GimgError(f"{path}: cannot read ({exc.strerror or exc})") from None


def decode_file(in_path: str | os.PathLike, out_path: str | os.PathLike) -> dict:
    """Decode a .gimg file to a PNG written atomically (ICC/EXIF carried); returns read_info-like facts."""
    check_distinct_paths(in_path, out_path)
    data = read_input_file(in_path)
    parsed = parse_gimg(data)
    image = to_uint8(render_parsed(parsed))
    save_png(out_path, image, parsed.metadata)
    info = parsed.info()
    return {
        "input": str(in_path),
        "output": str(out_path),
        "width": int(parsed.header["width"]),
        "height": int(parsed.header["height"]),
        "gaussians": int(parsed.header["gaussian_count"]),
        "bpp": info["bpp"],
        "bytes": len(data),
    }
