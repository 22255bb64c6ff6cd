"""tools/code_search_sets.py: the greedy split of Gaussians into sets with disjoint boxes."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from code_search_sets import greedy_sets  # noqa: E402


def _overlap(p, q) -> bool:
    return p[0] <= q[1] and q[0] <= p[1] and p[2] <= q[3] and q[2] <= p[3]


def test_sets_have_disjoint_boxes_and_take_the_lowest_free_set():
    rng = np.random.default_rng(4)
    h, w, n = 40, 50, 120
    x0, y0 = rng.integers(0, w, n), rng.integers(0, h, n)
    box = np.stack([x0, np.minimum(x0 + rng.integers(0, 9, n), w - 1),
                    y0, np.minimum(y0 + rng.integers(0, 9, n), h - 1)], axis=1)
    order = rng.permutation(n)
    colour = greedy_sets(box, order, h, w)
    assert (colour >= 0).all() and colour.max() > 0
    for a in range(n):
        for b in range(a + 1, n):
            if colour[a] == colour[b]:
                assert not _overlap(box[a], box[b]), (a, b)
    # greedy: every lower set holds an earlier Gaussian that overlaps
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    for k in range(n):
        earlier = [j for j in range(n) if rank[j] < rank[k] and _overlap(box[j], box[k])]
        assert set(range(colour[k])) <= {int(colour[j]) for j in earlier}, k
