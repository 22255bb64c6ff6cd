#!/usr/bin/env python3
"""Where a warm in-process decode spends its time, part by part.

    python tools/decode_parts.py FILE.gimg [FILE.gimg ...] [--repeats 40] [--json OUT]

For each file, in one process with the kernels warmed, the median of ``--repeats`` rounds
(each part once a round, in this order) of:
  - ``decode``: the whole ``gipp_codec.decoder.decode`` (bytes -> uint8 pixels);
  - ``parse``: ``format.container.parse_gimg`` (chunks, CRCs, header, entropy decoding,
    the render-work check);
  - ``entropy``: ``entropy.gaussian_coder.decode_attributes`` on the file's payload alone;
  - ``ans``: inside it, only the ANS token decoding, each (stream, context) decoded as the
    decoder does it, with the models the file transmits;
  - ``dequantize``: ``quant.dequant.dequantize`` of the parsed Gaussians;
  - ``base_rows``: the base layer's horizontal pass (``format.base_layer.grid_rows``), when
    the file has a base;
  - ``render``: the CPU render of the dequantized Gaussians and the base to uint8
    (``decoder._render_uint8``).
The parts can be timed in another tree's code with ``PYTHONPATH=TREE`` (an ``ans`` part
that tree's decoder lacks is left out). Prints a markdown table in milliseconds.
"""

import argparse
import json
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tool_guard import fail, guarded  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "decode_parts"


def _gaus_payload(data: bytes) -> bytes:
    """The GAUS chunks' payloads joined (the file parsed already, so its chunks are sound)."""
    pos, parts = 10, []
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        if data[pos + 4:pos + 8] == b"GAUS":
            parts.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    return b"".join(parts)


def _ans_part(payload: bytes, header: dict):
    """A call that decodes every ANS token of ``payload`` as the decoder does (this tree's
    ANS: ``token_kernels.ans_tokens``, or constriction's for a tree before it), or None when
    the file has no payload to decode."""
    import numpy as np

    from gipp_codec.entropy import gaussian_coder as gc
    from gipp_codec.entropy.bitio import BitReader
    from gipp_codec.entropy.side_stream import read_side_stream
    from gipp_codec.format.header import channel_bits

    n = int(header["gaussian_count"])
    if n == 0 or len(payload) < 8:
        return None
    bits = channel_bits(header)
    coding = int(header["payload_coding"])
    side_len, n_words = (int(v) for v in np.frombuffer(payload[:8], dtype="<u4"))
    words = np.frombuffer(payload[8 + side_len:8 + side_len + 4 * n_words], dtype="<u4").astype(np.uint32)
    # the contexts' sizes come from the decoded attributes: decode once to learn them
    q, _ = gc.decode_attributes(payload, n, bits, header["scales"], header["offsets"], coding=coding)
    qt = np.ascontiguousarray(q.T)  # [8, N]
    jobs = []  # (counts [n_tokens], size) per (stream, context), in decoding order
    for cfg, hists, _ in read_side_stream(BitReader(payload[8:8 + side_len], "side"), bits, n, coding):
        sizes = gc._stream_contexts(cfg, qt, n, {})[1].tolist() if cfg.thresholds else [n]
        jobs += [(counts, size) for size, counts in zip(sizes, hists) if counts.size >= 2 and size]
    if hasattr(gc, "_ans_state"):
        from gipp_codec.entropy.token_kernels import ans_tokens

        def run():
            state = gc._ans_state(words, 0)
            for counts, size in jobs:
                ans_tokens(words, state, counts, size, np.empty(size, np.int32))
        return run
    import constriction

    from gipp_codec.entropy.models import categorical

    def run_constriction():
        coder = constriction.stream.stack.AnsCoder(words)
        for counts, size in jobs:
            coder.decode(categorical(counts, validated=True), size)
    return run_constriction


def measure(path: Path, repeats: int) -> dict:
    """Median milliseconds of each part of decoding ``path`` (module docstring)."""
    from gipp_codec import decoder
    from gipp_codec.entropy.gaussian_coder import decode_attributes
    from gipp_codec.format.base_layer import grid_rows
    from gipp_codec.format.container import parse_gimg
    from gipp_codec.format.header import channel_bits
    from gipp_codec.format.model import QuantizedGaussians
    from gipp_codec.quant.dequant import dequantize

    data = path.read_bytes()
    parsed = parse_gimg(data)
    header = parsed.header
    width, height = int(header["width"]), int(header["height"])
    n = int(header["gaussian_count"])
    parts = {"decode": lambda: decoder.decode(data), "parse": lambda: parse_gimg(data)}
    if isinstance(parsed.gaussians, QuantizedGaussians) and n:
        payload = _gaus_payload(data)
        parts["entropy"] = lambda: decode_attributes(payload, n, channel_bits(header), header["scales"],
                                                     header["offsets"], coding=int(header["payload_coding"]))
        ans = _ans_part(payload, header)
        if ans is not None:
            parts["ans"] = ans
        parts["dequantize"] = lambda: dequantize(parsed.gaussians)
    if parsed.base is not None:
        parts["base_rows"] = lambda: grid_rows(parsed.base, width)
    floats = decoder.gaussians_as_floats(parsed)
    parts["render"] = lambda: decoder._render_uint8(parsed, "cpu", floats, (width, height))
    times = {name: [] for name in parts}
    for r in range(2 + repeats):  # two warm-up rounds
        for name, call in parts.items():
            t0 = time.perf_counter()
            call()
            if r >= 2:
                times[name].append(time.perf_counter() - t0)
    return {"file": str(path), "gaussians": n, "width": width, "height": height,
            **{f"{name}_ms": 1000 * statistics.median(t) for name, t in times.items()}}


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--repeats", type=int, default=40, help="timed rounds (at least 1)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.repeats < 1:
        fail(PROG, f"--repeats {args.repeats}: must be at least 1")
    check_record_path(PROG, args.json, args.files)
    from gipp_codec.decoder import read_input_file
    from gipp_codec.errors import FormatError
    from gipp_codec.format.container import parse_gimg

    for f in args.files:  # every file readable and valid before any timing
        try:
            parse_gimg(read_input_file(str(f)))
        except FormatError as exc:
            fail(PROG, f"{f}: not a valid .gimg file ({' '.join(str(exc).split())})", 1)
    rows = []
    for k, f in enumerate(args.files, 1):
        print(f"{PROG}: file {k}/{len(args.files)}: {f}", file=sys.stderr, flush=True)
        rows.append(measure(f, args.repeats))
    names = [k[:-3] for k in rows[0] if k.endswith("_ms")]
    for r in rows[1:]:
        names += [k[:-3] for k in r if k.endswith("_ms") and k[:-3] not in names]
    print(f"median of {args.repeats} warm rounds, milliseconds\n")
    print("| file | N | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for r in rows:
        cells = [f"{r[n + '_ms']:.3f}" if n + "_ms" in r else "" for n in names]
        print(f"| {Path(r['file']).name} | {r['gaussians']} | " + " | ".join(cells) + " |")
    if args.json:
        write_text_atomic(args.json, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(guarded(PROG, main))
