"""``tools/position_contexts.py``: what contexts on the previous gaps save on positions."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from position_contexts import gap_contexts, position_report  # noqa: E402


def test_gap_contexts_are_causal_quantile_bins():
    gaps = np.array([1, 1, 1, 1, 1000, 1000, 1000, 1000], np.uint64)
    ctx = gap_contexts(gaps, 1, 2)
    assert list(ctx[1:4]) == [0, 0, 0] and list(ctx[5:]) == [1, 1, 1]  # each from the gap before it
    assert ctx[4] == 0  # the first large gap follows a small one: not yet known


def test_a_set_of_two_densities_gains_from_the_contexts_and_a_uniform_one_does_not():
    rng = np.random.default_rng(1)
    dense = rng.integers(0, 256, size=(1500, 2))  # a 256 x 256 corner, packed
    sparse = rng.integers(256, 4096, size=(300, 2))  # the rest, sparse
    q = np.zeros((1800, 8), np.int64)
    q[:, :2] = np.concatenate([dense, sparse])
    two = position_report(q)
    assert min(v for k, v in two.items() if k != "one") < two["one"] - 0.25  # at most ~0.65: the mix's entropy
    q[:, :2] = rng.integers(0, 4096, size=(1800, 2))
    flat = position_report(q)
    assert min(v for k, v in flat.items() if k != "one") > flat["one"] - 0.05
