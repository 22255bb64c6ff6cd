"""``tools/bits_report.py``: red and blue less green's prediction, as the coder predicts them;
b and green within the size contexts the coder splits them on."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from bits_report import residual_bits, size_context_bits  # noqa: E402

from gipp_codec.entropy.gaussian_coder import channel_prediction  # noqa: E402


def test_residual_bits_are_the_entropy_of_the_coders_channel_residual():
    rng = np.random.default_rng(3)
    bits = (8, 8, 5, 5, 5, 5, 5, 5)
    scales = np.array([1, 1, 1, 1, 1, 0.05, 0.1, 0.08], np.float32)
    offsets = np.array([0, 0, 0, 0, 0, -0.2, -0.5, 0.1], np.float32)
    q = rng.integers(0, 32, size=(400, 8))
    q[:, 5] = channel_prediction(q[:, 6], 6, 5, scales, offsets, 31)  # red exactly as predicted
    q[:, 7] = np.clip(channel_prediction(q[:, 6], 6, 7, scales, offsets, 31) + (np.arange(400) % 2), 0, 31)
    got = residual_bits(q, bits, scales, offsets)
    r = q[:, 7] - channel_prediction(q[:, 6], 6, 7, scales, offsets, 31)
    p = np.unique(r, return_counts=True)[1] / r.size
    assert got["red"] == 0.0 and abs(got["blue"] - float(-(p * np.log2(p)).sum())) < 1e-12 and got["blue"] > 0.5


def test_size_context_bits_are_the_entropy_within_the_size_quartiles():
    """b fixed within each quarter of the sizes costs nothing there, though it takes four
    values over the set; green spread the same in every context costs what it costs overall."""
    rng = np.random.default_rng(4)
    bits = (8, 8, 5, 5, 5, 5, 5, 5)
    q = rng.integers(0, 32, size=(400, 8))
    q[:, 2] = np.repeat(np.arange(4), 100) * 8  # four sizes, 100 Gaussians each
    q[:, 4] = 0
    q[:, 3] = np.repeat([3, 9, 17, 30], 100)  # b: one value per size
    q[:, 6] = np.tile(np.arange(4), 100)  # green: the same four values in each context
    got = size_context_bits(q, bits)
    assert got["b"] == 0.0 and abs(got["green"] - 2.0) < 1e-12


def test_side_information_is_the_streams_side_bits(tmp_path, capsys):
    """The side line sums each stream's transmitted histograms and configurations (the ``side``
    bits of the file's accounting) and gives their share of the file."""
    from bits_report import main, report

    from gipp_codec.format import parse_gimg, write_gimg
    from gipp_codec.format.synthetic import synthetic_quantized

    path = tmp_path / "s.gimg"
    path.write_bytes(write_gimg(synthetic_quantized(300, 64, 48, seed=3)))
    row = report(path)
    streams = parse_gimg(path.read_bytes()).bits["streams"]
    want = sum(st["side"] for st in streams.values())
    assert want > 0 and row["side_bits"] == want and row["side_share"] == want / (8 * path.stat().st_size)
    assert main([str(path)]) == 0
    assert f"mean {want / 300:.3f} bits/Gaussian" in capsys.readouterr().out
