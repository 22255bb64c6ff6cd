"""Tests for the rate-distortion benchmark helpers (tools/rd_lib.py, tools/bench_rd.py)."""

import io
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import bench_rd  # noqa: E402
import rd_lib  # noqa: E402

CROP_SRC = ROOT / "examples" / "kodim23_crop256.png"

# A typical RD curve (bpp, PSNR), roughly JPEG on Kodak.
RATES = [0.15, 0.25, 0.5, 0.75, 1.0]
PSNRS = [24.1, 26.6, 29.6, 31.5, 32.9]


@pytest.fixture(scope="module")
def crop192(tmp_path_factory):
    """A 192x192 crop (MS-SSIM needs > 160 px) written as PNG; returns (path, array)."""
    with Image.open(CROP_SRC) as im:
        arr = np.asarray(im.convert("RGB"))[:192, :192].copy()
    path = tmp_path_factory.mktemp("rd") / "crop192.png"
    Image.fromarray(arr).save(path)
    return path, arr


@pytest.mark.parametrize("method", ["pchip", "poly"])
def test_bd_rate_of_curve_against_itself_is_zero(method):
    rate, why = rd_lib.bd_rate(RATES, PSNRS, RATES, PSNRS, method=method)
    assert why is None
    assert rate == pytest.approx(0.0, abs=1e-9)
    dpsnr, why = rd_lib.bd_psnr(RATES, PSNRS, RATES, PSNRS, method=method)
    assert why is None
    assert dpsnr == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "poly"])
def test_bd_rate_of_scaled_rates_is_minus_20_percent(method):
    scaled = [0.8 * r for r in RATES]
    rate, why = rd_lib.bd_rate(RATES, PSNRS, scaled, PSNRS, method=method)
    assert why is None
    assert rate == pytest.approx(-20.0, abs=0.01)
    # And the other way round: +25 %.
    rate_back, _ = rd_lib.bd_rate(scaled, PSNRS, RATES, PSNRS, method=method)
    assert rate_back == pytest.approx(25.0, abs=0.01)
    # Fewer bits at equal PSNR means higher PSNR at equal rate.
    dpsnr, why = rd_lib.bd_psnr(RATES, PSNRS, scaled, PSNRS, method=method)
    assert why is None and dpsnr > 0


def test_bd_psnr_of_shifted_curve():
    shifted = [p + 1.5 for p in PSNRS]
    dpsnr, why = rd_lib.bd_psnr(RATES, PSNRS, RATES, shifted)
    assert why is None
    assert dpsnr == pytest.approx(1.5, abs=1e-9)


def test_bd_non_overlapping_and_degenerate_curves_give_none_with_reason():
    high = [p + 20 for p in PSNRS]
    rate, why = rd_lib.bd_rate(RATES, PSNRS, RATES, high)
    assert rate is None and "overlap" in why
    far = [r * 100 for r in RATES]
    dpsnr, why = rd_lib.bd_psnr(RATES, PSNRS, far, PSNRS)
    assert dpsnr is None and "overlap" in why
    rate, why = rd_lib.bd_rate(RATES, PSNRS, [0.5], [30.0])
    assert rate is None and "2 distinct points" in why
    rate, why = rd_lib.bd_rate(RATES, PSNRS, RATES[:3], PSNRS[:3], method="poly")
    assert rate is None and "4 points" in why


def test_pchip_integral_is_exact_for_linear_data():
    x = np.array([0.0, 1.0, 2.5, 4.0])
    y = 3 * x + 1
    got = rd_lib._pchip_integral(x, y, 0.5, 3.0)
    assert got == pytest.approx(1.5 * 3.0**2 + 3.0 - (1.5 * 0.25 + 0.5))


def test_jpeg_quality_search_hits_target(crop192):
    _, arr = crop192
    h, w = arr.shape[:2]
    codec = rd_lib.CLASSICAL_CODECS["jpeg"]
    for target in (0.5, 1.0):
        found = rd_lib.search_bpp(codec, arr, target)
        assert found.bpp == pytest.approx(len(found.data) * 8 / (w * h))
        assert abs(found.bpp - target) / target < 0.05
        assert 1 <= found.param <= 100 and found.param == int(found.param)
    jp2 = rd_lib.CLASSICAL_CODECS["jp2"]
    found = rd_lib.search_bpp(jp2, arr, 0.5)
    assert abs(found.bpp - 0.5) / 0.5 < 0.02


def test_a_grey_image_is_coded_as_one_component_by_jpeg_and_jpeg2000(crop192):
    _, arr = crop192
    grey = np.repeat(arr[..., 1:2], 3, axis=2)  # [H, W, 3], three equal channels
    for name in ("jpeg", "jp2"):
        codec = rd_lib.CLASSICAL_CODECS[name]
        found = rd_lib.search_bpp(codec, grey, 0.5)
        with Image.open(io.BytesIO(found.data)) as im:
            assert im.mode == "L", name
        assert abs(found.bpp - 0.5) / 0.5 < 0.05, name
        assert rd_lib.quality(grey, codec.decode(found.data))["psnr"] > 25
    with Image.open(io.BytesIO(rd_lib.CLASSICAL_CODECS["jpeg"].encode(arr, 75))) as im:
        assert im.mode == "RGB"  # a colour image stays RGB


def test_search_returns_closest_when_target_unreachable(crop192):
    _, arr = crop192
    codec = rd_lib.CLASSICAL_CODECS["jpeg"]
    found = rd_lib.search_bpp(codec, arr, 0.001)
    assert found.param == 1
    found = rd_lib.search_bpp(codec, arr, 100.0)
    assert found.param == 100


def test_measure_record(crop192):
    _, arr = crop192
    rec = rd_lib.measure(rd_lib.CLASSICAL_CODECS["webp"], arr, 75, decode_repeats=2)
    assert set(rec) >= {"param", "bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s"}
    assert 20 < rec["psnr"] < 60
    assert 0.8 < rec["ms_ssim"] <= 1.0
    assert rec["encode_s"] > 0 and rec["decode_s"] > 0


