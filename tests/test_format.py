"""The .gimg container and header: exact round trips, validation, truncation, corruption."""

import dataclasses
import struct
from pathlib import Path

import numpy as np
import pytest

from gipp_codec import errors
from gipp_codec.errors import ConfigError
from gipp_codec.entropy.gaussian_coder import canonical_order
from gipp_codec.format import BitDepths, FloatGaussians, QuantizedGaussians, build_container, parse_gimg, write_gimg
from gipp_codec.format import constants as K
from gipp_codec.format.compact_grid import compact_form, round_to_compact
from gipp_codec.format.header import HEADER_FIELDS, describe_header, header_from_gaussians, header_size, pack_header, unpack_header
from gipp_codec.format.synthetic import synthetic_float, synthetic_quantized
from gipp_codec.imageio import ImageMetadata
from gipp_codec.quant.dequant import dequantize, dequantize_rows


@pytest.fixture(scope="module")
def small_q():
    return synthetic_quantized(40, 24, 16, seed=5)


@pytest.fixture(scope="module")
def small_file(small_q):
    return write_gimg(small_q)


def _canon(q):
    q = np.asarray(q, np.int64)
    return q[canonical_order(q)]


@pytest.mark.parametrize("bits", [BitDepths(), BitDepths(1, 1, 1), BitDepths(16, 16, 16), BitDepths(8, 3, 5)])
@pytest.mark.parametrize("n", [1, 2, 300])
def test_quantized_roundtrip_exact(bits, n):
    g = synthetic_quantized(n, 50, 30, bits, seed=n)
    parsed = parse_gimg(write_gimg(g))
    p = parsed.gaussians
    assert isinstance(p, QuantizedGaussians)
    assert (p.width, p.height, p.bits) == (50, 30, bits)
    np.testing.assert_array_equal(np.asarray(p.q, np.int64), _canon(g.q))
    np.testing.assert_array_equal(p.scales, g.scales)
    np.testing.assert_array_equal(p.offsets, g.offsets)


def test_decoder_returns_canonical_order(small_q, small_file):
    q = np.asarray(parse_gimg(small_file).gaussians.q, np.int64)
    np.testing.assert_array_equal(q, _canon(q))
    # shuffling the input does not change the file
    perm = np.random.default_rng(0).permutation(small_q.count)
    shuffled = QuantizedGaussians(small_q.width, small_q.height, small_q.bits, small_q.q[perm], small_q.scales, small_q.offsets)
    assert write_gimg(shuffled) == small_file


def test_float_roundtrip_exact():
    g = synthetic_float(123, 40, 30, seed=1)
    p = parse_gimg(write_gimg(g)).gaussians
    assert isinstance(p, FloatGaussians)
    np.testing.assert_array_equal(p.rows(), g.rows())
    assert p.rows().tobytes() == g.rows().tobytes()


def test_zero_gaussians_roundtrip():
    for g in (synthetic_quantized(0, 5, 4), FloatGaussians(5, 4)):
        p = parse_gimg(write_gimg(g))
        assert p.gaussians.count == 0 and p.header["width"] == 5


def test_metadata_and_unknown_ancillary(small_q):
    meta = ImageMetadata(icc_profile=b"icc-bytes", exif=b"Exif\0\0data")
    data = write_gimg(small_q, meta, extra_chunks=[(b"abcd", b"ignored")])
    p = parse_gimg(data)
    assert p.metadata == meta
    assert p.skipped_chunks == ["abcd"]
    assert p.bits["metadata"] == 8 * (len(meta.icc_profile) + len(meta.exif) + len(b"ignored"))


def test_multiple_gaus_chunks(monkeypatch):
    g = synthetic_quantized(500, 64, 64, seed=2)
    monkeypatch.setattr(K, "MAX_CHUNK_LENGTH", 256)
    data = write_gimg(g)
    p = parse_gimg(data)
    assert sum(c["type"] == "GAUS" for c in p.chunks) > 3
    np.testing.assert_array_equal(np.asarray(p.gaussians.q, np.int64), _canon(g.q))


