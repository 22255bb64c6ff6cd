#!/usr/bin/env python3
"""Regenerate the conformance vectors (explicit request only; tests never run this).

    python conformance/generate.py --force

Valid vectors: synthetic Gaussian sets written by gipp_codec, each with its expected
PNG rendered by ``reference_decoder.render_float64`` (a binary64 dense evaluation of
the spec's rendering equation, not the fast kernel) from the *independent* reference
decoder's own parse, a tolerance, and the SHA-256 of the decoded integers (quantized:
uint16 little-endian [N, 8] rows in canonical order; float32 mode: the float32 rows).
Invalid vectors are named by what is wrong and list the error class gipp_codec raises.
"""

import argparse
import hashlib
import json
import math
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import reference_decoder as ref  # noqa: E402

from gipp_codec import errors  # noqa: E402
from gipp_codec.format import parse_gimg, write_gimg  # noqa: E402
from gipp_codec.format.base_layer import BaseLayer, encode_base_payload, grid_shape  # noqa: E402
from gipp_codec.format.container import build_container as _build_container  # noqa: E402
from gipp_codec.format import constants as K  # noqa: E402
from gipp_codec.format.header import header_from_gaussians, pack_header  # noqa: E402
from gipp_codec.format.model import BitDepths, QuantizedGaussians  # noqa: E402
from gipp_codec.format.synthetic import synthetic_correlation, synthetic_float, synthetic_quantized  # noqa: E402
from gipp_codec.imageio import ImageMetadata, decode_image_bytes, encode_png  # noqa: E402

RMS_TOLERANCE = 0.5


def build_container(chunks, minor: int = 0) -> bytes:
    """A container at minor version 0 unless told otherwise: the hand-built vectors hold
    payload coding 1 (or none), which version 1.0 defines."""
    return _build_container(chunks, minor=minor)


def attributes_sha256(parsed) -> str:
    """SHA-256 of the decoded integers (canonical order) or float32 rows (file order)."""
    g = parsed.gaussians
    if hasattr(g, "q"):
        from gipp_codec.entropy.gaussian_coder import canonical_order

        q = np.asarray(g.q, dtype=np.int64)
        rows = q[canonical_order(q)].astype("<u2")
    else:
        rows = g.rows().astype("<f4")
    return hashlib.sha256(np.ascontiguousarray(rows).tobytes()).hexdigest()


def max_abs_tolerance(rows: np.ndarray) -> int:
    """One 3-sigma boundary flip of the strongest colour (exp(-4.5) * |col| * 255), at least 2 levels."""
    peak = float(np.abs(rows[:, 5:8]).max()) if len(rows) else 0.0
    return max(2, math.ceil(255.0 * math.exp(-4.5) * peak) + 1)


def _split_chunks(data: bytes):
    """(type, payload) list of a container."""
    pos, out = K.PREAMBLE_SIZE, []
    while pos < len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        out.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += K.CHUNK_OVERHEAD + length
    return out


def synthetic_base(width: int, height: int, factor_log2: int, bits: int, seed: int) -> BaseLayer:
    """A base layer of random samples (so that the Rice codes take every length)."""
    gh, gw = grid_shape(width, height, factor_log2)
    rng = np.random.default_rng(seed)
    return BaseLayer(factor_log2, bits, rng.integers(0, 1 << bits, (gh, gw, 3)).astype(np.uint8))