def test_mean_curves_and_bd_table():
    records = []
    for img, off in (("a", 0.0), ("b", 2.0)):
        for r, p in zip(RATES, PSNRS):
            for codec, scale in (("x", 1.0), ("y", 0.8)):
                records.append({"image": img, "codec": codec, "point": f"{r:g}",
                                "target_bpp": r, "bpp": r * scale, "psnr": p + off,
                                "ms_ssim": None, "encode_s": 1.0, "decode_s": 0.5})
    curves = rd_lib.mean_curves(records)
    assert [p["n"] for p in curves["x"]] == [2] * 5
    assert curves["x"][0]["psnr"] == pytest.approx(PSNRS[0] + 1.0)
    rows = {(r["test"], r["anchor"]): r for r in rd_lib.bd_table(curves)}
    assert rows[("y", "x")]["bd_rate_pct"] == pytest.approx(-20.0, abs=0.01)
    assert rows[("x", "y")]["bd_rate_pct"] == pytest.approx(25.0, abs=0.01)
    assert rows[("y", "x")]["bd_rate_ms_ssim_pct"] is None  # no MS-SSIM in these records
    for rec in records:  # the same MS-SSIM at the same bpp for both codecs: no saving on it
        rec["ms_ssim"] = 1.0 - 10.0 ** (-(10.0 + 5.0 * math.log10(rec["bpp"])) / 10.0)
    curves = rd_lib.mean_curves(records)
    assert curves["x"][0]["ms_ssim_db"] == pytest.approx(10.0 + 5.0 * math.log10(RATES[0]))
    rows = {(r["test"], r["anchor"]): r for r in rd_lib.bd_table(curves)}
    assert rows[("y", "x")]["bd_rate_ms_ssim_pct"] == pytest.approx(0.0, abs=0.01)
    assert rows[("y", "x")]["bd_rate_pct"] == pytest.approx(-20.0, abs=0.01)  # PSNR still says -20 %
    assert rd_lib.ms_ssim_db(0.99) == pytest.approx(20.0) and rd_lib.ms_ssim_db(1.0) is None


def test_bench_end_to_end_classical(crop192, tmp_path, capsys):
    path, _ = crop192
    out_json, out_md, out_png = tmp_path / "rd.json", tmp_path / "rd.md", tmp_path / "rd.png"
    rc = bench_rd.main([str(path), "--codecs", "jpeg,webp", "--targets", "0.5,1.0",
                        "--decode-repeats", "2", "--json", str(out_json),
                        "--markdown", str(out_md), "--plot", str(out_png), "-q"])
    assert rc == 0
    res = json.loads(out_json.read_text())
    assert res["complete"] is True
    assert set(res) >= {"meta", "images", "records", "summary", "complete"}
    assert res["images"][0]["width"] == 192 and res["images"][0]["height"] == 192
    assert len(res["records"]) == 4
    for rec in res["records"]:
        assert set(rec) >= {"image", "codec", "point", "target_bpp", "param", "bytes", "bpp",
                            "psnr", "ms_ssim", "encode_s", "decode_s"}
        assert rec["ms_ssim"] is not None
        assert abs(rec["bpp"] - rec["target_bpp"]) / rec["target_bpp"] < 0.1
    s = res["summary"]
    assert set(s["mean_curves"]) == {"jpeg", "webp"}
    bd = {(r["test"], r["anchor"]): r for r in s["bd"]}
    assert bd[("webp", "jpeg")]["bd_psnr_db"] > 0
    assert s["timing"]["jpeg"]["encode_x_jpeg"] == pytest.approx(1.0)
    md = out_md.read_text()
    assert "BD-rate" in md and "| jpeg |" in md
    assert md.strip() in capsys.readouterr().out
    assert out_png.stat().st_size > 1000


def test_bench_plot_without_matplotlib_stops_before_any_work(crop192, tmp_path, monkeypatch, capsys):
    """--plot without matplotlib is refused up front, not after a long run."""
    path, _ = crop192
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out_json = tmp_path / "rd.json"
    rc = bench_rd.main([str(path), "--codecs", "jpeg", "--targets", "0.5", "--json", str(out_json),
                        "--plot", str(tmp_path / "rd.png"), "-q"])
    assert rc == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err
    assert not out_json.exists()


