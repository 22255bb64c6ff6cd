#!/usr/bin/env python3
"""The decoder's peak memory and time on the largest files the limits allow.

    python tools/decode_memory.py [--sizes 1x1,4096x4096,16384x16384] [--counts 1,4194304]
        [--base] [--crop WxH] [--json OUT]

For every image size and Gaussian count it writes a file of that many identical small
Gaussians (one code repeated: the entropy coder makes it a few hundred bytes, the kind of
file a decompression bomb would be) and runs ``python -m gipp_codec decode IN OUT.png`` on
it in a fresh process, reporting the file's size, the command's wall time and its peak
resident memory (its VmHWM at exit, from /proc: Linux only). The largest counts and sizes are the format's
``MAX_GAUSSIANS`` (2^22) and ``MAX_PIXELS`` (2^28, 16384 x 16384): what a decoder must be
ready to hold for a valid file. Each Gaussian covers a few pixels, so the render work stays
far below ``MAX_RENDER_WORK``; memory, not rendering, is what this measures. With ``--base``
each file also carries a base layer (the finest grid within ``MAX_BASE_CELLS``, samples of
one colour), and a count may be 0: a base layer alone, as gimg writes a one-colour image.
With ``--crop WxH`` the command decodes only a W x H region at the image's centre (``gimg
decode --crop``; the whole image where it is smaller), where every Gaussian lies: what a
region costs when all of the file's Gaussians reach it.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from tool_record import check_record_path, write_record  # noqa: E402

from gipp_codec.format import constants as K  # noqa: E402
from gipp_codec.format.container import write_gimg  # noqa: E402
from gipp_codec.format.model import BitDepths, QuantizedGaussians  # noqa: E402


PROG = "decode_memory"


def identical_gaussians_file(width: int, height: int, count: int, base: bool = False) -> bytes:
    """A .gimg file of ``count`` copies of one Gaussian (variance 0.25 px^2) at the image's
    centre, each of 1 / count of a colour that is not grey (so that their sum is that colour
    whatever the count, and the decode is written as RGB, the larger case), quantized at the
    default depths; with ``base``, over a base layer of one colour."""
    q = np.zeros((count, 8), np.uint16)  # every code 0: each value is its channel's offset
    share = 1.0 / max(count, 1)
    offsets = np.array([width / 2, height / 2, np.log(0.25), 0.0, np.log(0.25), 0.5 * share, 0.25 * share,
                        0.75 * share], np.float32)
    scales = np.full(8, 1e-3, np.float32)
    layer = None
    if base:
        from gipp_codec.format.base_layer import MAX_BASE_CELLS, MIN_FACTOR_LOG2, BaseLayer, grid_shape

        f = MIN_FACTOR_LOG2
        while grid_shape(width, height, f)[0] * grid_shape(width, height, f)[1] > MAX_BASE_CELLS:
            f += 1
        layer = BaseLayer(f, 6, np.broadcast_to(np.array([32, 16, 48], np.uint8),
                                                (*grid_shape(width, height, f), 3)).copy())
    return write_gimg(QuantizedGaussians(width, height, BitDepths(), q, scales, offsets), base=layer)


# `gimg ARGS` in this interpreter, writing its peak resident memory (VmHWM, kB) to argv[1] at
# exit. VmHWM belongs to the process's address space since its exec, so unlike ru_maxrss it
# does not include the memory of the parent that forked it.
_CLI_WITH_HWM = """
import atexit, re, sys
def _hwm(path=sys.argv[1]):
    status = open("/proc/self/status").read()
    open(path, "w").write(re.search(r"VmHWM:\\s+(\\d+)", status).group(1))
atexit.register(_hwm)
sys.argv = ["gimg"] + sys.argv[2:]
from gipp_codec._entry import main
main()
"""


def centred_region(width: int, height: int, region: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x, y, w, h) of a ``region`` (w, h) at the centre of a width x height image (clipped to it)."""
    w, h = min(region[0], width), min(region[1], height)
    return (width - w) // 2, (height - h) // 2, w, h


def measure_decode(data: bytes, args: tuple = ()) -> dict:
    """Decode ``data`` with the CLI (and ``args``) in a fresh process: {"seconds", "peak_rss_mib",
    "exit", "png_bytes"}."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp, "in.gimg"), Path(tmp, "out.png")
        src.write_bytes(data)
        hwm = Path(tmp, "vmhwm")
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", _CLI_WITH_HWM, str(hwm), "decode", str(src), str(out), *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - t0
        err = run.stderr.decode(errors="replace").strip()
        return {"seconds": seconds, "peak_rss_mib": int(hwm.read_text()) / 1024 if hwm.exists() else float("nan"),
                "exit": run.returncode, "png_bytes": out.stat().st_size if out.exists() else 0, "stderr": err[-300:]}


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main(argv=None) -> int:
    """Command line (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1x1,4096x4096,16384x16384", help="comma-separated WIDTHxHEIGHT")
    ap.add_argument("--counts", default=f"1,{K.MAX_GAUSSIANS}", help="comma-separated Gaussian counts")
    ap.add_argument("--base", action="store_true", help="files with a base layer (counts may be 0)")
    ap.add_argument("--crop", default=None, metavar="WxH", help="decode only a region this size at the centre")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    try:
        sizes = [_size(s) for s in args.sizes.split(",")]
        counts = [int(c) for c in args.counts.split(",")]
        region = None if args.crop is None else _size(args.crop)
    except ValueError:
        ap.error("--sizes and --crop take WIDTHxHEIGHT and --counts integers")
    check_record_path(PROG, args.json)
    results = []
    print(f"{'size':>12s} {'N':>8s} {'file bytes':>10s} {'seconds':>8s} {'peak MiB':>9s}  exit")
    for width, height in sizes:
        for count in counts:
            data = identical_gaussians_file(width, height, count, args.base)
            crop = None if region is None else centred_region(width, height, region)
            extra = () if crop is None else ("--crop", ",".join(str(v) for v in crop))
            row = {"width": width, "height": height, "gaussians": count, "base": args.base, "crop": crop,
                   "file_bytes": len(data), **measure_decode(data, extra)}
            results.append(row)
            print(f"{width:>5d}x{height:<6d} {count:>8d} {len(data):>10d} {row['seconds']:>8.2f} "
                  f"{row['peak_rss_mib']:>9.0f}  {row['exit']} {row['stderr']}", flush=True)
    if args.json:
        write_record(args.json, results)
    return 1 if any(r["exit"] != 0 for r in results) else 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("decode_memory", main))