def valid_vectors():
    """(name, description, bytes)."""
    v = []

    def q(name, desc, n, w, h, bits=BitDepths(), seed=0, coding=1, conv=1, **kw):
        v.append((name, desc, write_gimg(synthetic_quantized(n, w, h, bits, seed), payload_coding=coding,
                                         render_convention=conv, **kw)))

    q("tiny_1x1", "1x1 image, one Gaussian", 1, 1, 1, seed=1)
    q("odd_7x3", "7x3 image, 5 Gaussians", 5, 7, 3, seed=2)
    q("small_64x48_n300", "64x48, 300 Gaussians at 12/10/6", 300, 64, 48, seed=3)
    q("odd_513x257_n3000", "513x257, 3000 Gaussians", 3000, 513, 257, seed=4)
    q("kodak_768x512_n5000", "Kodak size, 5000 Gaussians at 12/10/6", 5000, 768, 512, seed=5)
    q("bits_16_16_16", "every bit depth 16", 400, 128, 96, BitDepths(16, 16, 16), seed=6)
    q("bits_1_1_1", "every bit depth 1", 50, 40, 30, BitDepths(1, 1, 1), seed=7)
    q("bits_8_8_4", "bit depths 8/8/4", 500, 100, 80, BitDepths(8, 8, 4), seed=8)
    q("with_metadata", "iccp and exif chunks (must not change decoding)", 100, 48, 32, seed=9,
      metadata=ImageMetadata(icc_profile=b"not really an ICC profile", exif=b"Exif\x00\x00MM\x00*"))
    q("unknown_ancillary_chunk", "an unknown ancillary chunk 'zzTx' that must be skipped", 100, 48, 32, seed=10,
      extra_chunks=[(b"zzTx", b"skip me")])
    # Payload coding 2 (version 1.1): the derived context sources (cells around a position, a + c).
    q("coding2_small_64x48_n300", "payload coding 2, 64x48, 300 Gaussians", 300, 64, 48, seed=3, coding=2)
    q("coding2_odd_513x257_n3000", "payload coding 2, 513x257, 3000 Gaussians (cells and a+c contexts)",
      3000, 513, 257, seed=4, coding=2)
    q("coding2_kodak_768x512_n5000", "payload coding 2, Kodak size, 5000 Gaussians at 12/10/6",
      5000, 768, 512, seed=5, coding=2)
    q("coding2_bits_8_8_4", "payload coding 2, bit depths 8/8/4", 500, 100, 80, BitDepths(8, 8, 4), seed=8, coding=2)
    q("coding2_bits_1_1_1", "payload coding 2, every bit depth 1", 50, 40, 30, BitDepths(1, 1, 1), seed=7, coding=2)
    # Render convention 2 (version 1.2): exp(-9/2) subtracted inside the cut-off.
    q("taper_tiny_1x1", "render convention 2, 1x1 image, one Gaussian", 1, 1, 1, seed=1, coding=2, conv=2)
    q("taper_odd_7x3", "render convention 2, 7x3 image, 5 Gaussians", 5, 7, 3, seed=2, coding=2, conv=2)
    q("taper_small_64x48_n300", "render convention 2, 64x48, 300 Gaussians", 300, 64, 48, seed=3, coding=2, conv=2)
    q("taper_kodak_768x512_n5000", "render convention 2, Kodak size, 5000 Gaussians at 12/7/6",
      5000, 768, 512, BitDepths(12, 7, 6), seed=5, coding=2, conv=2)
    q("taper_coding1_bits_8_8_4", "render convention 2 with payload coding 1, bit depths 8/8/4",
      500, 100, 80, BitDepths(8, 8, 4), seed=8, coding=1, conv=2)
    # The base layer (version 1.3): a BASE chunk added under the Gaussians.
    for name, desc, n, w, h, f, b, seed in (
            ("base_tiny_1x1", "a base layer (F = 8, 8-bit samples), 1x1 image, one Gaussian", 1, 1, 1, 3, 8, 30),
            ("base_odd_7x3", "a base layer (F = 8, 6-bit samples), 7x3 image, 5 Gaussians", 5, 7, 3, 3, 6, 31),
            ("base_odd_513x257_n3000", "a base layer (F = 64, 6-bit samples: a 5x9 grid cut by the edges), "
             "513x257, 3000 Gaussians", 3000, 513, 257, 6, 6, 32),
            ("base_kodak_768x512_n5000", "a base layer (F = 64, 6-bit samples), Kodak size, 5000 Gaussians at 12/7/6",
             5000, 768, 512, 6, 6, 33),
            ("base_1bit_f1024_64x48", "a base layer of one 1-bit sample a channel (F = 1024), 64x48, 100 Gaussians",
             100, 64, 48, 10, 1, 34)):
        bits = BitDepths(12, 7, 6) if n == 5000 else BitDepths()
        v.append((name, desc, write_gimg(synthetic_quantized(n, w, h, bits, seed), payload_coding=2,
                                         render_convention=2, base=synthetic_base(w, h, f, b, seed))))
    # A grey image as gimg's encoder writes one (fit.gray): red and blue equal to green, in the
    # codes, the grids and the base, so their streams predict from green with zero residuals.
    grey = synthetic_quantized(300, 64, 48, BitDepths(11, 7, 6), seed=36)
    q = np.array(grey.q, copy=True)
    q[:, 5], q[:, 7] = q[:, 6], q[:, 6]
    scales, offsets = np.array(grey.scales, copy=True), np.array(grey.offsets, copy=True)
    for a in (scales, offsets):
        a[5], a[7] = a[6], a[6]
    base = synthetic_base(64, 48, 4, 6, 36)
    base.samples[:, :, 0], base.samples[:, :, 2] = base.samples[:, :, 1], base.samples[:, :, 1]
    v.append(("grey_tied_64x48_n300", "a grey image: red and blue equal to green in codes, grids and base "
              "(one-token residual streams), 64x48, 300 Gaussians at 11/7/6",
              write_gimg(QuantizedGaussians(64, 48, grey.bits, q, scales, offsets), payload_coding=2,
                         render_convention=2, base=base)))
    v.append(("contexts_from_positions_64x48_n400",
              "payload coding 2 with x and y as context sources (a's spread depends on x, c's on y)",
              _position_context_file()))
    v.append(("base_zero_gaussians", "N = 0 with a base layer (F = 16): the image is the base alone",
              write_gimg(synthetic_quantized(0, 40, 24, seed=35), payload_coding=2, render_convention=2,
                         base=synthetic_base(40, 24, 4, 5, 35))))
    # Payload coding 3 (version 1.4): channel b holds the correlation rho, b = rho sqrt(a c).
    for name, desc, n, w, h, bits, seed, reach, f in (
            ("correlation_odd_7x3", "payload coding 3 (b as a correlation), 7x3 image, 5 Gaussians",
             5, 7, 3, BitDepths(), 40, 0.95, None),
            ("correlation_small_64x48_n300", "payload coding 3, 64x48, 300 Gaussians at 12/7/6, rho in +-0.95",
             300, 64, 48, BitDepths(12, 7, 6), 41, 0.95, None),
            ("correlation_steep_100x80_n500", "payload coding 3, rho up to +-0.999 (long thin Gaussians), "
             "bit depths 8/8/4", 500, 100, 80, BitDepths(8, 8, 4), 42, 0.999, None),
            ("correlation_base_kodak_768x512_n5000", "payload coding 3 with a base layer (F = 64, 6-bit samples), "
             "Kodak size, 5000 Gaussians at 11/7/6", 5000, 768, 512, BitDepths(11, 7, 6), 43, 0.95, 6)):
        base = None if f is None else synthetic_base(w, h, f, 6, seed)
        v.append((name, desc, write_gimg(synthetic_correlation(n, w, h, bits, seed, reach), render_convention=2,
                                         base=base)))
    # Attribute mode 2 (version 1.5): the grid as binary16 scales and offsets in steps.
    for name, desc, g, coding, f, seed in (
            ("compact_grid_tiny_1x1", "attribute mode 2 (binary16 grid), 1x1 image, one Gaussian",
             _tiny_compact(), 2, None, 60),
            ("compact_grid_small_64x48_n300", "attribute mode 2, payload coding 2, 64x48, 300 Gaussians at 12/10/6",
             synthetic_quantized(300, 64, 48, seed=61), 2, None, 61),
            ("compact_grid_coding1_bits_16_16_16", "attribute mode 2, payload coding 1, every bit depth 16",
             synthetic_quantized(400, 128, 96, BitDepths(16, 16, 16), seed=62), 1, None, 62),
            ("compact_grid_correlation_base_kodak_768x512_n5000", "attribute mode 2, payload coding 3 with a base "
             "layer (F = 64, 6-bit samples), Kodak size, 5000 Gaussians at 11/7/6",
             synthetic_correlation(5000, 768, 512, BitDepths(11, 7, 6), 63, 0.95), 3, 6, 63)):
        base = None if f is None else synthetic_base(g.width, g.height, f, 6, seed)
        v.append((name, desc, write_gimg(_compact(g), payload_coding=coding, render_convention=2, base=base,
                                         compact=True)))
    v.append(("float32_mode", "lossless float32 attributes, 200 Gaussians",
              write_gimg(synthetic_float(200, 96, 64, seed=11), render_convention=1)))
    v.append(("taper_float32_mode", "render convention 2, lossless float32 attributes, 200 Gaussians",
              write_gimg(synthetic_float(200, 96, 64, seed=11), render_convention=2)))
    empty = synthetic_quantized(0, 16, 16, seed=12)
    v.append(("zero_gaussians", "N = 0: a black image", write_gimg(empty, payload_coding=1, render_convention=1)))
    # The same payload split over three consecutive GAUS chunks.
    chunks = _split_chunks(write_gimg(synthetic_quantized(400, 80, 60, seed=13), payload_coding=1,
                                      render_convention=1))
    gaus = b"".join(p for t, p in chunks if t == K.CHUNK_GAUS)
    third = len(gaus) // 3
    split = [c for c in chunks if c[0] == K.CHUNK_HEAD]
    split += [(K.CHUNK_GAUS, gaus[:third]), (K.CHUNK_GAUS, gaus[third:2 * third]), (K.CHUNK_GAUS, gaus[2 * third:])]
    split += [(K.CHUNK_END, b"")]
    v.append(("gaus_split_in_three", "payload split over three consecutive GAUS chunks", build_container(split)))
    # A newer minor version with 4 extra header bytes and an unknown ancillary chunk.
    chunks = _split_chunks(write_gimg(synthetic_quantized(200, 60, 40, seed=14), payload_coding=1,
                                      render_convention=1))
    newer = [(t, p + b"\x01\x02\x03\x04" if t == K.CHUNK_HEAD else p) for t, p in chunks]
    newer.insert(1, (b"newF", b"a future ancillary chunk"))
    v.append(("newer_minor_version", "minor 7: extra HEAD bytes and a new ancillary chunk are ignored",
              build_container(newer, minor=7)))
    return v


