"""The .gimg container (spec: "File layout", "Chunks"): signature, version, chunks.

    file  = SIGNATURE (8) | major u8 | minor u8 | chunk*
    chunk = length u32 LE | type (4 ASCII letters) | payload (length bytes) | CRC-32 u32 LE
            (CRC-32/ISO-HDLC, as zlib.crc32, over type + payload)

First letter upper case = critical, lower case = ancillary. Chunk order: HEAD first,
then ancillary chunks and one run of consecutive GAUS chunks (their payloads
concatenated), DONE last with an empty payload, nothing after it.
"""

import os
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from gipp_codec.errors import ArgumentTypeError, ChunkError, ConfigError, FormatError, LimitError, PayloadError, SignatureError, TruncatedError, VersionError
from gipp_codec.format import constants as K
from gipp_codec.format.base_layer import MAX_BASE_CELLS, BaseLayer, decode_base_payload, encode_base_payload, grid_shape
from gipp_codec.format.header import channel_bits, describe_header, header_from_gaussians, pack_header, unpack_header
from gipp_codec.format.model import BitDepths, FloatGaussians, QuantizedGaussians
from gipp_codec.imageio import ImageMetadata


@dataclass
class ParsedGimg:
    """Everything ``parse_gimg`` learns from a file."""

    version: tuple[int, int]
    header: dict  # raw field values (see header.HEADER_FIELDS)
    gaussians: QuantizedGaussians | FloatGaussians  # quantized: canonical (file) order
    metadata: ImageMetadata
    chunks: list = field(default_factory=list)  # [{"type", "offset", "length"}]
    skipped_chunks: list = field(default_factory=list)  # unknown ancillary chunk types
    accounting_inputs: tuple = ()  # arguments of _bit_accounting, evaluated on first use of .bits
    _bits: dict | None = None
    render_work: int = 0  # pixels of the Gaussians' bounding squares (spec §8, MAX_RENDER_WORK)
    base: BaseLayer | None = None  # the BASE chunk's grid, when the file has one

    @property
    def bits(self) -> dict:
        """Bit accounting (see _bit_accounting), computed on first use: decoding alone never needs it."""
        if self._bits is None:
            self._bits = _bit_accounting(*self.accounting_inputs)
        return self._bits

    def info(self) -> dict:
        """JSON-friendly summary: header fields, per-attribute bits, bpp."""
        w, h = int(self.header["width"]), int(self.header["height"])
        return {
            "version": f"{self.version[0]}.{self.version[1]}",
            "header": describe_header(self.header),
            "bits": self.bits,
            "bpp": self.bits["total_bits"] / (w * h),
            "chunks": self.chunks,
            "skipped_chunks": self.skipped_chunks,
            "render_work": {"pixels": self.render_work, "limit": max_render_work(w, h)},
            "base": None if self.base is None else {
                "factor": self.base.factor, "grid": list(self.base.samples.shape[:2]),
                "sample_bits": self.base.bits, "bits": self.bits["base"]},
        }


# ----------------------------------------------------------------------------- writing

def make_chunk(ctype: bytes, payload: bytes) -> bytes:
    """One chunk: length | type | payload | CRC-32(type + payload)."""
    if len(ctype) != 4 or not ctype.isalpha() or not ctype.isascii():
        raise ConfigError(f"chunk type {ctype!r} must be 4 ASCII letters")
    if len(payload) > K.MAX_CHUNK_LENGTH:
        raise ConfigError(f"chunk payload of {len(payload)} bytes exceeds MAX_CHUNK_LENGTH {K.MAX_CHUNK_LENGTH}")
    return struct.pack("<I", len(payload)) + ctype + payload + struct.pack("<I", zlib.crc32(ctype + payload))


def build_container(chunks, major: int = K.VERSION_MAJOR, minor: int = K.VERSION_MINOR) -> bytes:
    """Signature, version and the given (type, payload) chunks, in order (no checks on order)."""
    return K.SIGNATURE + bytes([major, minor]) + b"".join(make_chunk(t, p) for t, p in chunks)