def test_bit_accounting_adds_up(small_file):
    b = parse_gimg(small_file).bits
    parts = sum(b["attributes"].values()) + b["coding_overhead"] + b["container"] + b["metadata"]
    assert parts == pytest.approx(b["total_bits"], abs=1e-6)
    assert b["total_bits"] == 8 * len(small_file)


@pytest.mark.parametrize("compact", [False, True])
def test_header_table_roundtrip(small_q, compact):
    if compact:
        s, o = round_to_compact(small_q.scales, small_q.offsets)
        small_q = dataclasses.replace(small_q, scales=s, offsets=o)
    h = header_from_gaussians(small_q, compact=compact)
    mode = K.ATTRIBUTE_MODE_COMPACT if compact else K.ATTRIBUTE_MODE_QUANTIZED
    payload = pack_header(h)
    assert h["attribute_mode"] == mode and len(payload) == header_size(mode) == (51 if compact else 83)
    back = unpack_header(payload, 0, allow_extra=False)
    for f in HEADER_FIELDS:
        if f.modes is None or mode in f.modes:
            np.testing.assert_array_equal(np.asarray(back[f.name]), np.asarray(h[f.name]))
    np.testing.assert_array_equal(back["scales"], small_q.scales)  # mode 2 stands for exactly the same grid
    np.testing.assert_array_equal(back["offsets"], small_q.offsets)
    d = describe_header(back)
    assert d["attribute_mode"] == ("quantized16" if compact else "quantized") and set(d["scales"]) == set(K.CHANNEL_NAMES)
    assert header_size(K.ATTRIBUTE_MODE_FLOAT32) == 16


def test_compact_grid_chosen_only_when_exact(small_q):
    """A grid with a binary16 form is written in attribute mode 2 (32 bytes fewer, minor 5) and
    parses to the same integers and grid; any other grid stays in mode 0."""
    assert compact_form(small_q.scales, small_q.offsets) is None  # the synthetic grid is binary32
    full = write_gimg(small_q)
    assert full[9] < 5 and parse_gimg(full).header["attribute_mode"] == K.ATTRIBUTE_MODE_QUANTIZED
    s, o = round_to_compact(small_q.scales, small_q.offsets)
    assert np.all(np.abs(s / small_q.scales - 1) <= 2.0 ** -11)  # binary16's half step
    g16 = dataclasses.replace(small_q, scales=s, offsets=o)
    short, forced = write_gimg(g16), write_gimg(g16, compact=False)
    assert short[9] == 5 and forced[9] < 5 and len(forced) - len(short) == 32
    p, pf = parse_gimg(short), parse_gimg(forced)
    assert p.header["attribute_mode"] == K.ATTRIBUTE_MODE_COMPACT
    np.testing.assert_array_equal(p.gaussians.q, pf.gaussians.q)
    np.testing.assert_array_equal(p.gaussians.scales, pf.gaussians.scales)
    np.testing.assert_array_equal(p.gaussians.offsets, pf.gaussians.offsets)
    with pytest.raises(ConfigError, match="binary16"):
        write_gimg(small_q, compact=True)


def test_round_to_compact_keeps_zero_on_grid_and_what_it_cannot_round():
    scales = np.array([0.25, 1e-9, 3.0, 0.0123456, 1.0, 0.1, 0.1, 0.1], np.float32)
    offsets = np.array([0.0, 0.0, -1e6, np.float32(-37 * np.float32(0.0123456)), 0.5, 0, 0, 0], np.float32)
    s, o = round_to_compact(scales, offsets)
    assert s[1] == scales[1] and o[1] == offsets[1]  # below binary16's range: kept
    assert s[2] == scales[2] and o[2] == offsets[2]  # -333333 steps: beyond binary16, kept
    assert o[3] / s[3] == -37.0  # 0 stays on b's grid at step 37
    assert s[0] == 0.25 and o[4] == 0.5  # already binary16: unchanged


