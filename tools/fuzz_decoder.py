#!/usr/bin/env python3
"""Fuzz the decoder: mutated .gimg files must decode or raise a GimgError, nothing else.

    python tools/fuzz_decoder.py [FILE.gimg ...] [--cases 2000] [--seed 0]
        [--stall-seconds 60] [--cli-cases K] [--save-dir DIR] [--json OUT]
    python tools/fuzz_decoder.py --images [IMAGE ...] [--cases 2000] ...

Without files it takes the valid conformance vectors (``conformance/valid/*.gimg``). Case i
mutates file i mod F with a generator seeded by (seed, i), so a case is reproduced from its
number alone. Most mutations rewrite a chunk's payload and then fix its length and CRC-32,
so they reach the header, base-layer and payload parsers and the entropy decoders instead of
stopping at the CRC check (the payload mutations take, nine times in ten, a chunk whose
payload is not empty):
- ``flip``: 1 to 8 random bits of one chunk's payload;
- ``overwrite``: a run of 1 to 16 payload bytes replaced by random bytes;
- ``field``: a random aligned 1-, 2- or 4-byte field of one payload set to 0, all ones or
  a random value (header fields and stream lengths);
- ``truncate`` / ``extend``: one payload cut at a random point or lengthened by random bytes;
- ``drop`` / ``duplicate`` / ``swap``: one chunk removed, repeated, or exchanged with the next;
- ``raw``: random bytes of the file changed with no CRC fix (the checks before the payload);
- ``cut``: the file truncated at a random byte.

Each case runs ``gipp_codec.decode`` and, when that succeeds, ``read_info`` on the bytes and
a region of the image rendered alone (``open_gimg(data).render(crop=...)``, the region
drawn from the bytes' hash: ``region_of``), in a worker process. Outcomes: ``decoded`` (a
uint8 [H, W, 3] image of the header's size, whose region is the same pixels),
``rejected`` (a GimgError subclass, counted by class), ``bug`` (any other exception, or a
decoded image of the wrong type or shape), ``crash`` (the worker died: a segfault in a
kernel, for instance) and ``stall`` (no case finished for ``--stall-seconds``). A crash or a
stall restarts the worker after the case. Every bug, crash and stall is saved as
``DIR/case_I.gimg`` with ``--save-dir``. Prints the counts, the worker's peak resident
memory, and the slowest case and the case that raised the peak, each with what its header
declares (``describe_case``); exits 1 if any case was a bug, a crash or a stall.

``--cli-cases K`` also runs the first K cases through the command line (``cli_check``): the
same decision as the API, one ``gimg:`` line on stderr and no output file on rejection.

``--images`` fuzzes the encoder's input instead: ``imageio.decode_image_bytes`` must return
a uint8 [H, W, 3] image or raise an InputImageError. PNGs are mutated chunk by chunk (their
big-endian lengths and CRCs fixed), other formats as one payload (``WHOLE_FILE_MUTATIONS``);
without files it writes ``sample_images`` (one 48 x 48 crop in eleven formats and modes).

Before any case, ``check_args`` checks the options and ``check_source`` every source file:
each must exist and parse as a .gimg file (with ``--images``: load as an image); ``--json``
must be writable and ``--save-dir`` a folder or creatable as one. Bad input is one
``fuzz_decoder: error:`` line and a non-zero exit. ``--stall-seconds`` must be at least
``MIN_STALL_SECONDS`` (1 s): a case is a stall when no line came from the worker for that
long, and an ordinary case on a busy machine can take a good part of a second; a worker's
start (imports, kernels loaded or compiled) may take up to ``max(--stall-seconds,
STARTUP_SECONDS)`` before its first line. A progress line goes to stderr every
``PROGRESS_EVERY`` cases.
"""

import argparse
import glob
import hashlib
import os
import queue
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from tool_guard import fail, guarded, one_line, refuse_clobbering  # noqa: E402
from tool_record import check_record_path, write_record  # noqa: E402

from gipp_codec.format.constants import PREAMBLE_SIZE, SIGNATURE  # noqa: E402

