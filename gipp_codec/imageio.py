"""Reading input images and writing output images, safely.

Accepted inputs (anything Pillow opens; PNG is the reference), with these documented
conversions to 8-bit RGB:

- RGB 8-bit: as is. 16-bit RGB PNGs: Pillow reduces them to 8 bits per channel.
- Grayscale (L, 1-bit, 16-bit I;16 / I): replicated to three channels; 16-bit values
  are rounded to 8 bits (v / 257).
- Palette (P): expanded to RGB (or RGBA if it has transparency, then as below).
- RGBA / LA: accepted when fully opaque (alpha dropped); refused when any pixel is
  transparent, because gimg codes colour only and would silently lose the alpha.
- CMYK / YCbCr: converted to RGB by Pillow.
- Animations and multi-page files (more than one frame): refused, rather than coding the
  first frame silently.

ICC profiles and EXIF blocks of the input are returned so they can be carried into
the .gimg file and back into the decoded PNG. Outputs are written to a temporary
file in the destination folder and renamed into place, so a failure never leaves a
partial file.
"""

import io
import os
import re
import secrets
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from gipp_codec import stop
from gipp_codec.errors import GimgError, GimgWarning, InputImageError
from gipp_codec.output_format import PNG, encode_image, output_format
from gipp_codec.stdio import check_stdout, display_name, is_stdio, read_stdin, write_stdout

# Pillow's decompression-bomb guard, made an error rather than a warning.
MAX_INPUT_PIXELS = 1 << 28
# the most bytes read of an input image: an uncompressed 2^28-pixel image of 8 bytes a pixel
# (16-bit RGBA), plus room for its headers and metadata
MAX_IMAGE_INPUT_BYTES = 8 * MAX_INPUT_PIXELS + (1 << 24)


@dataclass
class ImageMetadata:
    """Colour metadata carried from the input to the decoded output; never changes decoding."""

    icc_profile: bytes | None = None
    exif: bytes | None = None


