#!/usr/bin/env python3
"""An independent .gimg 1.5 decoder written from format_spec/gimg.md alone.

It shares no code with ``gipp_codec``: plain Python integers for the container and the
entropy decoding (the ANS coder is spelled out here, not taken from constriction),
numpy only for the float64 dense rendering, Pillow only to write the PNG. It is slow
and meant to show that the spec is complete; the conformance generator also uses its
``render_float64`` for the expected images.

    python conformance/reference_decoder.py IN.gimg OUT.png [--attributes OUT.json]

Exit status 0 on success; 1 with a one-line message on stderr for an invalid file
(no output file is written then).
"""

import bisect
import json
import math
import os
import struct
import sys
import tempfile
import zlib

import numpy as np

SIGNATURE = b"\x89GIM\r\n\x1a\n"
MAX_WIDTH = MAX_HEIGHT = 65535
MAX_PIXELS = 1 << 28
MAX_GAUSSIANS = 1 << 22
MAX_RENDER_WORK_BASE = 1 << 30
MAX_CHUNK_LENGTH = 1 << 26
LIMITS = [2.0**20] * 2 + [2.0**46] * 3 + [2.0**16] * 3  # |value| per channel (a, c: float32 mode)
MAX_ABS_LOG_VARIANCE = 32.0
PRECISION = 24
MAX_LEVEL = 47
KNOWN_MINOR = 5  # the spec version this decoder implements: 1.5


class DecodeError(Exception):
    pass


def fail(msg):
    raise DecodeError(msg)


# ------------------------------------------------------------------ bit streams