MUTATIONS = ("flip", "overwrite", "field", "truncate", "extend", "drop", "duplicate", "swap", "raw", "cut")
WHOLE_FILE_MUTATIONS = ("flip", "overwrite", "raw", "cut")  # for files without chunks (JPEG, TIFF, ...)
PROG = "fuzz_decoder"
MIN_STALL_SECONDS = 1.0  # below it an ordinary case on a loaded machine reads as a stall
STARTUP_SECONDS = 60.0  # the least a worker is given to send its first line (imports, kernels)
PROGRESS_EVERY = 500  # cases between progress lines on stderr


@dataclass(frozen=True)
class ChunkLayout:
    """How a file of length | type | payload | CRC-32 chunks is framed."""

    signature: bytes
    preamble: int  # bytes before the first chunk
    order: str  # byte order of the lengths and CRCs (struct's "<" or ">")


GIMG = ChunkLayout(SIGNATURE, PREAMBLE_SIZE, "<")  # signature, major, minor; little-endian
PNG = ChunkLayout(b"\x89PNG\r\n\x1a\n", 8, ">")


def layout_of(data: bytes) -> ChunkLayout | None:
    """The chunk layout of ``data`` (a .gimg file or a PNG), or None for other formats."""
    return next((lay for lay in (GIMG, PNG) if data.startswith(lay.signature)), None)


def split_chunks(data: bytes, layout: ChunkLayout = GIMG) -> tuple[bytes, list]:
    """(preamble, [(type, payload)]) of a well-formed chunked file."""
    pos, chunks = layout.preamble, []
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(layout.order + "I", data, pos)
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return data[:layout.preamble], chunks


def join_chunks(preamble: bytes, chunks: list, layout: ChunkLayout = GIMG) -> bytes:
    """The file of ``preamble`` and (type, payload) chunks, each with its length and CRC-32 fixed."""
    out, fmt = [preamble], layout.order + "I"
    for ctype, payload in chunks:
        out.append(struct.pack(fmt, len(payload)) + ctype + payload + struct.pack(fmt, zlib.crc32(ctype + payload)))
    return b"".join(out)


