"""Encoder end to end: API and CLI, report measured on the file, rate control, float mode."""

import json
import math
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gipp_codec.cli import _register, cli
from gipp_codec.decoder import decode, read_info
from gipp_codec.encoder import encode_with_report
from gipp_codec.errors import ConfigError
from gipp_codec.metrics import psnr
from spec_decode import reference_psnr  # noqa: E402  (pytest puts tests/ on sys.path)

_register()


def _image(h=40, w=48, seed=0) -> np.ndarray:
    """A smooth test image with an edge: fittable in a few dozen iterations."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 0.5 + 0.4 * np.sin(x / 7.0)
    g = 0.5 + 0.4 * np.cos(y / 5.0)
    b = np.where(x + y > (h + w) / 2, 0.8, 0.2)
    return np.clip(np.stack([r, g, b], axis=2) * 255 + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def encoded():
    img = _image()
    data, report = encode_with_report(img, gaussians=60, iterations=120, seed=1)
    return img, data, report


def test_report_matches_file(encoded):
    img, data, report = encoded
    assert report.bytes == len(data)
    assert report.bpp == pytest.approx(len(data) * 8 / (img.shape[0] * img.shape[1]))
    assert decode(data).shape == img.shape
    # the reported PSNR is the file's, as the spec's reference decoder (binary64, written from
    # the spec alone) decodes it, and equals the trainer's own figure for the quantized state
    assert report.psnr == pytest.approx(reference_psnr(data, img), abs=0.01)
    assert abs(report.psnr_encoder - report.psnr) < 0.01
    assert read_info(data)["header"]["gaussian_count"] == report.gaussians


def test_encode_learns_something(encoded):
    img, _, report = encoded
    flat = np.broadcast_to(img.reshape(-1, 3).mean(axis=0).round().astype(np.uint8), img.shape)
    assert report.psnr > psnr(flat, img) + 3.0


def test_deterministic_for_seed(encoded):
    img, data, _ = encoded
    again, _ = encode_with_report(img, gaussians=60, iterations=120, seed=1)
    assert again == data


def _shapes_image(h=64, w=72) -> np.ndarray:
    """``_image`` with a disc and stripes: sharp edges that a base layer of block colours cannot
    draw, so that a small budget's Gaussians beat the base layer alone (on ``_image``'s smooth
    gradients the base alone decoded better at 0.5 bpp, and the encoder writes it then)."""
    img = _image(h, w).astype(np.int32)
    y, x = np.mgrid[0:h, 0:w]
    img[(x - 0.55 * w) ** 2 + (y - 0.47 * h) ** 2 < 0.033 * h * w] = [230, 40, 60]
    img[(y // 6) % 2 == 0, : w // 6] = 20
    return img.clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("target", [0.5, 2.0])
def test_bpp_target_reached(target):
    img = _shapes_image(64, 72)
    data, report = encode_with_report(img, bpp=target, iterations=60)
    assert report.target_bpp == target
    assert abs(report.bpp / target - 1) <= 0.05  # the CLI's promise; Kodak is measured in BENCHMARKS.md
    assert len(data) * 8 <= target * 64 * 72  # a finished file over budget is trimmed to it
    # the file's PSNR as the spec's reference decoder sees it (the trainer's figure is replaced
    # by the decoder's when the finished file was trimmed to the budget)
    assert report.psnr == pytest.approx(reference_psnr(data, img), abs=0.01)


def test_trim_to_budget_keeps_the_most_important():
    from gipp_codec.encoder import _trim_to_budget
    from gipp_codec.format.container import parse_gimg, write_gimg
    from gipp_codec.format.model import QuantizedGaussians
    from gipp_codec.format.synthetic import synthetic_quantized
    from gipp_codec.quant.dequant import dequantize_rows

    g = synthetic_quantized(400, 64, 48)
    q = g.q.copy()

    def file_of(qq):
        return write_gimg(QuantizedGaussians(g.width, g.height, g.bits, qq, g.scales, g.offsets))

    budget = 0.6 * 8 * len(file_of(q))
    data, rows = _trim_to_budget(q, g.scales, g.offsets, budget, file_of)
    kept = parse_gimg(data).gaussians.q
    n = kept.shape[0]
    assert rows.shape[0] == n and data == file_of(rows)
    assert 8 * len(data) <= budget and 0 < n < 400
    rows = dequantize_rows(q, g.scales, g.offsets).astype(np.float64)  # independent of fit.prune
    energy = (rows[:, 5:8] ** 2).sum(1) * np.sqrt(np.clip(rows[:, 2] * rows[:, 4] - rows[:, 3] ** 2, 0, None))
    top = q[np.argsort(-energy, kind="stable")[:n]]
    assert sorted(map(tuple, kept.tolist())) == sorted(map(tuple, top.tolist()))
    more = q[np.argsort(-energy, kind="stable")[: n + 1]]
    assert 8 * len(file_of(more)) > budget  # one more Gaussian would not have fitted


@pytest.mark.parametrize("share", [0.2, 0.55, 0.93])
def test_trim_to_budget_finds_the_count_in_a_few_codings(share):
    """The trim's search probes where the bracket's line meets the budget: it still ends
    on the largest count that fits (one more does not), in far fewer codings of the set
    than a bisection's log2(N)."""
    from gipp_codec.encoder import _trim_to_budget
    from gipp_codec.format.container import parse_gimg, write_gimg
    from gipp_codec.format.model import QuantizedGaussians
    from gipp_codec.format.synthetic import synthetic_quantized

    g = synthetic_quantized(2000, 256, 192, seed=3)
    calls = []

    def file_of(qq):
        calls.append(qq.shape[0])
        return write_gimg(QuantizedGaussians(g.width, g.height, g.bits, qq, g.scales, g.offsets))

    budget = share * 8 * len(file_of(g.q))
    calls.clear()
    data, rows = _trim_to_budget(g.q.copy(), g.scales, g.offsets, budget, file_of)
    n_kept = rows.shape[0]
    assert parse_gimg(data).gaussians.q.shape[0] == n_kept and 8 * len(data) <= budget
    probes = calls[2:]  # after the files of 1 and of all 2000 Gaussians
    assert n_kept in probes and n_kept + 1 in probes  # the boundary was measured on both sides
    assert len(calls) <= 8 < math.ceil(math.log2(2000))


