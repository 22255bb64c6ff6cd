#!/usr/bin/env python3
"""Gather the summaries of ``gimg encode --json`` runs into one ``tools/bench_rd.py``-style
run JSON, so that ``tools/rd_compare.py`` compares two sets of encodes image by image.

    python tools/encode_summaries.py SUMMARY.json [SUMMARY.json ...] --out RUN.json

Each SUMMARY.json holds the JSON object ``gimg encode ... --json`` prints on its last line
(``... --json | tail -1 > SUMMARY.json``). It becomes one record of codec ``gimg``: the image
is the input's file name without its extension, the rate point ``bpp=T`` for a ``--bpp T``
encode or ``n=N`` for ``--gaussians N``, and bpp, PSNR, MS-SSIM, bytes, the Gaussians kept
(``gaussians_final``), bits per Gaussian, passes, iterations, device and the encode's own
time (``encode_s``) are the summary's. The run's "images" list each image once with its size;
"meta" names the summaries. A summary that is missing, not JSON, not an object or lacks one of
those fields, two summaries of the same image and rate point, or one image at two sizes, stop
the tool with one line (exit status 1) and nothing written.
"""

import argparse
import json
import sys
from pathlib import Path, PurePath

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tool_guard import fail, guarded  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "encode_summaries"
FIELDS = ("input", "bpp", "psnr", "ms_ssim", "bytes", "gaussians", "width", "height", "seconds", "iterations",
          "device", "passes", "bits_per_gaussian")


def record_of(summary: dict) -> dict:
    """The bench_rd.py-style record of one ``gimg encode --json`` summary (module docstring)."""
    target = summary.get("target_bpp")
    point = f"bpp={target:g}" if target is not None else f"n={summary['gaussians']}"
    psnr = summary["psnr"]
    return {"image": PurePath(summary["input"]).stem, "codec": "gimg", "point": point, "target_bpp": target,
            "bytes": summary["bytes"], "bpp": summary["bpp"], "psnr": float("inf") if psnr is None else psnr,
            "ms_ssim": summary["ms_ssim"], "encode_s": summary["seconds"], "iterations": summary["iterations"],
            "device": summary["device"], "gaussians_final": summary["gaussians"], "passes": summary["passes"],
            "bits_per_gaussian": summary["bits_per_gaussian"]}


def read_summary(path: Path) -> dict:
    """The summary object in ``path``; a one-line failure naming the file when it is not one."""
    try:
        summary = json.loads(path.read_bytes())
    except OSError as exc:
        fail(PROG, f"{path}: cannot read ({exc.strerror or exc})", 1)
    except (ValueError, RecursionError) as exc:
        fail(PROG, f"{path}: not JSON ({' '.join(str(exc).split())[:200]})", 1)
    if not isinstance(summary, dict):
        fail(PROG, f"{path}: holds {type(summary).__name__}, not a gimg encode --json summary object", 1)
    missing = [f for f in FIELDS if f not in summary]
    if missing:
        fail(PROG, f"{path}: not a gimg encode --json summary (no {', '.join(missing)})", 1)
    return summary


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("summaries", nargs="+", type=Path, metavar="SUMMARY.json")
    ap.add_argument("--out", required=True, help="the run JSON to write")
    args = ap.parse_args(argv)
    check_record_path(PROG, args.out, args.summaries, option="--out")
    records, images, seen = [], {}, set()
    for path in args.summaries:
        summary = read_summary(path)
        rec = record_of(summary)
        key = (rec["image"], rec["point"])
        if key in seen:
            fail(PROG, f"{path}: a second summary of {rec['image']} at {rec['point']}", 1)
        seen.add(key)
        size = (summary["width"], summary["height"])
        if images.setdefault(rec["image"], size) != size:
            fail(PROG, f"{path}: {rec['image']} is {size[0]}x{size[1]} here and "
                       f"{images[rec['image']][0]}x{images[rec['image']][1]} in another summary", 1)
        records.append(rec)
    run = {"meta": {"argv": sys.argv if argv is None else [PROG, *map(str, argv)],
                    "source": "gimg encode --json summaries", "summaries": [str(p) for p in args.summaries]},
           "images": [{"name": name, "width": w, "height": h} for name, (w, h) in images.items()],
           "records": records, "complete": True}
    write_text_atomic(args.out, json.dumps(run, indent=1) + "\n")
    print(f"{PROG}: {len(records)} records of {len(images)} images written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(guarded(PROG, main))