def _check_float_values(rows: np.ndarray, error) -> None:
    if rows.size == 0:
        return
    if not np.all(np.isfinite(rows)):
        bad = int(np.argwhere(~np.isfinite(rows))[0][0])
        raise error(f"float32 Gaussian {bad} has a non-finite attribute")
    limits = np.array([K.MAX_ABS_POSITION] * 2 + [K.MAX_ABS_COVARIANCE] * 3 + [K.MAX_ABS_COLOR] * 3)
    over = np.abs(rows.astype(np.float64)) > limits
    if over.any():
        i, j = (int(v) for v in np.argwhere(over)[0])
        raise error(
            f"float32 Gaussian {i}: {K.CHANNEL_NAMES[j]} = {rows[i, j]:g} exceeds the limit {limits[j]:g}"
        )


def encode_payload(gaussians, payload_coding: int = K.PAYLOAD_CODING_ENTROPY_V2,
                   priced_levels: bool = True) -> tuple[bytes, object]:
    """Gaussians -> (GAUS payload, gaussians as they will be parsed: canonical order for quantized).
    ``payload_coding`` (1, 2, or 3 for Gaussians whose b is a correlation) is the entropy
    coding of quantized Gaussians; ``priced_levels``: ``encode_attributes``'s."""
    if isinstance(gaussians, QuantizedGaussians):
        gaussians.check_values(ConfigError)
        if gaussians.count == 0:
            return b"", gaussians
        from gipp_codec.entropy.gaussian_coder import encode_attributes

        payload, q_canon, _ = encode_attributes(gaussians.q, gaussians.bits.per_channel(), gaussians.scales,
                                                gaussians.offsets, coding=payload_coding, priced_levels=priced_levels)
        canon = QuantizedGaussians(gaussians.width, gaussians.height, gaussians.bits, q_canon.astype(np.uint16),
                                   gaussians.scales, gaussians.offsets, gaussians.correlation)
        return payload, canon
    if isinstance(gaussians, FloatGaussians):
        rows = gaussians.rows()
        _check_float_values(rows, ConfigError)
        return rows.astype("<f4").tobytes(), gaussians
    raise ConfigError(f"cannot write {type(gaussians).__name__}; expected QuantizedGaussians or FloatGaussians")