def test_signature_catches_transfer_damage():
    assert len(K.SIGNATURE) == 8 and K.SIGNATURE[0] & 0x80
    assert b"\r\n" in K.SIGNATURE and K.SIGNATURE.endswith(b"\n") and b"\x1a" in K.SIGNATURE


def test_truncation_at_every_offset_is_truncated_error(small_file):
    for k in range(len(small_file)):
        with pytest.raises(errors.TruncatedError):
            parse_gimg(small_file[:k])


def test_every_single_byte_corruption_is_a_format_error(small_file):
    for i in range(len(small_file)):
        bad = bytearray(small_file)
        bad[i] ^= 0x10
        try:
            parse_gimg(bytes(bad))
        except errors.FormatError:
            continue
        assert i == 9, f"corrupting byte {i} was accepted"  # byte 9 is the minor version


def test_newer_minor_version_is_decoded(small_file):
    newer = small_file[:9] + b"\x05" + small_file[10:]
    assert parse_gimg(newer).version == (1, 5)


def test_dequantize_formula(small_q):
    q = small_q.q.astype(np.float64)
    value = (q * small_q.scales.astype(np.float64) + small_q.offsets.astype(np.float64)).astype(np.float32)
    means, covs, colors = dequantize(small_q)
    np.testing.assert_array_equal(means, value[:, 0:2])
    np.testing.assert_array_equal(covs[:, 1], value[:, 3])
    np.testing.assert_array_equal(covs[:, 0], np.exp(value[:, 2].astype(np.float64)).astype(np.float32))
    np.testing.assert_array_equal(colors, value[:, 5:8])
    assert means.dtype == covs.dtype == colors.dtype == np.float32


def test_decoder_dequantizer_equals_the_numpy_statement():
    """dequantize (numba, the decoder's) and dequantize_rows (numpy) agree bit for bit,
    over the full 16-bit range and scales that put a and c across their log domain."""
    rng = np.random.default_rng(7)
    q = rng.integers(0, 1 << 16, size=(20000, 8)).astype(np.uint16)
    scales = (rng.random(8) * 1e-2 + 1e-5).astype(np.float32)
    offsets = (rng.random(8) * 40 - 20).astype(np.float32)
    scales[[2, 4]], offsets[[2, 4]] = 60.0 / 65535, -30.0
    g = QuantizedGaussians(24, 16, BitDepths(16, 16, 16), q, scales, offsets)
    got = np.concatenate(dequantize(g), axis=1)  # [N, 8]
    np.testing.assert_array_equal(got.view(np.uint32), dequantize_rows(q, scales, offsets).view(np.uint32))


def test_dequantize_matches_training_quantizer(small_q):
    lsq = pytest.importorskip("gipp_codec.quant.lsq")
    if not hasattr(lsq, "dequantize_reference"):
        pytest.skip("lsq.dequantize_reference not available")
    ref = lsq.dequantize_reference(small_q.q, small_q.scales, small_q.offsets)
    np.testing.assert_array_equal(dequantize_rows(small_q.q, small_q.scales, small_q.offsets), ref)


def test_writer_rejects_invalid_input(small_q):
    bad_q = small_q.q.copy().astype(np.int64)
    bad_q[0, 5] = 64  # 6-bit colour
    with pytest.raises(errors.ConfigError):
        write_gimg(QuantizedGaussians(24, 16, small_q.bits, bad_q, small_q.scales, small_q.offsets))
    with pytest.raises(errors.ConfigError):
        write_gimg(QuantizedGaussians(24, 16, small_q.bits, small_q.q, np.r_[np.nan, small_q.scales[1:]], small_q.offsets))
    with pytest.raises(errors.ConfigError):
        write_gimg(QuantizedGaussians(70000, 16, small_q.bits, small_q.q, small_q.scales, small_q.offsets))
    with pytest.raises(errors.ConfigError):
        write_gimg(QuantizedGaussians(24, 16, BitDepths(0, 10, 6), small_q.q, small_q.scales, small_q.offsets))
    with pytest.raises(errors.ConfigError):
        write_gimg(FloatGaussians(4, 4, [[0, 0]], [[1, 0, np.inf]], [[0, 0, 0]]))


