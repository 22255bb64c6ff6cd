"""Which image format a decoded image is written in: chosen by the output's extension.

A decoder's output is its exact pixels, so only lossless formats are written: PNG (the
default: for ``-``, no extension or one that names no image format), PPM/PNM, BMP and
TIFF. An extension of a lossy or palette format (.jpg, .webp, .gif, ...) is refused
before any work is done rather than given PNG bytes under a misleading name. PNG and
TIFF carry the image's ICC profile and EXIF block; PPM and BMP cannot, and writing them
warns when the image has either. Torch-free and numba-free (the decoder uses it).
"""

import io
import os
import warnings

import numpy as np
from PIL import Image

from gipp_codec.errors import ConfigError, GimgWarning
from gipp_codec.stdio import display_name, is_stdio

PNG = "PNG"
# extension -> Pillow format name
LOSSLESS_FORMATS = {".png": PNG, ".ppm": "PPM", ".pnm": "PPM", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
# formats whose writers keep the ICC profile and the EXIF block
CARRIES_METADATA = {PNG, "TIFF"}
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".avif", ".heic", ".heif", ".jp2", ".j2k",
                    ".jpx", ".jxl", ".gif", ".tga", ".ico")


def output_format(path) -> str:
    """The Pillow format name an image written to ``path`` (str or os.PathLike; ``-`` for
    standard output) gets, by its extension (module docstring); a ConfigError for an
    extension of a lossy, palette or non-image format."""
    if is_stdio(path):
        return PNG
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext == ".gimg":
        raise ConfigError(f"{os.fspath(path)}: .gimg names gimg's own files, not a decoded image; name a .png file")
    if ext in LOSSY_EXTENSIONS:
        raise ConfigError(f"{os.fspath(path)}: gimg writes decoded images losslessly as PNG, PPM, BMP or TIFF "
                          f"(chosen by the extension), not {ext[1:].upper()}; name a .png file")
    return LOSSLESS_FORMATS.get(ext, PNG)


def encode_image(image: np.ndarray, fmt: str = PNG, icc_profile: bytes | None = None, exif: bytes | None = None,
                 png_level: int = 3, name: str = "") -> bytes:
    """uint8 [H, W, 3] as the bytes of a ``fmt`` file (``output_format``); PNG at zlib level
    ``png_level`` 0-9. The ICC profile and EXIF block are embedded where the format carries
    them; elsewhere a GimgWarning names what is left out (``name``: the output, for it)."""
    if not 0 <= int(png_level) <= 9:
        raise ConfigError(f"PNG compression level must be 0..9, got {png_level}")
    im = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB")
    kwargs = {"compress_level": int(png_level)} if fmt == PNG else {}
    held = [label for label, value in (("ICC profile", icc_profile), ("EXIF block", exif)) if value]
    if fmt in CARRIES_METADATA:
        if icc_profile:
            kwargs["icc_profile"] = icc_profile
        if exif:
            kwargs["exif"] = exif
    elif held:
        warnings.warn(f"{display_name(name, output=True) if name else 'the output'}: {fmt} cannot carry the "
                      f"image's {' and '.join(held)}, left out (PNG and TIFF keep them)", GimgWarning, stacklevel=2)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()