def _random_bytes(rng, n: int) -> bytes:
    return rng.integers(0, 256, n, dtype=np.uint8).tobytes()


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One random mutation of ``data`` (module docstring): (the mutated bytes, its name). A
    .gimg file or a PNG is mutated chunk by chunk; any other file as one payload, by the
    ``WHOLE_FILE_MUTATIONS``."""
    layout = layout_of(data)
    kinds = MUTATIONS if layout is not None else WHOLE_FILE_MUTATIONS
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "raw":
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            buf[int(rng.integers(len(buf)))] = int(rng.integers(256))
        return bytes(buf), kind
    if kind == "cut":
        return data[:int(rng.integers(len(data)))], kind
    if layout is None:
        return _mutate_payload(bytearray(data), kind, rng, "<"), kind
    preamble, chunks = split_chunks(data, layout)
    k = int(rng.integers(len(chunks)))
    filled = [j for j, (_, payload) in enumerate(chunks) if payload]
    if kind not in ("drop", "duplicate", "swap", "extend") and filled and rng.random() < 0.9:
        k = filled[int(rng.integers(len(filled)))]  # mostly a chunk with a payload to change
    ctype, payload = chunks[k]
    if kind in ("drop", "duplicate", "swap"):
        if kind == "drop":
            del chunks[k]
        elif kind == "duplicate":
            chunks.insert(k, chunks[k])
        elif k + 1 < len(chunks):
            chunks[k], chunks[k + 1] = chunks[k + 1], chunks[k]
        return join_chunks(preamble, chunks, layout), kind
    chunks[k] = (ctype, _mutate_payload(bytearray(payload), kind, rng, layout.order))
    return join_chunks(preamble, chunks, layout), kind


def _mutate_payload(buf: bytearray, kind: str, rng: np.random.Generator, order: str) -> bytes:
    """``buf`` changed by one payload mutation (``field`` writes its value in byte ``order``)."""
    if kind == "extend":
        buf += _random_bytes(rng, int(rng.integers(1, 64)))
    elif not buf:
        buf += _random_bytes(rng, int(rng.integers(1, 8)))  # an empty payload gets some bytes
    elif kind == "flip":
        for _ in range(int(rng.integers(1, 9))):
            bit = int(rng.integers(8 * len(buf)))
            buf[bit // 8] ^= 1 << (bit % 8)
    elif kind == "overwrite":
        at = int(rng.integers(len(buf)))
        run = _random_bytes(rng, int(rng.integers(1, 17)))
        buf[at:at + len(run)] = run[:len(buf) - at]
    elif kind == "field":
        size = int(rng.choice([1, 2, 4]))
        if len(buf) >= size:
            at = int(rng.integers(len(buf) - size + 1)) // size * size
            value = int(rng.choice([0, (1 << 8 * size) - 1, int(rng.integers(1 << 8 * size, dtype=np.uint64))]))
            buf[at:at + size] = value.to_bytes(size, "little" if order == "<" else "big")
    elif kind == "truncate":
        del buf[int(rng.integers(len(buf))):]
    return bytes(buf)


def make_case(files: list, seed: int, i: int) -> tuple[bytes, str, str]:
    """Case i: (mutated bytes, the source file's name, the mutation's name)."""
    path = files[i % len(files)]
    rng = np.random.default_rng([seed, i])
    data, kind = mutate(Path(path).read_bytes(), rng)
    return data, Path(path).name, kind


def describe_case(files: list, seed: int, i: int, images: bool) -> str:
    """One line on case i: its source, mutation and size, and what its header declares (the
    image's size for a .gimg file, Pillow's format, mode and size for an input image)."""
    data, name, kind = make_case(files, seed, i)
    head = f"{kind} of {name}, {len(data)} bytes"
    try:
        if images:
            import io
            import warnings

            from PIL import Image

            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # only the header is read
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with Image.open(io.BytesIO(data)) as im:
                        w, h = im.size
                        return f"{head}, declares {im.format} {im.mode} {w}x{h} ({w * h / 1e6:.1f} MP)"
            finally:
                Image.MAX_IMAGE_PIXELS = limit
        from gipp_codec.format.header import unpack_header

        preamble, chunks = split_chunks(data)
        header = unpack_header(chunks[0][1], PREAMBLE_SIZE + 8, allow_extra=True)
        return f"{head}, declares {header['width']}x{header['height']} with {header['gaussian_count']} Gaussians"
    except Exception as err:  # noqa: BLE001  (a description only: the header may be what is broken)
        return f"{head}, header unreadable ({type(err).__name__})"


def classify(data: bytes, decode, check) -> tuple[str, str]:
    """(outcome, detail) of ``decode(data)`` followed by ``check(data, result)`` (None when the
    result is right, else what is wrong): ("decoded", "-"), ("rejected", the GimgError's
    class) or ("bug", what went wrong)."""
    from gipp_codec.errors import GimgError

    try:
        problem = check(data, decode(data))
        return ("bug", problem) if problem else ("decoded", "-")
    except GimgError as err:
        return "rejected", type(err).__name__
    except Exception as err:  # noqa: BLE001  (anything else is what this tool looks for)
        return "bug", f"{type(err).__name__}: {err}".replace("\n", " ")[:300]


def rgb_problem(image) -> str | None:
    """What is wrong with a decoded image that should be uint8 [H, W, 3] with H, W > 0 (None: nothing)."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 \
            and image.shape[0] > 0 and image.shape[1] > 0:
        return None
    return f"decoded {type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"


def region_of(data: bytes, width: int, height: int) -> tuple[int, int, int, int]:
    """A region (x, y, w, h) of a width x height image drawn from the sha256 of ``data``, so
    that a case's region is reproduced from its bytes."""
    draw = np.random.default_rng(int.from_bytes(hashlib.sha256(data).digest()[:8], "little"))
    x, y = int(draw.integers(0, width)), int(draw.integers(0, height))
    return x, y, int(draw.integers(1, width - x + 1)), int(draw.integers(1, height - y + 1))