def invalid_vectors():
    """(name, description, bytes)."""
    g = synthetic_quantized(50, 32, 24, seed=20)
    base = write_gimg(g, payload_coding=1, render_convention=1)
    chunks = _split_chunks(base)
    head = header_from_gaussians(g, payload_coding=1, render_convention=1)
    gaus = b"".join(p for t, p in chunks if t == K.CHUNK_GAUS)
    out = []

    def add(name, desc, data):
        out.append((name, desc, data))

    def with_header(**changes):
        h = dict(head)
        for k, v in changes.items():
            h[k] = v
        return build_container([(K.CHUNK_HEAD, pack_header(h)), (K.CHUNK_GAUS, gaus), (K.CHUNK_END, b"")])

    def raw_header(payload: bytes, gaus_payload: bytes = gaus):
        return build_container([(K.CHUNK_HEAD, payload), (K.CHUNK_GAUS, gaus_payload), (K.CHUNK_END, b"")])

    add("bad_signature", "first byte changed", b"\x88" + base[1:])
    add("signature_crlf_to_lf", "text-mode transfer turned CR LF into LF", base.replace(b"\r\n", b"\n", 1))
    add("signature_7bit", "7-bit transfer cleared the high bit of byte 0", bytes([base[0] & 0x7F]) + base[1:])
    add("not_a_gimg_png", "a PNG file", encode_png(np.zeros((2, 2, 3), np.uint8)))
    add("empty_file", "zero bytes", b"")
    add("truncated_in_signature", "4 bytes", base[:4])
    add("truncated_in_version", "9 bytes", base[:9])
    add("truncated_in_chunk_header", "ends inside the first chunk's length/type", base[:14])
    add("truncated_in_header", "ends inside the HEAD payload", base[:40])
    add("truncated_in_payload", "ends inside the GAUS payload", base[:len(base) // 2])
    add("truncated_in_crc", "ends inside the DONE chunk's CRC", base[:-2])
    add("missing_end_chunk", "no DONE chunk", base[:-K.CHUNK_OVERHEAD])
    add("bad_crc_header", "one CRC bit flipped in HEAD", _flip_crc(base, 0))
    add("bad_crc_payload", "one payload byte changed in GAUS", _flip_payload_byte(base, 1))
    add("unknown_critical_chunk", "a critical chunk 'ZZTX' this decoder does not know",
        build_container(chunks[:1] + [(b"ZZTX", b"x")] + chunks[1:]))
    add("bad_chunk_type", "chunk type with digits", build_container(chunks[:1]) + struct.pack("<I", 0) + b"12ab"
        + struct.pack("<I", zlib.crc32(b"12ab")) + build_container(chunks[1:])[K.PREAMBLE_SIZE:])
    add("chunk_length_over_limit", "a chunk declaring 2^31 bytes",
        base[:K.PREAMBLE_SIZE] + struct.pack("<I", 1 << 31) + b"HEAD" + base[K.PREAMBLE_SIZE + 8:])
    add("unsupported_major_version", "major version 2", base[:8] + b"\x02" + base[9:])
    add("major_version_zero", "major version 0", base[:8] + b"\x00" + base[9:])
    add("missing_header", "GAUS comes first", build_container(chunks[1:]))
    add("duplicate_header", "two HEAD chunks", build_container(chunks[:1] + chunks))
    add("missing_gaus", "HEAD then DONE", build_container([chunks[0], (K.CHUNK_END, b"")]))
    add("gaus_not_consecutive", "an ancillary chunk between two GAUS chunks",
        build_container([chunks[0], (K.CHUNK_GAUS, gaus[:10]), (b"exif", b"E"), (K.CHUNK_GAUS, gaus[10:]), (K.CHUNK_END, b"")]))
    add("duplicate_exif", "two exif chunks", build_container([chunks[0], (b"exif", b"a"), (b"exif", b"b")] + chunks[1:]))
    add("end_chunk_with_payload", "DONE with a 1-byte payload", build_container(chunks[:-1] + [(K.CHUNK_END, b"x")]))
    add("trailing_data", "bytes after DONE", base + b"junk")
    add("zero_width", "width 0", with_header(width=0))
    add("huge_width", "width 70000 > MAX_WIDTH", with_header(width=70000))
    add("huge_dimensions", "60000 x 60000 > MAX_PIXELS", with_header(width=60000, height=60000))
    add("huge_gaussian_count", "N = 2^30 > MAX_GAUSSIANS", with_header(gaussian_count=1 << 30))
    add("render_work_too_large", "20000 identical Gaussians, each covering the 256 x 256 image: "
        "render work 20000 * 65536 above MAX_RENDER_WORK 2^30 + 256 * 65536", _render_work_bomb())
    add("bad_channels", "channels = 4", with_header(channels=4))
    add("unknown_attribute_mode", "attribute_mode = 7", with_header(attribute_mode=7))
    add("unknown_render_convention", "render_convention = 3", with_header(render_convention=3))
    add("bad_payload_coding", "payload_coding = 5", with_header(payload_coding=5))
    add("correlation_range_over_one", "payload_coding = 3 (b as a correlation) with b's dequantized range "
        "beyond [-1, 1]", with_header(payload_coding=3))
    add("bad_bit_depth_zero", "bits_position = 0", with_header(bits_position=0))
    add("bad_bit_depth_17", "bits_color = 17", with_header(bits_color=17))
    sc = head["scales"].copy()
    add("nan_scale", "scale of channel x is NaN", with_header(scales=np.r_[np.nan, sc[1:]]))
    add("zero_scale", "scale of channel a is 0", with_header(scales=np.r_[sc[:2], 0.0, sc[3:]]))
    add("negative_scale", "scale of channel red is -1", with_header(scales=np.r_[sc[:5], -1.0, sc[6:]]))
    add("inf_offset", "offset of channel y is +inf", with_header(offsets=np.r_[head["offsets"][0], np.inf, head["offsets"][2:]]))
    add("log_variance_out_of_range", "offset of channel a is 100 (log-variance > 32)",
        with_header(offsets=np.r_[head["offsets"][:2], 100.0, head["offsets"][3:]]))
    add("header_too_short", "HEAD payload cut to 10 bytes", raw_header(pack_header(head)[:10]))
    add("header_too_long", "HEAD payload with 3 extra bytes at minor version 0", raw_header(pack_header(head) + b"\0\0\0"))
    rng = np.random.default_rng(21)
    add("payload_garbage", "GAUS payload replaced by random bytes",
        raw_header(pack_header(head), bytes(rng.integers(0, 256, len(gaus), dtype=np.uint8))))
    add("payload_truncated", "GAUS payload cut in half (CRC valid)", raw_header(pack_header(head), gaus[:len(gaus) // 2]))
    add("payload_count_mismatch", "header N one larger than the coded set", with_header(gaussian_count=51))
    side_len, n_words = struct.unpack_from("<II", gaus, 0)
    zero_tail = bytearray(gaus)
    struct.pack_into("<I", zero_tail, 8 + side_len + 4 * (n_words - 1), 0)
    add("ans_last_word_zero", "the ANS stream's last word is 0", raw_header(pack_header(head), bytes(zero_tail)))
    add("payload_lengths_overflow", "side_length larger than the payload",
        raw_header(pack_header(head), struct.pack("<I", 1 << 30) + gaus[4:]))
    add("payload_for_zero_gaussians", "N = 0 with a non-empty payload", with_header(gaussian_count=0))
    for name, desc, cfg in _bad_coding2_configs():
        add(name, desc, _coding2_with_a_config(g, cfg))
    bl = synthetic_base(32, 24, 3, 6, 23)  # a 3x4 grid
    good = encode_base_payload(bl)
    with_base = [chunks[0], (K.CHUNK_BASE, good)] + chunks[1:]
    add("base_after_gaus", "the BASE chunk after the GAUS chunk", build_container(chunks[:2] + [(K.CHUNK_BASE, good)]
                                                                               + chunks[2:], minor=3))
    add("base_duplicate", "two BASE chunks", build_container(with_base[:2] + with_base[1:], minor=3))
    for name, desc, payload in (
            ("base_factor_too_small", "BASE factor_log2 2 (F = 4 < 8)", bytes([2]) + good[1:]),
            ("base_factor_too_large", "BASE factor_log2 11 (F = 2048 > 1024)", bytes([11]) + good[1:]),
            ("base_sample_bits_zero", "BASE sample_bits 0", good[:1] + bytes([0]) + good[2:]),
            ("base_sample_bits_9", "BASE sample_bits 9", good[:1] + bytes([9]) + good[2:]),
            ("base_rice_k_8", "BASE rice_k 8", good[:2] + bytes([8]) + good[3:]),
            ("base_too_short", "BASE payload of 2 bytes", good[:2]),
            ("base_truncated", "BASE samples cut short (CRC valid)", good[:len(good) // 2]),
            ("base_trailing_bytes", "BASE samples followed by a non-zero byte", good + b"\xff"),
            ("base_sample_out_of_range", "BASE first sample decodes to 2 at 1 bit (prediction 1, residual +1)",
             bytes([3, 1, 0, 0b01000000]) + bytes(5)),
            ("base_rice_prefix_too_long", "BASE Rice prefix of 200 zero bits at 6-bit samples, k = 0",
             bytes([3, 6, 0]) + bytes(25) + b"\xff")):
        add(name, desc, build_container([chunks[0], (K.CHUNK_BASE, payload)] + chunks[1:], minor=3))
    big = dict(head, width=4096, height=4096)  # F = 8: 512 x 512 blocks
    add("base_grid_too_large", "BASE grid of 512x512 blocks (a 4096x4096 image at F = 8) above MAX_BASE_CELLS 2^16",
        build_container([(K.CHUNK_HEAD, pack_header(big)), (K.CHUNK_BASE, bytes([3, 6, 0]) + bytes(64))] + chunks[1:],
                        minor=3))
    fg = synthetic_float(4, 8, 8, seed=22)
    fchunks = _split_chunks(write_gimg(fg, render_convention=1))
    rows = fg.rows().copy()
    rows[2, 5] = np.nan
    add("float_payload_nan", "float32 mode with a NaN colour",
        build_container([fchunks[0], (K.CHUNK_GAUS, rows.astype("<f4").tobytes()), (K.CHUNK_END, b"")]))
    add("float_payload_wrong_length", "float32 payload 4 bytes short",
        build_container([fchunks[0], (K.CHUNK_GAUS, fchunks[1][1][:-4]), (K.CHUNK_END, b"")]))
    out += _compact_invalid_vectors(g)
    return out


def _compact(g: QuantizedGaussians) -> QuantizedGaussians:
    """g on the nearest grid that attribute mode 2 can hold (``compact_grid.round_to_compact``)."""
    import dataclasses

    from gipp_codec.format.compact_grid import round_to_compact

    scales, offsets = round_to_compact(g.scales, g.offsets)
    return dataclasses.replace(g, scales=scales, offsets=offsets)


def _tiny_compact() -> QuantizedGaussians:
    """One Gaussian at the centre of a 1x1 image on grids of powers of two (binary16 exactly)."""
    q = np.array([[2048, 2048, 600, 530, 610, 40, 20, 60]], np.uint16)  # [1, 8]
    scales = np.array([2.0 ** -12] * 2 + [2.0 ** -7, 2.0 ** -10, 2.0 ** -7] + [2.0 ** -6] * 3, np.float32)
    offsets = np.array([0.0, 0.0, -700 * 2.0 ** -7, -512 * 2.0 ** -10, -700 * 2.0 ** -7] + [-16 * 2.0 ** -6] * 3,
                       np.float32)
    return QuantizedGaussians(1, 1, BitDepths(), q, scales, offsets)


def _compact_invalid_vectors(g: QuantizedGaussians):
    """(name, description, bytes) of invalid vectors in attribute mode 2 (version 1.5)."""
    c = _compact(g)
    head = header_from_gaussians(c, payload_coding=1, render_convention=1, compact=True)
    gaus = b"".join(p for t, p in _split_chunks(write_gimg(c, payload_coding=1, render_convention=1, compact=True))
                    if t == K.CHUNK_GAUS)

    def with_header(**changes):
        return build_container([(K.CHUNK_HEAD, pack_header(dict(head, **changes))), (K.CHUNK_GAUS, gaus),
                                (K.CHUNK_END, b"")], minor=5)

    sc, st = head["scales16"].astype(np.float32), head["offset_steps"].astype(np.float32)
    return [
        ("compact_nan_scale", "attribute mode 2: binary16 scale of channel x is NaN",
         with_header(scales16=np.r_[np.nan, sc[1:]])),
        ("compact_zero_scale", "attribute mode 2: binary16 scale of channel c is 0",
         with_header(scales16=np.r_[sc[:4], 0.0, sc[5:]])),
        ("compact_negative_scale", "attribute mode 2: binary16 scale of channel green is -1",
         with_header(scales16=np.r_[sc[:6], -1.0, sc[7:]])),
        ("compact_inf_offset_steps", "attribute mode 2: binary16 offset of channel blue is +inf steps",
         with_header(offset_steps=np.r_[st[:7], np.inf])),
        ("compact_log_variance_out_of_range", "attribute mode 2: channel a's grid starts at 60000 steps of "
         "its scale (log-variance far above 32)", with_header(offset_steps=np.r_[st[:2], 60000.0, st[3:]])),
        ("compact_header_too_long", "attribute mode 2 with a HEAD payload of mode 0's length (83 bytes: 32 "
         "trailing zero bytes) at minor version 5",
         build_container([(K.CHUNK_HEAD, pack_header(head) + bytes(32)), (K.CHUNK_GAUS, gaus), (K.CHUNK_END, b"")],
                         minor=5)),
        ("compact_header_too_short", "attribute mode 2 with its HEAD payload cut to 40 bytes",
         build_container([(K.CHUNK_HEAD, pack_header(head)[:40]), (K.CHUNK_GAUS, gaus), (K.CHUNK_END, b"")],
                         minor=5)),
    ]


def _position_context_file() -> bytes:
    """A coding-2 file whose streams a and c take contexts from x and y (spec §5.5 allows any
    decoded channel; gimg's encoder tries x and y only with ``POSITION_CONTEXTS``): a is one
    value left of the median x and random right of it, c likewise above and below the median y."""
    import dataclasses

    from gipp_codec.entropy import gaussian_coder

    g = synthetic_quantized(400, 64, 48, BitDepths(12, 7, 6), seed=50)
    q = g.q.astype(np.int64)
    rng = np.random.default_rng(51)
    q[:, K.CH_A] = np.where(q[:, K.CH_X] < np.median(q[:, K.CH_X]), 60, rng.integers(0, 128, len(q)))
    q[:, K.CH_C] = np.where(q[:, K.CH_Y] < np.median(q[:, K.CH_Y]), 70, rng.integers(0, 128, len(q)))
    chosen = []
    original = gaussian_coder._choose_config

    def choose(channel, *args):
        cfg = original(channel, *args)
        chosen.append(cfg)
        return cfg

    gaussian_coder.POSITION_CONTEXTS, gaussian_coder._choose_config = True, choose
    try:
        data = write_gimg(dataclasses.replace(g, q=q.astype(g.q.dtype)), payload_coding=2, render_convention=2)
    finally:
        gaussian_coder.POSITION_CONTEXTS, gaussian_coder._choose_config = False, original
    sources = {cfg.channel: cfg.ctx_source for cfg in chosen}
    assert sources[K.CH_A] == K.CH_X and sources[K.CH_C] == K.CH_Y, sources  # the point of the vector
    return data


def _render_work_bomb() -> bytes:
    """A small valid-looking file whose render work is above MAX_RENDER_WORK (spec §8)."""
    q = np.tile(np.array([2048, 2048, 0, 0, 0, 1, 1, 1], np.uint16), (20000, 1))  # [N, 8], all alike
    scales = np.array([256 / 4095, 256 / 4095, 0.01, 1.0, 0.01, 0.01, 0.01, 0.01], np.float32)
    offsets = np.array([0, 0, 8.0, 0, 8.0, 0, 0, 0], np.float32)  # a = c = e^8: r = 164 pixels
    return write_gimg(QuantizedGaussians(256, 256, BitDepths(12, 10, 6), q, scales, offsets), render_convention=1)


def _bad_coding2_configs():
    """(name, description, stream a's configuration) of the payload-coding-2 invalid vectors."""
    from gipp_codec.entropy.streams import CTX_AREA, CTX_CELLS, StreamConfig

    a = K.CH_A
    return [
        ("coding2_unknown_context_source", "payload coding 2: stream a's context source is 12",
         StreamConfig(a, ctx_source=12, thresholds=(3,))),
        ("coding2_cell_shift_too_large", "payload coding 2: cells context with g = 13 > bits_position 12",
         StreamConfig(a, ctx_source=CTX_CELLS, ctx_param=13, thresholds=(3,))),
        ("coding2_cell_threshold_over_n", "payload coding 2: cells threshold 51 with N = 50",
         StreamConfig(a, ctx_source=CTX_CELLS, ctx_param=5, thresholds=(2, 51))),
        ("coding2_area_before_c", "payload coding 2: stream a uses the a+c context before c is decoded",
         StreamConfig(a, ctx_source=CTX_AREA, thresholds=(100,))),
    ]


def _coding2_with_a_config(g, bad_cfg) -> bytes:
    """A coding-2 file of g whose stream a has configuration bad_cfg (written as is; the
    rest of the payload is what the encoder would write, which a decoder never reaches)."""
    from gipp_codec.entropy import gaussian_coder

    original = gaussian_coder._write_config

    def write(w, cfg, coding):
        original(w, bad_cfg if cfg.channel == K.CH_A else cfg, coding)

    gaussian_coder._write_config = write
    try:
        return write_gimg(g, payload_coding=2, render_convention=1)
    finally:
        gaussian_coder._write_config = original


def _flip_crc(data: bytes, chunk_index: int) -> bytes:
    pos = K.PREAMBLE_SIZE
    for _ in range(chunk_index):
        pos += K.CHUNK_OVERHEAD + struct.unpack_from("<I", data, pos)[0]
    length = struct.unpack_from("<I", data, pos)[0]
    b = bytearray(data)
    b[pos + 8 + length] ^= 0x01
    return bytes(b)


def _flip_payload_byte(data: bytes, chunk_index: int) -> bytes:
    pos = K.PREAMBLE_SIZE
    for _ in range(chunk_index):
        pos += K.CHUNK_OVERHEAD + struct.unpack_from("<I", data, pos)[0]
    b = bytearray(data)
    b[pos + 8 + 5] ^= 0x40
    return bytes(b)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--force", action="store_true", help="overwrite the existing vectors (required)")
    ap.add_argument("--out", default=str(HERE), help="output folder (default: conformance/)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if (out / "manifest.json").exists() and not args.force:
        print("conformance vectors exist; pass --force to regenerate them", file=sys.stderr)
        return 2
    old_png = {}  # expected images as committed: kept byte for byte when the pixels are unchanged
    for sub in ("valid", "invalid"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for old in (out / sub).iterdir():
            if old.suffix == ".png":
                old_png[old.name] = old.read_bytes()
            old.unlink()
    manifest = {"format": "gimg", "spec": "format_spec/gimg.md", "version": "1.5",
                "tolerance_rule": "max_abs: one 3-sigma cut-off flip of the strongest colour "
                                  "(ceil(255*exp(-4.5)*max|colour|)+1, at least 2); rms: %g 8-bit levels" % RMS_TOLERANCE,
                "valid": [], "invalid": []}
    for name, desc, data in valid_vectors():
        parsed = parse_gimg(data)
        indep = ref.parse(data)
        sha = attributes_sha256(parsed)
        if "q" in indep and indep["n"]:
            q_ind = np.array(indep["q"], dtype=np.int64).reshape(-1, 8)
            assert np.array_equal(q_ind, np.asarray(parsed.gaussians.q, np.int64)), name
        image = ref.render_float64(indep["rows"], indep["height"], indep["width"], indep["convention"])
        if indep["base"] is not None:
            image = image + ref.base_image(indep["base"], indep["height"], indep["width"])
        image = ref.to_uint8(image)
        (out / "valid" / f"{name}.gimg").write_bytes(data)
        png = old_png.get(f"{name}.png")
        if png is None or not np.array_equal(decode_image_bytes(png)[0], image):
            png = encode_png(image)
        (out / "valid" / f"{name}.png").write_bytes(png)
        manifest["valid"].append({
            "name": name, "description": desc,
            "input": f"valid/{name}.gimg", "expected": f"valid/{name}.png",
            "width": indep["width"], "height": indep["height"], "gaussians": indep["n"],
            "attribute_mode": "float32" if indep["mode"] == 1 else "quantized",
            "max_abs": max_abs_tolerance(indep["rows"]), "rms": RMS_TOLERANCE,
            "attributes_sha256": sha,
        })
    for name, desc, data in invalid_vectors():
        try:
            parse_gimg(data)
        except errors.FormatError as exc:
            cls, msg = type(exc).__name__, str(exc)
        else:
            raise SystemExit(f"invalid vector {name} parses without error")
        try:
            ref.parse(data)
        except ref.DecodeError:
            pass
        else:
            raise SystemExit(f"invalid vector {name} is accepted by the reference decoder")
        (out / "invalid" / f"{name}.gimg").write_bytes(data)
        manifest["invalid"].append({"name": name, "description": desc, "input": f"invalid/{name}.gimg",
                                    "error": cls, "message": msg})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(manifest['valid'])} valid and {len(manifest['invalid'])} invalid vectors, {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
