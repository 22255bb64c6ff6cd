"""The HEAD chunk: one field table drives packing, unpacking, validation and ``gimg info``.

Fields are little-endian and packed without padding, in table order. A field whose
``modes`` is a tuple is present only in those attribute modes: the bit depths in both
quantized modes, the grid as binary32 scales and offsets in mode 0 and as binary16 scales
and offsets in steps in mode 2 (1.5, ``compact_grid``).
"""

import math
import struct
from dataclasses import dataclass

import numpy as np

from gipp_codec.errors import ConfigError, HeaderError, LimitError
from gipp_codec.format.compact_grid import compact_form, expand
from gipp_codec.format.constants import (
    ATTRIBUTE_MODE_COMPACT,
    ATTRIBUTE_MODE_FLOAT32,
    ATTRIBUTE_MODE_QUANTIZED,
    ATTRIBUTE_MODES,
    ATTRIBUTE_MODES_QUANTIZED,
    CHANNEL_GROUP,
    CHANNEL_LIMITS,
    CHANNEL_LIMITS_CORRELATION,
    CHANNEL_NAMES,
    CHANNELS_RGB,
    LOG_CHANNELS,
    MAX_BITS,
    MAX_GAUSSIANS,
    MAX_HEIGHT,
    MAX_PIXELS,
    MAX_WIDTH,
    MIN_BITS,
    PAYLOAD_CODING_CORRELATION,
    PAYLOAD_CODING_ENTROPY_V2,
    PAYLOAD_CODING_RAW,
    PAYLOAD_CODINGS_QUANTIZED,
    RENDER_CONVENTION_V2,
    RENDER_CONVENTIONS,
)


@dataclass(frozen=True)
class Field:
    """One header field: name, struct element code, element count, the attribute modes it
    belongs to, and its description (format_spec/gimg.md's header table)."""

    name: str
    fmt: str  # struct code of one element (little-endian)
    count: int
    modes: tuple | None  # None: always present; else the attribute modes it is present in
    doc: str

    @property
    def layout(self) -> struct.Struct:
        """The compiled little-endian layout of the whole field."""
        return _STRUCTS.setdefault((self.fmt, self.count), struct.Struct("<" + self.fmt * self.count))


_STRUCTS: dict = {}

HEADER_FIELDS = (
    Field("width", "I", 1, None, "image width in pixels, 1..MAX_WIDTH"),
    Field("height", "I", 1, None, "image height in pixels, 1..MAX_HEIGHT"),
    Field("channels", "B", 1, None, "colour channels; must be 3 (RGB)"),
    Field("gaussian_count", "I", 1, None, "N, number of Gaussians, 0..MAX_GAUSSIANS"),
    Field("attribute_mode", "B", 1, None, "0 = quantized, 1 = float32, 2 = quantized with a binary16 grid (1.5)"),
    Field("render_convention", "B", 1, None, "1 or 2 = render convention 1 or 2 (spec §7)"),
    Field("payload_coding", "B", 1, None, "quantized: 1 or 2 = entropy coding 1 or 2, 3 = coding 2 with b as a correlation; float32: 0 = raw"),
    Field("bits_position", "B", 1, ATTRIBUTE_MODES_QUANTIZED, "bits of x and y, 1..16"),
    Field("bits_covariance", "B", 1, ATTRIBUTE_MODES_QUANTIZED, "bits of a, b and c, 1..16"),
    Field("bits_color", "B", 1, ATTRIBUTE_MODES_QUANTIZED, "bits of red, green and blue, 1..16"),
    Field("scales", "f", 8, (ATTRIBUTE_MODE_QUANTIZED,), "float32 scale per channel, finite and > 0"),
    Field("offsets", "f", 8, (ATTRIBUTE_MODE_QUANTIZED,), "float32 offset per channel, finite"),
    Field("scales16", "e", 8, (ATTRIBUTE_MODE_COMPACT,), "binary16 scale per channel, finite and > 0"),
    Field("offset_steps", "e", 8, (ATTRIBUTE_MODE_COMPACT,), "binary16 offset per channel in steps, finite"),
)


def _present(f: Field, mode: int) -> bool:
    return f.modes is None or mode in f.modes


def header_size(mode: int) -> int:
    """Bytes of a header in attribute mode ``mode``."""
    return sum(struct.calcsize("<" + f.fmt) * f.count for f in HEADER_FIELDS if _present(f, mode))