def gimg_check(read_info, open_gimg):
    """``classify``'s check for .gimg decodes: a uint8 [H, W, 3] image of the size ``read_info``
    reports, whose region ``region_of`` rendered alone (``open_gimg``) is the same pixels."""
    def check(data: bytes, image) -> str | None:
        header = read_info(data)["header"]
        problem = rgb_problem(image)
        if problem is None and image.shape[:2] != (header["height"], header["width"]):
            problem = f"decoded {image.shape} for a {header['width']}x{header['height']} header"
        if problem is None:
            x, y, w, h = region_of(data, header["width"], header["height"])
            if not np.array_equal(open_gimg(data).render(crop=(x, y, w, h)), image[y:y + h, x:x + w]):
                problem = f"the region {x},{y},{w},{h} rendered alone differs from the whole decode"
        return problem
    return check


def image_check(data: bytes, result) -> str | None:
    """``classify``'s check for input images: ``decode_image_bytes`` gives (uint8 [H, W, 3], metadata)."""
    return rgb_problem(result[0])


def sample_images(folder: Path) -> list:
    """The input-image fuzzer's default sources, written to ``folder``: a 48 x 48 crop of the
    example image as PNG (RGB, grey, RGBA, palette, 16-bit grey), JPEG, GIF, TIFF, WebP, BMP
    and PPM."""
    from PIL import Image

    crop = Image.open(ROOT / "examples" / "kodim23_crop256.png").convert("RGB").crop((96, 96, 144, 144))
    variants = [("rgb.png", crop, {}), ("grey.png", crop.convert("L"), {}), ("rgba.png", crop.convert("RGBA"), {}),
                ("palette.png", crop.convert("P"), {}), ("grey16.png", crop.convert("I;16"), {}),
                ("image.jpg", crop, {"quality": 90}), ("image.gif", crop, {}), ("image.tif", crop, {}),
                ("image.webp", crop, {"quality": 90}), ("image.bmp", crop, {}), ("image.ppm", crop, {})]
    paths = []
    for name, im, kw in variants:
        im.save(folder / name, **kw)
        paths.append(str(folder / name))
    return paths


def run_worker(files: list, seed: int, first: int, last: int, selftest=(-1, -1), images: bool = False) -> None:
    """Decode cases first..last - 1, one line per case on stdout: 'START i', then
    'DONE i outcome seconds rss_kib detail'; the parent reads them as they come.
    ``selftest`` (crash case, stall case): the tool's own test makes the worker die by
    SIGSEGV at the first and hang at the second (-1: never)."""
    import resource
    import warnings

    if images:
        from gipp_codec.imageio import decode_image_bytes as decode
        check = image_check
        warnings.simplefilter("ignore")  # GimgWarnings from damaged images: expected, not counted
    else:
        from gipp_codec import decode, open_gimg, read_info
        check = gimg_check(read_info, open_gimg)
    decode(Path(files[0]).read_bytes())  # kernels loaded outside the cases' times
    for i in range(first, last):
        data, _, _ = make_case(files, seed, i)
        print(f"START {i}", flush=True)
        if i == selftest[0]:
            os.kill(os.getpid(), signal.SIGSEGV)
        if i == selftest[1]:
            time.sleep(3600)
        t0 = time.perf_counter()
        outcome, detail = classify(data, decode, check)
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"DONE {i} {outcome} {time.perf_counter() - t0:.4f} {rss_kib} {detail}", flush=True)


