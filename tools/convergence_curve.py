#!/usr/bin/env python3
"""PSNR-vs-iteration curves from ``tools/bench_represent.py --history`` runs.

    python tools/convergence_curve.py LABEL=run.json [LABEL=run.json ...]
        [--checkpoints 1000,2000,5000,10000] [--target 31] [--plot curve.png]

For each run: the mean over its images of the evaluated PSNR (clamped float render,
as the trainer records it) at each checkpoint (the last evaluation at or before it),
the first evaluated iteration at which that mean reaches ``--target`` dB, and the final
mean of the kept (best) states. Runs must share their image list for the means to be
comparable; the table says which images each run holds. Prints a markdown table; with
``--plot`` also draws the mean curves (matplotlib, the ``bench`` extra).
"""

import argparse
import bisect
import json
import statistics
import sys
from pathlib import Path

from tool_guard import figure_format
from tool_record import check_record_path

PROG = "convergence_curve"


def load_run(path: str) -> dict:
    """A bench_represent JSON with histories; raises SystemExit with a message otherwise."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: cannot read a JSON file ({exc})") from None
    rows = [r for r in data.get("results", []) if r.get("history")]
    if not rows:
        raise SystemExit(f"{path}: no histories (run bench_represent.py with --history)")
    return {"meta": data.get("meta", {}), "rows": rows}


def value_at(history: list, iteration: int) -> float | None:
    """PSNR of the last evaluation at or before ``iteration`` (history: [(it, psnr, n), ...])."""
    its = [h[0] for h in history]
    i = bisect.bisect_right(its, iteration) - 1
    return None if i < 0 else history[i][1]


def mean_curve(rows: list) -> list[tuple[int, float]]:
    """(iteration, mean PSNR over images) at every iteration evaluated in all runs."""
    common = sorted(set.intersection(*({h[0] for h in r["history"]} for r in rows)))
    return [(it, statistics.fmean(value_at(r["history"], it) for r in rows)) for it in common]


def first_reaching(curve: list, target: float) -> int | None:
    """First iteration at which the mean curve reaches ``target``."""
    return next((it for it, p in curve if p >= target), None)


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="LABEL=path.json")
    ap.add_argument("--checkpoints", default="500,1000,2000,3000,5000,10000,20000,50000")
    ap.add_argument("--target", type=float, default=31.0)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args(argv)
    plot_format = figure_format(PROG, args.plot, "--plot") if args.plot is not None else None
    check_record_path(PROG, args.plot, [spec.partition("=")[2] for spec in args.runs if "=" in spec], option="--plot", holds_json=False)
    checkpoints = [int(c) for c in args.checkpoints.split(",") if c.strip()]
    runs = []
    for spec in args.runs:
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"{spec!r}: expected LABEL=path.json")
        run = load_run(path)
        run["label"], run["curve"] = label, mean_curve(run["rows"])
        runs.append(run)

    print(f"Mean PSNR (dB) over the images of each run at iteration checkpoints; "
          f"'-' = beyond the run's budget. Target {args.target:g} dB.\n")
    print("| run | images | budget | " + " | ".join(str(c) for c in checkpoints)
          + f" | first iteration ≥ {args.target:g} dB | final (kept state) |")
    print("|---|---|---|" + "---|" * len(checkpoints) + "---|---|")
    for run in runs:
        budget = run["rows"][0]["iterations"]
        cells = []
        for c in checkpoints:
            cells.append("-" if c > budget else
                         f"{statistics.fmean(value_at(r['history'], c) for r in run['rows']):.2f}")
        hit = first_reaching(run["curve"], args.target)
        names = ",".join(Path(r["image"]).stem for r in run["rows"])
        final = statistics.fmean(r["psnr"] for r in run["rows"])
        print(f"| {run['label']} | {names} | {budget} | " + " | ".join(cells)
              + f" | {hit if hit is not None else 'not reached'} | {final:.2f} |")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for run in runs:
            its, ps = zip(*run["curve"])
            ax.plot(its, ps, label=run["label"])
        ax.axhline(args.target, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("mean PSNR (dB)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120, format=plot_format)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("convergence_curve", main))