def test_rate_model_prediction():
    from gipp_codec.encoder import ATTRIBUTE_BITS, POSITION_EXCESS_BITS, predict_gaussians
    from gipp_codec.format.model import BitDepths

    budget = 0.5 * 768 * 512
    n = predict_gaussians(budget, BitDepths())
    per = 24 - np.log2(n) + POSITION_EXCESS_BITS + ATTRIBUTE_BITS
    assert abs(n * per / budget - 1) < 0.002  # solves the model's equation
    assert predict_gaussians(2 * budget, BitDepths()) > 2 * n  # denser files cost less per Gaussian
    assert predict_gaussians(budget, BitDepths(12, 10, 4)) > n  # fewer bits per colour: more Gaussians
    assert predict_gaussians(1.0, BitDepths()) == 1


def test_rate_hook_makes_up_for_gaussians_pruned_since_its_last_call():
    """The hook's second call aims over the budget by the fraction of Gaussians lost since
    its first call (QAT's pruning goes on after it), never by less than its margin."""
    import torch

    from gipp_codec.encoder import size_to_budget
    from gipp_codec.fit.config import QATConfig
    from gipp_codec.format.model import BitDepths
    from gipp_codec.quant.lsq import LSQPlus

    gen = torch.Generator().manual_seed(0)
    n, w, h = 800, 96, 64
    rows = torch.cat([torch.rand(n, 1, generator=gen) * w, torch.rand(n, 1, generator=gen) * h,
                      1 + 4 * torch.rand(n, 1, generator=gen), 0.2 * torch.rand(n, 1, generator=gen),
                      1 + 4 * torch.rand(n, 1, generator=gen), torch.rand(n, 3, generator=gen)], dim=1)  # [N, 8]
    bits = BitDepths(12, 8, 6)
    quant = LSQPlus(bits.per_channel())
    quant.init_minmax(rows)
    budget = 30.0 * n

    def fresh():
        return size_to_budget(budget, bits, w, h, None, margin)

    margin = QATConfig().hook_margin
    first = fresh()(rows, quant)
    plain = fresh()
    plain(rows, quant)
    kept = rows[: int(0.8 * first)]  # 20 % of what the first call asked for was pruned since
    again = plain(kept, quant)
    alone = fresh()(kept, quant)  # the same set seen by a first call: the plain margin
    assert again > alone * 1.1  # ~ (1 / 0.8) / (1 + margin) = 1.19 more
    assert again == pytest.approx(alone * (1 / 0.8) / (1 + margin), rel=0.05)
    mild = fresh()
    mild(rows, quant)
    assert mild(rows[: int(0.99 * first)], quant) == fresh()(rows[: int(0.99 * first)], quant)  # margin floor