def test_bench_gimg_path_with_stand_in_api(crop192, tmp_path, monkeypatch):
    """The gimg branch against a stand-in for gipp_codec.encoder/decode (JPEG inside)."""
    import gipp_codec

    calls = []

    def fake_encode(image, gaussians=None, bpp=None, iterations=None, seed=0, device="auto"):
        calls.append({"gaussians": gaussians, "bpp": bpp, "iterations": iterations,
                      "seed": seed, "device": device})
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=min(95, gaussians // 20))
        data = buf.getvalue()
        report = SimpleNamespace(device=device, gaussians=gaussians, passes=1,
                                 bits_per_gaussian=8 * len(data) / gaussians)
        return data, report

    def fake_decode(data):
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    # setitem on the module dict: getattr would run the package's lazy import, and the
    # real gipp_codec.encoder module may not exist yet.
    monkeypatch.setitem(vars(gipp_codec), "encode_with_report", fake_encode)
    monkeypatch.setitem(vars(gipp_codec), "decode", fake_decode)
    path, _ = crop192
    out_json = tmp_path / "rd.json"
    rc = bench_rd.main([str(path), "--codecs", "jpeg,gimg", "--targets", "0.5,1.0,2.0",
                        "--gimg-gaussians", "600,1200,1800", "--gimg-iterations", "7",
                        "--decode-repeats", "1", "--json", str(out_json), "-q", "--no-gimg-warmup"])
    assert rc == 0
    assert [c["gaussians"] for c in calls] == [600, 1200, 1800]
    assert all(c["iterations"] == 7 and c["seed"] == 0 for c in calls)
    res = json.loads(out_json.read_text())
    gimg = [r for r in res["records"] if r["codec"] == "gimg"]
    assert [r["gaussians"] for r in gimg] == [600, 1200, 1800]
    assert all(math.isfinite(r["psnr"]) and r["decode_s"] > 0 for r in gimg)
    bd = {(r["test"], r["anchor"]): r for r in res["summary"]["bd"]}
    assert ("gimg", "jpeg") in bd


def test_bench_gimg_bit_depth_variants(crop192, tmp_path, monkeypatch):
    """--gimg-bits runs gimg once per triple, as codecs named gimg-P-V-C, with those depths."""
    import gipp_codec

    seen = []

    def fake_encode(image, gaussians=None, bpp=None, iterations=None, seed=0, device="auto", bits=None):
        seen.append(bits)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=min(95, 10 + 10 * sum(bits) // 4))
        data = buf.getvalue()
        return data, SimpleNamespace(device=device, gaussians=gaussians, passes=1, bits_per_gaussian=1.0)

    monkeypatch.setitem(vars(gipp_codec), "encode_with_report", fake_encode)
    monkeypatch.setitem(vars(gipp_codec), "decode", lambda d: np.asarray(Image.open(io.BytesIO(d)).convert("RGB")))
    path, _ = crop192
    out_json = tmp_path / "rd.json"
    rc = bench_rd.main([str(path), "--codecs", "jpeg,gimg", "--targets", "0.5", "--gimg-gaussians", "100,200",
                        "--gimg-bits", "12/10/6,12/8/6", "--decode-repeats", "1", "--json", str(out_json),
                        "--gimg-keep", str(tmp_path / "keep"), "-q", "--no-gimg-warmup"])
    assert rc == 0
    assert seen == [(12, 10, 6)] * 2 + [(12, 8, 6)] * 2
    res = json.loads(out_json.read_text())
    assert res["meta"]["codecs"] == ["jpeg", "gimg-12-10-6", "gimg-12-8-6"]
    assert sorted(p.name for p in (tmp_path / "keep").iterdir()) == [
        "crop192_N100_12-10-6.gimg", "crop192_N100_12-8-6.gimg", "crop192_N200_12-10-6.gimg", "crop192_N200_12-8-6.gimg"]
    bd = {(r["test"], r["anchor"]) for r in res["summary"]["bd"]}
    assert ("gimg-12-8-6", "gimg-12-10-6") in bd


def test_bench_rd_gimg_warmup_encodes_once_untimed_before_the_images(crop192, tmp_path, monkeypatch):
    """--gimg-warmup (the default): one small encode (64x96, 50 iterations, the run's device)
    before the first image, recorded in meta and not among the records; --no-gimg-warmup: none."""
    import gipp_codec

    warm, timed = [], []

    def fake_encode(image, bpp=None, iterations=None, seed=0, device="auto"):
        warm.append((image.shape, bpp, iterations, device))
        return b"warm"

    def fake_encode_with_report(image, gaussians=None, bpp=None, iterations=None, seed=0, device="auto"):
        timed.append((image.shape, iterations, device))
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=50)
        return buf.getvalue(), SimpleNamespace(device=device, gaussians=gaussians, passes=1, bits_per_gaussian=1.0)

    def fake_decode(data):
        return np.zeros((64, 96, 3), np.uint8) if data == b"warm" else np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    monkeypatch.setitem(vars(gipp_codec), "encode", fake_encode)
    monkeypatch.setitem(vars(gipp_codec), "encode_with_report", fake_encode_with_report)
    monkeypatch.setitem(vars(gipp_codec), "decode", fake_decode)
    path, _ = crop192
    out_json = tmp_path / "rd.json"
    argv = [str(path), "--codecs", "gimg", "--gimg-bpp", "0.5", "--gimg-iterations", "9", "--gimg-device", "cpu",
            "--decode-repeats", "1", "--json", str(out_json), "-q"]
    assert bench_rd.main(argv) == 0  # on by default
    assert warm == [((64, 96, 3), 1.0, 50, "cpu")]
    assert timed == [((192, 192, 3), 9, "cpu")]
    res = json.loads(out_json.read_text())
    assert res["meta"]["gimg_warmup_s"] >= 0
    assert [r["image"] for r in res["records"]] == ["crop192"]
    assert bench_rd.main(argv + ["--no-gimg-warmup"]) == 0
    assert len(warm) == 1 and len(timed) == 2
    assert "gimg_warmup_s" not in json.loads(out_json.read_text())["meta"]


def test_bench_gimg_bits_rejects_bad_triple(crop192, capsys):
    path, _ = crop192
    for bits, message in (("12/10", "expected POSITION/COVARIANCE/COLOUR"), ("40/7/6", "position=40 is invalid")):
        assert bench_rd.main([str(path), "--codecs", "gimg", "--gimg-bits", bits, "-q"]) == 2
        assert message in capsys.readouterr().err


def test_rd_compare_takes_the_anchor_from_several_runs(tmp_path, capsys):
    """--anchor-run given once per rate: each test point is compared with the anchor's
    curve built from all of them, so a point between two runs' rates is interpolated."""
    import rd_compare

    def run(path, points):
        recs = [{"image": "im", "codec": "gimg", "bpp": b, "psnr": p} for b, p in points]
        path.write_text(json.dumps({"records": recs}))
        return str(path)

    test = run(tmp_path / "test.json", [(0.15, 26.0), (0.5, 31.0)])
    low = run(tmp_path / "low.json", [(0.15, 25.0)])
    high = run(tmp_path / "high.json", [(0.5, 30.0)])
    assert rd_compare.main([test, "--anchor", "gimg", "--anchor-run", low, "--anchor-run", high]) == 0
    out = capsys.readouterr().out
    assert "26.00 / 25.00 (0.150), +1.00" in out and "31.00 / 30.00 (0.500), +1.00" in out
    rd_compare.main([test, "--anchor", "gimg", "--anchor-run", high])  # one run: clamped to its point
    out = capsys.readouterr().out
    assert "26.00 / 30.00* (0.150), -4.00" in out
    assert "1 of 1 above (range +1.00 to +1.00), standard error nan dB" in out  # one image: no spread


def test_bench_rd_downscale_averages_blocks_and_refuses_below_1(crop192, capsys):
    """--downscale F codes each image shrunk F times by F x F block means; F < 1 is refused."""
    path, arr = crop192
    small = bench_rd.load_rgb(path, 2)  # [96, 96, 3]
    blocks = arr.reshape(96, 2, 96, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert small.shape == (96, 96, 3) and small.dtype == np.uint8
    assert np.abs(small - blocks).max() <= 0.5 + 1e-9
    assert np.array_equal(bench_rd.load_rgb(path), arr)
    assert bench_rd.main([str(path), "--codecs", "jpeg", "--downscale", "0", "-q"]) == 2
    assert "--downscale must be an integer >= 1" in capsys.readouterr().err


def test_rd_compare_refuses_one_image_at_two_sizes(tmp_path):
    """Runs that coded the same image at different sizes (--downscale) are not compared."""
    import rd_compare

    def run(path, width):
        path.write_text(json.dumps({"images": [{"name": "im", "width": width, "height": 64}],
                                    "records": [{"image": "im", "codec": "gimg", "bpp": 0.5, "psnr": 30.0}]}))
        return str(path)

    full, half, same = run(tmp_path / "a.json", 128), run(tmp_path / "b.json", 64), run(tmp_path / "c.json", 128)
    with pytest.raises(SystemExit, match="im is 64x64 here and 128x64 in another run"):
        rd_compare.main([full, "--anchor", "gimg", "--anchor-run", half])
    assert rd_compare.main([full, "--anchor", "gimg", "--anchor-run", same]) == 0


def test_rd_compare_pools_test_runs_and_prints_per_target_means(tmp_path, capsys):
    """Several RUNs pool the test codec's records; each target gets a line of means for the
    test and for the anchor at that target, and the paired MS-SSIM difference."""
    import rd_compare

    def run(path, codec, rows):
        recs = [{"image": im, "codec": codec, "target_bpp": 1.0, "bpp": b, "psnr": p, "ms_ssim": m,
                 "gaussians_final": n, "bits_per_gaussian": 40.0 + k, "encode_s": n / 10}
                for k, (im, b, p, m, n) in enumerate(rows)]
        path.write_text(json.dumps({"records": recs}))
        return str(path)

    t1 = run(tmp_path / "t1.json", "new", [("a", 1.0, 30.0, 0.90, 100)])
    t2 = run(tmp_path / "t2.json", "new", [("b", 0.99, 32.0, 0.95, 300)])
    old = run(tmp_path / "old.json", "old", [("a", 1.0, 29.0, 0.92, 110), ("b", 1.0, 31.5, 0.95, 310)])
    assert rd_compare.main([t1, t2, "--test", "new", "--anchor", "old", "--anchor-run", old]) == 0
    out = capsys.readouterr().out
    assert "mean +0.75 dB, median +0.75, 2 of 2 above (range +0.50 to +1.00), standard error 0.250 dB" in out
    assert ("new at 1 bpp: 2 images, bpp 0.9950 (files -1.000 % to +0.000 %), PSNR 31.000, MS-SSIM 0.9250, "
            "N 200, bits/Gaussian 40.00") in out
    assert "old at 1 bpp: 2 images, bpp 1.0000 (files +0.000 % to +0.000 %), PSNR 30.250" in out
    assert ("MS-SSIM difference, paired over 2 images: mean -0.01000, 0 above, from -0.0200 (a) to +0.0000 (b), "
            "standard error 0.01000") in out
    # a: 0.90 against 0.92 is 10.000 against 10.969 dB; b: level
    assert ("MS-SSIM in dB (-10 log10(1 - MS-SSIM)), paired over 2 images: mean -0.485 dB, 0 above, "
            "standard error 0.485 dB") in out
    assert "Encode time, paired over 2 images: mean 20.0 s against 21.0 s (0.952x;" in out
    assert "Same file as the anchor's (bytes, PSNR and MS-SSIM equal): 0 of 2; not: a, b" in out
    # b's record as the anchor's to every digit: the same file, as far as the records tell
    t3 = run(tmp_path / "t3.json", "new", [("b", 1.0, 31.5, 0.95, 310)])
    assert rd_compare.main([t1, t3, "--test", "new", "--anchor", "old", "--anchor-run", old]) == 0
    assert "Same file as the anchor's (bytes, PSNR and MS-SSIM equal): 1 of 2; not: a\n" in capsys.readouterr().out


def test_position_grid_lists_files_whose_grid_stops_inside_the_image(tmp_path, capsys):
    """A y grid ending 15 px above the bottom edge is SHORT; one covering the image is ok."""
    import position_grid

    from gipp_codec.format import BitDepths, QuantizedGaussians, write_gimg

    q = np.zeros((2, 8), np.uint16)
    scales = np.full(8, 0.01, np.float32)
    paths = []
    for name, y_scale in (("short", (497.0 + 2.0) / 4095), ("ok", (512.0 + 2.0) / 4095)):
        s = scales.copy()
        s[0], s[1] = np.float32(772.0 / 4095), np.float32(y_scale)
        o = np.array([-2, -2, -1, -1, -1, -1, -1, -1], np.float32)
        path = tmp_path / f"{name}.gimg"
        path.write_bytes(write_gimg(QuantizedGaussians(768, 512, BitDepths(12, 7, 6), q, s, o)))
        paths.append(str(path))
    assert position_grid.main(paths) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("short by 15.0 px: SHORT") and out[1].endswith("short by 0.0 px: ok")
    assert out[-1] == "1 of 2 files short by more than 1 px"


def _records(codec, images, curve, nbytes=None):
    """bench_rd-like records of one codec: the same (bpp, PSNR) curve on every image."""
    return [{"image": im, "codec": codec, "point": f"{b:g}", "bpp": b, "psnr": p, "ms_ssim": None,
             "bytes": (nbytes or {}).get(b, int(b * 1000)), "encode_s": 1.0, "decode_s": 0.1}
            for im in images for b, p in curve]


def test_rd_merge_adds_a_peer_only_from_a_run_that_agrees(tmp_path, capsys):
    """The donor's AVIF gets a BD row against gimg; a donor whose shared peer (JPEG) has
    other bytes, covers other images, or whose codec the run already has, is refused."""
    import rd_merge

    ims = ["a", "b"]
    jpeg = list(zip(RATES, PSNRS))
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"records": _records("jpeg", ims, jpeg)
                               + _records("gimg", ims, [(b, p + 1.0) for b, p in jpeg])}))
    donor = tmp_path / "donor.json"
    donor.write_text(json.dumps({"records": _records("jpeg", ims, jpeg)
                                 + _records("avif", ims, [(b, p + 3.0) for b, p in jpeg])}))
    merged, drawn = tmp_path / "merged.json", tmp_path / "merged.png"
    assert rd_merge.main([str(run), "--codec-from", f"avif={donor}", "--json", str(merged),
                          "--plot", str(drawn)]) == 0
    with Image.open(drawn) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 100
    out = capsys.readouterr().out
    avif_row = [line for line in out.splitlines() if line.startswith("| avif |")]
    assert len(avif_row) == 1 and "+0.0 %" not in avif_row[0] and "-2.00 dB" in avif_row[0]  # 3 dB vs 1 dB above JPEG
    assert {r["codec"] for r in json.loads(merged.read_text())["records"]} == {"jpeg", "gimg", "avif"}

    other_bytes = tmp_path / "other_bytes.json"
    other_bytes.write_text(json.dumps({"records": _records("jpeg", ims, jpeg, {0.5: 1})
                                       + _records("avif", ims, jpeg)}))
    with pytest.raises(SystemExit, match="jpeg differs"):
        rd_merge.main([str(run), "--codec-from", f"avif={other_bytes}"])
    other_images = tmp_path / "other_images.json"
    other_images.write_text(json.dumps({"records": _records("jpeg", ["a"], jpeg) + _records("avif", ["a"], jpeg)}))
    with pytest.raises(SystemExit, match="other images"):
        rd_merge.main([str(run), "--codec-from", f"avif={other_images}"])
    with pytest.raises(SystemExit, match="already measured"):
        rd_merge.main([str(run), "--codec-from", f"jpeg={donor}"])


