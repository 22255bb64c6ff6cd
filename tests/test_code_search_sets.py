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
    box[7] = (5, 4, 0, 3)  # an empty box: a Gaussian the search skips
    order = rng.permutation(n)
    colour = greedy_sets(box, order, h, w)
    assert colour[7] == -1
    live = [k for k in range(n) if k != 7]
    assert (colour[live] >= 0).all() and colour.max() > 0
    for a in live:
        for b in live:
            if b <= a:
                continue
            if colour[a] == colour[b]:
                assert not _overlap(box[a], box[b]), (a, b)
    # greedy: every lower set holds an earlier Gaussian that overlaps
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    for k in live:
        earlier = [j for j in live if rank[j] < rank[k] and _overlap(box[j], box[k])]
        assert set(range(colour[k])) <= {int(colour[j]) for j in earlier}, k


def test_visit_boxes_reach_the_rows_the_search_schedules_by():
    """A box's rows are the rows ``code_search`` schedules a visit by (``_reach_rows``)."""
    from code_search_sets import visit_boxes

    from gipp_codec import encode
    from gipp_codec.fit.code_search import _reach_rows
    from gipp_codec.format import parse_gimg

    y, x = np.mgrid[0:32, 0:48]
    img = np.stack([128 + 90 * np.sin(x / 5.0), 128 + 90 * np.cos(y / 4.0), (x * 7 + y * 3) % 256], -1)
    g = parse_gimg(encode(np.clip(img, 0, 255).astype(np.uint8), gaussians=60, iterations=60)).gaussians
    box = visit_boxes(g)
    rows = np.empty((g.q.shape[0], 2), np.int64)
    top = np.array([(1 << b) - 1 for b in g.bits.per_channel()], np.int64)
    _reach_rows(np.ascontiguousarray(g.q, np.int64), g.scales.astype(np.float64), g.offsets.astype(np.float64),
                top, g.height, g.width, rows)
    visited = box[:, 0] <= box[:, 1]
    assert visited.sum() > 40
    assert np.array_equal(box[visited][:, 2:4], rows[visited])
    assert (box[visited][:, 0] >= 0).all() and (box[visited][:, 1] < g.width).all()