def pack_header(values: dict) -> bytes:
    """Header dict -> HEAD payload bytes (values must already be valid)."""
    out = bytearray()
    for f in HEADER_FIELDS:
        if not _present(f, values["attribute_mode"]):
            continue
        v = values[f.name]
        items = list(np.asarray(v, dtype=np.float32).tolist()) if f.count > 1 else [v]  # binary16 values exactly
        out += struct.pack("<" + f.fmt * f.count, *items)
    return bytes(out)


def unpack_header(payload: bytes, offset: int, allow_extra: bool) -> dict:
    """HEAD payload -> dict of fields, validated. ``offset`` is the payload's byte offset in the file."""
    values: dict = {}
    pos = 0
    for f in HEADER_FIELDS:
        if f.modes is not None and "attribute_mode" in values and not _present(f, values["attribute_mode"]):
            continue
        layout = f.layout
        size = layout.size
        if pos + size > len(payload):
            raise HeaderError(
                f"HEAD chunk too short: field {f.name} needs bytes {offset + pos}..{offset + pos + size - 1}, "
                f"payload has {len(payload)} bytes"
            )
        items = layout.unpack_from(payload, pos)
        values[f.name] = np.array(items, dtype=np.float32) if f.count > 1 else items[0]
        _validate_field(f, values, offset + pos, items)
        pos += size
    if pos != len(payload) and not allow_extra:
        raise HeaderError(
            f"HEAD chunk at byte {offset} has {len(payload)} bytes, expected {pos} for this version"
        )
    if values["attribute_mode"] == ATTRIBUTE_MODE_COMPACT:  # the binary32 grid it stands for, exactly
        values["scales"], values["offsets"] = expand(values["scales16"], values["offset_steps"])
    validate_header(values, offset)
    return values


def _validate_field(f: Field, v: dict, at: int, items: tuple) -> None:
    """Check field f of v (read at byte ``at``); items: its elements as Python numbers."""
    x = v[f.name]
    if f.name == "width" and not 1 <= x <= MAX_WIDTH:
        raise (LimitError if x else HeaderError)(f"width {x} at byte {at} outside 1..{MAX_WIDTH}")
    if f.name == "height" and not 1 <= x <= MAX_HEIGHT:
        raise (LimitError if x else HeaderError)(f"height {x} at byte {at} outside 1..{MAX_HEIGHT}")
    if f.name == "height" and v["width"] * x > MAX_PIXELS:
        raise LimitError(f"{v['width']}x{x} = {v['width'] * x} pixels exceeds the limit {MAX_PIXELS}")
    if f.name == "channels" and x != CHANNELS_RGB:
        raise HeaderError(f"channels = {x} at byte {at}, expected {CHANNELS_RGB}")
    if f.name == "gaussian_count" and x > MAX_GAUSSIANS:
        raise LimitError(f"gaussian_count {x} at byte {at} exceeds the limit {MAX_GAUSSIANS}")
    if f.name == "attribute_mode" and x not in ATTRIBUTE_MODES:
        raise HeaderError(f"attribute_mode {x} at byte {at} unknown, expected 0 (quantized), 1 (float32) "
                          f"or 2 (quantized, binary16 grid)")
    if f.name == "render_convention" and x not in RENDER_CONVENTIONS:
        want = " or ".join(str(c) for c in RENDER_CONVENTIONS)
        raise HeaderError(f"render_convention {x} at byte {at} unknown, expected {want}")
    if f.name == "payload_coding":
        quantized = v["attribute_mode"] in ATTRIBUTE_MODES_QUANTIZED
        allowed = PAYLOAD_CODINGS_QUANTIZED if quantized else (PAYLOAD_CODING_RAW,)
        if x not in allowed:
            want = " or ".join(str(c) for c in allowed)
            raise HeaderError(f"payload_coding {x} at byte {at} unknown for this attribute_mode, expected {want}")
    if f.name.startswith("bits_") and not MIN_BITS <= x <= MAX_BITS:
        raise HeaderError(f"{f.name} = {x} at byte {at}, expected {MIN_BITS}..{MAX_BITS}")
    if f.name in ("scales", "scales16"):
        width = f.layout.size // f.count
        for j, s in enumerate(items):
            if not (math.isfinite(s) and s > 0):
                raise HeaderError(f"scale of channel {CHANNEL_NAMES[j]} is {s!r} (byte {at + width * j}), "
                                  f"expected finite and > 0")
    if f.name in ("offsets", "offset_steps"):
        width = f.layout.size // f.count
        for j, o in enumerate(items):
            if not math.isfinite(o):
                raise HeaderError(f"offset of channel {CHANNEL_NAMES[j]} is {o!r} (byte {at + width * j}), expected finite")