def _last_line(text: str) -> str:
    """The last non-empty line of ``text`` (a worker's stderr: the message of its error)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def fuzz(files: list, cases: int, seed: int, stall_seconds: float, save_dir: str | None,
         selftest=(-1, -1), images: bool = False, progress_every: int = PROGRESS_EVERY) -> dict:
    """Run every case in worker processes (restarted after a crash or a stall); the summary.
    ``selftest``: see ``run_worker``; ``images``: the files are input images, decoded by
    ``imageio.decode_image_bytes``; ``progress_every``: cases between progress lines on
    stderr (0: none). A worker is given ``max(stall_seconds, STARTUP_SECONDS)`` for its
    first line, then ``stall_seconds`` for each."""
    counts = {"decoded": 0, "rejected": 0, "bug": 0, "crash": 0, "stall": 0}
    by_error, by_mutation, problems = {}, {}, []
    slowest = (0.0, -1)
    peak_rss_kib, peak_case = 0, -1
    t_start = time.perf_counter()
    i = 0
    while i < cases:
        cmd = [sys.executable, __file__, "--worker", str(i), str(cases), "--seed", str(seed),
               "--selftest", str(selftest[0]), str(selftest[1]), *(["--images"] if images else []), *files]
        with tempfile.TemporaryFile("w+") as err_file:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file, text=True)
            lines: queue.Queue = queue.Queue()
            threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True).start()
            started, stalled, first = None, False, True
            while True:
                try:
                    line = lines.get(timeout=max(stall_seconds, STARTUP_SECONDS) if first else stall_seconds)
                    first = False
                except queue.Empty:
                    proc.kill()
                    stalled = True
                    break
                if line is None:
                    break
                parts = line.rstrip("\n").split(" ", 5)
                if parts[0] == "START":
                    started = int(parts[1])
                elif parts[0] == "DONE":
                    idx, outcome, secs, rss, detail = int(parts[1]), parts[2], float(parts[3]), int(parts[4]), parts[5]
                    _, _, kind = make_case(files, seed, idx)
                    counts[outcome] += 1
                    by_mutation.setdefault(kind, {}).setdefault(outcome, 0)
                    by_mutation[kind][outcome] += 1
                    if outcome == "rejected":
                        by_error[detail] = by_error.get(detail, 0) + 1
                    if outcome == "bug":
                        problems.append({"case": idx, "outcome": outcome, "detail": detail})
                    slowest = max(slowest, (secs, idx))
                    if rss > peak_rss_kib:  # ru_maxrss only grows: this case raised the peak
                        peak_rss_kib, peak_case = rss, idx
                    started, i = None, idx + 1
                    if progress_every and i % progress_every == 0 and i < cases:
                        print(f"{PROG}: {i}/{cases} cases, {time.perf_counter() - t_start:.0f} s: "
                              + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr, flush=True)
            proc.wait()
            err_file.seek(0)
            err_text = err_file.read()[-300:]
        if started is None and not stalled:
            if proc.returncode != 0 or i < cases:  # died outside a case: the tool's own failure
                raise SystemExit(f"{PROG}: error: the worker failed before case {i} (exit {proc.returncode}): "
                                 f"{_last_line(err_text)}")
            break
        if started is None:
            started = i  # stalled while loading, before its first case
        counts["stall" if stalled else "crash"] += 1
        problems.append({"case": started, "outcome": "stall" if stalled else "crash",
                         "detail": f"exit {proc.returncode}: {err_text}"})
        i = started + 1
    for p in problems:
        data, name, kind = make_case(files, seed, p["case"])
        p.update(file=name, mutation=kind)
        if save_dir:
            Path(save_dir).mkdir(parents=True, exist_ok=True)
            Path(save_dir, f"case_{p['case']}.gimg").write_bytes(data)
    from PIL import __version__ as pillow_version

    return {"files": [Path(f).name for f in files], "pillow": pillow_version, "cases": cases, "seed": seed, "counts": counts,
            "rejected_by_error": dict(sorted(by_error.items())), "by_mutation": by_mutation, "problems": problems,
            "slowest_case": {"case": slowest[1], "seconds": slowest[0]}, "worker_peak_rss_mib": peak_rss_kib / 1024,
            "peak_rss_case": peak_case}


def cli_check(files: list, seed: int, cases: int) -> dict:
    """Cases 0..cases - 1 through ``python -m gipp_codec decode IN OUT``, each against its
    in-process outcome: a file ``decode`` accepts must exit 0 with a PNG of the header's
    size (one channel where the decode is exactly grey and no RGB ICC profile forbids it,
    ``output_format.single_channel``, else three); one it rejects must exit non-zero with
    one stderr line starting ``gimg:``, no traceback and no output file. Returns {"cases", "decoded" (of them, by the API), "agreed",
    "problems"}."""
    from PIL import Image

    from gipp_codec import decode
    from gipp_codec.errors import GimgError
    from gipp_codec.format.container import parse_gimg
    from gipp_codec.output_format import single_channel

    problems, decoded = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp, "case.gimg"), Path(tmp, "case.png")
        for i in range(cases):
            data, name, kind = make_case(files, seed, i)
            try:
                image = decode(data)  # [H, W, 3]
                bands = 1 if single_channel(image, parse_gimg(data).metadata.icc_profile) else 3
                expected = (*image.shape[:2], bands)
            except GimgError:
                expected = None
            decoded += expected is not None
            src.write_bytes(data)
            out.unlink(missing_ok=True)
            run = subprocess.run([sys.executable, "-m", "gipp_codec", "decode", str(src), str(out)],
                                 capture_output=True, text=True, timeout=300)
            err_lines = run.stderr.strip().splitlines()
            if expected is not None:
                shape = None
                if run.returncode == 0 and out.exists():
                    with Image.open(out) as im:
                        shape = (im.height, im.width, len(im.getbands()))
                ok = shape == expected
            else:
                ok = (run.returncode != 0 and not out.exists() and len(err_lines) == 1
                      and err_lines[0].startswith("gimg:") and "Traceback" not in run.stderr)
            if not ok:
                problems.append({"case": i, "file": name, "mutation": kind, "exit": run.returncode,
                                 "stderr": run.stderr[-300:], "output_left": out.exists()})
    return {"cases": cases, "decoded": decoded, "agreed": cases - len(problems), "problems": problems}


def check_source(path: str, images: bool) -> None:
    """Exit with one line naming ``path`` unless it is a source the fuzzer can use: a file
    that parses as a .gimg file (``images``: that loads as an image)."""
    from gipp_codec.errors import FormatError, GimgError

    try:
        if images:
            from gipp_codec.imageio import load_image

            load_image(path)
        else:
            from gipp_codec.decoder import read_input_file
            from gipp_codec.format.container import parse_gimg

            try:
                parse_gimg(read_input_file(path))
            except FormatError as exc:
                fail(PROG, f"{path}: not a valid .gimg file to fuzz ({one_line(exc)})", 1)
    except GimgError as exc:  # missing, a folder, empty, unreadable, not an image
        fail(PROG, one_line(exc), 1)


def check_save_dir(path: str | None) -> None:
    """Exit with one line unless ``path`` (None: nothing to check) is a folder, or can be made
    one (its nearest existing parent is a folder that can be written)."""
    if path is None:
        return
    if str(path) == "":
        fail(PROG, "--save-dir: an empty folder name")
    target = Path(path)
    if target.exists():
        if not target.is_dir():
            fail(PROG, f"--save-dir {path}: exists and is not a folder")
        if not os.access(target, os.W_OK | os.X_OK):
            fail(PROG, f"--save-dir {path}: the folder cannot be written")
        return
    parent = target.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        fail(PROG, f"--save-dir {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        fail(PROG, f"--save-dir {path}: cannot make it in {parent}, which cannot be written")


def check_args(args) -> None:
    """``main``'s checks of the options, before any source file is read (module docstring)."""
    if args.cases < 1:
        fail(PROG, f"--cases {args.cases}: must be at least 1")
    if args.seed < 0:
        fail(PROG, f"--seed {args.seed}: must not be negative")
    if not MIN_STALL_SECONDS <= args.stall_seconds < float("inf"):  # NaN fails too
        fail(PROG, f"--stall-seconds {args.stall_seconds:g}: must be a finite number of seconds, at least "
              f"{MIN_STALL_SECONDS:g} (with less, ordinary cases would be counted as stalls)")
    if args.cli_cases < 0:
        fail(PROG, f"--cli-cases {args.cli_cases}: must not be negative")
    if args.images and args.cli_cases:
        fail(PROG, "--cli-cases checks `gimg decode`; it does not combine with --images")
    check_record_path(PROG, args.json, args.files)
    check_save_dir(args.save_dir)
    refuse_clobbering(PROG, [args.json, args.save_dir], [])