def write_gimg(gaussians: QuantizedGaussians | FloatGaussians, metadata: ImageMetadata | None = None,
               extra_chunks=(), payload_coding: int = K.PAYLOAD_CODING_ENTROPY_V2,
               render_convention: int = K.RENDER_CONVENTION_V2, base: BaseLayer | None = None,
               compact: bool | None = None, priced_levels: bool = True) -> bytes:
    """Serialize Gaussians (+ optional ICC/EXIF, + extra (type, payload) chunks before DONE) to .gimg bytes.

    Quantized Gaussians are stored in canonical order (see ``gipp_codec.entropy``), with
    entropy coding ``payload_coding`` (2, the default, or 1 for readers of version 1.0);
    Gaussians whose channel b holds the correlation (``QuantizedGaussians.correlation``) are
    always written with payload coding 3 (version 1.4), which codes as 2 does.
    ``render_convention`` names how they are to be rendered (spec §7): 2, the default and
    what the encoder trains with, or 1. The file's minor version is the first one that
    defines both its payload coding and its render convention (3 with a ``base`` layer,
    which goes into a BASE chunk before the Gaussians, 5 in attribute mode 2).
    Quantized Gaussians whose grid has a binary16 form are written in attribute mode 2
    (version 1.5: 32 bytes fewer) unless ``compact`` is False; ``compact=True`` requires it
    (``header.header_from_gaussians``). ``priced_levels`` (default True): the histograms'
    levels searched for the fewest bits (``entropy.gaussian_coder.encode_attributes``).
    """
    if isinstance(gaussians, QuantizedGaussians):
        if payload_coding not in K.PAYLOAD_CODINGS_QUANTIZED:
            raise ConfigError(f"payload_coding {payload_coding!r} unknown, expected one of {K.PAYLOAD_CODINGS_QUANTIZED}")
        # coding 3 carries b as a correlation and only it does; the default coding 2 is upgraded
        wrong = (payload_coding == K.PAYLOAD_CODING_ENTROPY_V1 if gaussians.correlation
                 else payload_coding == K.PAYLOAD_CODING_CORRELATION)
        if wrong:
            raise ConfigError(f"payload_coding {payload_coding} cannot carry these Gaussians: coding 3 is for, and "
                              f"only for, Gaussians whose b is a correlation (correlation={gaussians.correlation})")
    if render_convention not in K.RENDER_CONVENTIONS:
        raise ConfigError(f"render_convention {render_convention!r} unknown, expected one of {K.RENDER_CONVENTIONS}")
    header = header_from_gaussians(gaussians, payload_coding, render_convention, compact)
    try:
        for name, limit in (("width", K.MAX_WIDTH), ("height", K.MAX_HEIGHT)):
            if not 1 <= header[name] <= limit:
                raise LimitError(f"{name} {header[name]} outside 1..{limit}")
        if header["width"] * header["height"] > K.MAX_PIXELS:
            raise LimitError(f"{header['width']}x{header['height']} exceeds MAX_PIXELS {K.MAX_PIXELS}")
        if header["gaussian_count"] > K.MAX_GAUSSIANS:
            raise LimitError(f"{header['gaussian_count']} Gaussians exceed MAX_GAUSSIANS {K.MAX_GAUSSIANS}")
        if isinstance(gaussians, QuantizedGaussians):
            gaussians.bits.check(ConfigError)
            # Run the reader's own field checks on the packed header.
            unpack_header(pack_header(header), 0, allow_extra=False)
    except FormatError as exc:
        raise ConfigError(f"cannot write .gimg: {exc}") from None
    payload, _ = encode_payload(gaussians, header["payload_coding"], priced_levels)
    chunks = [(K.CHUNK_HEAD, pack_header(header))]
    if base is not None:
        if grid_shape(header["width"], header["height"], base.factor_log2) != base.samples.shape[:2]:
            raise ConfigError(f"base grid {base.samples.shape[:2]} does not match a {header['width']}x{header['height']} "
                              f"image at factor 2^{base.factor_log2}")
        if base.samples.shape[0] * base.samples.shape[1] > MAX_BASE_CELLS:
            raise ConfigError(f"base grid {base.samples.shape[:2]} exceeds MAX_BASE_CELLS {MAX_BASE_CELLS}")
        chunks.append((K.CHUNK_BASE, encode_base_payload(base)))
    if metadata is not None and metadata.icc_profile:
        chunks.append((K.CHUNK_ICCP, bytes(metadata.icc_profile)))
    if metadata is not None and metadata.exif:
        chunks.append((K.CHUNK_EXIF, bytes(metadata.exif)))
    step = K.MAX_CHUNK_LENGTH
    pieces = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
    chunks += [(K.CHUNK_GAUS, p) for p in pieces]
    chunks += [(bytes(t), bytes(p)) for t, p in extra_chunks]
    chunks.append((K.CHUNK_END, b""))
    minor = max(K.MINOR_OF_PAYLOAD_CODING[header["payload_coding"]], K.MINOR_OF_RENDER_CONVENTION[render_convention],
                K.MINOR_OF_BASE if base is not None else 0, K.MINOR_OF_ATTRIBUTE_MODE[header["attribute_mode"]])
    return build_container(chunks, minor=minor)


# ----------------------------------------------------------------------------- parsing

def _check_signature(data: bytes) -> None:
    head = bytes(data[:len(K.SIGNATURE)])
    if head == K.SIGNATURE:
        return
    if len(head) < len(K.SIGNATURE) and K.SIGNATURE.startswith(head):
        raise TruncatedError(f"file ends after {len(head)} bytes, inside the 8-byte signature")
    hint = ""
    if head[:1] == b"\x09" and head[1:4] == b"GIM":
        hint = " (the high bit of byte 0 was cleared: a 7-bit transfer?)"
    elif head[:5] == b"\x89GIM\n" or b"\r\r" in head or head[:4] == b"\x89GIM" and head[4:5] != b"\r":
        hint = " (line endings were converted: a text-mode transfer?)"
    raise SignatureError(f"not a .gimg file: bytes 0..7 are {head.hex(' ')}, expected {K.SIGNATURE.hex(' ')}{hint}")