def test_rd_merge_adds_missing_points_only_with_a_witness_that_agrees(tmp_path, capsys):
    """A run without gimg's 0.5 point, pooled with a one-image witness run at 0.5, takes the
    donor's 0.5 records once the witness matches the donor; a witness with other bytes, no
    witness, or a donor that leaves an image out at the added point is refused."""
    import rd_merge

    ims = ["a", "b"]
    jpeg = list(zip(RATES, PSNRS))
    gimg = [(b, p + 1.0) for b, p in jpeg]
    without_05 = [pt for pt in gimg if pt[0] != 0.5]
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"records": _records("jpeg", ims, jpeg) + _records("gimg", ims, without_05)}))
    witness = tmp_path / "witness.json"
    witness.write_text(json.dumps({"records": _records("gimg", ["a"], [(0.5, gimg[2][1])])}))
    donor = tmp_path / "donor.json"
    donor.write_text(json.dumps({"records": _records("gimg", ims, [(0.5, gimg[2][1])])}))
    merged = tmp_path / "merged.json"
    assert rd_merge.main([str(run), str(witness), "--points-from", f"gimg={donor}", "--json", str(merged)]) == 0
    records = json.loads(merged.read_text())["records"]
    assert sorted(r["image"] for r in records if r["codec"] == "gimg" and r["point"] == "0.5") == ["a", "b"]
    jpeg_row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| jpeg |")]
    assert len(jpeg_row) == 1 and "+1.00 dB" in jpeg_row[0]

    with pytest.raises(SystemExit, match="nothing shows it is the same encoder"):
        rd_merge.main([str(run), "--points-from", f"gimg={donor}"])
    other = tmp_path / "other_witness.json"
    other.write_text(json.dumps({"records": _records("gimg", ["a"], [(0.5, gimg[2][1])], {0.5: 7})}))
    with pytest.raises(SystemExit, match="not the same encoder"):
        rd_merge.main([str(run), str(other), "--points-from", f"gimg={donor}"])
    short = tmp_path / "short_donor.json"
    short.write_text(json.dumps({"records": _records("gimg", ["a"], [(0.5, gimg[2][1]), (2.0, 35.0)])}))
    with pytest.raises(SystemExit, match="1 of the run's 2 images"):
        rd_merge.main([str(run), str(witness), "--points-from", f"gimg={short}"])
    clash = tmp_path / "clash.json"
    clash.write_text(json.dumps({"records": _records("jpeg", ["a"], jpeg, {0.5: 3})}))
    with pytest.raises(SystemExit, match="differs from an earlier run"):
        rd_merge.main([str(run), str(clash), "--points-from", f"gimg={donor}"])

    # a donor in two files, each also holding a 2.0 point that has changed since: only 0.5 taken
    halves = []
    for im in ims:
        half = tmp_path / f"donor_{im}.json"
        half.write_text(json.dumps({"records": _records("gimg", [im], [(0.5, gimg[2][1]), (2.0, 35.0)])}))
        halves.append(str(half))
    changed = tmp_path / "run_with_2.json"  # the run measured 2.0 again, with other bytes
    changed.write_text(json.dumps({"records": _records("jpeg", ims, jpeg)
                                   + _records("gimg", ims, without_05 + [(2.0, 36.0)], {2.0: 5})}))
    with pytest.raises(SystemExit, match="not the same encoder"):
        rd_merge.main([str(changed), str(witness), "--points-from", "gimg=" + ",".join(halves)])
    merged2 = tmp_path / "merged2.json"
    assert rd_merge.main([str(changed), str(witness), "--points-from", "gimg=" + ",".join(halves),
                          "--donor-point", "0.5", "--json", str(merged2)]) == 0
    records = [r for r in json.loads(merged2.read_text())["records"] if r["codec"] == "gimg"]
    assert sorted(r["image"] for r in records if r["point"] == "0.5") == ["a", "b"]
    assert {r["psnr"] for r in records if r["point"] == "2"} == {36.0}  # the run's own, kept
    with pytest.raises(SystemExit, match="no record at 9.9"):
        rd_merge.main([str(changed), str(witness), "--points-from", f"gimg={halves[0]}", "--donor-point", "9.9"])
    with pytest.raises(SystemExit):
        rd_merge.main([str(run), str(witness), "--donor-point", "0.5"])


