#!/usr/bin/env python3
"""What a context on the previous Morton gaps would save on the position stream of .gimg files.

    python tools/position_contexts.py FILE.gimg [FILE2.gimg ...]

The coder codes the positions as the gaps between consecutive Morton codes, in one
histogram (spec: "Entropy coding"). Where the Gaussians' density varies over the image,
a gap's size follows the sizes of the gaps before it; this tool measures how much. For each
file it prints the bits a Gaussian the position stream costs in one context (tokens, raw
bits and the histograms, the coder's own accounting, ``gaussian_coder._config_cost``, best
(k, m) of its grid) and split into 2, 4 or 8 contexts by the quantiles of the mean log2 of
the previous w gaps (w = 1, 2, 4, 8; causal, so a decoder could follow), and the mean over
the files. Encoder-side analysis only; it changes nothing in the format.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from gipp_codec.entropy.gaussian_coder import _KM_GRID, STREAM_POSITION, StreamConfig, _config_cost, morton_encode
from gipp_codec.errors import GimgError
from gipp_codec.format import parse_gimg

WINDOWS = (1, 2, 4, 8)
SPLITS = (2, 4, 8)


def split_bits(gaps: np.ndarray, ctx: np.ndarray, contexts: int) -> float:
    """Bits of the gaps [N] split by ctx [N] into ``contexts`` histograms, at the (k, m) of
    the coder's grid that costs least overall (the coder's own ``_config_cost``)."""
    cfg = StreamConfig(STREAM_POSITION, thresholds=tuple(range(1, contexts)))  # only its context count is read
    return _config_cost(cfg, gaps, ctx, _KM_GRID)[0]


def gap_contexts(gaps: np.ndarray, window: int, contexts: int) -> np.ndarray:
    """ctx [N] of each gap: the quantile bin (of ``contexts``) of the mean log2(1 + gap) of the
    ``window`` gaps before it (the first gap: the median of all)."""
    lg = np.log2(gaps.astype(np.float64) + 1.0)  # [N]
    csum = np.concatenate([[0.0], np.cumsum(lg)])  # [N + 1]
    idx = np.arange(gaps.size)
    lo = np.maximum(idx - window, 0)
    count = idx - lo
    mean = np.where(count > 0, (csum[idx] - csum[lo]) / np.maximum(count, 1), np.median(lg))
    edges = np.quantile(mean, np.linspace(0.0, 1.0, contexts + 1)[1:-1])
    return np.searchsorted(edges, mean, side="right")


def position_report(q: np.ndarray) -> dict:
    """Bits a Gaussian of the position gaps of q [N, 8]: "one" context, and (w, c) for
    ``gap_contexts`` with window w and c contexts."""
    q = np.asarray(q, np.int64)
    gaps = np.diff(np.sort(morton_encode(q[:, 0], q[:, 1]).astype(np.int64)), prepend=0).astype(np.uint64)
    n = max(gaps.size, 1)
    out = {"one": split_bits(gaps, np.zeros(gaps.size, np.int64), 1) / n}
    for w in WINDOWS:
        for c in SPLITS:
            out[(w, c)] = split_bits(gaps, gap_contexts(gaps, w, c), c) / n
    return out


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    rows = []
    for f in args.files:
        try:
            g = parse_gimg(Path(f).read_bytes()).gaussians
        except (GimgError, OSError) as exc:
            print(f"{f}: error: {exc}", file=sys.stderr)
            return 2
        if not hasattr(g, "q") or g.q.shape[0] == 0:
            print(f"{f}: error: not a quantized file with Gaussians", file=sys.stderr)
            return 2
        rows.append(position_report(g.q))
        best = min((v, k) for k, v in rows[-1].items() if k != "one")
        print(f"{Path(f).name:32s} one context {rows[-1]['one']:7.3f}  best split {best[0]:7.3f} (window, contexts {best[1]})")
    keys = list(rows[0])
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    print("mean bits a Gaussian: one context %.3f; " % mean["one"]
          + "; ".join(f"w={k[0]} c={k[1]} {v:.3f}" for k, v in mean.items() if k != "one"))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("position_contexts", main))