def parse_gimg(data: bytes) -> ParsedGimg:
    """Parse and fully validate .gimg bytes (bytes, bytearray or memoryview); raise a
    FormatError subclass on any problem in them, an ArgumentTypeError (a GimgError and a
    TypeError) for anything else."""
    return parse_gimg_with_floats(data)[0]


def parse_gimg_with_floats(data: bytes) -> tuple[ParsedGimg, tuple]:
    """``parse_gimg``, and the Gaussians as the decoder renders them, (means [N, 2], covs
    [N, 3], colors [N, 3]) float32 (``gaussian_floats``), which the render-work check
    computes anyway: a caller that renders the file at once need not dequantize it again.
    They are of the codes as parsed: a caller that changes the parsed codes must compute
    them again."""
    if isinstance(data, (str, os.PathLike)):
        raise ArgumentTypeError(f"expected the bytes of a .gimg file, got a path ({type(data).__name__}); "
                                f"read the file first: open(path, 'rb').read()")
    if isinstance(data, int) or data is None:  # bytes(5) would be five zero bytes
        raise ArgumentTypeError(f"expected the bytes of a .gimg file, got {type(data).__name__}")
    try:
        data = bytes(data)
    except TypeError:  # a float, a dict of strings, an object without the buffer protocol, ...
        raise ArgumentTypeError(f"expected the bytes of a .gimg file, got {type(data).__name__}") from None
    _check_signature(data)
    if len(data) < K.PREAMBLE_SIZE:
        raise TruncatedError(f"file ends at byte {len(data)}, inside the version (bytes 8..9)")
    major, minor = data[8], data[9]
    if major != K.VERSION_MAJOR:
        raise VersionError(f"major version {major} (byte 8) is not supported; this decoder reads version {K.VERSION_MAJOR}")
    pos = K.PREAMBLE_SIZE
    header = None
    gaus_parts: list[bytes] = []
    gaus_offset = None
    gaus_state = "before"  # before -> inside -> after
    metadata = ImageMetadata()
    seen = set()
    chunks, skipped = [], []
    meta_bytes = 0
    base = None
    while True:
        if pos == len(data):
            raise TruncatedError(f"file ends at byte {pos} without a {K.CHUNK_END.decode()} chunk")
        if pos + 8 > len(data):
            raise TruncatedError(f"file ends at byte {len(data)}, inside the chunk header starting at byte {pos}")
        (length,) = struct.unpack_from("<I", data, pos)
        ctype = data[pos + 4:pos + 8]
        if not (ctype.isascii() and ctype.isalpha()):
            raise ChunkError(f"chunk at byte {pos} has type {ctype!r}; expected 4 ASCII letters")
        name = ctype.decode()
        if length > K.MAX_CHUNK_LENGTH:
            raise LimitError(f"chunk {name} at byte {pos} declares {length} bytes, above MAX_CHUNK_LENGTH {K.MAX_CHUNK_LENGTH}")
        end = pos + K.CHUNK_OVERHEAD + length
        if end > len(data):
            raise TruncatedError(f"chunk {name} at byte {pos} needs {end - pos} bytes, the file has {len(data) - pos} left")
        payload = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack_from("<I", data, pos + 8 + length)
        if crc != zlib.crc32(ctype + payload):
            raise ChunkError(f"chunk {name} at byte {pos}: CRC-32 {crc:08x} does not match the computed {zlib.crc32(ctype + payload):08x}")
        chunks.append({"type": name, "offset": pos, "length": length})
        critical = ctype[0:1].isupper()
        if header is None and ctype != K.CHUNK_HEAD:
            raise ChunkError(f"first chunk (byte {pos}) is {name}, expected {K.CHUNK_HEAD.decode()}: missing header")
        if gaus_state == "inside" and ctype != K.CHUNK_GAUS:
            gaus_state = "after"
        if ctype == K.CHUNK_HEAD:
            if header is not None:
                raise ChunkError(f"second {name} chunk at byte {pos}; exactly one is allowed")
            header = unpack_header(payload, pos + 8, allow_extra=minor > K.VERSION_MINOR)
        elif ctype == K.CHUNK_GAUS:
            if gaus_state == "after":
                raise ChunkError(f"{name} chunk at byte {pos} after another chunk type: {name} chunks must be consecutive")
            if gaus_state == "before":
                gaus_offset = pos + 8
            gaus_state = "inside"
            gaus_parts.append(payload)
        elif ctype == K.CHUNK_END:
            if length:
                raise ChunkError(f"{name} chunk at byte {pos} has a {length}-byte payload, expected empty")
            if gaus_state == "before":
                raise ChunkError(f"{name} chunk at byte {pos} but no {K.CHUNK_GAUS.decode()} chunk came before it")
            if end != len(data):
                raise ChunkError(f"{len(data) - end} bytes of trailing data after the {name} chunk (byte {end})")
            break
        elif ctype == K.CHUNK_BASE:
            if base is not None:
                raise ChunkError(f"second {name} chunk at byte {pos}; at most one is allowed")
            if gaus_state != "before":
                raise ChunkError(f"{name} chunk at byte {pos} after the {K.CHUNK_GAUS.decode()} chunks; it must come before them")
            base = decode_base_payload(payload, header["width"], header["height"], pos + 8)
        elif ctype in (K.CHUNK_ICCP, K.CHUNK_EXIF):
            if ctype in seen:
                raise ChunkError(f"second {name} chunk at byte {pos}; at most one is allowed")
            if ctype == K.CHUNK_ICCP:
                metadata.icc_profile = bytes(payload) or None
            else:
                metadata.exif = bytes(payload) or None
            meta_bytes += length
        elif critical:
            raise ChunkError(f"unknown critical chunk {name} at byte {pos}; this decoder cannot decode the file")
        else:
            skipped.append(name)
            meta_bytes += length
        seen.add(ctype)
        pos = end
    gaussians, stream_bits = _decode_payload(b"".join(gaus_parts), header, gaus_offset)
    floats = gaussian_floats(gaussians)
    work = check_render_work_of(floats[0], floats[1], gaussians.width, gaussians.height)
    base_bytes = sum(c["length"] for c in chunks if c["type"] == K.CHUNK_BASE.decode())
    accounting = (len(data), header, stream_bits, sum(len(p) for p in gaus_parts), meta_bytes, base_bytes)
    return ParsedGimg((major, minor), header, gaussians, metadata, chunks, skipped, accounting, render_work=work,
                      base=base), floats