def test_the_rate_hooks_margin_comes_from_the_config(monkeypatch):
    """QATConfig.hook_margin (the given config's, else the default's) reaches the rate hook,
    and validation refuses a margin outside [0, 1)."""
    import gipp_codec.encoder as enc
    from gipp_codec.fit.config import FitConfig, QATConfig

    seen = []
    real = enc.size_to_budget

    def spy(*args):
        seen.append(args[5])
        return real(*args)

    monkeypatch.setattr(enc, "size_to_budget", spy)
    img = _image(h=16, w=24)
    enc.encode(img, bpp=4.0, iterations=12, config=FitConfig().with_qat(hook_margin=0.2))
    enc.encode(img, bpp=4.0, iterations=12)
    assert seen[0] == 0.2 and seen[-1] == QATConfig().hook_margin
    with pytest.raises(ConfigError, match="hook_margin"):
        FitConfig().with_qat(hook_margin=1.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(gaussians=10, bpp=1.0), "at most one"),
    (dict(bpp=-1.0), "bpp"),
    (dict(bpp=float("nan")), "bpp"),
    (dict(gaussians=0), "Gaussians"),
    (dict(gaussians=10, bits=(12, 10, 0)), "bit depth"),
    (dict(gaussians=10, config="fast"), "FitConfig"),
    (dict(gaussians=10, bits=(12, 7)), "three bit depths"),
    (dict(bpp=True), "bpp"),
    (dict(gaussians=10, seed=2 ** 70), "seed"),
    (dict(gaussians=10, seed=-1), "seed"),
    (dict(gaussians=10, seed=1.5), "seed"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        encode_with_report(_image(), iterations=5, **kwargs)


def test_cli_encode_decode_info(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(_image()).save(src)
    out = tmp_path / "out.gimg"
    runner = CliRunner()
    res = runner.invoke(cli, ["encode", str(src), str(out), "-n", "40", "-i", "60", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    for key in ("bpp", "psnr", "ms_ssim", "bytes", "gaussians", "seconds"):
        assert key in summary
    assert summary["bytes"] == out.stat().st_size
    png = tmp_path / "back.png"
    res = runner.invoke(cli, ["decode", str(out), str(png)])
    assert res.exit_code == 0, res.output
    back = np.asarray(Image.open(png).convert("RGB"))
    assert psnr(back, _image()) == pytest.approx(summary["psnr"], abs=1e-6)
    res = runner.invoke(cli, ["info", str(out), "--json"])
    assert res.exit_code == 0
    assert json.loads(res.output.strip().splitlines()[-1])["header"]["gaussian_count"] == summary["gaussians"]


def test_cli_covariance_form_writes_payload_coding_3_and_refuses_unknown_forms(tmp_path):
    """--covariance-form correlation writes b as the correlation (payload coding 3, minor 4),
    which decodes as the report says; without it the file keeps coding 2; an unknown form is
    a usage error that leaves no file."""
    src = tmp_path / "in.png"
    Image.fromarray(_image()).save(src)
    runner = CliRunner()
    headers = {}
    for form in ("b", "correlation"):
        out = tmp_path / f"{form}.gimg"
        res = runner.invoke(cli, ["encode", str(src), str(out), "-n", "40", "-i", "60", "--covariance-form", form,
                                  "--json"])
        assert res.exit_code == 0, res.output
        summary = json.loads(res.output.strip().splitlines()[-1])
        assert psnr(decode(out.read_bytes()), _image()) == pytest.approx(summary["psnr"], abs=1e-6)
        res = runner.invoke(cli, ["info", str(out), "--json"])
        headers[form] = json.loads(res.output.strip().splitlines()[-1])
    assert headers["b"]["header"]["payload_coding"] == 2 and headers["correlation"]["header"]["payload_coding"] == 3
    # both in attribute mode 2 (QAT's grid is binary16, format 1.5), with either covariance form
    assert headers["correlation"]["version"] == headers["b"]["version"] == "1.5"
    assert headers["correlation"]["header"]["attribute_mode"] == headers["b"]["header"]["attribute_mode"] == "quantized16"
    res = runner.invoke(cli, ["encode", str(src), str(tmp_path / "x.gimg"), "--covariance-form", "rho"])
    assert res.exit_code == 2 and "rho" in res.output and not (tmp_path / "x.gimg").exists()


def test_cli_warns_when_the_rate_target_is_missed(tmp_path):
    """A target no file can meet (below the size of a one-Gaussian file) still writes the
    closest file, and says on stderr by how much it missed; a met target says nothing."""
    src = tmp_path / "in.png"
    Image.fromarray(_image()).save(src)
    runner = CliRunner()
    res = runner.invoke(cli, ["encode", str(src), str(tmp_path / "a.gimg"), "--bpp", "0.01", "-i", "20", "--json"])
    assert res.exit_code == 0, res.output
    assert "warning" in res.stderr and "from the target 0.01" in res.stderr
    assert "file cannot be smaller than its header" in res.stderr  # the reason, not "budget unused"
    assert json.loads(res.stdout.strip().splitlines()[-1])["bpp"] > 0.0105
    res = runner.invoke(cli, ["encode", str(src), str(tmp_path / "b.gimg"), "--bpp", "4", "-i", "40", "--json"])
    assert res.exit_code == 0, res.output
    assert abs(json.loads(res.stdout.strip().splitlines()[-1])["bpp"] / 4 - 1) <= 0.05
    assert "warning" not in res.stderr


def test_rate_defaults_to_half_a_bit_per_pixel(tmp_path):
    """Neither --gaussians nor --bpp: the CLI and the API both aim at DEFAULT_BPP (0.5) and
    write the same file; giving both is an error."""
    from gipp_codec.encoder import DEFAULT_BPP, encode

    assert DEFAULT_BPP == 0.5
    image = _image(96, 96)
    src = tmp_path / "in.png"
    Image.fromarray(image).save(src)
    out = tmp_path / "o.gimg"
    res = CliRunner().invoke(cli, ["encode", str(src), str(out), "-i", "20", "--json"])
    assert res.exit_code == 0, res.output
    assert abs(json.loads(res.stdout.strip().splitlines()[-1])["bpp"] / DEFAULT_BPP - 1) <= 0.05
    assert encode(image, iterations=20) == out.read_bytes()
    res = CliRunner().invoke(cli, ["encode", str(src), str(tmp_path / "b.gimg"), "-n", "5", "--bpp", "1"])
    assert res.exit_code == 2 and "at most one" in res.output
    assert not (tmp_path / "b.gimg").exists()


def test_default_bit_depths_follow_the_rate_and_paper_keeps_12_10_6(tmp_path):
    """The encoder's default depths are ?/7/5 below COLOR_HIGH_RATE_BPP and ?/7/6 from it up,
    at 2 and 3 bpp too (measured, BENCHMARKS.md §4); for --gaussians N the rate is
    the one the rate model gives N. The position depth ? follows the Gaussians' spacing: on
    this 32 x 24 image 6 and 8 Gaussians are 11.3 and 9.8 px apart, so a step of at most
    1/23 of that, 0.49 and 0.43 px, needs 2**7 steps (0.25 px; 2**6 give 0.5), as do 18 at
    1.2 bpp (the rate model's N: 6.5 px apart, 0.04 per pixel, so at most 1/16 of it, 0.41
    px); 29 at 2 bpp are 5.1 px apart: at most 0.32 px, 7 bits too; at 0.2 and 0.25 bpp the
    few Gaussians take 6 bits. --paper (12/10/6 at every rate) and --bits choose others; the header says
    which."""
    from gipp_codec.fit.config import COLOR_HIGH_RATE_BPP

    assert 0.15 < COLOR_HIGH_RATE_BPP <= 0.25  # the measured range: 6 bits trade MS-SSIM at 0.15 bpp, ahead from 0.25
    src = tmp_path / "in.png"
    Image.fromarray(_image(24, 32)).save(src)
    runner = CliRunner()
    helptext = " ".join(runner.invoke(cli, ["encode", "--help"]).output.split())
    assert f"P,7,5 below {COLOR_HIGH_RATE_BPP:g} bpp, P,7,6 from {COLOR_HIGH_RATE_BPP:g} bpp up" in helptext
    high, mid = ["--bpp", "2"], ["--bpp", str(COLOR_HIGH_RATE_BPP)]
    cases = (([], (7, 7, 6)), (["--paper"], (12, 10, 6)), (["--bits", "11,9,5"], (11, 9, 5)),
             (["--paper", "--bits", "12,9,6"], (12, 9, 6)), (["--bpp", "0.2"], (6, 7, 5)), (mid, (6, 7, 6)),
             (["--bpp", "1.2"], (7, 7, 6)), (high, (7, 7, 6)), (["--bpp", "3"], (7, 7, 6)),
             ([*high, "--paper"], (12, 10, 6)), ([*high, "--bits", "12,7,6"], (12, 7, 6)))
    for extra, expected in cases:
        out = tmp_path / "o.gimg"
        rate = [] if "--bpp" in extra else ["-n", "8"]
        res = runner.invoke(cli, ["encode", str(src), str(out), *rate, "-i", "20", *extra])
        assert res.exit_code == 0, (extra, res.output)
        header = read_info(out.read_bytes())["header"]
        assert (header["bits_position"], header["bits_covariance"], header["bits_color"]) == expected, extra
        assert f"depths {'/'.join(map(str, expected))})" in res.output, extra  # and the summary line says so
    # N Gaussians: 3 on 24 x 32 pixels is under 0.25 bpp in the rate model (13.9 px apart: 6
    # bits), 6 ~0.39, 8 ~0.5, 12 ~0.76 (0.016 per pixel, 8 px apart: 1/16 of it is 0.5 px, 6
    # bits), 18 ~1.13, 40 ~2.5
    for n, expected in ((3, (6, 7, 5)), (6, (7, 7, 6)), (8, (7, 7, 6)), (12, (6, 7, 6)), (18, (7, 7, 6)), (40, (7, 7, 6))):
        _, report = encode_with_report(_image(24, 32), gaussians=n, iterations=20)
        assert report.bits == expected, n


def test_depths_at_a_rate():
    """QATConfig.depths_at switches the covariance depth at high_rate_bpp and the colour depth
    at color_high_rate_bpp, not below them; an unknown rate, or a *_high_rate None, keeps
    depths(); validation refuses bad values."""
    from gipp_codec.encoder import default_depths, model_bits_per_gaussian
    from gipp_codec.fit.config import FitConfig, QATConfig
    from gipp_codec.format.model import BitDepths

    q = QATConfig(bits_covariance=7, bits_covariance_high_rate=9, high_rate_bpp=1.25,
                  bits_color=4, bits_color_high_rate=7, color_high_rate_bpp=0.6)
    assert q.depths_at(0.5999) == (12, 7, 4) and q.depths_at(0.6) == (12, 7, 7)
    assert q.depths_at(1.2499) == (12, 7, 7) and q.depths_at(1.25) == (12, 9, 7) and q.depths_at(8.0) == (12, 9, 7)
    assert q.depths_at(None) == q.depths() == (12, 7, 4)
    assert QATConfig(color_high_rate_bpp=1.5).depths_at(1.25) == (12, 7, 5)
    assert QATConfig(bits_covariance_high_rate=None, bits_color_high_rate=None).depths_at(4.0) == QATConfig().depths()
    assert QATConfig(bits_color_high_rate=None).depths_at(4.0) == (12, 7, 5)  # 7-bit covariance at every rate
    # a depth set for high rates applies from high_rate_bpp (1.5) up, not below it
    assert QATConfig(bits_covariance_high_rate=8).depths_at(1.5) == (12, 8, 6)
    assert QATConfig(bits_covariance_high_rate=8).depths_at(1.49) == (12, 7, 6)
    assert FitConfig.paper().qat.depths_at(4.0) == FitConfig.paper().qat.depths_at(0.1) == (12, 10, 6)
    # N Gaussians: each switch is where N's modelled file (at depths()) reaches its rate
    for n, field in ((20_000, "high_rate_bpp"), (7_000, "color_high_rate_bpp")):
        rate = n * model_bits_per_gaussian(n, BitDepths(*QATConfig().depths())) / (768 * 512)
        at = QATConfig(**{field: rate}, bits_covariance_high_rate=8)
        changed = "covariance" if field == "high_rate_bpp" else "color"
        low, high = getattr(BitDepths(12, 7, 5), changed), getattr(BitDepths(12, 8, 6), changed)
        assert getattr(default_depths(at, n, None, 768, 512), changed) == high, field
        assert getattr(default_depths(at, n - 100, None, 768, 512), changed) == low, field
        assert getattr(default_depths(at, None, rate, 768, 512), changed) == high, field
        assert getattr(default_depths(at, "many", None, 768, 512), changed) == low, field  # left for the fit
    for bad in (dict(bits_covariance_high_rate=0), dict(bits_covariance_high_rate=17),
                dict(bits_covariance_high_rate=8.0), dict(high_rate_bpp=0.0), dict(high_rate_bpp=float("nan")),
                dict(bits_color_high_rate=0), dict(bits_color_high_rate=17), dict(bits_color_high_rate=6.0),
                dict(bits_color_high_rate=True), dict(color_high_rate_bpp=0.0),
                dict(color_high_rate_bpp=float("nan")), dict(color_high_rate_bpp=-1.0)):
        with pytest.raises(ConfigError):
            FitConfig().with_qat(**bad)


def test_position_depth_follows_the_gaussians_spacing():
    """The position depth is the fewest bits, at most bits_position, whose step is at most
    1/position_steps_per_spacing of the Gaussians' mean spacing (1/position_steps_per_spacing_dense
    from position_dense_from Gaussians per pixel): 11 bits on a Kodak-sized image from 0.15 to
    1.0 bpp, 12 at 2 bpp (measured, BENCHMARKS.md §4), 12 (the cap)
    on a 4K image; off (None), unknown N or FitConfig.paper(): bits_position."""
    from gipp_codec.encoder import default_depths
    from gipp_codec.fit.config import FitConfig, QATConfig
    from gipp_codec.format.model import BitDepths

    q = QATConfig()
    assert q.position_steps_per_spacing == 23 and q.bits_position == 12
    assert q.position_steps_per_spacing_dense == 16 and q.position_dense_from == 0.013
    for w, h in ((768, 512), (512, 768), (97, 13), (3840, 2160), (1, 1)):
        for n in (1, 7, 300, 1331, 4895, 9479, 50_000):
            p = q.position_depth(n, w, h)
            spacing = (w * h / n) ** 0.5
            k = 16 if n >= 0.013 * w * h else 23
            fits = [b for b in range(1, 17) if max(w, h) / 2 ** b <= spacing / k]
            assert p == min(12, fits[0]), (w, h, n)
    # 768 x 512 at 0.5 bpp: the rate model's 4895 Gaussians (at 12/7/5, 0.0125 per pixel) are
    # 8.96 px apart, and 768 / 2**11 = 0.375 px <= 8.96 / 23 = 0.390 px < 768 / 2**10; at 0.75
    # bpp 7455 (0.019 per pixel, K 16) are 7.26 px apart: 7.26 / 16 = 0.454 px >= 0.375
    assert q.position_depth(1331, 768, 512) == 11 and q.position_depth(4895, 768, 512) == 11
    assert q.position_depth(7455, 768, 512) == 11
    assert [default_depths(q, None, b, 768, 512).position for b in (0.15, 0.25, 0.5, 0.6, 0.75, 1.0, 1.5, 2.0)] \
        == [11, 11, 11, 11, 11, 11, 12, 12]
    # 384 x 256: 10 bits up to 0.5 bpp, the depth measured best at 0.15 and 0.25 bpp
    assert [default_depths(q, None, b, 384, 256).position for b in (0.15, 0.25, 0.5, 0.75)] == [10, 10, 10, 10]
    assert default_depths(q, None, 0.15, 3840, 2160).position == 12  # 13 wanted: capped
    assert QATConfig(bits_position=14).position_depth(31_292, 3840, 2160) == 13
    assert QATConfig(position_steps_per_spacing=16).position_depth(1331, 768, 512) == 10
    assert QATConfig(position_steps_per_spacing=None).position_depth(1331, 768, 512) == 12
    # from position_dense_from (0.013) Gaussians per pixel the dense K: 9479 Gaussians (1.0 bpp)
    # are 6.47 px apart, 768 / 2**11 = 0.375 <= 6.47 / 16 < 768 / 2**10; 7455 (0.0190 per pixel)
    # too; with the bound at 0.02 (until the fifty-third session) 7455 keep K 23 and take 12 bits
    dense = QATConfig(position_steps_per_spacing_dense=16)
    assert [dense.position_depth(n, 768, 512) for n in (1331, 7455, 9479, 18376)] == [11, 11, 11, 12]
    assert QATConfig(position_dense_from=0.02).position_depth(7455, 768, 512) == 12
    assert [QATConfig(position_steps_per_spacing_dense=None).position_depth(n, 768, 512)
            for n in (1331, 7455, 9479, 18376)] == [11, 12, 12, 12]
    assert q.position_depth(None, 768, 512) == 12
    assert default_depths(q, "many", None, 768, 512).position == 12  # left for the fit to refuse
    assert default_depths(FitConfig.paper().qat, None, 0.15, 768, 512) == BitDepths(12, 10, 6)
    for bad in (0, -1.0, float("nan"), float("inf"), True, "32"):
        with pytest.raises(ConfigError, match="position_steps_per_spacing"):
            FitConfig().with_qat(position_steps_per_spacing=bad)
        with pytest.raises(ConfigError, match="position_steps_per_spacing_dense"):
            FitConfig().with_qat(position_steps_per_spacing_dense=bad)
    for bad in (0, -0.5, float("nan")):
        with pytest.raises(ConfigError, match="position_dense_from"):
            FitConfig().with_qat(position_dense_from=bad)


def test_cli_encode_refuses_bad_input(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    before = bad.read_bytes()
    out = tmp_path / "o.gimg"
    for args in (["encode", str(bad), str(out), "-n", "5"],
                 ["encode", str(tmp_path / "missing.png"), str(out), "-n", "5"],
                 ["encode", str(bad), str(out), "-n", "5", "--bpp", "1"],
                 ["encode", str(bad), str(out), "-n", "5", "--bits", "12,10"],
                 ["encode", str(bad), str(bad), "-n", "5"]):
        res = runner.invoke(cli, args)
        assert res.exit_code == 2, (args, res.output)
        assert "gimg: error:" in res.output
        assert "Traceback" not in res.output
    assert not out.exists()
    assert bad.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["bad.png"]


def test_fit_out_float_file_rerenders(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(_image()).save(src)
    out, preview = tmp_path / "rep.gimg", tmp_path / "preview.png"
    res = CliRunner().invoke(cli, ["fit", str(src), "-n", "40", "-i", "60", "--out", str(out),
                                   "--preview", str(preview), "--json"])
    assert res.exit_code == 0, res.output
    info = read_info(out.read_bytes())
    assert info["header"]["gaussian_count"] == json.loads(res.output.strip().splitlines()[-1])["gaussians"]
    rerendered = decode(out.read_bytes()).astype(int)
    fitted = np.asarray(Image.open(preview).convert("RGB")).astype(int)
    # same float32 Gaussians, same convention: equal up to rare cut-off/rounding flips
    assert np.mean(rerendered != fitted) < 0.01
    assert np.abs(rerendered - fitted).max() <= 2


def test_package_api_names_are_functions():
    import gipp_codec
    import gipp_codec.decoder  # noqa: F401  (submodules must not shadow the API functions)
    import gipp_codec.encoder  # noqa: F401
    import gipp_codec.export  # noqa: F401
    import gipp_codec.pack  # noqa: F401

    for name in ("encode", "decode", "read_info", "read_gaussians", "pack_gaussians", "fit_image"):
        assert callable(getattr(gipp_codec, name)), name


def test_trim_to_budget_follows_a_given_priority():
    """With ``priority`` (the encoder passes what removing each Gaussian costs) the trim drops
    the lowest first, whatever their energy."""
    from gipp_codec.encoder import _trim_to_budget
    from gipp_codec.format.container import write_gimg
    from gipp_codec.format.model import QuantizedGaussians
    from gipp_codec.format.synthetic import synthetic_quantized

    g = synthetic_quantized(300, 64, 48, seed=5)

    def file_of(qq):
        return write_gimg(QuantizedGaussians(g.width, g.height, g.bits, qq, g.scales, g.offsets))

    priority = np.random.default_rng(0).permutation(300).astype(np.float64)
    data, rows = _trim_to_budget(g.q.copy(), g.scales, g.offsets, 0.5 * 8 * len(file_of(g.q)), file_of, priority)
    n = rows.shape[0]
    top = g.q[np.sort(np.argsort(-priority)[:n])]
    assert 0 < n < 300 and np.array_equal(rows, top) and data == file_of(rows)


def test_an_image_over_the_format_limits_is_refused_before_fitting():
    with pytest.raises(ConfigError, match="over the .gimg limits"):
        encode_with_report(np.zeros((1, 70000, 3), np.uint8), gaussians=10, iterations=1)


def test_cli_encode_checks_the_output_and_the_seed_before_fitting(tmp_path, monkeypatch):
    import gipp_codec.encoder as encoder

    png = tmp_path / "in.png"
    Image.fromarray(_image()).save(png)
    monkeypatch.setattr(encoder, "_encode_once", lambda *a, **k: pytest.fail("fitted before the checks"))
    runner = CliRunner()
    for out, extra, needle in ((tmp_path / "no_dir" / "o.gimg", [], "does not exist"),
                               ("", [], "empty"), (str(tmp_path / "new") + os.sep, [], "separator"),
                               (tmp_path / "o.gimg", ["--seed", "99999999999999999999"], "--seed must be"),
                               (tmp_path / "o.gimg", ["--seed", "-1"], "--seed must be"),
                               (tmp_path / "o.gimg", ["-i", "0"], "--iterations must be >= 1")):
        res = runner.invoke(cli, ["encode", str(png), str(out), "-n", "5", "-i", "3", *extra])
        assert res.exit_code == 2, res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("gimg: error:") and needle in lines[0], res.output
    assert sorted(os.listdir(tmp_path)) == ["in.png"]


def test_cli_json_is_strict_when_the_psnr_is_infinite(tmp_path):
    """A flat image coded exactly has an infinite PSNR: the JSON line says null, not Infinity."""
    png, out = tmp_path / "black.png", tmp_path / "black.gimg"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    res = CliRunner().invoke(cli, ["encode", str(png), str(out), "-n", "4", "-i", "20", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1], parse_constant=lambda c: pytest.fail(c))
    assert summary["psnr"] is None


def test_ctrl_c_while_the_cli_starts_is_one_line_and_exit_130(monkeypatch, capsys):
    """The console script (``gipp_codec._entry``) guards the CLI's imports too."""
    import gipp_codec.cli
    from gipp_codec import _entry

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(gipp_codec.cli, "main", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        _entry.main()
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "gimg: interrupted\n"


@pytest.mark.parametrize("bpp", ["0", "-1", "nan", "inf", "65"])
def test_cli_bpp_out_of_range_is_one_message(tmp_path, bpp):
    png = tmp_path / "in.png"
    Image.fromarray(_image()).save(png)
    res = CliRunner().invoke(cli, ["encode", str(png), str(tmp_path / "o.gimg"), "--bpp", bpp])
    assert res.exit_code == 2 and res.stderr.strip().startswith("gimg: error: --bpp must be a number in (0, 64]")


def test_a_file_of_no_gaussians_reports_no_bits_per_gaussian(monkeypatch):
    """When no Gaussian survives quantization (the file is its base layer alone), the report
    gives no bits per Gaussian instead of the whole file's bits."""
    from gipp_codec.fit import api

    img = np.random.default_rng(4).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)  # [24, 32, 3]
    data, report = encode_with_report(img, gaussians=20, iterations=20)
    assert report.gaussians > 0 and report.bits_per_gaussian == pytest.approx(8 * len(data) / report.gaussians)
    keep = api.keep_mask
    monkeypatch.setattr(api, "keep_mask", lambda *a, **k: keep(*a, **k) & False)  # none survives
    data, report = encode_with_report(img, gaussians=20, iterations=20)
    assert report.gaussians == 0 and report.bits_per_gaussian is None
    assert report.summary()["bits_per_gaussian"] is None
    assert read_info(data)["header"]["gaussian_count"] == 0


@pytest.mark.parametrize("h,w,colour", [(1, 1, (7, 200, 13)), (7, 3, (0, 0, 0)), (3, 1100, (255, 255, 255)),
                                        (40, 48, (200, 120, 40)), (9, 9, (77, 77, 77))])
def test_a_one_colour_image_is_its_base_layer_alone(h, w, colour):
    """A one-colour image of any size (a grid of more than one sample past 1024 pixels) is
    written as a base layer alone that decodes to it exactly, at any rate or N asked for."""
    img = np.empty((h, w, 3), np.uint8)
    img[...] = colour
    for kwargs in ({"bpp": 0.5}, {"bpp": 8.0}, {"gaussians": min(50, 4 * h * w)}):
        data, report = encode_with_report(img, iterations=20, **kwargs)
        assert report.base_only and report.gaussians == 0 and report.passes == 0
        assert report.psnr == math.inf and report.bits_per_gaussian is None
        assert np.array_equal(decode(data), img)
        info = read_info(data)
        assert info["header"]["gaussian_count"] == 0 and info["base"]["sample_bits"] == 8
        assert len(data) < 200
        assert report.attribute_bits["total_bits"] == 8 * len(data)


def test_only_a_one_colour_image_takes_the_base_layer_alone():
    """One pixel off, or a config without a base layer (``--no-base``), and the Gaussians are fitted."""
    from gipp_codec.encoder import one_colour_base
    from gipp_codec.fit.config import FitConfig

    img = np.full((16, 20, 3), 90, np.uint8)
    assert one_colour_base(img) is not None
    img[3, 4, 2] = 91
    assert one_colour_base(img) is None
    data, report = encode_with_report(img, gaussians=8, iterations=20)
    assert not report.base_only and report.gaussians > 0
    flat = np.full((16, 20, 3), 90, np.uint8)
    no_base = FitConfig().with_qat(base_samples_across=None, covariance_form="b")
    data, report = encode_with_report(flat, gaussians=8, iterations=20, config=no_base)
    assert not report.base_only and read_info(data)["base"] is None


def test_cli_says_a_one_colour_image_needs_no_gaussians(tmp_path):
    """Instead of a missed-target warning, one line says why the file is so small."""
    png = tmp_path / "flat.png"
    Image.fromarray(np.full((32, 32, 3), (10, 20, 30), np.uint8)).save(png)
    res = CliRunner().invoke(cli, ["encode", str(png), str(tmp_path / "f.gimg"), "--bpp", "1", "--json"])
    assert res.exit_code == 0, res.output
    assert "warning" not in res.stderr
    assert "one colour" in res.stderr and "not spent" in res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["base_only"] is True and summary["gaussians"] == 0 and summary["psnr"] is None


def test_the_one_colour_note_says_when_the_file_is_over_a_tiny_target(tmp_path):
    """A --bpp below the smallest file of a one-colour image: the note says the file is over
    the target (which no file can meet), not that the rate went unspent."""
    png = tmp_path / "flat.png"
    Image.fromarray(np.full((32, 32, 3), (10, 20, 30), np.uint8)).save(png)
    res = CliRunner().invoke(cli, ["encode", str(png), str(tmp_path / "f.gimg"), "--bpp", "0.01", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["base_only"] is True and summary["bpp"] > 0.01 * 1.05
    assert "one colour" in res.stderr and "over the target" in res.stderr and "not spent" not in res.stderr


def test_numpy_scalar_rates_and_bool_depths():
    """A numpy float rate works as a Python float does (its type once leaked into the rate
    term's weight and failed validation); a bool is not a bit depth."""
    img = _image(16, 16)
    for bpp in (np.float32(1.0), np.float16(1.0), np.float64(1.0)):
        _, report = encode_with_report(img, bpp=bpp, iterations=20)
        assert report.target_bpp == 1.0 and type(report.target_bpp) is float
    with pytest.raises(ConfigError, match="three bit depths"):
        encode_with_report(img, bits=(True, 7, 6), iterations=20)
    with pytest.raises(ConfigError, match="too large"):
        encode_with_report(img, gaussians=10 ** 30, iterations=20)


def test_no_base_with_auto_writes_a_format_1_2_file(tmp_path):
    """--no-base promises a file 1.2 decoders read: the correlation form's auto does not undo it."""
    png = tmp_path / "in.png"
    Image.fromarray(_image()).save(png)
    res = CliRunner().invoke(cli, ["encode", str(png), str(tmp_path / "o.gimg"), "--bpp", "2", "-i", "20",
                                   "--no-base", "--covariance-form", "auto"])
    assert res.exit_code == 0, res.output
    info = read_info((tmp_path / "o.gimg").read_bytes())
    assert info["version"] == "1.2" and info["header"]["payload_coding"] == 2 and info["base"] is None


def test_the_one_colour_note_speaks_of_a_rate_only_when_one_was_given(tmp_path):
    png = tmp_path / "flat.png"
    Image.fromarray(np.full((8, 8, 3), 5, np.uint8)).save(png)
    res = CliRunner().invoke(cli, ["encode", str(png), str(tmp_path / "f.gimg")])
    assert res.exit_code == 0 and "one colour" in res.stderr and "not spent" not in res.stderr


def test_decode_to_an_in_memory_standard_output(tmp_path):
    """A stream with no file descriptor (click's runner, a notebook) is not a closed stdout."""
    (tmp_path / "in.gimg").write_bytes(encode_with_report(_image(), gaussians=10, iterations=20)[0])
    res = CliRunner().invoke(cli, ["decode", str(tmp_path / "in.gimg"), "-"])
    assert res.exit_code == 0, res.output
    assert res.stdout_bytes.startswith(b"\x89PNG")


def test_a_gimg_output_named_as_an_image_is_refused_before_fitting(tmp_path):
    """encode's OUT.gimg and fit's --out named .png / .jpg would hold .gimg bytes under an
    image's name: refused before any work, nothing written."""
    png = tmp_path / "in.png"
    Image.fromarray(_image()).save(png)
    for args in (["encode", str(png), str(tmp_path / "o.png"), "-n", "5", "-i", "5"],
                 ["fit", str(png), "-n", "5", "-i", "5", "--out", str(tmp_path / "o.jpg")]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 2 and "an image's name, but this output is a .gimg file" in res.stderr
    assert sorted(os.listdir(tmp_path)) == ["in.png"]


def test_the_package_lists_its_api():
    """``dir(gipp_codec)`` and ``from gipp_codec import *`` show the lazily imported API."""
    import gipp_codec

    names = {"encode", "encode_with_report", "decode", "open_gimg", "read_info", "read_gaussians", "pack_gaussians",
             "fit_image", "GimgError", "InputImageError", "ConfigError", "FormatError", "ArgumentTypeError",
             "GimgWarning"}
    assert names <= set(dir(gipp_codec)) and set(gipp_codec.__all__) == names
    scope: dict = {}
    exec("from gipp_codec import *", scope)
    assert names <= set(scope)


def test_input_metadata_over_a_tenth_of_the_budget_is_named_and_can_be_stripped(tmp_path):
    """An ICC profile counts towards --bpp's budget: encode warns when it takes more than a
    tenth, --strip-metadata leaves it out (the file then holds no iccp chunk and more Gaussians)."""
    png = tmp_path / "icc.png"
    Image.fromarray(_shapes_image(40, 48)).save(png, icc_profile=b"\0" * 400)  # 400 bytes of a 480-byte budget
    runner = CliRunner()
    kept = runner.invoke(cli, ["encode", str(png), str(tmp_path / "k.gimg"), "--bpp", "2", "-i", "20", "--json"])
    assert kept.exit_code == 0, kept.output
    assert "carrying the input's ICC profile costs 412 bytes" in kept.stderr and "--strip-metadata" in kept.stderr
    stripped = runner.invoke(cli, ["encode", str(png), str(tmp_path / "s.gimg"), "--bpp", "2", "-i", "20",
                                   "--strip-metadata", "--json"])
    assert stripped.exit_code == 0 and "ICC" not in stripped.stderr
    k, s = (json.loads(r.output.strip().splitlines()[-1]) for r in (kept, stripped))
    assert k["attribute_bits"]["metadata"] == 8 * 400 and s["attribute_bits"]["metadata"] == 0
    assert s["gaussians"] > k["gaussians"]
    assert read_info((tmp_path / "s.gimg").read_bytes())["bits"]["metadata"] == 0


def test_seeds_are_bounded_by_what_the_generator_keeps():
    """torch's CPU generator keeps 32 bits of a seed, so seeds 2^32 apart made the same file:
    the range stops at 2^32 - 1."""
    from gipp_codec.fit.api import check_seed

    assert check_seed(2 ** 32 - 1) == 2 ** 32 - 1
    with pytest.raises(ConfigError, match=r"0\.\.4294967295"):
        check_seed(2 ** 32)


def test_the_summary_escapes_a_newline_in_the_output_name(tmp_path):
    png = tmp_path / "in.png"
    Image.fromarray(_image()).save(png)
    res = CliRunner().invoke(cli, ["encode", str(png), str(tmp_path / "a\nb.gimg"), "-n", "5", "-i", "10"])
    assert res.exit_code == 0, res.output
    assert "a\\nb.gimg: 48x40" in res.stdout and len(res.stdout.strip().splitlines()) == 2


def test_a_path_or_file_bytes_given_to_encode_say_to_read_them_first():
    from gipp_codec import InputImageError, encode

    with pytest.raises(InputImageError, match="read the file first"):
        encode("photo.png")
    with pytest.raises(InputImageError, match="decode them first"):
        encode(b"\x89PNG")


def read_gaussians_of(data: bytes):
    """The quantized Gaussians a file holds (canonical order)."""
    from gipp_codec.format import parse_gimg

    return parse_gimg(data).gaussians


def test_a_budget_too_small_for_useful_gaussians_gets_the_base_layer_alone(tmp_path):
    """At 0.1 bpp a 32 x 32 image holds one Gaussian, which decoded below the image's block
    colours: the encoder writes the base layer alone when it is no larger and decodes better,
    and says so; at a useful rate it keeps its Gaussians."""
    from gipp_codec.encoder import better_base_alone
    from gipp_codec.fit.config import FitConfig
    from gipp_codec.format import BitDepths, write_gimg

    small = _image(32, 32)
    data, report = encode_with_report(small, bpp=0.1, iterations=30)
    assert report.base_only and report.gaussians == 0 and report.bits_per_gaussian is None
    assert read_info(data)["header"]["gaussian_count"] == 0 and read_info(data)["base"] is not None
    assert psnr(decode(data), small) == pytest.approx(report.psnr, abs=1e-9)
    one = write_gimg(read_gaussians_of(encode_with_report(small, gaussians=1, iterations=30, config=FitConfig()
                                                          .with_qat(base_samples_across=None))[0]))
    p_one = psnr(decode(one), small)
    alone = better_base_alone(small, one, p_one, BitDepths(), None, 6)
    assert alone is not None and len(alone[0]) <= len(one) and alone[1] > p_one
    full, good = encode_with_report(_image(), bpp=2.0, iterations=60)
    assert not good.base_only and good.gaussians > 10
    assert better_base_alone(_image(), full, good.psnr, BitDepths(), None, 6) is None
    counted, by_count = encode_with_report(small, gaussians=1, iterations=30)  # a count asked for is kept
    assert not by_count.base_only and read_info(counted)["header"]["gaussian_count"] == 1
    # over a budget no file meets, the smallest better grid; within one, the best that fits
    smallest = better_base_alone(small, one, p_one, BitDepths(), None, 6, budget_bits=8.0)
    roomy = better_base_alone(small, one, p_one, BitDepths(), None, 6, budget_bits=8.0 * len(one))
    assert roomy == alone and smallest is not None and smallest[1] > p_one
    assert len(smallest[0]) <= len(roomy[0]) and smallest[1] <= roomy[1]
    png = tmp_path / "s.png"
    Image.fromarray(small).save(png)
    res = CliRunner().invoke(cli, ["encode", str(png), str(tmp_path / "s.gimg"), "--bpp", "0.1", "-i", "30"])
    assert res.exit_code == 0 and "the base layer alone (block colours, no Gaussians) decodes better" in res.stderr


def test_info_explains_attribute_mode_2(tmp_path):
    import dataclasses

    from gipp_codec.format import write_gimg
    from gipp_codec.format.compact_grid import round_to_compact
    from gipp_codec.format.synthetic import synthetic_quantized

    g = synthetic_quantized(50, 32, 24, seed=5)
    s, o = round_to_compact(g.scales, g.offsets)
    path = tmp_path / "c.gimg"
    path.write_bytes(write_gimg(dataclasses.replace(g, scales=s, offsets=o)))
    res = CliRunner().invoke(cli, ["info", str(path)])
    assert res.exit_code == 0 and "gimg version 1.5" in res.output
    assert "attribute_mode: quantized16 (mode 2: the grid in binary16" in res.output and "offset_steps:" in res.output