class Bits:
    """MSB-first bit reader."""

    def __init__(self, data):
        self.data, self.pos, self.n = data, 0, 8 * len(data)

    def u(self, k):
        if self.pos + k > self.n:
            fail("bit stream overrun")
        v = 0
        for _ in range(k):
            v = (v << 1) | ((self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self):
        z = 0
        while self.u(1) == 0:
            z += 1
            if z > 32:
                fail("exp-Golomb prefix too long")
        return ((1 << z) | self.u(z)) - 1

    def se(self):
        v = self.ue()
        return (v + 1) // 2 if v & 1 else -(v // 2)

    def finish(self):
        rest = self.n - self.pos
        if rest >= 8 or (rest and self.u(rest) != 0):
            fail("bit stream has unused bits beyond the zero padding")


# ------------------------------------------------------------------ ANS

class Ans:
    """Decoder of the stack ANS coder: 64-bit head, 32-bit words, 24-bit probabilities."""

    def __init__(self, words):
        self.bulk = [int(w) for w in words]
        if self.bulk and self.bulk[-1] == 0:
            fail("ANS data ends in a zero word")
        self.head = 0
        if self.bulk:
            self.head = self.bulk.pop()
            if self.bulk:
                self.head = (self.head << 32) | self.bulk.pop()

    def decode(self, left, freq):
        quantile = self.head & ((1 << PRECISION) - 1)
        s = bisect.bisect_right(left, quantile) - 1
        self.head = freq[s] * (self.head >> PRECISION) + quantile - left[s]
        if self.head < (1 << 32) and self.bulk:
            self.head = (self.head << 32) | self.bulk.pop()
        return s

    def empty(self):
        return self.head == 0 and not self.bulk


def model(levels):
    counts = [0 if e == 0 else (2 + ((e - 1) & 1)) << ((e - 1) >> 1) for e in levels]
    n = len(counts)
    scale = float((1 << PRECISION) - n) / float(sum(counts))
    left, cum = [], 0
    for i, c in enumerate(counts):
        left.append(int(float(cum) * scale) + i)
        cum += c
    freq = [left[i + 1] - left[i] for i in range(n - 1)] + [(1 << PRECISION) - left[-1]]
    return left, freq


# ------------------------------------------------------------------ payload

def max_token(k, m, umax):
    if umax < (1 << k):
        return umax
    n = umax.bit_length() - 1
    return (1 << k) + (n - k) * (1 << m) + (1 << m) - 1


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def cell_counts(q, g):
    """Context source 8 (coding 2): Gaussians within one 2^g-unit cell of each one's own cell."""
    cells = {}
    for row in q:
        key = (row[0] >> g, row[1] >> g)
        cells[key] = cells.get(key, 0) + 1
    out = []
    for row in q:
        cx, cy = row[0] >> g, row[1] >> g
        out.append(sum(cells.get((cx + dx, cy + dy), 0) for dx in (-1, 0, 1) for dy in (-1, 0, 1)))
    return out


def decode_quantized(payload, n, bits, scales, offsets, coding):
    if len(payload) < 8:
        fail("payload shorter than its prefix")
    side_len, nwords = struct.unpack_from("<II", payload, 0)
    a0 = 8 + side_len
    r0 = a0 + 4 * nwords
    if r0 > len(payload):
        fail("payload lengths exceed the payload")
    side = Bits(payload[8:a0])
    raw = Bits(payload[r0:])
    ans = Ans(struct.unpack_from(f"<{nwords}I", payload, a0))
    q = [[0] * 8 for _ in range(n)]
    decoded = [0, 1]
    for stream in (-1, 2, 4, 3, 6, 5, 7):
        pred, param, src, thr = 0, 0, -1, []
        maxq = (1 << bits[stream]) - 1 if stream >= 0 else 0
        if stream >= 0:
            pred = side.u(2)
            if pred == 1:
                param = side.ue()
                if param > maxq:
                    fail("constant predictor out of range")
            elif pred == 3:
                param = side.u(3)
                if param not in decoded or param < 2:
                    fail("bad predictor source")
            nthr = side.ue()
            if nthr > 15:
                fail("too many thresholds")
            if nthr:
                src = side.u(3 if coding == 1 else 4)
                if src == 8:
                    g = side.u(4)
                    if g > bits[0]:
                        fail("cell shift larger than bits_position")
                    feature, top = cell_counts(q, g), n
                elif src == 9:
                    if 2 not in decoded or 4 not in decoded:
                        fail("context a+c before a and c")
                    feature, top = [row[2] + row[4] for row in q], 2 * ((1 << bits[2]) - 1)
                elif src in decoded:
                    feature, top = [row[src] for row in q], (1 << bits[src]) - 1
                else:
                    fail("bad context source")
                t = -1
                for _ in range(nthr):
                    t += 1 + side.ue()
                    if t > top:
                        fail("threshold out of range")
                    thr.append(t)
        k, m = side.u(4), side.u(4)
        if k > 12 or m > min(k, 4):
            fail("bad token parameters")
        umax = (1 << (2 * bits[0])) - 1 if stream < 0 else (maxq if pred == 0 else 2 * maxq)
        ctx = [0] * n if not thr else [bisect.bisect_right(thr, feature[i]) for i in range(n)]
        hists = []
        for _ in range(len(thr) + 1):
            ntok = side.ue() + 1
            if ntok > max_token(k, m, umax) + 1:
                fail("histogram too long")
            levels = []
            e = 0
            if ntok >= 2:
                for _ in range(ntok):
                    e += side.se()
                    if not 0 <= e <= MAX_LEVEL:
                        fail("histogram level out of range")
                    levels.append(e)
                if not any(levels):
                    fail("empty histogram")
            hists.append(model(levels) if ntok >= 2 else None)
        u = [0] * n
        for c, mdl in enumerate(hists):
            for i in range(n):
                if ctx[i] != c:
                    continue
                t = ans.decode(*mdl) if mdl else 0
                if t < (1 << k):
                    u[i] = t
                else:
                    nn = k + ((t - (1 << k)) >> m)
                    top = (t - (1 << k)) & ((1 << m) - 1)
                    u[i] = (((1 << m) + top) << (nn - m)) | raw.u(nn - m)
        if stream < 0:
            mc = 0
            for i in range(n):
                mc += u[i]
                x = y = 0
                for j in range(16):
                    x |= ((mc >> (2 * j)) & 1) << j
                    y |= ((mc >> (2 * j + 1)) & 1) << j
                q[i][0], q[i][1] = x, y
            if mc > umax:
                fail("Morton code out of range")
            continue
        prev = 0
        for i in range(n):
            v = u[i]
            r = -((v + 1) >> 1) if v & 1 else v >> 1
            if pred == 0:
                val = v
            elif pred == 1:
                val = param + r
            elif pred == 2:
                val = prev + r
            else:
                s_src, s_dst = float(scales[param]), float(scales[stream])
                p = ((float(q[i][param]) * s_src + float(offsets[param])) - float(offsets[stream])) / s_dst
                p = min(max(round(p), 0), maxq)  # Python's round() is half to even
                val = p + r
            if not 0 <= val <= maxq:
                fail("decoded value out of range")
            q[i][stream] = prev = val
        decoded.append(stream)
    side.finish()
    raw.finish()
    if not ans.empty():
        fail("ANS data left over")
    return q


# ------------------------------------------------------------------ container

def parse(data):
    if len(data) < 8 or data[:8] != SIGNATURE:
        fail("bad signature")
    if len(data) < 10:
        fail("truncated version")
    major, minor = data[8], data[9]
    if major != 1:
        fail(f"unsupported major version {major}")
    pos, head, gaus, state, end_seen, base = 10, None, b"", 0, False, None
    seen = set()
    while not end_seen:
        if pos + 8 > len(data):
            fail("truncated: no DONE chunk")
        length = struct.unpack_from("<I", data, pos)[0]
        ctype = data[pos + 4:pos + 8]
        if not all(65 <= ch <= 90 or 97 <= ch <= 122 for ch in ctype):
            fail("bad chunk type")
        if length > MAX_CHUNK_LENGTH:
            fail("chunk too large")
        if pos + 12 + length > len(data):
            fail("truncated chunk")
        body = data[pos + 8:pos + 8 + length]
        if struct.unpack_from("<I", data, pos + 8 + length)[0] != zlib.crc32(ctype + body):
            fail("bad CRC")
        if head is None and ctype != b"HEAD":
            fail("missing HEAD")
        if state == 1 and ctype != b"GAUS":
            state = 2
        if ctype == b"HEAD":
            if head is not None:
                fail("two HEAD chunks")
            head = (body, pos + 8)
        elif ctype == b"GAUS":
            if state == 2:
                fail("GAUS chunks not consecutive")
            state = 1
            gaus += body
        elif ctype == b"BASE":
            if base is not None or state != 0:
                fail("BASE chunk repeated or after GAUS")
            base = body
        elif ctype == b"DONE":
            if length or state == 0 or pos + 12 != len(data):
                fail("bad DONE chunk")
            end_seen = True
        elif ctype in (b"iccp", b"exif"):
            if ctype in seen:
                fail("duplicate metadata chunk")
        elif 65 <= ctype[0] <= 90:
            fail("unknown critical chunk")
        seen.add(ctype)
        pos += 12 + length
    body = head[0]
    if len(body) < 16:
        fail("HEAD too short")
    w, h, ch, n, mode, conv, coding = struct.unpack_from("<IIBIBBB", body, 0)
    if not (1 <= w <= MAX_WIDTH and 1 <= h <= MAX_HEIGHT and w * h <= MAX_PIXELS):
        fail("bad dimensions")
    if ch != 3 or n > MAX_GAUSSIANS or mode not in (0, 1, 2) or conv not in (1, 2) or coding not in ((0,) if mode == 1 else (1, 2, 3)):
        fail("bad header field")
    size = 16 + {0: 67, 1: 0, 2: 35}[mode]
    if len(body) < size or (len(body) != size and minor <= KNOWN_MINOR):
        fail("bad HEAD length")
    out = {"width": w, "height": h, "n": n, "mode": mode, "convention": conv,
           "base": None if base is None else parse_base(base, w, h)}
    if mode == 1:
        if len(gaus) != 32 * n:
            fail("bad float payload length")
        rows = np.frombuffer(gaus, dtype="<f4").reshape(n, 8).astype(np.float64)
        if not np.all(np.isfinite(rows)) or np.any(np.abs(rows) > np.array(LIMITS)):
            fail("float attribute out of range")
        out["rows"] = check_render_work(rows, w, h)
        return out
    bp, bc, bcol = body[16:19]
    if not all(1 <= b <= 16 for b in (bp, bc, bcol)):
        fail("bad bit depth")
    if mode == 0:
        scales = struct.unpack_from("<8f", body, 19)
        offsets = struct.unpack_from("<8f", body, 51)
    else:  # binary16 scales, then binary16 offsets counted in steps: offset = steps * scale (exact)
        scales = struct.unpack_from("<8e", body, 19)
        steps = struct.unpack_from("<8e", body, 35)
        if not all(math.isfinite(t) for t in steps):
            fail("bad scale or offset")
        offsets = tuple(t * s for t, s in zip(steps, scales))
    bits = (bp, bp, bc, bc, bc, bcol, bcol, bcol)
    for j in range(8):
        s, o = scales[j], offsets[j]
        if not (math.isfinite(s) and s > 0 and math.isfinite(o)):
            fail("bad scale or offset")
        hi = f32(((1 << bits[j]) - 1) * s + o)
        lim = MAX_ABS_LOG_VARIANCE if j in (2, 4) else (1.0 if j == 3 and coding == 3 else LIMITS[j])
        if not (math.isfinite(hi) and -lim <= o and hi <= lim):
            fail("dequantized range exceeds the limits")
    if n == 0:
        if gaus:
            fail("payload for N = 0")
        q = []
    else:
        q = decode_quantized(gaus, n, bits, scales, offsets, coding)
    out.update(q=q, scales=scales, offsets=offsets)
    qa = np.array(q, dtype=np.float64).reshape(n, 8)
    value = (qa * np.array(scales, np.float64) + np.array(offsets, np.float64)).astype(np.float32)
    rows = value.astype(np.float64)
    rows[:, [2, 4]] = np.exp(rows[:, [2, 4]]).astype(np.float32).astype(np.float64)
    if coding == 3:  # b's value is the correlation: b = rho * sqrt(a * c)
        rows[:, 3] = (rows[:, 3] * np.sqrt(rows[:, 2] * rows[:, 4])).astype(np.float32).astype(np.float64)
    out["rows"] = check_render_work(rows, w, h)
    return out


def parse_base(body, width, height):
    """The BASE chunk's samples as values s / (2^b - 1): (F, grid [gh][gw][3] of floats)."""
    if len(body) < 3:
        fail("BASE chunk too short")
    f, b, k = body[0], body[1], body[2]
    if not (3 <= f <= 10 and 1 <= b <= 8 and k <= 7):
        fail("bad BASE parameters")
    F = 1 << f
    gw, gh = (width + F - 1) // F, (height + F - 1) // F
    if gw * gh > 1 << 16:
        fail("BASE grid above MAX_BASE_CELLS")
    r = Bits(body[3:])
    levels = (1 << b) - 1
    grid = [[[0] * 3 for _ in range(gw)] for _ in range(gh)]
    for ch in range(3):
        for i in range(gh):
            for j in range(gw):
                q = 0
                while r.u(1) == 0:
                    q += 1
                    if q > (2 * levels) >> k:
                        fail("BASE Rice prefix too long")
                u = (q << k) | r.u(k)
                e = (u + 1) // 2 if u % 2 else -(u // 2)
                if i == 0 and j == 0:
                    p = 1 << (b - 1)
                elif i == 0:
                    p = grid[i][j - 1][ch]
                elif j == 0:
                    p = grid[i - 1][j][ch]
                else:
                    A, B, C = grid[i][j - 1][ch], grid[i - 1][j][ch], grid[i - 1][j - 1][ch]
                    p = min(A, B) if C >= max(A, B) else max(A, B) if C <= min(A, B) else A + B - C
                if not 0 <= p + e <= levels:
                    fail("BASE sample out of range")
                grid[i][j][ch] = p + e
    r.finish()
    return F, np.array(grid, np.float64) / levels


def base_image(base, height, width):
    """The base layer at every pixel (spec §3a): bilinear, horizontally then vertically, float32."""
    F, v = base
    gh, gw = v.shape[:2]

    def axis(size, n):
        idx0, idx1, fr = [], [], []
        for p in range(size):
            u = (p + 0.5) / F - 0.5
            i0 = math.floor(u)
            t = u - i0
            if i0 < 0 or i0 >= n - 1:
                i0, t = min(max(i0, 0), n - 1), 0.0
            idx0.append(i0)
            idx1.append(min(i0 + 1, n - 1))
            fr.append(t)
        return np.array(idx0), np.array(idx1), np.array(fr)

    j0, j1, t = axis(width, gw)
    i0, i1, s = axis(height, gh)
    rows = ((1.0 - t)[None, :, None] * v[:, j0] + t[None, :, None] * v[:, j1]).astype(np.float32).astype(np.float64)
    return ((1.0 - s)[:, None, None] * rows[i0] + s[:, None, None] * rows[i1]).astype(np.float32)


def check_render_work(rows, width, height):
    """rows [N, 8] if their render work (spec §8: the pixels, over the valid Gaussians, whose
    centres lie within r = 3 sqrt(lambda_max) of the mean on both axes) is within
    MAX_RENDER_WORK; else fail."""
    x, y, a, b, c = (rows[:, k] for k in range(5))
    with np.errstate(invalid="ignore", over="ignore"):
        r = 3.0 * np.sqrt(np.maximum((a + c) / 2 + np.sqrt(((a - c) / 2) ** 2 + b * b), 0.0))
        nx = np.minimum(np.floor(x + r - 0.5), width - 1) - np.maximum(np.ceil(x - r - 0.5), 0) + 1
        ny = np.minimum(np.floor(y + r - 0.5), height - 1) - np.maximum(np.ceil(y - r - 0.5), 0) + 1
    valid = (a > 0) & (c > 0) & (a * c - b * b > 0)
    work = np.sum(np.where(valid & (nx > 0) & (ny > 0), nx * ny, 0.0))
    if work > MAX_RENDER_WORK_BASE + 256 * width * height:
        fail("render work above MAX_RENDER_WORK")
    return rows


# ------------------------------------------------------------------ rendering

def render_float64(rows, height, width, convention=1):
    """The spec's rendering equation in float64: rows [N, 8] (x, y, a, b, c, r, g, b) -> [H, W, 3],
    in render convention 1 (weight exp(-m2/2) inside m2 <= 9) or 2 (exp(-m2/2) - exp(-9/2))."""
    taper = math.exp(-4.5) if convention == 2 else 0.0
    img = np.zeros((height, width, 3), np.float64)
    for mx, my, a, b, c, r, g, bl in np.asarray(rows, np.float64):
        det = a * c - b * b
        if not (a > 0 and c > 0 and det > 0):
            continue
        ry, rx = 3.0 * math.sqrt(c), 3.0 * math.sqrt(a)
        j0, j1 = max(0, math.floor(my - ry - 0.5) - 1), min(height - 1, math.ceil(my + ry - 0.5) + 1)
        i0, i1 = max(0, math.floor(mx - rx - 0.5) - 1), min(width - 1, math.ceil(mx + rx - 0.5) + 1)
        if j0 > j1 or i0 > i1:
            continue
        dx = (np.arange(i0, i1 + 1) + 0.5 - mx)[None, :]
        dy = (np.arange(j0, j1 + 1) + 0.5 - my)[:, None]
        m2 = (c * dx * dx - 2.0 * b * dx * dy + a * dy * dy) / det
        wgt = np.where(m2 <= 9.0, np.exp(-0.5 * m2) - taper, 0.0)
        img[j0:j1 + 1, i0:i1 + 1] += wgt[:, :, None] * np.array([r, g, bl])
    return img


def to_uint8(img):
    return np.floor(np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def decode(parsed):
    """The 8-bit image [H, W, 3] of a parsed file: §7's sum in binary64, plus §3a's base."""
    img = render_float64(parsed["rows"], parsed["height"], parsed["width"], parsed["convention"])
    if parsed["base"] is not None:
        img = img + base_image(parsed["base"], parsed["height"], parsed["width"])
    return to_uint8(img)


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 2:
        print("usage: reference_decoder.py IN.gimg OUT.png [--attributes=OUT.json]", file=sys.stderr)
        return 2
    try:
        with open(args[0], "rb") as fh:
            parsed = parse(fh.read())
    except DecodeError as exc:
        print(f"reference_decoder: invalid file: {exc}", file=sys.stderr)
        return 1
    img = decode(parsed)
    from PIL import Image

    folder = os.path.dirname(os.path.abspath(args[1]))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    try:
        Image.fromarray(img, "RGB").save(tmp, format="PNG")
        os.replace(tmp, args[1])
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for a in argv:
        if a.startswith("--attributes="):
            with open(a.split("=", 1)[1], "w") as fh:
                json.dump({"q": parsed.get("q")}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
