#!/usr/bin/env python3
"""How encode time and memory grow with the image: `gimg encode` on mosaics of Kodak images.

    python tools/encode_scaling.py --images DIR [--tiles 1,2,4] [--bpp 0.5] [--iterations 5000]
        [--keep DIR] [--json OUT]

For each t of ``--tiles``, the first t x t landscape images of DIR (sorted by name, all of
the first one's size) are laid side by side into one mosaic PNG, so that a larger image
keeps a photograph's density of detail (an upscaled image would be smoother). Each
mosaic is encoded by ``python -m gipp_codec encode MOSAIC OUT --bpp B --iterations K --json``
in a process of its own, and the tool reports the mosaic's size, the encoder's own
figures (Gaussians, bpp, PSNR, ``seconds``), the process's wall time and its peak
resident memory (``os.wait4``'s ``ru_maxrss``, with the time and memory per megapixel).
Linux counts in ``ru_maxrss`` the parent's resident memory at the fork too, so it is at least
this tool's own; the tool holds only numpy, Pillow and one mosaic, far less than an encode
(``tools/decode_memory.py``, whose processes can use less than their parent, reads VmHWM). One small untimed encode runs first, so that numba's kernels are
compiled (or loaded from its cache) before any timed one. The mosaics and files go to a
temporary folder that is removed, or with ``--keep DIR`` to DIR (``mosaicT.png`` and
``mosaicT.gimg``), for measurements of large files (``tools/crop_decode.py``).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tool_guard import check_out_folder, refuse_clobbering
from tool_record import check_record_path, write_text_atomic

PROG = "encode_scaling"


def mosaic(paths: list[Path], tiles: int) -> np.ndarray:
    """The first tiles x tiles images of ``paths`` (uint8 RGB, all one size) side by side:
    uint8 [tiles * H, tiles * W, 3]."""
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths[:tiles * tiles]]
    rows = [np.concatenate(images[r * tiles:(r + 1) * tiles], axis=1) for r in range(tiles)]
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


def landscape_images(folder: Path) -> list[Path]:
    """The PNGs of ``folder`` of the first one's size, in name order (Kodak: the 768 x 512 ones)."""
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise SystemExit(f"{folder}: no PNG images")
    size = Image.open(paths[0]).size
    return [p for p in paths if Image.open(p).size == size]


def encode_once(image_path: Path, out_path: Path, bpp: float, iterations: int) -> dict:
    """Run one encode in its own process: the encoder's JSON plus ``process_seconds`` and
    ``peak_rss_mib`` (that process's peak resident set size)."""
    cmd = [sys.executable, "-m", "gipp_codec", "encode", str(image_path), str(out_path), "--bpp", str(bpp),
           "--iterations", str(iterations), "--json"]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"encode of {image_path.name} failed (exit {proc.returncode}): {stderr.strip()[-500:]}")
    report = json.loads(stdout.strip().splitlines()[-1])
    report.update(process_seconds=seconds, peak_rss_mib=usage.ru_maxrss / 1024.0)  # ru_maxrss: KiB on Linux
    return report


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=Path, required=True, help="folder of same-size PNGs (Kodak)")
    ap.add_argument("--tiles", default="1,2,4", help="mosaic sides, comma list (t: t x t images)")
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--iterations", type=int, default=5000)
    ap.add_argument("--keep", type=Path, default=None, help="keep the mosaics and their files in this folder")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    tiles = [int(t) for t in args.tiles.split(",")]
    if args.keep is not None:
        check_out_folder(PROG, args.keep, "--keep")
    paths = landscape_images(args.images)
    if any(t < 1 or t * t > len(paths) for t in tiles):
        ap.error(f"--tiles must be between 1 and {int(len(paths) ** 0.5)} ({len(paths)} images of one size)")
    check_record_path(PROG, args.json, paths)
    kept = [] if args.keep is None else [args.keep / f"mosaic{t}.{ext}" for t in tiles for ext in ("png", "gimg")]
    refuse_clobbering(PROG, [args.json, *kept], paths)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm.png"  # one untimed small encode: numba's kernels compiled or loaded first
        Image.fromarray(mosaic(paths, 1)[:32, :32]).save(warm)
        encode_once(warm, Path(tmp) / "warm.gimg", args.bpp, 20)
        for t in tiles:
            image = mosaic(paths, t)
            folder = Path(tmp) if args.keep is None else args.keep
            folder.mkdir(parents=True, exist_ok=True)
            src, dst = folder / f"mosaic{t}.png", folder / f"mosaic{t}.gimg"
            Image.fromarray(image).save(src)
            r = encode_once(src, dst, args.bpp, args.iterations)
            mp = image.shape[0] * image.shape[1] / 1e6
            row = {"tiles": t, "width": int(image.shape[1]), "height": int(image.shape[0]), "megapixels": mp,
                   "gaussians": r["gaussians"], "bpp": r["bpp"], "psnr": r["psnr"], "seconds": r["seconds"],
                   "process_seconds": r["process_seconds"], "peak_rss_mib": r["peak_rss_mib"],
                   "seconds_per_megapixel": r["seconds"] / mp, "mib_per_megapixel": r["peak_rss_mib"] / mp}
            rows.append(row)
            print(f"{t}x{t}: {row['width']}x{row['height']} ({mp:.2f} MP), N={row['gaussians']}, "
                  f"{row['bpp']:.3f} bpp, {row['psnr']:.2f} dB, {row['seconds']:.1f} s "
                  f"(process {row['process_seconds']:.1f} s), peak {row['peak_rss_mib']:.0f} MiB", flush=True)
    print(f"\n{args.iterations} iterations at {args.bpp} bpp, one process per image:\n")
    print("| mosaic | size | MP | N | PSNR (dB) | encode s | s per MP | peak RSS (MiB) | MiB per MP |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tiles']}x{r['tiles']} | {r['width']}x{r['height']} | {r['megapixels']:.2f} | {r['gaussians']} | "
              f"{r['psnr']:.2f} | {r['seconds']:.1f} | {r['seconds_per_megapixel']:.1f} | {r['peak_rss_mib']:.0f} | "
              f"{r['mib_per_megapixel']:.0f} |")
    if args.json:
        write_text_atomic(args.json, json.dumps({"bpp": args.bpp, "iterations": args.iterations, "rows": rows},
                                                indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("encode_scaling", main))