def max_render_work(width: int, height: int) -> int:
    """MAX_RENDER_WORK of a width x height image (spec §8)."""
    return K.MAX_RENDER_WORK_BASE + K.MAX_RENDER_WORK_PER_PIXEL * width * height


def gaussian_floats(g) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(means [N, 2], covs [N, 3], colors [N, 3]) float32 of Gaussians ``g`` as the decoder
    renders them: QuantizedGaussians dequantized, FloatGaussians as they are."""
    if isinstance(g, QuantizedGaussians):
        from gipp_codec.quant.dequant import dequantize

        return dequantize(g)
    return g.means, g.covs, g.colors


def check_render_work(g, error: type = LimitError) -> int:
    """The render work of Gaussians ``g`` (QuantizedGaussians, dequantized as the decoder renders
    them, or FloatGaussians) on their image: ``check_render_work_of``."""
    means, covs, _ = gaussian_floats(g)  # [N, 2], [N, 3] float32
    return check_render_work_of(means, covs, g.width, g.height, error)


def check_render_work_of(means: np.ndarray, covs: np.ndarray, width: int, height: int,
                         error: type = LimitError) -> int:
    """The render work of means [N, 2] and covs [N, 3] (float32) on a width x height grid
    (spec §8: ``render.convention.render_work``, computed by its kernel,
    ``render.numba_kernels.render_work_kernel``); ``error`` when it is above
    ``max_render_work`` of that grid."""
    from gipp_codec.render.numba_kernels import render_work_kernel

    limit = max_render_work(width, height)
    work = int(render_work_kernel(np.ascontiguousarray(means, np.float32), np.ascontiguousarray(covs, np.float32),
                                  int(width), int(height)))
    if work > limit:
        raise error(f"render work {work} (pixels of the Gaussians' bounding squares) is above "
                    f"MAX_RENDER_WORK {limit} for a {width}x{height} image")
    return work


def _decode_payload(payload: bytes, header: dict, offset: int):
    n = int(header["gaussian_count"])
    w, h = int(header["width"]), int(header["height"])
    if header["attribute_mode"] == K.ATTRIBUTE_MODE_FLOAT32:
        if len(payload) != 32 * n:
            raise PayloadError(f"float32 payload at byte {offset} has {len(payload)} bytes, expected 32 * N = {32 * n}")
        rows = np.frombuffer(payload, dtype="<f4").reshape(n, 8).astype(np.float32)
        _check_float_values(rows, PayloadError)
        g = FloatGaussians(w, h, rows[:, 0:2], rows[:, 2:5], rows[:, 5:8])
        return g, None
    bits = channel_bits(header)
    correlation = int(header["payload_coding"]) == K.PAYLOAD_CODING_CORRELATION  # b holds rho (spec §6)
    depths = BitDepths(int(header["bits_position"]), int(header["bits_covariance"]), int(header["bits_color"]))
    if n == 0:
        if payload:
            raise PayloadError(f"payload at byte {offset} has {len(payload)} bytes, expected none for N = 0")
        q = np.zeros((0, 8), np.uint16)
        return QuantizedGaussians(w, h, depths, q, header["scales"], header["offsets"], correlation), {}
    from gipp_codec.entropy.gaussian_coder import decode_attributes

    q, report = decode_attributes(payload, n, bits, header["scales"], header["offsets"], offset,
                                  coding=int(header["payload_coding"]))
    return QuantizedGaussians(w, h, depths, q.astype(np.uint16), header["scales"], header["offsets"],
                              correlation), report


ATTRIBUTES = ("position", "a", "b", "c", "red", "green", "blue")
GROUPS = {"position": ("position",), "covariance": ("a", "b", "c"), "color": ("red", "green", "blue")}


def _bit_accounting(file_bytes: int, header: dict, stream_bits, payload_bytes: int, meta_bytes: int,
                    base_bytes: int = 0) -> dict:
    n = int(header["gaussian_count"])
    total = 8 * file_bytes
    attrs = {}
    if stream_bits is None:  # float32 mode
        attrs = {"position": 64.0 * n, **{a: 32.0 * n for a in ATTRIBUTES[1:]}}
    else:
        for a in ATTRIBUTES:
            sb = stream_bits.get(a)
            attrs[a] = float(sb.tokens + sb.raw + sb.side) if sb is not None else 0.0
    attrs = {k: round(v, 3) for k, v in attrs.items()}
    coding_overhead = 8 * payload_bytes - sum(attrs.values())  # payload prefix, ANS flush, padding: the parts add up
    container = total - 8 * payload_bytes - 8 * meta_bytes - 8 * base_bytes
    out = {
        "total_bits": total,
        "gaussians": n,
        "attributes": attrs,
        "groups": {g: round(sum(attrs[a] for a in members), 3) for g, members in GROUPS.items()},
        "coding_overhead": round(coding_overhead, 3),
        "container": container,
        "metadata": 8 * meta_bytes,
        "base": 8 * base_bytes,
        "bits_per_gaussian": round(total / n, 4) if n else None,
        "payload_bits_per_gaussian": round(8 * payload_bytes / n, 4) if n else None,
    }
    if stream_bits:
        out["streams"] = {
            a: {"tokens": round(sb.tokens, 3), "raw": sb.raw, "side": sb.side, **sb.config}
            for a, sb in stream_bits.items() if not a.startswith("_")
        }
    return out
