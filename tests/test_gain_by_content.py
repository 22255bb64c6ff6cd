"""``tools/gain_by_content.py``: per-image changes beside the images' texture."""

import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from gain_by_content import main, ranks, spearman, texture_stats  # noqa: E402


def test_ranks_share_ties_and_spearman_follows_order_not_scale():
    assert list(ranks(np.array([3.0, 1.0, 3.0, 2.0]))) == [2.5, 0.0, 2.5, 1.0]
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert abs(spearman(x, x ** 3) - 1.0) < 1e-12 and abs(spearman(x, -np.exp(x)) + 1.0) < 1e-12
    assert abs(spearman(x, np.array([2.0, 1.0, 3.0, 5.0, 4.0])) - 0.8) < 1e-12
    assert np.isnan(spearman(x, np.ones(5)))


def test_a_flat_image_is_flat_and_noise_is_not():
    flat = np.full((16, 16, 3), 128, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    f_share, f_med = texture_stats(flat, 5, 1e-3)
    n_share, n_med = texture_stats(noise, 5, 1e-3)
    assert f_share == 1.0 and n_share == 0.0 and n_med > f_med + 5


def test_main_pairs_runs_by_image_and_rate(tmp_path, capsys):
    rng = np.random.default_rng(1)
    shares = {}
    for i, name in enumerate(["a", "b", "c"]):  # a flat, b half noise, c all noise
        img = np.full((12, 12, 3), 100, np.uint8)
        img[:, 12 - 6 * i:] = rng.integers(0, 256, (12, 6 * i, 3))
        Image.fromarray(img).save(tmp_path / f"{name}.png")
        shares[name] = i

    def run(path, offset):  # the gain falls as the image gets noisier
        recs = [{"image": n, "codec": "gimg", "target_bpp": 1.0, "psnr": 30.0 + offset * (2 - i), "ms_ssim": 0.9}
                for n, i in shares.items()]
        recs.append({"image": "a", "codec": "jpeg", "target_bpp": 1.0, "psnr": 1.0, "ms_ssim": 0.1})
        path.write_text(json.dumps({"records": recs}))
        return str(path)

    test, base = run(tmp_path / "t.json", 0.1), run(tmp_path / "b.json", 0.0)
    assert main(["--test", test, "--anchor-run", base, "--images", str(tmp_path), "--window", "3"]) == 0
    out = capsys.readouterr().out
    assert "3 images" in out and "| a | 1.000 |" in out and "| c | 0.000 |" in out
    assert "+0.200" in out and "Spearman with the flat share +1.00" in out
    halves = []  # the anchor in two files, given by a repeated flag: both pool (not only the last)
    for k, names in enumerate((["a"], ["b", "c"])):
        recs = [r for r in json.loads(open(base).read())["records"] if r["image"] in names]
        halves.append(tmp_path / f"b{k}.json")
        halves[-1].write_text(json.dumps({"records": recs}))
    assert main(["--test", test, "--anchor-run", str(halves[0]), "--anchor-run", str(halves[1]),
                 "--images", str(tmp_path), "--window", "3"]) == 0
    assert capsys.readouterr().out == out
    assert main(["--test", test, "--anchor-run", base, "--images", str(tmp_path / "none")]) == 2
    assert main(["--test", test, "--anchor-run", base, "--images", str(tmp_path), "--codec", "webp"]) == 2
    (tmp_path / "bad.json").write_text("not json")
    with pytest.raises(SystemExit, match="not a bench_rd.py JSON"):
        main(["--test", str(tmp_path / "bad.json"), "--anchor-run", base, "--images", str(tmp_path)])


def test_an_exact_copy_is_left_out_and_named(tmp_path, capsys):
    for name in ("a", "b"):
        Image.fromarray(np.random.default_rng(3).integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    for run, exact in (("t", "inf"), ("b", 30.0)):
        recs = [{"image": "a", "codec": "gimg", "target_bpp": 1.0, "psnr": exact, "ms_ssim": 0.9},
                {"image": "b", "codec": "gimg", "target_bpp": 1.0, "psnr": 31.0 if run == "t" else 30.0, "ms_ssim": 0.9}]
        (tmp_path / f"{run}.json").write_text(json.dumps({"records": recs}))
    assert main(["--test", str(tmp_path / "t.json"), "--anchor-run", str(tmp_path / "b.json"),
                 "--images", str(tmp_path), "--window", "3"]) == 0
    out = capsys.readouterr().out
    assert "Left out, infinite PSNR (an exact copy): a" in out and "| a |" not in out
    assert "mean Δ PSNR +1.000 dB" in out
