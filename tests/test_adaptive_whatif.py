"""``tools/adaptive_models_whatif.py``: the adaptive counts' cost, and a file's prices."""

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from adaptive_models_whatif import adaptive_bits, file_whatif  # noqa: E402

from gipp_codec.format.container import write_gimg  # noqa: E402
from gipp_codec.format.model import BitDepths  # noqa: E402
from gipp_codec.format.synthetic import synthetic_quantized  # noqa: E402


def test_adaptive_counts_price_each_token_by_the_counts_before_it():
    # tokens 0, 0, 1 of two: 1/2, then 5/6, then 1/10 (counts 1 + 4 + 4 against 1)
    want = -math.log2(1 / 2) - math.log2(5 / 6) - math.log2(1 / 10)
    assert abs(adaptive_bits(np.array([0, 0, 1]), 2, 1, 4, 0) - want) < 1e-12
    # past a limit of 5, each count halves, rounding up: (5, 1) -> (3, 1), then (7, 1) -> (4, 1)
    want_halved = -math.log2(1 / 2) - math.log2(3 / 4) - math.log2(1 / 5)
    assert abs(adaptive_bits(np.array([0, 0, 1]), 2, 1, 4, 5) - want_halved) < 1e-12


def test_a_files_chosen_price_is_never_above_its_static_one_by_more_than_the_flags():
    data = write_gimg(synthetic_quantized(300, 64, 48, BitDepths(10, 7, 6), seed=5))
    row = file_whatif(data, 1, 4, 8192)
    assert row["contexts"] >= 1 and row["gaussians"] == 300
    assert row["chosen"] <= row["static"] + row["contexts"] + 1e-6
    assert row["chosen"] <= row["adaptive_only"] + row["contexts"] + 1e-6
