#!/usr/bin/env python3
"""How many conflict-free sets a parallel (GPU) code search would sweep a file's Gaussians in.

    python tools/code_search_sets.py FILE.gimg [FILE.gimg ...]

The code search after QAT (``gipp_codec.fit.code_search``) visits one Gaussian at a time;
Gaussians whose pixels no other member of a set touches could be visited at once. This
colours each file's Gaussians greedily, in the search's visit order, so that no two of one
colour have overlapping boxes (the 3-sigma bounding square, 5 % and one pixel wider for the
moves), and prints the number of colours (sets, launches per sweep) and their sizes (the
parallelism of each launch): the numbers a GPU code search's design starts from.
"""

import argparse
import sys

import numpy as np

from gipp_codec.decoder import gaussians_as_floats
from gipp_codec.fit.code_search import visit_order
from gipp_codec.format import parse_gimg

WORDS = 8  # colours are tracked as 8 x 64 bits per pixel: at most 512 sets


def boxes(means: np.ndarray, covs: np.ndarray, height: int, width: int) -> np.ndarray:
    """[N, 4] int (x0, x1, y0, y1), inclusive and clipped: each Gaussian's widened box."""
    a, b, c = (covs[:, j].astype(np.float64) for j in range(3))
    lam = 0.5 * (a + c) + np.sqrt(np.maximum(0.25 * (a - c) ** 2 + b * b, 0.0))
    r = 3.0 * np.sqrt(lam) * 1.05 + 1.0
    mx, my = means[:, 0].astype(np.float64), means[:, 1].astype(np.float64)
    return np.stack([np.clip(np.floor(mx - r), 0, width - 1), np.clip(np.ceil(mx + r), 0, width - 1),
                     np.clip(np.floor(my - r), 0, height - 1), np.clip(np.ceil(my + r), 0, height - 1)],
                    axis=1).astype(np.int64)


def greedy_sets(box: np.ndarray, order: np.ndarray, height: int, width: int) -> np.ndarray:
    """[N] the set of each Gaussian: the lowest one no earlier overlapping Gaussian took."""
    used = np.zeros((WORDS, height, width), np.uint64)
    colour = np.full(box.shape[0], -1, np.int64)
    for k in order:
        x0, x1, y0, y1 = box[k]
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
        means, covs, colors = gaussians_as_floats(parsed)
        h, w = int(parsed.header["height"]), int(parsed.header["width"])
        box = boxes(means, covs, h, w)
        order = visit_order(np.concatenate([means, covs, colors], axis=1))
        colour = greedy_sets(box, order, h, w)
        sizes = np.bincount(colour)
        area = (box[:, 1] - box[:, 0] + 1) * (box[:, 3] - box[:, 2] + 1)
        print(f"{path}: N {len(order)}, sets {len(sizes)}, set size median {int(np.median(sizes))} "
              f"(largest {sizes.max()}, smallest {sizes.min()}), box area mean {area.mean():.0f} px (largest {area.max()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