def test_rd_merge_pools_runs_without_an_operation_only_where_they_agree(tmp_path, capsys):
    """Two or more runs pool on their own (the union written with --json) when every record
    they share is the same file; one that differs, or a single run with nothing to do, is
    refused."""
    import rd_merge

    jpeg = list(zip(RATES, PSNRS))
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps({"records": _records("gimg", ["a", "b"], jpeg)}))
    second.write_text(json.dumps({"records": _records("gimg", ["b", "c"], jpeg)}))
    pooled = tmp_path / "pooled.json"
    assert rd_merge.main([str(first), str(second), "--json", str(pooled)]) == 0
    records = json.loads(pooled.read_text())["records"]
    assert sorted({r["image"] for r in records}) == ["a", "b", "c"] and len(records) == 3 * len(jpeg)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"records": _records("gimg", ["b"], jpeg, {0.5: 7})}))
    with pytest.raises(SystemExit, match="differs from an earlier run"):
        rd_merge.main([str(first), str(other)])
    with pytest.raises(SystemExit):
        rd_merge.main([str(first)])
    assert "two or more runs to pool" in capsys.readouterr().err


def test_rd_merge_renames_a_codec_only_with_a_witness_at_every_point(tmp_path, capsys):
    """gimg-11-7-5's 0.15 and 0.25 records count as gimg's (whose 1.0 point the run has) once
    a witness shows both wrote the same file at each of those points; a witness missing a
    point, one whose files differ, no witness, or a rename onto a record gimg already
    has is refused."""
    import rd_merge

    ims = ["a", "b"]
    jpeg = list(zip(RATES, PSNRS))
    low, high = [(0.15, 26.0), (0.25, 28.0)], [(1.0, 34.0)]
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"records": _records("jpeg", ims, jpeg) + _records("gimg-11-7-5", ims, low)
                               + _records("gimg", ims, high)}))

    def witness(name, curve_old, curve_new, nbytes=None):
        path = tmp_path / name
        path.write_text(json.dumps({"records": _records("gimg-11-7-5", ["w"], curve_old)
                                    + _records("gimg", ["w"], curve_new, nbytes)}))
        return str(path)

    good = witness("good.json", [(0.15, 20.0), (0.25, 21.0)], [(0.15, 20.0), (0.25, 21.0)])
    merged = tmp_path / "merged.json"
    assert rd_merge.main([str(run), "--rename", "gimg-11-7-5=gimg", "--witness", good, "--json", str(merged)]) == 0
    records = json.loads(merged.read_text())["records"]
    gimg = sorted((r["image"], r["point"], r.get("renamed_from")) for r in records if r["codec"] == "gimg")
    assert gimg == [(im, pt, src) for im in ims for pt, src in (("0.15", "gimg-11-7-5"), ("0.25", "gimg-11-7-5"),
                                                                 ("1", None))]
    assert not any(r["codec"] == "gimg-11-7-5" for r in records)
    out = capsys.readouterr().out
    assert "| gimg (the run, gimg-11-7-5's records counted as gimg's" in out and "| jpeg |" in out

    one_point = witness("one.json", [(0.15, 20.0)], [(0.15, 20.0)])
    with pytest.raises(SystemExit, match="no witness image at 0.25"):
        rd_merge.main([str(run), "--rename", "gimg-11-7-5=gimg", "--witness", one_point])
    differ = witness("differ.json", [(0.15, 20.0), (0.25, 21.0)], [(0.15, 20.0), (0.25, 21.0)], {0.25: 9})
    with pytest.raises(SystemExit, match="no witness image at 0.25"):
        rd_merge.main([str(run), "--rename", "gimg-11-7-5=gimg", "--witness", differ])
    with pytest.raises(SystemExit):  # argparse exits 2 with the reason on stderr
        rd_merge.main([str(run), "--rename", "gimg-11-7-5=gimg"])
    assert "--rename needs --witness" in capsys.readouterr().err
    clash = tmp_path / "clash.json"
    clash.write_text(json.dumps({"records": _records("gimg-11-7-5", ims, low) + _records("gimg", ims, low)}))
    with pytest.raises(SystemExit, match="gimg already has a at 0.15"):
        rd_merge.main([str(clash), "--rename", "gimg-11-7-5=gimg", "--witness", good])
    with pytest.raises(SystemExit, match="no avif records"):
        rd_merge.main([str(run), "--rename", "avif=gimg", "--witness", good])


