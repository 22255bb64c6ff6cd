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
LOSSLESS_FORMATS = {".png": PNG, ".ppm": "PPM", ".pnm": "PPM", ".pgm": "PPM", ".bmp": "BMP", ".tif": "TIFF",
                    ".tiff": "TIFF"}
# formats whose writers keep the ICC profile and the EXIF block
CARRIES_METADATA = {PNG, "TIFF"}
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".avif", ".heic", ".heif", ".jp2", ".j2k",
                    ".jpx", ".jxl", ".gif", ".tga", ".ico", ".pbm")


def check_gimg_output_name(path) -> None:
    """A ConfigError when a .gimg output (``encode``'s OUT.gimg, ``fit --out``) is named as
    an image (``.png``, ``.jpg``, ...) or as a NumPy archive (``.npz``, ``export``'s output):
    the file would hold .gimg bytes under that name. Any other name (``-`` included) is taken
    as it is."""
    if is_stdio(path):
        return
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in LOSSLESS_FORMATS or ext in LOSSY_EXTENSIONS:
        raise ConfigError(f"{os.fspath(path)}: an image's name, but this output is a .gimg file; "
                          f"name it .gimg")
    if ext == ".npz":
        raise ConfigError(f"{os.fspath(path)}: a NumPy archive's name (what `gimg export` writes), but this "
                          f"output is a .gimg file; name it .gimg")


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


def icc_color_space(profile: bytes | None) -> bytes | None:
    """The data colour space of an ICC profile (header bytes 16-19: b"RGB ", b"GRAY", ...), or
    None without a profile or with one too short to say."""
    return bytes(profile[16:20]) if profile and len(profile) >= 20 else None


def is_gray(image) -> bool:
    """Whether an image [H, W, 3] (a numpy array or a torch tensor; any [..., 3] array of
    colours) has three equal channels everywhere: a grey image (the encoder ties its colours,
    ``fit.gray``)."""
    return bool((image[..., 0] == image[..., 1]).all()) and bool((image[..., 1] == image[..., 2]).all())


def single_channel(image: np.ndarray, icc_profile: bytes | None) -> bool:
    """Whether uint8 [H, W, 3] is written as one grey channel: it is grey (``is_gray``; the
    decode of a grey input) and an ICC profile, if any, describes grey (a grey image must
    not carry an RGB profile, nor RGB a grey one)."""
    return icc_color_space(icc_profile) in (None, b"GRAY") and is_gray(image)


def encode_image(image: np.ndarray, fmt: str = PNG, icc_profile: bytes | None = None, exif: bytes | None = None,
                 png_level: int = 3, name: str = "") -> bytes:
    """uint8 [H, W, 3] as the bytes of a ``fmt`` file (``output_format``); PNG at zlib level
    ``png_level`` 0-9. An image whose three channels are equal is written with one grey
    channel (unless its ICC profile is an RGB one): the same pixels; a grey ICC profile on an
    image with colour is left out with a GimgWarning (PNG and TIFF forbid the pair). The ICC
    profile and EXIF block are embedded where the format carries them; elsewhere a
    GimgWarning names what is left out (``name``: the output, for it)."""
    if not 0 <= int(png_level) <= 9:
        raise ConfigError(f"PNG compression level must be 0..9, got {png_level}")
    image = np.ascontiguousarray(image, dtype=np.uint8)  # [H, W, 3]
    if single_channel(image, icc_profile):  # [H, W]: a grey image as grey, a third of the samples
        im = Image.fromarray(np.ascontiguousarray(image[:, :, 0]), mode="L")
    else:
        im = Image.fromarray(image, mode="RGB")
        if icc_color_space(icc_profile) == b"GRAY":  # a grey profile cannot describe colour pixels
            warnings.warn(f"{display_name(name, output=True) if name else 'the output'}: the image's ICC profile "
                          "is for grey images but the decoded image has colour; profile left out", GimgWarning,
                          stacklevel=2)
            icc_profile = None
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
    if fmt != PNG and kwargs.get("exif"):  # TIFF parses the block: a damaged one fails or warns there
        data = _save_checking_exif(im, fmt, kwargs)
        if data is not None:
            return data
        warnings.warn(f"{display_name(name, output=True) if name else 'the output'}: Pillow cannot write the "
                      f"image's EXIF block into {fmt} (damaged, or with tags {fmt} keeps for itself), left out",
                      GimgWarning, stacklevel=2)
        kwargs = {k: v for k, v in kwargs.items() if k != "exif"}
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _save_checking_exif(im: Image.Image, fmt: str, kwargs: dict) -> bytes | None:
    """The bytes of ``im`` saved as ``fmt`` with ``kwargs``' EXIF block, or None when Pillow
    fails or warns on that block (a carried EXIF block is the input's, unchecked)."""
    buf = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            im.save(buf, format=fmt, **kwargs)
        except Exception:  # noqa: BLE001 - Pillow raises SyntaxError, struct.error, ValueError, ...
            return None
    return None if caught else buf.getvalue()