def _gray16_to_8(arr: np.ndarray) -> np.ndarray:
    """16-bit (or 32-bit) grey levels [H, W] -> uint8 [H, W]: floor(v / 257 + 0.5) clamped to
    0..255, in integers as (2v + 257) // 514 (the same values; a float64 copy would hold 8
    bytes a pixel, and a mutated PNG header can declare 2^28 pixels), a block of rows at a time."""
    out = np.empty(arr.shape, np.uint8)
    rows = max(1, (1 << 22) // max(1, arr.shape[1]))  # about 4 Mi pixels a block: bounded int64 temporaries
    for r in range(0, arr.shape[0], rows):
        v = arr[r:r + rows].astype(np.int64)
        out[r:r + rows] = np.clip((2 * v + 257) // 514, 0, 255)
    return out


def _stored_bits(im: Image.Image) -> int | None:
    """Bits per sample the file stores, from the decoder's raw mode before loading ("L;2" -> 2,
    "RGB;16B" -> 16, "RGB" -> 8); None when the plugin does not say."""
    try:
        raw = im.tile[0].args if im.tile else None
    except (AttributeError, IndexError):
        return None
    if not isinstance(raw, str):
        return None
    suffix = raw.split(";", 1)[1] if ";" in raw else ""
    digits = "".join(c for c in suffix if c.isdigit())
    return int(digits) if digits else 8


def _colour_key_used(im: Image.Image, bits: int | None) -> bool:
    """Whether a grey or RGB image with a colour key (PNG's tRNS chunk, Pillow's
    ``info["transparency"]``: one grey level or one RGB triple that is transparent) has a
    pixel of that colour. ``bits``: the file's bits per sample (``_stored_bits``). Pillow
    scales grey of 1, 2 or 4 bits to 0..255 but not the key, so the key is scaled here; it
    keeps only the high byte of 16-bit RGB, so there a pixel whose high bytes match the key's
    counts as transparent (it may be)."""
    key = im.info.get("transparency")
    if key is None or isinstance(key, bytes):  # bytes: a palette's alphas, handled by the mode P branch
        return False
    arr = np.asarray(im.convert("L") if im.mode == "1" else im)  # [H, W] or [H, W, C]
    if isinstance(key, tuple):
        if arr.ndim != 3:
            return False
        key = np.asarray(key, np.int64)
        if bits == 16 and arr.dtype == np.uint8:
            key = key >> 8
        return bool(np.any(np.all(arr[..., :len(key)] == key, axis=-1)))
    if arr.ndim != 2:
        return False
    if bits in (1, 2, 4) and arr.dtype == np.uint8:
        key = int(key) * (255 // ((1 << bits) - 1))
    return bool(np.any(arr == key))


def _to_rgb8(im: Image.Image, name: str, bits: int | None = None) -> np.ndarray:
    """Convert a Pillow image of any supported mode to uint8 [H, W, 3] (``bits``: the file's
    bits per sample, ``_stored_bits``, read before loading)."""
    mode = im.mode
    if mode != "P" and _colour_key_used(im, bits):
        raise InputImageError(f"{name}: image has transparent pixels (a colour key); gimg codes RGB only, "
                              "flatten the alpha first")
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.repeat(_gray16_to_8(np.asarray(im))[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(im.getchannel("A"))
        if alpha.size and alpha.min() < 255:
            raise InputImageError(
                f"{name}: image has transparent pixels; gimg codes RGB only, flatten the alpha first"
            )
        im = im.convert("RGB")
    elif mode in ("1", "L"):  # replicated in numpy: Pillow's RGB copy would hold 4 bytes a pixel
        grey = np.asarray(im if mode == "L" else im.convert("L"), dtype=np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    elif mode != "RGB":
        raise InputImageError(f"{name}: unsupported image mode {mode!r}")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def read_input_bytes(path: str | os.PathLike, kind: str, error: type[GimgError] = GimgError,
                     max_bytes: int | None = None) -> bytes:
    """The bytes of an input file, or of standard input for ``-`` (``stdio``). A missing,
    directory or unreadable path, a device or a socket (``/dev/zero`` would never end), or
    more than ``max_bytes`` (None: no limit; a regular file is measured before it is read,
    a pipe read up to one byte more) raises ``error`` with a one-line message (``kind``
    names what was expected, e.g. "an image file")."""
    if is_stdio(path):
        return read_stdin(kind, error, max_bytes)
    if not os.fspath(path):
        raise error(f"an empty file name; expected {kind}")
    shown = display_name(path)  # as given: Path() would make ./- into -
    path = Path(path)
    try:
        if not path.exists():
            raise error(f"{shown}: no such file")
        if path.is_dir():
            raise error(f"{shown}: is a directory, expected {kind}")
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
                raise error(f"{shown}: is a device or a socket, not a file or a pipe; expected {kind}")
            if max_bytes is not None and stat.S_ISREG(st.st_mode) and st.st_size > max_bytes:
                raise error(f"{shown}: {st.st_size} bytes, more than {max_bytes}, the most gimg reads of {kind}")
            data = fh.read(-1 if max_bytes is None else max_bytes + 1)
    except OSError as exc:
        raise error(f"{shown}: cannot read ({exc.strerror or exc})") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise error(f"{shown}: more than {max_bytes} bytes, the most gimg reads of {kind}")
    return data


def load_image(path: str | os.PathLike) -> tuple[np.ndarray, ImageMetadata]:
    """Load an image file (``-``: standard input) as uint8 [H, W, 3] plus its ICC/EXIF
    metadata; raise InputImageError on any problem."""
    name = display_name(path)  # as given ("standard input" for -)
    return decode_image_bytes(read_input_bytes(path, "an image file", InputImageError, MAX_IMAGE_INPUT_BYTES), name)


def _open_quietly(data: bytes) -> Image.Image:
    """Pillow's lazy open of ``data`` without its decompression-bomb warning, which it gives
    between its limit and twice it: ``decode_image_bytes`` checks the size itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def decode_image_bytes(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, ImageMetadata]:
    """Decode encoded image bytes (PNG, JPEG, ...) to uint8 [H, W, 3] plus metadata.

    Any failure of Pillow's decoders on damaged bytes (they raise many exception types) is an
    InputImageError. The warnings Pillow gives while reading (a truncated tag, corrupt EXIF)
    come back as one GimgWarning per distinct message, naming the file, instead of Pillow's
    own multi-line form."""
    if len(data) == 0:
        raise InputImageError(f"{name}: file is empty")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb, meta = _decode_with_pillow(data, name)
    seen = set()
    for w in caught:
        message = str(w.message).strip()
        if issubclass(w.category, Image.DecompressionBombWarning) or message in seen:
            continue
        seen.add(message)
        warnings.warn(f"{name}: {message} (Pillow's warning; the image was read)", GimgWarning, stacklevel=2)
    return rgb, meta


def _decode_with_pillow(data: bytes, name: str) -> tuple[np.ndarray, ImageMetadata]:
    """``decode_image_bytes``'s work: open, check and convert with Pillow."""
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = MAX_INPUT_PIXELS // 2  # Pillow errors above 2x this
        with _open_quietly(data) as im:
            w, h = im.size
            if w <= 0 or h <= 0:
                raise InputImageError(f"{name}: image has zero size ({w}x{h})")
            if w * h > MAX_INPUT_PIXELS:
                raise InputImageError(f"{name}: image too large ({w}x{h} pixels)")
            frames = int(getattr(im, "n_frames", 1))
            if frames > 1:
                raise InputImageError(f"{name}: image has {frames} frames (an animation or a multi-page "
                                      f"file); gimg codes one image, extract a frame first")
            bits = _stored_bits(im)
            im.load()
            meta = ImageMetadata(
                icc_profile=im.info.get("icc_profile") or None,
                exif=im.info.get("exif") or None,
            )
            rgb = _to_rgb8(im, name, bits)
    except GimgError:
        raise
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        declared = f"{int(found.group(1))} pixels" if found else f"more than {MAX_INPUT_PIXELS} pixels"
        raise InputImageError(f"{name}: image too large (its header declares {declared}; gimg reads at most "
                              f"{MAX_INPUT_PIXELS})") from None
    except UnidentifiedImageError as exc:
        if bytes(data[:4]) == b"\x89GIM":
            raise InputImageError(f"{name}: is a .gimg file, not an image to encode; "
                                  "`gimg decode` makes an image of it") from None
        raise InputImageError(f"{name}: not a readable image ({exc.__class__.__name__})") from None
    except Exception as exc:  # noqa: BLE001  (Pillow's plugins raise TypeError, struct.error, ... on damaged bytes)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise InputImageError(f"{name}: cannot decode image ({detail})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputImageError(f"{name}: unexpected decoded shape {rgb.shape}")
    return rgb, meta


def check_output_path(path: str | os.PathLike) -> Path:
    """The file an output written to ``path`` will create or replace, checked before any
    work is done: a symbolic link is followed to the file it names; a GimgError when the
    path is empty or ends in a separator, names a folder, a device, a pipe or a socket
    (never replaced), is a read-only file (no write permission for anyone: not replaced), or
    lies in a folder that does not exist or cannot be written. For
    ``-`` (standard output) a GimgError when that is a terminal; it returns Path("-")."""
    raw = os.fspath(path)
    if is_stdio(raw):
        check_stdout()
        return Path(raw)
    if raw == "":
        raise GimgError("the output path is empty")
    if raw.endswith(("/", os.sep)):
        raise GimgError(f"{raw}: the output path ends in a separator; name a file")
    target = Path(os.path.realpath(raw)) if os.path.islink(raw) else Path(raw)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise GimgError(f"{raw}: cannot write ({exc.strerror or exc})") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise GimgError(f"{raw}: is a folder, expected a file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise GimgError(f"{raw}: exists and is not a regular file (a device, pipe or socket); "
                        f"gimg does not replace it")
    if st is not None and not st.st_mode & 0o222:  # the rename would replace it even so (and as root)
        raise GimgError(f"{raw}: exists and is read-only; gimg does not replace it (make it writable or "
                        f"remove it first)")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise GimgError(f"{raw}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise GimgError(f"{raw}: output folder {folder} is not writable")
    return target


def _open_temporary(folder: Path) -> tuple[int, Path]:
    """A new file in ``folder``, opened for writing: (descriptor, path). Its name is short
    (``.gimg-<12 hex>.tmp``) so that an output name up to the system's limit still works.
    It is created with mode 0o666, which the OS reduces by the umask, as a plain open()
    would (mkstemp's 0600 would leave the output unreadable to everyone else)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = folder / f".gimg-{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` (``check_output_path``: through a symbolic link, never over
    a device, pipe or folder) via a temporary file in the same folder and a rename. A new
    file gets the umask's permissions; a regular file it replaces keeps its own. Any OS
    failure (disk full, permissions, name too long) is a GimgError, with nothing left behind.
    ``-`` writes the bytes, all made beforehand, to standard output (``stdio.write_stdout``)."""
    stop.check()  # a Ctrl-C that a ctypes callback swallowed still stops before any output
    if is_stdio(path):
        write_stdout(data)
        return
    target = check_output_path(path)
    folder = target.parent if str(target.parent) else Path(".")
    tmp = None
    try:
        fd, tmp = _open_temporary(folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            old = target.stat()
            if stat.S_ISREG(old.st_mode):
                os.chmod(tmp, stat.S_IMODE(old.st_mode))
        except FileNotFoundError:
            pass
        stop.check()
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise GimgError(f"{os.fspath(path)}: cannot write ({exc.strerror or exc})") from None
        raise


DEFAULT_PNG_LEVEL = 3  # zlib level: a fast write for a slightly larger PNG than Pillow's default 6


def encode_png(image: np.ndarray, metadata: ImageMetadata | None = None, level: int = DEFAULT_PNG_LEVEL) -> bytes:
    """Encode uint8 [H, W, 3] as PNG bytes (zlib ``level`` 0-9), embedding ICC and EXIF when given."""
    meta = metadata or ImageMetadata()
    return encode_image(image, PNG, meta.icc_profile, meta.exif, level)


def save_image(path: str | os.PathLike, image: np.ndarray, metadata: ImageMetadata | None = None,
               png_level: int = DEFAULT_PNG_LEVEL) -> None:
    """Write uint8 [H, W, 3] atomically in the lossless format ``path``'s extension names
    (``output_format``: PNG at zlib ``png_level`` 0-9 unless .ppm/.pnm, .bmp or .tif/.tiff),
    with the ICC profile and EXIF block where that format carries them (else a warning)."""
    meta = metadata or ImageMetadata()
    atomic_write_bytes(path, encode_image(image, output_format(path), meta.icc_profile, meta.exif, png_level,
                                          name=os.fspath(path)))


def check_distinct_paths(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Refuse to write an output over its own input (standard input and output, ``-``, are
    distinct streams)."""
    if is_stdio(src) or is_stdio(dst):
        return
    s, d = Path(src), Path(dst)
    try:
        same = d.exists() and os.path.samefile(s, d)
    except OSError:
        same = False
    if same:
        raise GimgError(f"{dst}: output would overwrite the input {src}")
