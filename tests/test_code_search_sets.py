"""tools/code_search_sets.py: the greedy split of Gaussians into sets with disjoint boxes."""

import sys
from pathlib import Path

import numpy as np
import torch

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


def test_a_visit_changes_only_pixels_inside_its_box():
    """``visit_boxes`` (the search's own ``_reach_boxes``) bounds what a visit touches: from
    codes moved off their fit, each Gaussian visited alone changes the render only inside
    its box, and the boxes lie on the image."""
    from code_search_sets import visit_boxes

    from gipp_codec import encode
    from gipp_codec.fit.code_search import _sweep, no_links
    from gipp_codec.format import parse_gimg
    from gipp_codec.format.model import QuantizedGaussians
    from gipp_codec.quant.dequant import dequantize_rows
    from gipp_codec.quant.lsq import split_attributes
    from gipp_codec.render import get_renderer

    y, x = np.mgrid[0:32, 0:48]
    img = np.clip(np.stack([128 + 90 * np.sin(x / 5.0), 128 + 90 * np.cos(y / 4.0), (x * 7 + y * 3) % 256], -1),
                  0, 255).astype(np.uint8)
    g = parse_gimg(encode(img, gaussians=60, iterations=60)).gaussians
    top = np.array([(1 << b) - 1 for b in g.bits.per_channel()], np.int64)
    rng = np.random.default_rng(0)
    q = np.clip(g.q.astype(np.int64) + rng.integers(-2, 3, g.q.shape), 0, top)  # [N, 8]
    g = QuantizedGaussians(q=q.astype(g.q.dtype), scales=g.scales, offsets=g.offsets, bits=g.bits,
                           height=g.height, width=g.width)
    box = visit_boxes(g)
    visited = box[:, 0] <= box[:, 1]
    assert visited.sum() > 40
    assert (box[visited][:, 0] >= 0).all() and (box[visited][:, 1] < g.width).all()
    assert (box[visited][:, 2] >= 0).all() and (box[visited][:, 3] < g.height).all()
    m, c, col = (torch.from_numpy(np.ascontiguousarray(a)) for a in split_attributes(dequantize_rows(g.q, g.scales, g.offsets)))
    with torch.no_grad():
        render = get_renderer("cpu", torch.device("cpu"))(m, c, col, g.height, g.width).numpy().astype(np.float64)
    target = img.astype(np.float32) / np.float32(255.0)
    s, o = g.scales.astype(np.float64), g.offsets.astype(np.float64)
    cost = np.zeros((8, int(top.max()) + 1))
    moved = 0
    for k in np.flatnonzero(visited):
        codes, after = q.copy(), render.copy()
        moved += _sweep(codes, s, o, top, np.array([k]), after, target, cost, no_links(cost.shape[1]), 0.0)[0]
        rows, cols = np.nonzero(np.any(after != render, axis=2))
        assert (cols >= box[k, 0]).all() and (cols <= box[k, 1]).all(), k
        assert (rows >= box[k, 2]).all() and (rows <= box[k, 3]).all(), k
    assert moved > 20
