#!/usr/bin/env python3
"""Decoding a region of a file (``decode(data, crop=...)``), timed against the whole decode
and against Pillow's WebP at the same rate, side by side.

    python tools/crop_decode.py IMAGE.png FILE.gimg [IMAGE.png FILE.gimg ...]
        [--sides 64 128 256] [--regions 8] [--repeats 10] [--seed 0] [--json OUT]

For each (original image, .gimg file of it) pair: ``--regions`` square regions of each side
in ``--sides`` at random places (seeded), and WebP (method 6) at the file's bpp (quality
search). Timed warm and in process, interleaved round by round so that every call sees the
same machine load, the order of the calls rotated each round so that none always follows
the same one (each round decodes the next region of each side), medians of the rounds:

- the whole file decoded (``decode(data)``), and the region sliced from it;
- a region decoded alone (``decode(data, crop=region)``), one figure per side;
- a region rendered from the file opened once (``open_gimg(data).render(crop=region)``,
  the opening not timed): what a viewer that shows many regions of one file pays for each;
- the file parsed only (``parse_gimg``: entropy decoding and the base layer), the part of
  a region's decode that does not shrink with the region;
- WebP bytes decoded by Pillow and the region sliced: Pillow's WebP decoder has no region
  decode, so this is what a WebP viewer showing the region pays.

Every region, decoded alone and rendered from the opened file, is checked against the whole
decode's pixels there (they must be equal, bit for bit). Prints a markdown table of the times and of the ratios of each
region's decode to the whole decode and to WebP's.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rd_lib import CLASSICAL_CODECS, search_bpp  # noqa: E402
from tool_record import check_record_path, write_record  # noqa: E402

from gipp_codec.decoder import decode, open_gimg, read_info  # noqa: E402
from gipp_codec.format.container import parse_gimg  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402


def random_regions(width: int, height: int, side: int, count: int, rng) -> list:
    """``count`` regions (x, y, w, h) of ``side`` x ``side`` pixels (less where the image is
    smaller) at uniformly random places inside a width x height image."""
    w, h = min(side, width), min(side, height)
    return [(int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h) for _ in range(count)]


def rotating_medians(calls: dict, rounds: int, warmup: int) -> dict:
    """Median seconds of each call over ``rounds`` rounds after ``warmup`` untimed ones, every
    call once per round, the order rotated by one each round."""
    names = list(calls)
    times = {name: [] for name in names}
    for r in range(warmup + rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            calls[name]()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def cycling(call, items: list):
    """A callable that runs ``call(item)`` on the next of ``items`` each time (round robin)."""
    state = {"next": 0}

    def run():
        item = items[state["next"] % len(items)]
        state["next"] += 1
        return item, call(item)

    return run


def bench_pair(image_path: str, gimg_path: str, sides: list, regions: int, repeats: int, seed: int) -> dict:
    """Times (ms) of one file's whole decode, its regions of each side, its parse, and WebP's
    decode at the same bpp; the region checks."""
    image, _ = load_image(image_path)
    data = Path(gimg_path).read_bytes()
    height, width = image.shape[:2]
    info = read_info(data)
    if (info["header"]["width"], info["header"]["height"]) != (width, height):
        raise SystemExit(f"{gimg_path} is not {image_path}'s size")
    rng = np.random.default_rng(seed)
    boxes = {side: random_regions(width, height, side, regions, rng) for side in sides}
    webp = CLASSICAL_CODECS["webp"]
    found = search_bpp(webp, image, len(data) * 8 / (width * height))
    whole = decode(data)  # [H, W, 3]
    calls = {"whole": lambda: decode(data), "parse": lambda: parse_gimg(data),
             "webp": lambda: webp.decode(found.data)}
    opened = open_gimg(data)
    for side, box in boxes.items():
        calls[f"crop{side}"] = cycling(lambda b: decode(data, crop=b), box)
        calls[f"opened{side}"] = cycling(lambda b: opened.render(crop=b), box)
    # every region once more, checked against the whole decode
    mismatched = sum(int(not (np.array_equal(decode(data, crop=(x, y, w, h)), whole[y:y + h, x:x + w])
                              and np.array_equal(opened.render(crop=(x, y, w, h)), whole[y:y + h, x:x + w])))
                     for box in boxes.values() for x, y, w, h in box)
    times = rotating_medians(calls, repeats * regions, warmup=regions)
    row = {"image": image_path, "gimg": gimg_path, "width": width, "height": height,
           "gaussians": info["header"]["gaussian_count"], "bpp": len(data) * 8 / (width * height),
           "webp_bpp": found.bpp, "regions_checked": regions * len(sides), "regions_mismatched": mismatched,
           "whole_ms": 1000 * times["whole"], "parse_ms": 1000 * times["parse"], "webp_ms": 1000 * times["webp"],
           "ratio_whole_vs_webp": times["whole"] / times["webp"]}
    for side in sides:
        t = times[f"crop{side}"]
        row[f"crop{side}_ms"] = 1000 * t
        row[f"ratio_crop{side}_vs_whole"] = t / times["whole"]
        row[f"ratio_crop{side}_vs_webp"] = t / times["webp"]
        row[f"opened{side}_ms"] = 1000 * times[f"opened{side}"]
        row[f"ratio_opened{side}_vs_whole"] = times[f"opened{side}"] / times["whole"]
    return row


def table(rows: list, sides: list) -> str:
    """The markdown table: per file, then the mean of each ratio."""
    head = ["image", "gaussians", "bpp", "whole ms", "parse ms", "WebP ms"]
    for side in sides:
        head += [f"{side}² ms", f"{side}² / whole", f"{side}² / WebP", f"{side}² opened ms", f"opened / whole"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [Path(r["image"]).stem, str(r["gaussians"]), f"{r['bpp']:.3f}", f"{r['whole_ms']:.1f}",
                 f"{r['parse_ms']:.1f}", f"{r['webp_ms']:.1f}"]
        for side in sides:
            cells += [f"{r[f'crop{side}_ms']:.1f}", f"{r[f'ratio_crop{side}_vs_whole']:.2f}",
                      f"{r[f'ratio_crop{side}_vs_webp']:.2f}", f"{r[f'opened{side}_ms']:.2f}",
                      f"{r[f'ratio_opened{side}_vs_whole']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    mean = ["mean", "", "", "", "", ""]
    for side in sides:
        mean += ["", f"{statistics.mean(r[f'ratio_crop{side}_vs_whole'] for r in rows):.2f}",
                 f"{statistics.mean(r[f'ratio_crop{side}_vs_webp'] for r in rows):.2f}", "",
                 f"{statistics.mean(r[f'ratio_opened{side}_vs_whole'] for r in rows):.3f}"]
    lines.append("| " + " | ".join(mean) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run the measurement; exit status 1 when a region differs from the whole decode."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", metavar="IMAGE.png FILE.gimg")
    ap.add_argument("--sides", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--regions", type=int, default=8, help="regions of each side per file")
    ap.add_argument("--repeats", type=int, default=10, help="timed rounds per region")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    check_record_path("crop_decode", args.json, args.pairs)  # before any work
    if len(args.pairs) % 2:
        ap.error("give IMAGE.png FILE.gimg pairs")
    if args.regions < 1 or args.repeats < 1 or any(s < 1 for s in args.sides):
        ap.error("--regions, --repeats and --sides must be positive")
    rows = []
    for image_path, gimg_path in zip(args.pairs[::2], args.pairs[1::2]):
        rows.append(bench_pair(image_path, gimg_path, args.sides, args.regions, args.repeats, args.seed))
        print(f"{Path(image_path).stem}: whole {rows[-1]['whole_ms']:.1f} ms, "
              + ", ".join(f"{s}² {rows[-1][f'crop{s}_ms']:.1f} ms" for s in args.sides), file=sys.stderr)
    print(table(rows, args.sides))
    mismatched = sum(r["regions_mismatched"] for r in rows)
    print(f"regions equal to the whole decode's pixels: {sum(r['regions_checked'] for r in rows) - mismatched}"
          f"/{sum(r['regions_checked'] for r in rows)}")
    if args.json:
        write_record(args.json, rows)
    return 1 if mismatched else 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("crop_decode", main))
