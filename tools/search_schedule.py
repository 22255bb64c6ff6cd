#!/usr/bin/env python3
"""How many threads the code search's schedule can keep busy, on a coded file's set.

    python tools/search_schedule.py FILE.gimg [FILE.gimg ...] [--threads 1,2,4,8,16,32]
        [--json OUT]

A sweep of the code search (``gipp_codec.fit.code_search``) runs phase after phase, the
groups of one phase in parallel, a thread taking the next group when it is done. This
prints, for each file and each of two schedules, the phases and their group counts, and
for each thread count T the speedup a sweep could reach over one thread: the total work
over the sum, across phases, of the busiest thread's work when the groups are dealt in
order to whichever thread is free first. The work of a visit is modelled as the area of
the box it reads (its pixels, over which the moves' passes run): a model, not a timing; it
bounds what more cores can give, whatever their speed. The schedules:
- ``tiles``: the search's own ``tile_schedule`` (square tiles, since commit 2eeb400);
- ``rows``: the schedule before it, restated here (``rows_schedule``): stripes of S rows,
  S the 95th percentile of the reach heights (at least 16), a reach within stripes f and
  f + 1 in group f, even groups then odd ones, the rest with stripes twice as tall.
"""

import argparse
import heapq
import sys

import numpy as np
from code_search_sets import visit_boxes
from tool_record import check_record_path, write_record

from gipp_codec.fit import code_search as cs
from gipp_codec.format import parse_gimg
from gipp_codec.format.model import QuantizedGaussians
from gipp_codec.quant.dequant import dequantize_rows


def reach_and_order(g) -> tuple[np.ndarray, np.ndarray]:
    """(reach boxes [N, 4] (i0, i1, j0, j1) of a sweep's visits, ``code_search_sets.visit_boxes``;
    the visit order [N]) for the quantized Gaussians ``g``."""
    return visit_boxes(g), cs.visit_order(dequantize_rows(g.q, g.scales, g.offsets, g.correlation))


def rows_schedule(order: np.ndarray, boxes: np.ndarray, height: int) -> list:
    """The code search's schedule before commit 2eeb400 (module docstring): phases of groups
    of Gaussians, grouped by stripes of the rows of their reach boxes [N, 4]."""
    rows = boxes[:, 2:4]
    heights = np.where(boxes[:, 1] >= boxes[:, 0], rows[:, 1] - rows[:, 0] + 1, 0)  # [N]
    left = np.asarray(order, np.int64)
    if not (heights > 0).any():
        return [[left]]
    stripe = max(16, int(np.ceil(np.percentile(heights[heights > 0], 95))))
    phases = []
    while left.size and 2 * stripe <= height:
        first = np.maximum(rows[left, 0], 0) // stripe
        fits = np.maximum(rows[left, 1], rows[left, 0]) // stripe <= first + 1
        for parity in (0, 1):
            take = fits & (first % 2 == parity)
            if take.any():
                phases.append([left[take][first[take] == f] for f in np.unique(first[take])])
        left = left[~fits]
        stripe *= 2
    if left.size:
        phases.append([left])
    return phases


def speedup_bound(phases: list, work: np.ndarray, threads: int) -> float:
    """The work of the Gaussians in ``phases`` (``work`` [N] per Gaussian) over the sum of
    each phase's makespan on ``threads`` threads, its groups dealt in order to the thread
    free first."""
    span = total = 0.0
    for groups in phases:
        free = [0.0] * threads  # heap of the times the threads become free
        for grp in groups:
            heapq.heappush(free, heapq.heappop(free) + float(work[grp].sum()))
            total += float(work[grp].sum())
        span += max(free)
    return total / span if span > 0 else 1.0


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--threads", default="1,2,4,8,16,32", help="comma-separated thread counts")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args(argv)
    check_record_path("search_schedule", args.json, args.files)  # before any work
    try:
        counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        raise SystemExit(f"--threads: expected comma-separated integers, got {args.threads!r}") from None
    if not counts or min(counts) < 1:
        raise SystemExit("--threads: each count must be at least 1")
    results = []
    for path in args.files:
        try:
            with open(path, "rb") as f:
                g = parse_gimg(f.read()).gaussians
        except Exception as exc:  # noqa: BLE001 (a tool: one line and a non-zero exit)
            raise SystemExit(f"{path}: {exc}") from None
        if not isinstance(g, QuantizedGaussians):
            raise SystemExit(f"{path}: float32 mode, no codes to search")
        boxes, order = reach_and_order(g)
        drawn = (boxes[:, 1] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 2])
        work = np.where(drawn, (boxes[:, 1] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 2] + 1), 0).astype(float)
        for name, phases in (("rows", rows_schedule(order, boxes, g.height)),
                             ("tiles", cs.tile_schedule(order, boxes, g.height, g.width))):
            bounds = {t: round(speedup_bound(phases, work, t), 2) for t in counts}
            groups = [len(p) for p in phases]
            print(f"{path}: N {g.q.shape[0]}, {name}: {len(phases)} phases, groups per phase {groups}; "
                  + ", ".join(f"{t} threads {b}x" for t, b in bounds.items()))
            results.append({"file": str(path), "gaussians": int(g.q.shape[0]), "schedule": name,
                            "groups_per_phase": groups, "speedup_bound": bounds})
    if args.json:
        write_record(args.json, results)
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("search_schedule", main))
