"""``tools/histogram_coding_whatif.py``: the interpolation rule, and a file's prices."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from histogram_coding_whatif import (  # noqa: E402
    file_whatif, interpolated_levels, knots, levels_of_counts, static_bits, strided_bits,
)

from gipp_codec.entropy.models import level_count, model_cost_bits  # noqa: E402
from gipp_codec.format.container import write_gimg  # noqa: E402
from gipp_codec.format.model import BitDepths  # noqa: E402
from gipp_codec.format.synthetic import synthetic_quantized  # noqa: E402


def test_knots_and_the_rounded_linear_levels_between_them():
    assert knots(10, 4).tolist() == [0, 4, 8, 9] and knots(9, 4).tolist() == [0, 4, 8]
    assert knots(2, 8).tolist() == [0, 1]
    # from 2 to 5 over 4 tokens: 2 + floor((3 * 2j + 4) / 8) = 2, 3, 4, 4; then the knot's 5 and 1
    assert interpolated_levels(np.array([0, 4, 5]), np.array([2, 5, 1])).tolist() == [2, 3, 4, 4, 5, 1]
    # the knots' own levels are kept, whatever the stride
    lv = np.array([7, 0, 12, 3])
    pos = knots(10, 3)
    assert interpolated_levels(pos, lv)[pos].tolist() == lv.tolist()


def test_levels_invert_the_counts_and_the_static_price():
    e = np.arange(48)
    assert levels_of_counts(level_count(e)).tolist() == e.tolist()
    counts = level_count(np.array([9, 7, 0, 4, 1]))
    tokens = np.array([0, 0, 0, 1, 1, 3, 4])
    steps = 9 + 5 + 7 + 7 + 5  # se of the steps 9, -2, -7, 4, -3
    assert abs(static_bits(counts, tokens) - (model_cost_bits(counts, tokens) + steps)) < 1e-9
    # the search at stride 1 starts from these levels, so it never prices above them
    assert strided_bits(counts, tokens, 1) <= static_bits(counts, tokens) + 1e-9
    # levels 10, 9, 10, 9, 10 where only tokens 0, 2 and 4 occur: flattening them saves 4 * 2
    # step bits for a little more of the tokens' mass spent on 1 and 3
    zigzag, used = level_count(np.array([10, 9, 10, 9, 10])), np.array([0, 2, 4] * 3)
    assert strided_bits(zigzag, used, 1) < static_bits(zigzag, used) - 5


def test_a_files_ways_never_cost_more_than_static_plus_their_codes():
    data = write_gimg(synthetic_quantized(300, 64, 48, BitDepths(10, 7, 6), seed=5))
    row = file_whatif(data)
    assert row["contexts"] >= 1 and row["gaussians"] == 300
    assert row["relevelled"] <= row["static"] + 1e-6
    assert row["strided"] <= row["relevelled"] + 2 * row["contexts"] + 1e-6
    assert row["shared"] <= row["static"] + row["contexts"] + 1e-6
    assert sum(row["strides_used"].values()) == row["contexts"]