def main(argv=None) -> int:
    """Command line (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", help="valid .gimg files (default: conformance/valid/*.gimg), or with "
                    "--images input images (default: sample_images)")
    ap.add_argument("--images", action="store_true",
                    help="fuzz the input-image reader (imageio.decode_image_bytes) instead of the .gimg decoder")
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stall-seconds", type=float, default=60.0,
                    help=f"a case is a stall after this long without an answer (at least {MIN_STALL_SECONDS:g})")
    ap.add_argument("--cli-cases", type=int, default=0,
                    help="also run the first K cases through `python -m gipp_codec decode` (cli_check)")
    ap.add_argument("--save-dir")
    ap.add_argument("--json")
    ap.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--selftest", nargs=2, type=int, default=(-1, -1), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        run_worker(args.files, args.seed, *args.worker, selftest=tuple(args.selftest), images=args.images)
        return 0
    check_args(args)
    with tempfile.TemporaryDirectory() as samples:
        if args.files:
            files = args.files
        elif args.images:
            files = sample_images(Path(samples))
        else:
            files = sorted(glob.glob(str(ROOT / "conformance" / "valid" / "*.gimg")))
        if not files:
            fail(PROG, "no .gimg files given and none in conformance/valid")
        for f in files:
            check_source(f, args.images)
        return _run_and_report(args, files)


def _run_and_report(args, files: list) -> int:
    """``main``'s run: fuzz, print the summary, write the record; the exit status."""
    t0 = time.perf_counter()
    summary = fuzz(files, args.cases, args.seed, args.stall_seconds, args.save_dir, tuple(args.selftest), args.images)
    summary["target"] = "input images (imageio.decode_image_bytes)" if args.images else ".gimg decoder"
    summary["seconds"] = time.perf_counter() - t0
    print(f"{summary['target']}: {summary['cases']} cases from {len(files)} files, seed {summary['seed']}, "
          f"{summary['seconds']:.0f} s")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in summary["counts"].items()))
    print("rejected by error: " + ", ".join(f"{k} {v}" for k, v in summary["rejected_by_error"].items()))
    for kind in MUTATIONS:
        if kind in summary["by_mutation"]:
            print(f"  {kind:10s} " + ", ".join(f"{k} {v}" for k, v in sorted(summary["by_mutation"][kind].items())))
    print(f"slowest case: {summary['slowest_case']['case']} ({summary['slowest_case']['seconds']:.3f} s); "
          f"worker peak RSS {summary['worker_peak_rss_mib']:.0f} MiB (reached at case {summary['peak_rss_case']})")
    for label, idx in (("slowest", summary["slowest_case"]["case"]), ("peak memory", summary["peak_rss_case"])):
        if idx >= 0:
            print(f"  {label}: case {idx}: {describe_case(files, args.seed, idx, args.images)}")
    for p in summary["problems"]:
        print(f"PROBLEM case {p['case']} ({p['file']}, {p['mutation']}): {p['outcome']}: {p['detail']}")
    failed = summary["counts"]["bug"] or summary["counts"]["crash"] or summary["counts"]["stall"]
    if args.cli_cases > 0:
        summary["cli"] = cli_check(files, args.seed, min(args.cli_cases, args.cases))
        print(f"CLI: {summary['cli']['agreed']} of {summary['cli']['cases']} cases as the API decided "
              f"({summary['cli']['decoded']} decoded), with one-line errors and no output file on rejection")
        for p in summary["cli"]["problems"]:
            print(f"CLI PROBLEM case {p['case']} ({p['file']}, {p['mutation']}): exit {p['exit']}, "
                  f"output left {p['output_left']}: {p['stderr']!r}")
        failed = failed or summary["cli"]["problems"]
    if args.json:
        write_record(args.json, [summary])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(guarded(PROG, main))