def test_lr_by_rate_prints_the_depths_whose_spacing_the_position_rule_accepts(capsys):
    """Each row's N for the rule is the rate model's at depths_at; its position depth holds at
    least position_steps_per_spacing steps per mean spacing of that N (from
    position_dense_from Gaussians per pixel, position_steps_per_spacing_dense), and one bit
    fewer would not (or the depth is the cap)."""
    import lr_by_rate

    from gipp_codec.encoder import predict_gaussians
    from gipp_codec.fit.config import QATConfig
    from gipp_codec.format.model import BitDepths

    q = QATConfig()
    for w, h in ((768, 512), (384, 256)):
        assert lr_by_rate.main(["--width", str(w), "--height", str(h)]) == 0
        rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()[3:]]
        assert len(rows) == 7
        for bpp, depths, n_rule, steps, *_ in rows:
            p = int(depths.split("/")[0])
            # the rule's N is the rate model's at depths_at (bits_position), not at the final depths
            assert int(n_rule) == predict_gaussians(float(bpp) * w * h, BitDepths(*q.depths_at(float(bpp))))
            dense = int(n_rule) >= q.position_dense_from * w * h  # 1 and 2 bpp
            k = q.position_steps_per_spacing_dense if dense else q.position_steps_per_spacing
            assert float(steps) >= k, (w, bpp)
            assert p == q.bits_position or float(steps) / 2 < k, (w, bpp)
            assert abs(float(steps) - ((w * h / int(n_rule)) ** 0.5) / (max(w, h) / 2 ** p)) < 0.01
        if w == 768:  # Kodak: the dense start and radius at 0.5 to 1 bpp (0.013 to 0.024 per pixel; the
            # denser start from 0.02, so at 1 bpp), not at 2 (0.047); below, the sparse start and radii of
            # 0.42 of the spacing (16.3 and 12.9 pixels: 7 and 5); above the dense range (1.5 bpp: 0.037 per pixel)
            # N/2 and radius 2; the lr halved every 30 % from 0.5 bpp up; the base layer's 64-pixel blocks
            # below 1.5 bpp, 32 from there; radius 4 at 0.5 bpp alone (0.012 per pixel, below 0.015);
            # residual colours and the matched growth error below 0.02 per pixel (0.15 to 0.75 bpp),
            # its kernel's sigma sqrt(0.1 * (1 + lp)) with lp = 768 * 512 / (9 pi N) at the guessed N
            assert [tuple(cell.strip() for cell in (row[0], *row[-6:])) for row in rows] == [
                ("0.15", "0.35", "7", "residual", "matched (σ 1.02)", "0.4", "64"),
                ("0.25", "0.35", "5", "residual", "matched (σ 0.83)", "0.4", "64"),
                ("0.5", "0.35", "4", "residual", "matched (σ 0.62)", "0.3", "64"),
                ("0.75", "0.35", "3", "residual", "matched (σ 0.54)", "0.3", "64"),
                ("1", "0.25", "3", "zero", "l1", "0.3", "64"), ("1.5", "0.5", "2", "zero", "l1", "0.3", "32"),
                ("2", "0.5", "2", "zero", "l1", "0.3", "32")]


def test_gimg_qat_none_switches_an_optional_setting_off_but_stays_text_where_text_is_held():
    cfg = bench_rd.fit_config([], ["rate_weight_until_bpp=none", "position_hold=none"])
    assert cfg.qat.rate_weight_until_bpp is None
    assert cfg.qat.position_hold == "none"
    assert cfg.qat.rate_weight_at(2.0) == cfg.qat.rate_weight
    with pytest.raises(SystemExit, match="rate_weight must be"):
        bench_rd.fit_config([], ["rate_weight=none"])


def test_gimg_fit_parses_an_optional_field_by_the_type_it_holds():
    """A field whose default is None takes a value of its declared type: a float for
    lr_density_ref, an int for grow_k (which refuses a fraction)."""
    cfg = bench_rd.fit_config(["lr_density_ref=0.024", "grow_k=5"], ["bits_covariance_high_rate=9"])
    assert cfg.lr_density_ref == 0.024 and cfg.grow_k == 5 and cfg.qat.bits_covariance_high_rate == 9
    with pytest.raises(SystemExit, match="grow_k takes a int"):
        bench_rd.fit_config(["grow_k=2.5"], [])


