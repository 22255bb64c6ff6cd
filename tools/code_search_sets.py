#!/usr/bin/env python3
"""How many conflict-free sets a parallel (GPU) code search would sweep a file's Gaussians in.

    python tools/code_search_sets.py FILE.gimg [FILE.gimg ...]

The code search after QAT (``gipp_codec.fit.code_search``) visits one Gaussian at a time;
Gaussians whose pixels no other member of a set touches could be visited at once. This
colours each file's Gaussians greedily, in the search's visit order, so that no two of one
colour have overlapping boxes (the pixels a visit reads or writes: the union of the
Gaussian's box and its geometry moves' boxes, the boxes the search schedules by), and prints
the number of colours (sets, launches per sweep) and their sizes (the parallelism of each
launch): the numbers a GPU code search's design starts from.
"""

import argparse
import sys

import numpy as np

from gipp_codec.fit.code_search import _reach_boxes, visit_order
from gipp_codec.format import parse_gimg
from gipp_codec.format.model import QuantizedGaussians
from gipp_codec.quant.dequant import dequantize_rows

WORDS = 8  # colours are tracked as 8 x 64 bits per pixel: at most 512 sets


def visit_boxes(g) -> np.ndarray:
    """[N, 4] int (x0, x1, y0, y1), inclusive: the pixels a code-search visit of each of the
    quantized Gaussians ``g`` reads or writes (``code_search._reach_boxes``: its box and the
    boxes of its geometry moves); x0 > x1 for a Gaussian the search skips."""
    q = np.ascontiguousarray(g.q, dtype=np.int64)  # [N, 8]
    s = np.asarray(g.scales, np.float32).astype(np.float64)  # [8]
    o = np.asarray(g.offsets, np.float32).astype(np.float64)
    top = np.array([(1 << b) - 1 for b in g.bits.per_channel()], np.int64)
    out = np.empty((q.shape[0], 4), np.int64)
    _reach_boxes(q, s, o, top, g.height, g.width, out)
    return out


def greedy_sets(box: np.ndarray, order: np.ndarray, height: int, width: int) -> np.ndarray:
    """[N] the set of each Gaussian: the lowest one no earlier overlapping Gaussian took
    (-1 for one with an empty box, which the search skips)."""
    used = np.zeros((WORDS, height, width), np.uint64)
    colour = np.full(box.shape[0], -1, np.int64)
    for k in order:
        x0, x1, y0, y1 = box[k]
        if x0 > x1 or y0 > y1:
            continue
        taken = np.bitwise_or.reduce(used[:, y0:y1 + 1, x0:x1 + 1].reshape(WORDS, -1), axis=1)  # [WORDS]
        for word in range(WORDS):
            free = ~int(taken[word]) & ((1 << 64) - 1)
            if free:
                bit = (free & -free).bit_length() - 1
                colour[k] = 64 * word + bit
                used[word, y0:y1 + 1, x0:x1 + 1] |= np.uint64(1 << bit)
                break
        else:
            raise SystemExit(f"more than {64 * WORDS} sets needed")
    return colour


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    for path in args.files:
        with open(path, "rb") as f:
            parsed = parse_gimg(f.read())
        g = parsed.gaussians
        if not isinstance(g, QuantizedGaussians):
            raise SystemExit(f"{path}: float32 mode, no codes to search")
        box = visit_boxes(g)
        order = visit_order(dequantize_rows(g.q, g.scales, g.offsets, g.correlation))
        colour = greedy_sets(box, order, g.height, g.width)
        colour = colour[colour >= 0]
        sizes = np.bincount(colour)
        visited = box[box[:, 0] <= box[:, 1]]
        area = (visited[:, 1] - visited[:, 0] + 1) * (visited[:, 3] - visited[:, 2] + 1)
        print(f"{path}: N {len(order)}, sets {len(sizes)}, set size median {int(np.median(sizes))} "
              f"(largest {sizes.max()}, smallest {sizes.min()}), box area mean {area.mean():.0f} px (largest {area.max()})")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("code_search_sets", main))
