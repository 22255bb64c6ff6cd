#!/usr/bin/env python3
"""Grayscale copies of a folder's images, for measuring the codec on single-channel input.

    python tools/gray_images.py SRC_DIR OUT_DIR [--pattern '*.png']

Each image is read as gimg itself reads it (``gipp_codec.imageio.load_image``: 8-bit RGB; a
16-bit grey PNG rounded to 8 bits, v / 257; an image with transparent pixels, an animation or
a mode gimg does not read is refused), converted with Pillow's ``convert("L")`` (ITU-R 601-2
luma, L = 0.299 R + 0.587 G + 0.114 B, rounded) and written as an 8-bit grayscale PNG of the
same stem in OUT_DIR (created if missing), with the input's ICC profile. gimg reads such a PNG
as three equal channels. Folders the pattern matches are skipped.

Every input is read and converted before anything is written: an image that cannot be read
stops the run with one line naming it (exit status 1) and nothing written. OUT_DIR that is
SRC_DIR, an output that would be one of the inputs, two inputs of the same stem (a.png and
a.tif: one output a.png), an empty or absolute ``--pattern`` and an OUT_DIR that is a file are
refused before any work (exit status 2).
"""

import argparse
import io
import sys
import warnings
from pathlib import Path

from PIL import Image

from gipp_codec.imageio import atomic_write_bytes, load_image
from tool_guard import check_out_folder, fail, guarded, refuse_clobbering, same_file

PROG = "gray_images"


def grey_png(path: Path) -> bytes:
    """The grayscale PNG of the image file ``path``, read as gimg reads it (a GimgError naming
    the file when it cannot be). Pillow's warnings while reading become one line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb, meta = load_image(path)
    for w in caught:
        print(f"{PROG}: warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").convert("L").save(buf, format="PNG", icc_profile=meta.icc_profile)
    return buf.getvalue()


def main(argv=None) -> int:
    """Entry point: ``run`` with a GimgError or OSError made one line and exit status 1."""
    return guarded(PROG, run, argv)


def run(argv=None) -> int:
    """Write the grayscale copies; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--pattern", default="*.png")
    args = ap.parse_args(argv)
    if args.src == "":
        fail(PROG, "SRC_DIR: an empty folder name")
    if args.out == "":
        fail(PROG, "OUT_DIR: an empty folder name")
    if args.pattern == "":
        fail(PROG, "--pattern: an empty pattern")
    if Path(args.pattern).is_absolute():
        fail(PROG, f"--pattern {args.pattern}: an absolute pattern; give one relative to SRC_DIR")
    src, out = Path(args.src), Path(args.out)
    if not src.is_dir():
        print(f"{PROG}: error: SRC_DIR {src}: not a folder{'' if src.exists() else ' (it does not exist)'}",
              file=sys.stderr)
        return 1
    check_out_folder(PROG, out, "OUT_DIR")
    if same_file(src, out):
        fail(PROG, f"OUT_DIR {out} is SRC_DIR {src}; the grey copies would replace the originals")
    try:
        paths = sorted(p for p in src.glob(args.pattern) if not p.is_dir())
    except (ValueError, NotImplementedError) as exc:
        fail(PROG, f"--pattern {args.pattern}: {exc}")
    if not paths:
        print(f"gray_images: no {args.pattern} in {src}", file=sys.stderr)
        return 1
    targets = {}
    for path in paths:
        target = out / (path.stem + ".png")
        if target in targets:
            fail(PROG, f"{targets[target]} and {path} would both be written to {target}")
        targets[target] = path
    refuse_clobbering(PROG, list(targets), paths)
    pngs = [grey_png(path) for path in paths]  # every input read before anything is written
    out.mkdir(parents=True, exist_ok=True)
    for target, data in zip(targets, pngs):
        atomic_write_bytes(target, data)
    print(f"{len(paths)} grayscale images in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