def test_verify_files_decodes_kept_files_and_flags_any_difference(tmp_path, capsys):
    """tools/verify_files.py: a kept file that decodes to its recorded PSNR passes; a record
    whose PSNR is off by more than the tolerance, or whose file is missing, fails (exit 1)."""
    import verify_files

    from gipp_codec.encoder import encode_with_report

    y, x = np.mgrid[0:24, 0:32]
    img = np.stack([8 * x, 10 * y, (x * y) % 256], axis=2).clip(0, 255).astype(np.uint8)  # [24, 32, 3]
    (tmp_path / "imgs").mkdir()
    Image.fromarray(img).save(tmp_path / "imgs" / "tiny.png")
    data, report = encode_with_report(img, gaussians=20, iterations=20, device="cpu")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "tiny_N20.gimg").write_bytes(data)
    rec = {"image": "tiny", "codec": "gimg", "point": "N=20", "bytes": len(data), "psnr": report.psnr,
           "file": "/elsewhere/tiny_N20.gimg"}

    def run(records):
        path = tmp_path / "run.json"
        path.write_text(json.dumps({"records": records}))
        return verify_files.main([str(path), "--files", str(tmp_path / "files"), "--images", str(tmp_path / "imgs")])

    assert run([rec]) == 0
    assert "1 files decoded here, 0 off" in capsys.readouterr().out
    assert run([{**rec, "psnr": report.psnr + 0.02}]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    assert run([rec, {**rec, "file": "/elsewhere/gone.gimg"}]) == 1
    assert "cannot decode" in capsys.readouterr().out
    # a run at --downscale 2: the source image is shrunk as the run shrank it
    Image.fromarray(np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)).save(tmp_path / "imgs" / "tiny.png")
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"meta": {"downscale": 2}, "records": [rec]}))
    assert verify_files.main([str(path), "--files", str(tmp_path / "files"), "--images", str(tmp_path / "imgs")]) == 0


def test_bench_rd_leaves_an_exact_copy_out_of_every_mean(crop192, tmp_path):
    """A flat image that JPEG 2000 codes exactly (PSNR infinite) is left out of every codec's
    means and BD-rates, not of one codec's PSNR mean only; the markdown says so."""
    path, _ = crop192
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(flat)
    out_json, out_md = tmp_path / "rd.json", tmp_path / "rd.md"
    rc = bench_rd.main([str(path), str(flat), "--codecs", "jpeg,jp2", "--targets", "0.5,1.0", "--decode-repeats", "1",
                        "--json", str(out_json), "--markdown", str(out_md), "-q"])
    assert rc == 0
    res = json.loads(out_json.read_text())
    assert "flat" in res["summary"]["left_out"] and "infinite PSNR" in res["summary"]["left_out"]["flat"]
    crop = {(r["codec"], r["point"]): r for r in res["records"] if r["image"] == "crop192"}
    for codec, curve in res["summary"]["mean_curves"].items():
        for p in curve:
            assert p["n"] == 1 and p["bpp"] == pytest.approx(crop[(codec, p["point"])]["bpp"])
    assert "Left out of every mean and BD-rate below" in out_md.read_text()


@pytest.mark.parametrize("extra, needle", [
    (["--gimg-bpp", "abc", "--codecs", "gimg"], "--gimg-bpp must be comma-separated numbers"),
    (["--gimg-bpp", "-0.5", "--codecs", "gimg"], "--gimg-bpp values must be in (0, 64]"),
    (["--gimg-iterations", "0", "--codecs", "gimg"], "--gimg-iterations must be 1 or more"),
    (["--gimg-device", "tpu", "--codecs", "gimg"], "--gimg-device"),
    (["--targets", "", "--codecs", "jpeg"], "--targets must be bpps"),
    (["--targets", "0,1", "--codecs", "jpeg"], "--targets must be bpps"),
    (["--codecs", "jpeg", "--anchor", "jepg"], "--anchor jepg is not among the codecs"),
    (["--codecs", "jpeg", "--limit", "-1"], "--limit must be 1 or more"),
    (["--codecs", "jpeg", "--encode-repeats", "0"], "--encode-repeats must be 1 or more"),
])
def test_bench_rd_refuses_bad_options_before_any_work(crop192, tmp_path, capsys, extra, needle):
    """One line on stderr, exit 2, and no JSON written."""
    path, _ = crop192
    rc = bench_rd.main([str(path), "--json", str(tmp_path / "rd.json"), "-q", *extra])
    assert rc == 2 and needle in capsys.readouterr().err
    assert not (tmp_path / "rd.json").exists()


def test_bench_rd_refuses_bad_inputs_before_any_work(crop192, tmp_path, capsys):
    """A missing folder, an unreadable image (even after a good one), two images of one name,
    and an output under a file: exit 2 before anything is coded."""
    path, _ = crop192
    (tmp_path / "dup").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "dup" / "crop192.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "afile").write_text("x")
    cases = [(["--folder", str(tmp_path / "nowhere")], "not a folder"),
             ([str(path), str(tmp_path / "broken.png")], "broken.png"),
             ([str(path), str(tmp_path / "dup" / "crop192.png")], "same name (crop192)"),
             ([str(path), "--json", str(tmp_path / "afile" / "rd.json")], "--json")]
    for args, needle in cases:
        rc = bench_rd.main([*args, "--codecs", "jpeg", "--targets", "1", "-q"])
        err = capsys.readouterr().err
        assert rc == 2 and needle in err and err.count("\n") == 1, err


def test_bench_rd_exits_1_when_a_point_failed(crop192, tmp_path, monkeypatch, capsys):
    """A gimg point that raises is recorded with its error; the run finishes, the image is
    left out of the means, and the exit status is 1."""
    import gipp_codec

    def failing(image, **kwargs):
        raise RuntimeError("stand-in failure")

    monkeypatch.setitem(vars(gipp_codec), "encode_with_report", failing)
    path, _ = crop192
    out_json = tmp_path / "rd.json"
    rc = bench_rd.main([str(path), "--codecs", "jpeg,gimg", "--targets", "1", "--gimg-bpp", "1",
                        "--no-gimg-warmup", "--json", str(out_json), "-q"])
    assert rc == 1 and "1 point(s) failed" in capsys.readouterr().err
    res = json.loads(out_json.read_text())
    assert res["complete"] and res["summary"]["errors"] == 1 and "crop192" in res["summary"]["left_out"]


def test_rd_compare_pairs_points_by_their_label_and_names_what_it_leaves_out(tmp_path, capsys):
    """An image missing a rate point gets an empty cell there, not its next point in that
    column; images only one side has are named; a point compared outside the anchor's range
    says so in the summary."""
    import rd_compare

    def run(path, codec, rows):
        recs = [{"image": im, "codec": codec, "point": pt, "target_bpp": float(pt), "bpp": b, "psnr": p}
                for im, pt, b, p in rows]
        path.write_text(json.dumps({"records": recs, "complete": True}))
        return str(path)

    test = run(tmp_path / "t.json", "new", [("a", "0.5", 0.5, 30.0), ("a", "1", 1.0, 33.0), ("b", "1", 1.0, 34.0)])
    anchor = run(tmp_path / "o.json", "old", [("a", "0.5", 0.5, 29.0), ("a", "1", 1.0, 32.0),
                                              ("b", "0.5", 0.6, 31.0), ("b", "1", 0.9, 33.5),
                                              ("c", "1", 1.0, 30.0)])
    assert rd_compare.main([test, "--test", "new", "--anchor", "old", "--anchor-run", anchor]) == 0
    out = capsys.readouterr().out
    assert "Left out, no new records: c" in out
    assert "| b | – | 34.00 / 33.50* (1.000), +0.50 |" in out
    assert "point 1: mean +1.00 dB, median +1.00, 1 of 1 above" in out
    assert "point 2: mean +0.75 dB" in out and "1 of them outside the anchor's range" in out