def channel_bits(values: dict) -> tuple[int, ...]:
    """Bit depth of each channel from a quantized header."""
    return tuple(int(values["bits_" + group]) for group in CHANNEL_GROUP)


def validate_header(values: dict, at: int = 0) -> None:
    """Cross-field checks: every dequantized value of every channel stays within its range."""
    if values["attribute_mode"] not in ATTRIBUTE_MODES_QUANTIZED:
        return
    bits = channel_bits(values)
    s = values["scales"].astype(np.float64)
    o = values["offsets"].astype(np.float64)
    limits = CHANNEL_LIMITS_CORRELATION if values["payload_coding"] == PAYLOAD_CODING_CORRELATION else CHANNEL_LIMITS
    for j in range(8):
        with np.errstate(over="ignore"):  # a binary32 overflow is an infinite hi, refused below
            lo = float(np.float32(o[j]))
            hi = float(np.float32(((1 << bits[j]) - 1) * s[j] + o[j]))
        limit = limits[j]
        if not (math.isfinite(hi) and -limit <= lo and hi <= limit):
            what = "log-variance" if j in LOG_CHANNELS else ("correlation" if limits[j] != CHANNEL_LIMITS[j] else "value")
            raise HeaderError(
                f"channel {CHANNEL_NAMES[j]}: dequantized {what} range [{lo:g}, {hi:g}] exceeds [-{limit:g}, {limit:g}]"
            )


def header_from_gaussians(g, payload_coding: int = PAYLOAD_CODING_ENTROPY_V2,
                          render_convention: int = RENDER_CONVENTION_V2, compact: bool | None = None) -> dict:
    """Header values for QuantizedGaussians or FloatGaussians (``payload_coding``: the entropy
    coding of quantized Gaussians, 1 or 2, and always 3 for Gaussians whose channel b holds
    the correlation (``QuantizedGaussians.correlation``); float32 mode is always raw;
    ``render_convention``: the spec §7 convention they are rendered in, 1 or 2).

    Quantized Gaussians get attribute mode 2 (their grid in binary16, 32 bytes fewer) when
    their scales and offsets have that form (``compact_grid.compact_form``) and ``compact``
    is None or True, else mode 0; ``compact=True`` for a grid without the form is an error."""
    from gipp_codec.format.model import QuantizedGaussians

    v = {
        "width": int(g.width),
        "height": int(g.height),
        "channels": CHANNELS_RGB,
        "gaussian_count": int(g.count),
        "render_convention": int(render_convention),
    }
    if isinstance(g, QuantizedGaussians):
        v.update(
            attribute_mode=ATTRIBUTE_MODE_QUANTIZED,
            payload_coding=PAYLOAD_CODING_CORRELATION if g.correlation else int(payload_coding),
            bits_position=int(g.bits.position),
            bits_covariance=int(g.bits.covariance),
            bits_color=int(g.bits.color),
            scales=g.scales.astype(np.float32),
            offsets=g.offsets.astype(np.float32),
        )
        form = None if compact is False else compact_form(v["scales"], v["offsets"])
        if compact and form is None:
            raise ConfigError("these scales and offsets have no binary16 form (attribute mode 2): compact=True "
                              "needs grids that compact_grid.round_to_compact returns unchanged")
        if form is not None:
            v.update(attribute_mode=ATTRIBUTE_MODE_COMPACT, scales16=form[0], offset_steps=form[1])
    else:
        v.update(attribute_mode=ATTRIBUTE_MODE_FLOAT32, payload_coding=PAYLOAD_CODING_RAW)
    return v


def describe_header(values: dict) -> dict:
    """JSON-friendly view of the header for ``gimg info``, driven by the field table."""
    out = {}
    for f in HEADER_FIELDS:
        if f.name not in values:
            continue
        v = values[f.name]
        if f.count > 1:
            out[f.name] = {CHANNEL_NAMES[j]: float(x) for j, x in enumerate(v)}
        elif f.name == "attribute_mode":
            out[f.name] = ATTRIBUTE_MODES.get(v, v)
        else:
            out[f.name] = int(v)
    return out