def test_limits_checked_before_allocation():
    # A header declaring the maximum N with a tiny payload fails on the payload, quickly.
    g = synthetic_float(1, 4, 4)
    h = header_from_gaussians(g)
    h["gaussian_count"] = K.MAX_GAUSSIANS
    data = build_container([(K.CHUNK_HEAD, pack_header(h)), (K.CHUNK_GAUS, b"\0" * 32), (K.CHUNK_END, b"")])
    with pytest.raises(errors.PayloadError):
        parse_gimg(data)
    huge_len = K.SIGNATURE + b"\x01\x00" + struct.pack("<I", 0xFFFFFFFF) + b"HEAD"
    with pytest.raises(errors.LimitError):
        parse_gimg(huge_len)


def test_float_gaussians_within_limits_keeps_them_writable_and_valid():
    """A fit whose Gaussian grew past MAX_ABS_COVARIANCE can still be written: the covariance
    is scaled into the limit with its correlation kept; the others are unchanged."""
    means = np.array([[3.0, 4.0], [5.0, 6.0]], np.float32)
    covs = np.array([[2.0, 0.5, 1.0], [4.0 * K.MAX_ABS_COVARIANCE, 0.9 * 2.0 * K.MAX_ABS_COVARIANCE, K.MAX_ABS_COVARIANCE]],
                    np.float32)
    colors = np.array([[0.1, 0.2, 0.3], [0.01, 0.02, 0.03]], np.float32)
    g = FloatGaussians(8, 8, means, covs, colors)
    with pytest.raises(errors.ConfigError):
        write_gimg(g)
    fixed = g.within_limits()
    parsed = parse_gimg(write_gimg(fixed)).gaussians
    assert np.array_equal(parsed.covs[0], covs[0]) and np.array_equal(parsed.means, means)
    a, b, c = (float(v) for v in parsed.covs[1])
    assert max(a, c) <= K.MAX_ABS_COVARIANCE and a * c - b * b > 0
    assert abs(b / np.sqrt(a * c) - 0.9) < 1e-3  # correlation kept