def test_rd_merge_averages_the_same_images_for_every_codec_and_refuses_two_sizes(tmp_path, capsys):
    """Pooling a run of two codecs on image a with a run of one of them on image b: b is left
    out of every mean (and said so), and the merged JSON lists both images; a run of a at
    another size is refused."""
    import rd_merge

    def run(path, images, rows, complete=True):
        recs = [{"image": im, "codec": c, "point": pt, "target_bpp": b, "bpp": b, "psnr": p, "bytes": int(b * 100),
                 "encode_s": 1.0, "decode_s": 0.1}
                for im, c, pt, b, p in rows]
        path.write_text(json.dumps({"images": images, "records": recs, "complete": complete}))
        return str(path)

    a = {"name": "a", "width": 8, "height": 8}
    one = run(tmp_path / "1.json", [a], [("a", c, pt, b, p + (c == "webp")) for c in ("jpeg", "webp")
                                         for pt, b, p in (("0.5", 0.5, 30.0), ("1", 1.0, 33.0), ("2", 2.0, 36.0))])
    two = run(tmp_path / "2.json", [{"name": "b", "width": 8, "height": 8}],
              [("b", "jpeg", pt, b, p) for pt, b, p in (("0.5", 0.5, 20.0), ("1", 1.0, 23.0), ("2", 2.0, 26.0))],
              complete=False)
    out_json = tmp_path / "m.json"
    assert rd_merge.main([one, two, "--test", "webp", "--json", str(out_json)]) == 0
    captured = capsys.readouterr()
    assert "Left out of every mean and BD-rate" in captured.out and "b (webp at" in captured.out
    assert "| jpeg (the run) | 0.500 : 30.00  1.000 : 33.00  2.000 : 36.00 |" in captured.out
    assert "did not finish" in captured.err
    assert [im["name"] for im in json.loads(out_json.read_text())["images"]] == ["a", "b"]
    other = run(tmp_path / "3.json", [{"name": "a", "width": 16, "height": 16}], [("a", "jpeg", "0.5", 0.5, 30.0)])
    with pytest.raises(SystemExit, match="a is 16x16 here and 8x8 in another run"):
        rd_merge.main([one, other])


def test_jpeg_xl_peer_searches_its_distance_to_the_target_and_decodes_what_it_coded(crop192):
    """The jxl codec (libjxl through imagecodecs, the test extra): its file grows with the
    parameter (1 / distance), the search lands near the target, the same setting writes the
    same bytes twice, and the decode is the uint8 image it coded, close to the original."""
    pytest.importorskip("imagecodecs")
    assert rd_lib.jxl_problem() is None
    _, arr = crop192
    codec = rd_lib.CLASSICAL_CODECS["jxl"]
    sizes = [len(codec.encode(arr, p)) for p in (0.1, 0.3, 1.0)]
    assert sizes[0] < sizes[1] < sizes[2]
    found = rd_lib.search_bpp(codec, arr, 1.0)
    assert abs(found.bpp - 1.0) / 1.0 < 0.02
    assert codec.encode(arr, found.param) == found.data
    decoded = codec.decode(found.data)
    assert decoded.dtype == np.uint8 and decoded.shape == arr.shape
    assert 28 < rd_lib.quality(arr, decoded)["psnr"] < 50
    # The distance is clamped to libjxl's range: a parameter past either end codes as the end.
    assert codec.encode(arr, 1e-6) == codec.encode(arr, 1.0 / rd_lib.JXL_MAX_DISTANCE)
    # jxl-e9 passes its effort on: another file at the same distance, decoded as well.
    slower = rd_lib.CLASSICAL_CODECS["jxl-e9"]
    assert slower.encode(arr, found.param) != found.data
    assert 28 < rd_lib.quality(arr, slower.decode(slower.encode(arr, found.param)))["psnr"] < 50


def test_jpeg_xl_codes_a_grey_image_as_one_channel(crop192):
    """As JPEG and JPEG 2000 do here: one channel coded, three equal channels decoded; one
    pixel off grey makes it a colour file again."""
    imagecodecs = pytest.importorskip("imagecodecs")
    _, arr = crop192
    grey = np.repeat(arr[..., 1:2], 3, axis=2)  # [H, W, 3], three equal channels
    codec = rd_lib.CLASSICAL_CODECS["jxl"]
    data = codec.encode(grey, 0.5)
    assert np.asarray(imagecodecs.jpegxl_decode(data)).ndim == 2
    decoded = codec.decode(data)
    assert decoded.shape == grey.shape
    assert np.array_equal(decoded[..., 0], decoded[..., 1]) and np.array_equal(decoded[..., 0], decoded[..., 2])
    noisy = grey.copy()
    noisy[0, 0, 0] ^= 1  # no longer grey: coded as three channels
    assert np.asarray(imagecodecs.jpegxl_decode(codec.encode(noisy, 0.5))).shape == grey.shape


def test_bench_rd_without_jpeg_xl_stops_before_any_work(crop192, tmp_path, monkeypatch, capsys):
    """Asking for jxl where imagecodecs (or its JPEG XL) is missing: one line that says how to
    get it, exit 2, no record written; the other codecs do not need it."""
    monkeypatch.setattr(rd_lib, "jxl_problem", lambda: "the jxl codec needs imagecodecs (stand-in)")
    path, _ = crop192
    out_json = tmp_path / "rd.json"
    rc = bench_rd.main([str(path), "--codecs", "jpeg,jxl", "--targets", "1", "--json", str(out_json), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "needs imagecodecs" in err and err.count("\n") == 1
    assert not out_json.exists()
    assert bench_rd.main([str(path), "--codecs", "jpeg", "--targets", "1", "--json", str(out_json), "-q"]) == 0


def test_jxl_problem_names_the_missing_library(monkeypatch):
    """Without imagecodecs the reason names it and the install that brings it."""
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # import raises ImportError
    assert "pip install" in rd_lib.jxl_problem() and "imagecodecs" in rd_lib.jxl_problem()
