#!/usr/bin/env python3
"""Decode speed of gimg against Pillow's WebP at the same rate, side by side.

    python tools/bench_decode.py IMAGE.png FILE.gimg [IMAGE.png FILE.gimg ...]
        [--repeats 30] [--cli-repeats 5] [--cuda] [--peers avif,jxl] [--json out.json]

For each (original image, .gimg file of it) pair: encode the original with WebP
(method 6) at the .gimg file's bpp (quality search), then time, warm and in process,
the median of ``--repeats`` calls of
  - gimg file -> pixels (``gipp_codec.decoder.decode``: parse, entropy-decode,
    dequantize, render with the numba kernel straight to uint8),
  - gimg render only (the same uint8 numba forward on already-parsed Gaussians, with the
    base layer's grid rows, when the file has one, computed beforehand),
  - Pillow WebP bytes -> pixels,
the three calls interleaved round by round so that they see the same machine load
(``--peers``: more of ``rd_lib``'s codecs, each coded at the same bpp by its own quality
search and its decode timed in the same rounds; a second table gives their times),
and the cold CLI ``gimg decode IN.gimg OUT.png`` (a new process each time, so it
includes interpreter start-up and imports), median of ``--cli-repeats``: it runs on the
prebuilt decoder when one is built and current (``gimg compile-decoder``), else on numba's
JIT; the output says which. Prints a markdown table with the ratio gimg / WebP, then the
share of CPU time the hypervisor stole during each pair's measurement (``machine_load``,
from /proc/stat; ``cpu_steal_share`` in the JSON, null where unknown).

With ``--cuda`` (a CUDA GPU and triton) two more calls join each round:
  - gimg file -> pixels on the GPU (``decode(data, device="cuda")``: parsing and entropy
    decoding on the host, the render by the Triton kernels, the pixels back in host memory),
  - gimg render only on the GPU (``render_cuda`` on Gaussians already on the device, then
    ``torch.cuda.synchronize``),
and a second table gives their times and ratios to WebP.

Every pair is checked before any timing (``check_pair``): the image must load, the .gimg
file must parse, in that order (a swapped pair is named as such), and both must be of the
same size; ``--json`` must be writable and not one of the inputs. Bad input is one
``bench_decode: error:`` line and a non-zero exit. A line on stderr marks each pair as its
measurement starts.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_load import cpu_times, steal_share  # noqa: E402
from rd_lib import CLASSICAL_CODECS, jxl_problem, search_bpp  # noqa: E402

from tool_guard import fail, guarded, one_line  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

from gipp_codec.decoder import decode, gaussians_as_floats, read_info, read_input_file  # noqa: E402
from gipp_codec.errors import FormatError, GimgError, InputImageError  # noqa: E402
from gipp_codec.format.constants import SIGNATURE  # noqa: E402
from gipp_codec.format.base_layer import grid_rows  # noqa: E402
from gipp_codec.format.container import parse_gimg  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402
from gipp_codec.metrics import psnr  # noqa: E402
from gipp_codec.render.numba_kernels import forward_uint8  # noqa: E402


PROG = "bench_decode"


def _is_gimg(path: str) -> bool:
    """Whether ``path`` is a file starting with the .gimg signature."""
    try:
        with open(path, "rb") as f:
            return f.read(len(SIGNATURE)) == SIGNATURE
    except OSError:
        return False


def check_pair(k: int, image_path: str, gimg_path: str) -> None:
    """Check pair ``k`` (1-based) before any timing: the image loads, the .gimg file parses,
    and they are of the same size; else exit with one line naming the file (and, for a
    swapped pair, which argument should be what)."""
    where = f"pair {k} ({image_path} {gimg_path})"
    if _is_gimg(image_path) and os.path.isfile(gimg_path) and not _is_gimg(gimg_path):
        fail(PROG, f"{where}: the arguments are swapped: give the image first ({gimg_path}), then its .gimg file "
              f"({image_path})")
    try:
        image, _ = load_image(image_path)
    except InputImageError as exc:
        fail(PROG, f"{where}: the image: {one_line(exc)}", 1)
    try:
        parsed = parse_gimg(read_input_file(gimg_path))
    except FormatError as exc:
        fail(PROG, f"{where}: {gimg_path}: not a valid .gimg file ({one_line(exc)})", 1)
    except GimgError as exc:  # missing, a folder, unreadable
        fail(PROG, f"{where}: the .gimg file: {one_line(exc)}", 1)
    w, h = int(parsed.header["width"]), int(parsed.header["height"])
    if image.shape[:2] != (h, w):
        fail(PROG, f"{where}: the image is {image.shape[1]}x{image.shape[0]} but the .gimg file is {w}x{h}; "
              f"give each .gimg file after the image it was encoded from", 1)


def interleaved_medians(calls: dict, repeats: int, warmup: int) -> tuple[dict, dict]:
    """Run every call once per round (warmup + repeats rounds); (last results, median seconds) by name."""
    times = {name: [] for name in calls}
    results = {}
    for r in range(warmup + max(1, repeats)):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            results[name] = fn()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return results, {name: statistics.median(t) for name, t in times.items()}


def cuda_calls(data: bytes, parsed, means, covs, colors, h: int, w: int) -> dict:
    """The ``--cuda`` calls: {name: call} of the GPU file -> pixels and render-only paths."""
    import torch

    from gipp_codec.render.cuda_triton import render_cuda

    dev = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).cuda() for x in (means, covs, colors)]
    convention = int(parsed.header["render_convention"])

    def render():
        with torch.no_grad():
            out = render_cuda(*dev, h, w, convention=convention)
        torch.cuda.synchronize()
        return out

    return {"file_cuda": lambda: decode(data, device="cuda"), "render_cuda": render}


def peer_calls(image: np.ndarray, bpp: float, peers: list) -> tuple[dict, dict]:
    """For each codec named in ``peers``: its file nearest ``bpp`` for ``image`` [H, W, 3]; returns
    ({"peer_NAME": decode call}, {NAME: that file's search result})."""
    calls, found = {}, {}
    for name in peers:
        codec = CLASSICAL_CODECS[name]
        found[name] = search_bpp(codec, image, bpp)
        calls[f"peer_{name}"] = (lambda c, d: lambda: c.decode(d))(codec, found[name].data)
    return calls, found


def bench_pair(image_path: str, gimg_path: str, repeats: int, cli_repeats: int, cuda: bool = False,
               peers: tuple = ()) -> dict:
    """Measure one image: gimg decode paths (``cuda``: also on the GPU), WebP decode at the same
    bpp and, under ``"peers"``, each of ``peers``' decode at the same bpp."""
    image, _ = load_image(image_path)
    data = Path(gimg_path).read_bytes()
    h, w = image.shape[:2]
    info = read_info(data)
    bpp = len(data) * 8 / (h * w)
    parsed = parse_gimg(data)
    means, covs, colors = gaussians_as_floats(parsed)
    base_rows = None if parsed.base is None else grid_rows(parsed.base, w)  # the base layer's, computed once
    webp = CLASSICAL_CODECS["webp"]
    found = search_bpp(webp, image, bpp)
    calls = {
        "file": lambda: decode(data),
        "render": lambda: forward_uint8(means, covs, colors, h, w, int(parsed.header["render_convention"]),
                                        base_rows, 0 if parsed.base is None else parsed.base.factor),
        "webp": lambda: webp.decode(found.data),
    }
    more_calls, more_found = peer_calls(image, bpp, list(peers))
    calls.update(more_calls)
    if cuda:
        calls.update(cuda_calls(data, parsed, means, covs, colors, h, w))
    results, times = interleaved_medians(calls, repeats, warmup=2)
    decoded, webp_pixels = results["file"], results["webp"]
    t_file, t_render, t_webp = times["file"], times["render"], times["webp"]
    cli_times = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.png")
        for _ in range(cli_repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "gipp_codec", "decode", gimg_path, out], check=True,
                           stdout=subprocess.DEVNULL)
            cli_times.append(time.perf_counter() - t0)
    gpu = {}
    if cuda:
        gpu = {"gimg_cuda_file_to_pixels_ms": 1000 * times["file_cuda"],
               "gimg_cuda_render_ms": 1000 * times["render_cuda"],
               "ratio_cuda_file_to_pixels_vs_webp": times["file_cuda"] / t_webp,
               "ratio_cuda_render_vs_webp": times["render_cuda"] / t_webp,
               "gimg_cuda_psnr": psnr(results["file_cuda"], image),
               "cuda_pixels_differing_from_cpu": int(np.any(results["file_cuda"] != decoded, axis=2).sum())}
    return {
        "image": image_path, "gimg": gimg_path, "width": w, "height": h,
        "gaussians": info["header"]["gaussian_count"], "gimg_bpp": bpp, "gimg_psnr": psnr(decoded, image),
        "webp_bpp": found.bpp, "webp_psnr": psnr(webp_pixels, image),
        "gimg_file_to_pixels_ms": 1000 * t_file, "gimg_render_ms": 1000 * t_render,
        "webp_decode_ms": 1000 * t_webp, "ratio_file_to_pixels_vs_webp": t_file / t_webp,
        "ratio_render_vs_webp": t_render / t_webp, "gimg_cli_cold_s": statistics.median(cli_times), **gpu,
        "peers": {name: {"bpp": more_found[name].bpp, "psnr": psnr(results[f"peer_{name}"], image),
                         "decode_ms": 1000 * times[f"peer_{name}"],
                         "ratio_file_to_pixels": t_file / times[f"peer_{name}"]} for name in peers},
    }


def steal_line(shares: list) -> str:
    """The line saying how much CPU time the hypervisor took during each pair's measurement
    (``machine_load.steal_share``; unknown off Linux)."""
    known = [100 * v for v in shares if v is not None]
    if not known:
        return "\nCPU time stolen by the hypervisor during the runs: unknown here (no /proc/stat)"
    return (f"\nCPU time stolen by the hypervisor during each pair's runs: {min(known):.2f}–{max(known):.2f} % "
            f"(above a few percent, the timings were disturbed from outside)")


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", nargs="+", help="IMAGE.png FILE.gimg pairs")
    ap.add_argument("--repeats", type=int, default=30, help="timed in-process rounds (at least 1)")
    ap.add_argument("--cli-repeats", type=int, default=5, help="cold `gimg decode` runs (at least 1)")
    ap.add_argument("--cuda", action="store_true", help="also time decoding on the GPU (CUDA and triton)")
    ap.add_argument("--peers", default="", help="more codecs to time beside WebP, comma-separated, from "
                    + ",".join(c for c in CLASSICAL_CODECS if c != "webp"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if len(args.pairs) % 2:
        fail(PROG, f"{len(args.pairs)} files given; give IMAGE.png FILE.gimg pairs")
    for name, value in (("--repeats", args.repeats), ("--cli-repeats", args.cli_repeats)):
        if value < 1:
            fail(PROG, f"{name} {value}: must be at least 1")
    peers = [c.strip() for c in args.peers.split(",") if c.strip()]
    unknown = [c for c in peers if c not in CLASSICAL_CODECS or c == "webp"]
    if unknown:
        fail(PROG, f"--peers: {', '.join(unknown)}: not a codec to add (choose from "
              f"{', '.join(c for c in CLASSICAL_CODECS if c != 'webp')}; WebP is always timed)")
    if len(set(peers)) < len(peers):
        fail(PROG, "--peers names a codec twice")
    if any(c.startswith("jxl") for c in peers) and jxl_problem():
        fail(PROG, f"--peers: {jxl_problem()}")
    check_record_path(PROG, args.json, args.pairs)
    if args.cuda:
        from gipp_codec.errors import ConfigError
        from gipp_codec.gpu_decode import resolve_decode_device

        try:
            resolve_decode_device("cuda")
        except ConfigError as exc:
            fail(PROG, "--cuda: " + one_line(exc).replace(" (use --device cpu)", "") + "; run without --cuda")
    pairs = [(args.pairs[i], args.pairs[i + 1]) for i in range(0, len(args.pairs), 2)]
    for k, (image_path, gimg_path) in enumerate(pairs, 1):
        check_pair(k, image_path, gimg_path)
    import numba

    from gipp_codec import prebuilt

    cli_mode = "prebuilt decoder" if prebuilt.status()[0] else "numba JIT"
    rows = []
    for k, (image_path, gimg_path) in enumerate(pairs, 1):
        print(f"{PROG}: pair {k}/{len(pairs)}: {image_path} {gimg_path}", file=sys.stderr, flush=True)
        before = cpu_times()
        rows.append(bench_pair(image_path, gimg_path, args.repeats, args.cli_repeats, args.cuda, tuple(peers)))
        rows[-1]["cpu_steal_share"] = steal_share(before, cpu_times())
    print(f"numba threads: {numba.get_num_threads()}, repeats: {args.repeats} (median, warm); "
          f"cold CLI on the {cli_mode}\n")
    for r in rows:
        r["cli_mode"] = cli_mode
    print("| image | N | gimg bpp / PSNR | WebP bpp / PSNR | gimg file->pixels ms | gimg render ms "
          "| WebP decode ms | file->pixels / WebP | render / WebP | cold `gimg decode` s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {Path(r['image']).name} | {r['gaussians']} | {r['gimg_bpp']:.3f} / {r['gimg_psnr']:.2f} "
              f"| {r['webp_bpp']:.3f} / {r['webp_psnr']:.2f} | {r['gimg_file_to_pixels_ms']:.2f} "
              f"| {r['gimg_render_ms']:.2f} | {r['webp_decode_ms']:.2f} | {r['ratio_file_to_pixels_vs_webp']:.2f} "
              f"| {r['ratio_render_vs_webp']:.2f} | {r['gimg_cli_cold_s']:.2f} |")
    if len(rows) > 1:
        med = lambda k: float(np.median([r[k] for r in rows]))  # noqa: E731
        print(f"| median | | | | {med('gimg_file_to_pixels_ms'):.2f} | {med('gimg_render_ms'):.2f} "
              f"| {med('webp_decode_ms'):.2f} | {med('ratio_file_to_pixels_vs_webp'):.2f} "
              f"| {med('ratio_render_vs_webp'):.2f} | {med('gimg_cli_cold_s'):.2f} |")
    print(steal_line([r["cpu_steal_share"] for r in rows]))
    if peers:
        print("\n| image | codec | bpp / PSNR | decode ms | gimg file->pixels / codec |")
        print("|---|---|---|---|---|")
        for r in rows:
            for name, q in r["peers"].items():
                print(f"| {Path(r['image']).name} | {CLASSICAL_CODECS[name].label} | {q['bpp']:.3f} / {q['psnr']:.2f} "
                      f"| {q['decode_ms']:.2f} | {q['ratio_file_to_pixels']:.2f} |")
        if len(rows) > 1:
            for name in peers:
                print(f"| median | {CLASSICAL_CODECS[name].label} | | "
                      f"{float(np.median([r['peers'][name]['decode_ms'] for r in rows])):.2f} "
                      f"| {float(np.median([r['peers'][name]['ratio_file_to_pixels'] for r in rows])):.2f} |")
    if args.cuda:
        print("\n| image | GPU file->pixels ms | GPU render ms | GPU file->pixels / WebP | GPU render / WebP "
              "| GPU PSNR | pixels differing from the CPU decode |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {Path(r['image']).name} | {r['gimg_cuda_file_to_pixels_ms']:.3f} | {r['gimg_cuda_render_ms']:.3f} "
                  f"| {r['ratio_cuda_file_to_pixels_vs_webp']:.3f} | {r['ratio_cuda_render_vs_webp']:.3f} "
                  f"| {r['gimg_cuda_psnr']:.2f} | {r['cuda_pixels_differing_from_cpu']} |")
    if args.json:
        write_text_atomic(args.json, json.dumps(rows, indent=1))
    return 0


def _main(argv=None) -> int:
    """``main``, with a failed cold ``gimg decode`` reported as one line too."""
    try:
        return main(argv)
    except subprocess.CalledProcessError as exc:
        fail(PROG, f"`{' '.join(map(str, exc.cmd[1:]))}` failed with exit status {exc.returncode}", 1)


if __name__ == "__main__":
    sys.exit(guarded(PROG, _main))