def test_payload_codings_set_the_minor_version_and_recode_losslessly(tmp_path):
    """Coding 1 files are version 1.0, coding 2 files 1.1 (in render convention 1; any file
    of convention 2 is 1.2); tools/recode.py moves a file between them keeping the integers,
    scales, offsets, ICC/EXIF and render convention, and coding 2 is the smaller on a
    structured set."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import recode

    g = synthetic_quantized(2000, 300, 200, seed=31)
    meta = ImageMetadata(icc_profile=b"icc bytes", exif=b"Exif\x00\x00MM")
    v1 = write_gimg(g, meta, payload_coding=1, render_convention=1)
    assert parse_gimg(v1).version == (1, 0) and parse_gimg(v1).header["payload_coding"] == 1
    v2, row = recode.recode(v1, 2)
    p2 = parse_gimg(v2)
    assert p2.version == (1, 1) and p2.header["payload_coding"] == 2
    assert p2.metadata.icc_profile == meta.icc_profile and p2.metadata.exif == meta.exif
    assert row["bits_per_gaussian_after"] < row["bits_per_gaussian_before"]
    back, _ = recode.recode(v2, 1)
    assert back == v1
    assert write_gimg(g, meta, render_convention=1) == v2  # the writer's default is coding 2
    for coding in (1, 2):  # ... and render convention 2, which makes the file 1.2, kept by recode
        t = write_gimg(g, meta, payload_coding=coding)
        assert parse_gimg(t).version == (1, 2) and parse_gimg(t).header["render_convention"] == 2
        moved, _ = recode.recode(t, 3 - coding)
        assert parse_gimg(moved).version == (1, 2) and parse_gimg(moved).header["render_convention"] == 2
    with pytest.raises(errors.ConfigError, match="render_convention 3"):
        write_gimg(g, render_convention=3)
    with pytest.raises(errors.ConfigError, match="payload_coding 3"):
        write_gimg(g, payload_coding=3)
    src = tmp_path / "in.gimg"
    src.write_bytes(v1)
    assert recode.main([str(src), "--coding", "2", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "in.gimg").read_bytes() == v2
    assert src.read_bytes() == v1  # the input is not touched


def _bomb(n: int, side: int, a_log: float) -> bytes:
    """n identical Gaussians at the centre of a side x side image, a = c = exp(a_log)."""
    q = np.tile(np.array([2048, 2048, 0, 0, 0, 1, 1, 1], np.uint16), (n, 1))  # [N, 8]
    scales = np.array([side / 4095, side / 4095, 0.01, 1.0, 0.01, 0.01, 0.01, 0.01], np.float32)
    offsets = np.array([0, 0, a_log, 0, a_log, 0, 0, 0], np.float32)
    return write_gimg(QuantizedGaussians(side, side, BitDepths(12, 10, 6), q, scales, offsets))


def test_a_small_file_cannot_ask_for_hours_of_rendering():
    """Identical image-sized Gaussians code to a few bytes each; above MAX_RENDER_WORK (spec
    §8) the file is refused at parse time, below it it parses."""
    side = 64
    limit = K.MAX_RENDER_WORK_BASE + K.MAX_RENDER_WORK_PER_PIXEL * side * side
    n_over = limit // (side * side) + 1  # each Gaussian's bounding square covers the image
    data = _bomb(n_over, side, 8.0)
    assert len(data) < 1000
    with pytest.raises(errors.LimitError, match="render work"):
        parse_gimg(data)
    assert parse_gimg(_bomb(n_over - 1, side, 8.0)).header["gaussian_count"] == n_over - 1
    assert parse_gimg(_bomb(n_over, side, -2.0)).header["gaussian_count"] == n_over  # tiny Gaussians


def test_recode_keeps_a_binary16_grid_or_writes_it_as_binary32(tmp_path):
    """tools/recode.py keeps a file's attribute mode 2 (1.5), and ``--binary32-grid`` writes the
    same grid in mode 0, 32 bytes longer, for older decoders; the integers and grid are equal."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import recode

    g = synthetic_quantized(500, 100, 80, seed=32)
    s, o = round_to_compact(g.scales, g.offsets)
    short = write_gimg(dataclasses.replace(g, scales=s, offsets=o))
    kept, row = recode.recode(short, 2)
    assert kept == short and row["identical"]
    wide, _ = recode.recode(short, 2, binary32_grid=True)
    p, pw = parse_gimg(short), parse_gimg(wide)
    assert p.version == (1, 5) and pw.version == (1, 2) and len(wide) == len(short) + 32
    assert pw.header["attribute_mode"] == K.ATTRIBUTE_MODE_QUANTIZED
    np.testing.assert_array_equal(pw.gaussians.q, p.gaussians.q)
    np.testing.assert_array_equal(pw.gaussians.offsets, p.gaussians.offsets)
    src = tmp_path / "in.gimg"
    src.write_bytes(short)
    assert recode.main([str(src), "--binary32-grid", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "in.gimg").read_bytes() == wide


def test_files_are_written_with_priced_histogram_levels():
    """write_gimg searches the histograms' levels for fewer bits by default; the file holds
    the same integers as one written with the counts' nearest levels (what the encoder's
    rate hook prices), and is no larger."""
    for n, seed in ((300, 5), (40, 2), (2000, 9)):
        g = synthetic_quantized(n, 96, 64, BitDepths(11, 7, 6), seed=seed)
        priced, nearest = write_gimg(g), write_gimg(g, priced_levels=False)
        assert len(priced) <= len(nearest)
        a, b = parse_gimg(priced), parse_gimg(nearest)
        assert np.array_equal(a.gaussians.q, b.gaussians.q)
    assert len(priced) < len(nearest)  # 2000 Gaussians: some histogram pays for a flatter run
