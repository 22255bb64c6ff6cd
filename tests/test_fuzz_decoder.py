"""``tools/fuzz_decoder.py``: mutated files decode or raise a GimgError, through the API and the CLI."""

import json
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from fuzz_decoder import (  # noqa: E402
    MUTATIONS,
    PNG,
    WHOLE_FILE_MUTATIONS,
    classify,
    cli_check,
    describe_case,
    gimg_check,
    image_check,
    make_case,
    mutate,
    sample_images,
    split_chunks,
)

from gipp_codec.errors import PayloadError  # noqa: E402

VALID = sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "conformance" / "valid").glob("*.gimg"))


def _crcs_hold(data: bytes, preamble: int = 10, order: str = "<") -> bool:
    pos = preamble
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(order + "I", data, pos)
        body = data[pos + 4:pos + 8 + length]
        if struct.unpack_from(order + "I", data, pos + 8 + length)[0] != zlib.crc32(body):
            return False
        pos += 12 + length
    return pos == len(data)


def test_cases_are_reproducible_and_payload_mutations_keep_the_chunk_layer_valid():
    kinds = set()
    for i in range(200):
        data, name, kind = make_case(VALID, 3, i)
        kinds.add(kind)
        assert make_case(VALID, 3, i) == (data, name, kind)
        assert name == Path(VALID[i % len(VALID)]).name
        if kind not in ("raw", "cut"):
            assert _crcs_hold(data), (i, kind)  # lengths and CRC-32s fixed: the parsers behind them are reached
    assert kinds == set(MUTATIONS)
    source = Path(VALID[0]).read_bytes()
    assert split_chunks(source)[1][0][0] == b"HEAD"
    assert any(make_case(VALID, 3, i)[0] != make_case(VALID, 4, i)[0] for i in range(5))  # the seed matters


def test_classify_names_a_rejection_and_counts_anything_else_as_a_bug():
    good = np.zeros((2, 3, 3), np.uint8)

    class Opened:  # open_gimg's stand-in: renders a region of ``image``
        def __init__(self, image):
            self.image = image

        def render(self, crop):
            x, y, w, h = crop
            return self.image[y:y + h, x:x + w]

    check = gimg_check(lambda d: {"header": {"width": 3, "height": 2}}, lambda d: Opened(good))
    assert classify(b"", lambda d: good, check) == ("decoded", "-")
    other = gimg_check(lambda d: {"header": {"width": 3, "height": 2}}, lambda d: Opened(good + 1))
    assert classify(b"", lambda d: good, other)[1].startswith("the region")  # a region unlike the whole decode

    def reject(_):
        raise PayloadError("bad")

    def crash(_):
        raise IndexError("index 7 is out of bounds")

    assert classify(b"", reject, check) == ("rejected", "PayloadError")
    assert classify(b"", crash, check) == ("bug", "IndexError: index 7 is out of bounds")
    assert classify(b"", lambda d: good[:1], check)[0] == "bug"  # wrong size
    assert classify(b"", lambda d: good.astype(np.float32), check)[0] == "bug"
    assert classify(b"", lambda d: good, gimg_check(crash, Opened))[0] == "bug"  # read_info fails after a decode
    assert classify(b"", lambda d: (good, None), image_check) == ("decoded", "-")
    assert classify(b"", lambda d: (good[:, :, :2], None), image_check)[0] == "bug"  # not three channels
    assert classify(b"", lambda d: (good[:0], None), image_check)[0] == "bug"  # empty


def test_fuzzed_files_decode_or_raise_a_gimg_error(tmp_path):
    import fuzz_decoder

    out = tmp_path / "fuzz.json"
    assert fuzz_decoder.main(["--cases", "600", "--seed", "7", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())["results"][0]
    counts = summary["counts"]
    assert counts["bug"] == counts["crash"] == counts["stall"] == 0
    assert counts["decoded"] + counts["rejected"] == 600
    assert counts["decoded"] > 0  # some mutations leave a valid file (a swapped ancillary chunk, a colour code)
    # the mutations reach past the chunk layer into the header and payload decoders
    assert {"ChunkError", "HeaderError", "PayloadError", "TruncatedError"} <= set(summary["rejected_by_error"])


def test_a_crash_and_a_stall_are_reported_and_the_run_goes_on(tmp_path):
    import fuzz_decoder

    summary = fuzz_decoder.fuzz(VALID, 20, 0, 3.0, str(tmp_path), selftest=(4, 9))
    assert summary["counts"]["crash"] == 1 and summary["counts"]["stall"] == 1
    assert summary["counts"]["decoded"] + summary["counts"]["rejected"] == 18  # the worker restarted after each
    assert [(p["case"], p["outcome"]) for p in summary["problems"]] == [(4, "crash"), (9, "stall")]
    assert (tmp_path / "case_4.gimg").read_bytes() == make_case(VALID, 0, 4)[0]


def test_the_cli_agrees_with_the_api_on_fuzzed_files():
    result = cli_check(VALID, 11, 12)
    assert result["problems"] == [] and result["agreed"] == 12
    assert 0 < result["decoded"] < 12  # both an accepted and a rejected file went through the CLI
    grey = [f for f in VALID if f.endswith("grey_tied_64x48_n300.gimg")]  # decodes to a one-channel PNG
    result = cli_check(grey, 4, 6)
    assert result["problems"] == [] and result["decoded"] == 2


def test_pngs_are_mutated_chunk_by_chunk_and_other_formats_as_a_whole(tmp_path):
    images = sample_images(tmp_path)
    png, jpeg = Path(images[0]).read_bytes(), next(Path(p).read_bytes() for p in images if p.endswith(".jpg"))
    kinds = set()
    for i in range(300):
        data, kind = mutate(png, np.random.default_rng(i))
        kinds.add(kind)
        if kind not in ("raw", "cut"):
            assert _crcs_hold(data, PNG.preamble, ">"), (i, kind)  # big-endian lengths and CRCs fixed
        assert mutate(jpeg, np.random.default_rng(i))[1] in WHOLE_FILE_MUTATIONS
    assert kinds == set(MUTATIONS)


def test_fuzzed_input_images_decode_or_raise_an_input_error(tmp_path):
    import fuzz_decoder

    out = tmp_path / "fuzz.json"
    assert fuzz_decoder.main(["--images", "--cases", "400", "--seed", "7", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())["results"][0]
    assert summary["counts"]["bug"] == summary["counts"]["crash"] == summary["counts"]["stall"] == 0
    assert summary["counts"]["decoded"] > 0 and set(summary["rejected_by_error"]) == {"InputImageError"}
    assert len(summary["files"]) == 11


def test_a_case_is_described_by_what_its_header_declares(tmp_path):
    line = describe_case(VALID, 0, 0, images=False)
    data, name, kind = make_case(VALID, 0, 0)
    assert line.startswith(f"{kind} of {name}, {len(data)} bytes, ")
    assert "declares" in line or "header unreadable" in line
    tiny = next(i for i, p in enumerate(VALID) if p.endswith("/tiny_1x1.gimg"))
    described = [describe_case(VALID, 0, tiny + k * len(VALID), images=False) for k in range(20)]
    assert any(d.endswith("declares 1x1 with 1 Gaussians") for d in described)  # most mutations leave HEAD alone
    images = sample_images(tmp_path)
    png = images.index(str(tmp_path / "rgb.png"))
    described = [describe_case(images, 0, png + k * len(images), images=True) for k in range(20)]
    assert any(d.endswith("declares PNG RGB 48x48 (0.0 MP)") for d in described)
