"""Reusable pieces of the gimg rate-distortion benchmark (``tools/bench_rd.py``).

- Classical codecs through Pillow (JPEG, WebP, AVIF, JPEG 2000), each a :class:`Codec`
  with one rate parameter that is searched so the coded size lands nearest a target bpp.
- :func:`search_bpp`: bisection on that parameter, returning the closest setting tried.
- :func:`measure`: bpp, PSNR, MS-SSIM (from :mod:`gipp_codec.metrics`), encode and
  decode seconds of one coded image.
- :func:`bd_rate` / :func:`bd_psnr`: Bjontegaard deltas between two RD curves.

bpp is always ``len(bytes) * 8 / (W * H)`` of the whole file the codec writes
(headers included). PSNR is on RGB, on the decoded uint8 image.
"""

from __future__ import annotations

import io
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from gipp_codec.metrics import ms_ssim, psnr
from gipp_codec.output_format import is_gray

# --------------------------------------------------------------------------------------
# Codecs
# --------------------------------------------------------------------------------------


@dataclass
class Codec:
    """A lossy codec with one rate parameter.

    ``encode(image_uint8, param) -> bytes`` and ``decode(bytes) -> uint8 [H, W, 3]``.
    The coded size must grow (not necessarily strictly) with ``param`` over
    ``[lo, hi]``. ``integer`` parameters are searched over integers; others by
    bisection in log space (``lo`` must then be > 0).
    """

    name: str
    label: str
    encode: Callable[[np.ndarray, float], bytes]
    decode: Callable[[bytes], np.ndarray]
    lo: float
    hi: float
    integer: bool = True
    # Optional first guess for a continuous parameter given the target bpp.
    guess: Callable[[float], float] | None = None
    settings: dict = field(default_factory=dict)


def _pil_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode != "RGB":
            im = im.convert("RGB")
        return np.asarray(im)


def _pil_image(image: np.ndarray) -> Image.Image:
    """uint8 [H, W, 3] as a Pillow image: grayscale ("L") when its three channels are equal
    (a grey image, which JPEG and JPEG 2000 then code as one component, as they would a
    grayscale file), else RGB. Pillow's WebP and AVIF writers convert L back to RGB."""
    image = np.ascontiguousarray(image)
    if is_gray(image):
        return Image.fromarray(np.ascontiguousarray(image[..., 0]), "L")
    return Image.fromarray(image, "RGB")


def _pil_encode(image: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    _pil_image(image).save(buf, fmt, **options)
    return buf.getvalue()


def _jpeg_encode(image, q):
    # subsampling=2 is 4:2:0; quality 1..100 (libjpeg-turbo through Pillow).
    return _pil_encode(image, "JPEG", quality=int(q), subsampling=2, optimize=True)


def _webp_encode(image, q):
    return _pil_encode(image, "WEBP", quality=int(q), method=6, lossless=False)


def _avif_encode(image, q):
    return _pil_encode(image, "AVIF", quality=int(q), speed=4, subsampling="4:2:0")


def _jp2_encoder(mct: int):
    def enc(image, bpp):
        # quality_layers in "rates" mode is a compression ratio against the raw 8 bits per
        # sample (24 bits per pixel, 8 for a grey image coded as one component); a raw
        # codestream (no JP2 boxes) keeps headers minimal.
        ratio = (8.0 if is_gray(image) else 24.0) / float(bpp)
        return _pil_encode(
            image,
            "JPEG2000",
            irreversible=True,
            quality_mode="rates",
            quality_layers=[ratio],
            mct=mct,
            no_jp2=True,
        )

    return enc


# JPEG XL through imagecodecs (libjxl), an optional dependency (the ``bench`` and ``test``
# extras): ``jxl_problem`` says why it cannot run here. The search parameter is the reciprocal
# of libjxl's Butteraugli distance, so that the size grows with it as ``search_bpp`` assumes;
# distances run from 0.05 (near lossless) to 25, libjxl's largest. Single-threaded on both
# sides, as Pillow's JPEG and WebP run, so that the timings compare.
JXL_EFFORT = 7  # libjxl's default effort ("squirrel")
JXL_MAX_DISTANCE = 25.0
JXL_MIN_DISTANCE = 0.05


def jxl_problem() -> str | None:
    """None when JPEG XL can be coded here, else why not (a line for the user)."""
    try:
        import imagecodecs
    except ImportError:
        return ("the jxl codec needs imagecodecs (pip install -e '.[bench]', or pip install "
                "imagecodecs)")
    if not getattr(imagecodecs, "JPEGXL", None) or not imagecodecs.JPEGXL.available:
        return f"the jxl codec needs an imagecodecs built with JPEG XL (this one, {imagecodecs.__version__}, lacks it)"
    return None


def _jxl_encoder(effort: int):
    """An encoder uint8 [H, W, 3] -> JPEG XL codestream at Butteraugli distance 1 / ``p`` and
    libjxl's ``effort``; a grey image (three equal channels) is coded as one channel, as JPEG
    and JPEG 2000 code it here."""

    def enc(image, p):
        import imagecodecs

        pixels = image[..., 0] if is_gray(image) else image  # [H, W] or [H, W, 3]
        distance = min(max(1.0 / float(p), JXL_MIN_DISTANCE), JXL_MAX_DISTANCE)
        return bytes(imagecodecs.jpegxl_encode(np.ascontiguousarray(pixels), distance=distance,
                                               effort=effort, numthreads=1))

    return enc


def _jxl_decode(data: bytes) -> np.ndarray:
    """A JPEG XL codestream -> uint8 [H, W, 3] (a one-channel file's channel repeated)."""
    import imagecodecs

    out = np.asarray(imagecodecs.jpegxl_decode(data, numthreads=1))
    if out.ndim == 2:  # [H, W] -> [H, W, 3]
        out = np.repeat(out[..., None], 3, axis=2)
    return np.ascontiguousarray(out[..., :3])


def _jxl_codec(name: str, effort: int) -> Codec:
    """JPEG XL at libjxl's ``effort``, searched on 1 / distance; the first guess fits
    bpp ~ 2.5 / distance^0.8 (kodim01)."""
    return Codec(name, f"JPEG XL (libjxl, effort {effort})", _jxl_encoder(effort), _jxl_decode,
                 1.0 / JXL_MAX_DISTANCE, 1.0 / JXL_MIN_DISTANCE, integer=False, guess=lambda t: (t / 2.5) ** 1.25,
                 settings={"effort": effort, "param": "1 / Butteraugli distance", "library": "imagecodecs",
                           "threads": 1})


CLASSICAL_CODECS: dict[str, Codec] = {
    "jpeg": Codec(
        "jpeg", "JPEG (4:2:0, optimize)", _jpeg_encode, _pil_decode, 1, 100,
        settings={"subsampling": "4:2:0", "optimize": True, "param": "quality"},
    ),
    "webp": Codec(
        "webp", "WebP (method 6)", _webp_encode, _pil_decode, 0, 100,
        settings={"method": 6, "param": "quality"},
    ),
    "avif": Codec(
        "avif", "AVIF (speed 4)", _avif_encode, _pil_decode, 0, 100,
        settings={"speed": 4, "subsampling": "4:2:0", "param": "quality"},
    ),
    # The standard lossy JPEG 2000 configuration: 9/7 wavelet with the irreversible
    # colour transform (mct=1). Pillow's default is mct=0 (each RGB plane coded
    # separately), which costs ~2.5 dB; that variant is kept as "jp2-nomct".
    "jp2": Codec(
        "jp2", "JPEG 2000 (OpenJPEG 9/7, MCT)", _jp2_encoder(1), _pil_decode, 0.005, 24.0,
        integer=False, guess=lambda t: t,
        settings={"irreversible": True, "mct": 1, "quality_mode": "rates",
                  "param": "requested bpp (ratio 24/bpp; 8/bpp for a grey image)", "container": "j2k codestream"},
    ),
    # libjxl's default effort, and its slowest short of 10 (4x effort 7's encode time on Kodak,
    # BENCHMARKS.md §4, "JPEG XL as a fifth peer")
    "jxl": _jxl_codec("jxl", JXL_EFFORT),
    "jxl-e9": _jxl_codec("jxl-e9", 9),
    "jp2-nomct": Codec(
        "jp2-nomct", "JPEG 2000 (OpenJPEG 9/7, no MCT)", _jp2_encoder(0), _pil_decode,
        0.005, 24.0, integer=False, guess=lambda t: t,
        settings={"irreversible": True, "mct": 0, "quality_mode": "rates",
                  "param": "requested bpp (ratio 24/bpp; 8/bpp for a grey image)", "container": "j2k codestream"},
    ),
}


def bpp_of(nbytes: int, width: int, height: int) -> float:
    """Bits per pixel of a file of ``nbytes`` bytes for a W x H image."""
    return nbytes * 8.0 / (width * height)


# --------------------------------------------------------------------------------------
# Rate search
# --------------------------------------------------------------------------------------


@dataclass
class SearchResult:
    param: float
    data: bytes
    bpp: float
    trials: int  # encodes done for this search (cached settings not counted)


def search_bpp(
    codec: Codec,
    image: np.ndarray,
    target_bpp: float,
    *,
    cache: dict | None = None,
    rel_tol: float = 0.005,
    max_iter: int = 14,
) -> SearchResult:
    """Find the codec setting whose coded size is closest to ``target_bpp``.

    Bisection on the codec's parameter, assuming size grows with it. Every setting
    tried is kept (in ``cache``, a dict param -> bytes, which may be shared between
    targets of the same image and codec) and the one with the smallest
    ``|bpp - target|`` wins. Integer parameters are bisected down to adjacent integers;
    continuous ones in log space until within ``rel_tol`` relative error or
    ``max_iter`` steps.
    """
    h, w = image.shape[:2]
    cache = {} if cache is None else cache
    trials = 0

    def size(p):
        nonlocal trials
        if p not in cache:
            cache[p] = codec.encode(image, p)
            trials += 1
        return bpp_of(len(cache[p]), w, h)

    if codec.integer:
        # lo / hi bound the search and are only encoded if the bracket closes on
        # them (e.g. quality 100 of a slow encoder is rarely needed).
        lo, hi = int(codec.lo), int(codec.hi)
        for q in cache:  # start from the tightest bracket earlier targets found
            if lo < q < hi:
                if bpp_of(len(cache[q]), w, h) < target_bpp:
                    lo = q
                else:
                    hi = q
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if size(mid) < target_bpp:
                lo = mid
            else:
                hi = mid
        size(lo)
        size(hi)
    else:
        lo, hi = math.log(codec.lo), math.log(codec.hi)
        p = codec.guess(target_bpp) if codec.guess else math.exp((lo + hi) / 2)
        p = min(max(p, codec.lo), codec.hi)
        for _ in range(max_iter):
            b = size(p)
            if abs(b - target_bpp) <= rel_tol * target_bpp:
                break
            if b < target_bpp:
                lo = math.log(p)
            else:
                hi = math.log(p)
            p = math.exp((lo + hi) / 2)

    best = min(cache, key=lambda q: (abs(bpp_of(len(cache[q]), w, h) - target_bpp), q))
    data = cache[best]
    return SearchResult(best, data, bpp_of(len(data), w, h), trials)


# --------------------------------------------------------------------------------------
# Measuring one coded image
# --------------------------------------------------------------------------------------


def time_call(fn, repeats: int = 1, warmup: int = 0):
    """Run ``fn`` warmup + repeats times; return (last result, median seconds of repeats)."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def quality(original: np.ndarray, decoded: np.ndarray) -> dict:
    """PSNR (dB, RGB) and MS-SSIM (None when the image is under 161 px) of a decode."""
    decoded = np.asarray(decoded)
    if decoded.shape != original.shape or decoded.dtype != np.uint8:
        raise ValueError(
            f"decoded image is {decoded.dtype}{decoded.shape}, expected uint8{original.shape}"
        )
    return {"psnr": psnr(original, decoded), "ms_ssim": ms_ssim(original, decoded)}


def measure(
    codec: Codec,
    image: np.ndarray,
    param: float,
    *,
    encode_repeats: int = 1,
    decode_repeats: int = 5,
) -> dict:
    """Encode ``image`` with ``codec`` at ``param`` (timed, median of ``encode_repeats``)
    and decode it (one warm-up, then median of ``decode_repeats``); return a record."""
    h, w = image.shape[:2]
    data, enc_s = time_call(lambda: codec.encode(image, param), repeats=encode_repeats)
    decoded, dec_s = time_call(lambda: codec.decode(data), repeats=decode_repeats, warmup=1)
    rec = {"param": param, "bytes": len(data), "bpp": bpp_of(len(data), w, h)}
    rec.update(quality(image, decoded))
    rec.update({"encode_s": enc_s, "decode_s": dec_s})
    return rec


# --------------------------------------------------------------------------------------
# Bjontegaard deltas
# --------------------------------------------------------------------------------------


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson monotone slopes for a piecewise cubic Hermite interpolant."""
    n = len(x)
    h = np.diff(x)
    delta = np.diff(y) / h
    d = np.zeros(n)
    if n == 2:
        d[:] = delta[0]
        return d
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] <= 0:
            d[k] = 0.0
        else:
            w1 = 2 * h[k] + h[k - 1]
            w2 = h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def end(h0, h1, del0, del1):
        s = ((2 * h0 + h1) * del0 - h0 * del1) / (h0 + h1)
        if np.sign(s) != np.sign(del0):
            return 0.0
        if np.sign(del0) != np.sign(del1) and abs(s) > abs(3 * del0):
            return 3 * del0
        return s

    d[0] = end(h[0], h[1], delta[0], delta[1])
    d[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, a: float, b: float) -> float:
    """Exact integral over [a, b] (inside [x0, xn]) of the PCHIP interpolant of (x, y)."""
    d = _pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        x0, x1 = x[k], x[k + 1]
        lo, hi = max(a, x0), min(b, x1)
        if hi <= lo:
            continue
        hk = x1 - x0
        # Hermite cubic in t = (s - x0) / hk written as a polynomial, integrated on [t_lo, t_hi].
        y0, y1, m0, m1 = y[k], y[k + 1], d[k] * hk, d[k + 1] * hk
        c0 = y0
        c1 = m0
        c2 = 3 * (y1 - y0) - 2 * m0 - m1
        c3 = 2 * (y0 - y1) + m0 + m1
        anti = lambda t: c0 * t + c1 * t**2 / 2 + c2 * t**3 / 3 + c3 * t**4 / 4  # noqa: E731
        total += hk * (anti((hi - x0) / hk) - anti((lo - x0) / hk))
    return total


def _poly_integral(x: np.ndarray, y: np.ndarray, a: float, b: float) -> float:
    """Integral over [a, b] of the least-squares polynomial (degree <= 3) through (x, y)."""
    deg = min(3, len(x) - 1)
    p = np.polyint(np.polyfit(x, y, deg))
    return float(np.polyval(p, b) - np.polyval(p, a))


def _prepare(xs: Sequence[float], ys: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | str:
    """Finite points sorted by x with equal x merged (mean y); a reason string if unusable."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys)
           if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    merged: dict[float, list[float]] = {}
    for x, y in pts:
        merged.setdefault(x, []).append(y)
    if len(merged) < 2:
        return f"needs at least 2 distinct points, has {len(merged)}"
    x = np.array(sorted(merged))
    y = np.array([float(np.mean(merged[v])) for v in x])
    return x, y


def _bd_delta(x_a, y_a, x_t, y_t, method: str) -> tuple[float | None, str | None]:
    """Mean of (test - anchor) of y over the overlapping interval of x."""
    pa, pt = _prepare(x_a, y_a), _prepare(x_t, y_t)
    if isinstance(pa, str):
        return None, "anchor " + pa
    if isinstance(pt, str):
        return None, "test " + pt
    (xa, ya), (xt, yt) = pa, pt
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    if not hi > lo:
        return None, (
            f"no overlap: anchor spans [{xa[0]:.3f}, {xa[-1]:.3f}], "
            f"test spans [{xt[0]:.3f}, {xt[-1]:.3f}]"
        )
    if method == "pchip":
        ia, it = _pchip_integral(xa, ya, lo, hi), _pchip_integral(xt, yt, lo, hi)
    elif method == "poly":
        if min(len(xa), len(xt)) < 4:
            return None, "cubic-polynomial fit needs at least 4 points per curve"
        ia, it = _poly_integral(xa, ya, lo, hi), _poly_integral(xt, yt, lo, hi)
    else:
        raise ValueError(f"unknown BD method {method!r} (use 'pchip' or 'poly')")
    return (it - ia) / (hi - lo), None


def bd_rate(anchor_rate, anchor_psnr, test_rate, test_psnr, method: str = "pchip"):
    """Bjontegaard delta rate of ``test`` against ``anchor``, in percent.

    Negative means the test codec needs fewer bits for the same PSNR. Log rate (natural
    log of bpp) is interpolated as a function of PSNR for each curve and the mean gap
    over the overlapping PSNR interval is taken: ``exp(mean gap) - 1``.

    ``method="pchip"`` (default) uses piecewise cubic Hermite interpolation with
    Fritsch-Carlson monotone slopes (as in the later JCT-VC/JVET BD tools), integrated
    exactly; it works from 2 points and follows the data without overshoot.
    ``method="poly"`` is the classic VCEG-M33 least-squares cubic polynomial (needs 4
    points per curve).

    Returns ``(percent or None, reason or None)``: None with a reason when a curve has
    fewer than 2 usable points or the PSNR ranges do not overlap.
    """
    ar = [math.log(r) if r and r > 0 else None for r in anchor_rate]
    tr = [math.log(r) if r and r > 0 else None for r in test_rate]
    delta, reason = _bd_delta(anchor_psnr, ar, test_psnr, tr, method)
    if delta is None:
        return None, reason
    return (math.exp(delta) - 1.0) * 100.0, None


def bd_psnr(anchor_rate, anchor_psnr, test_rate, test_psnr, method: str = "pchip"):
    """Bjontegaard delta PSNR (dB) of ``test`` against ``anchor``: mean PSNR gap over the
    overlapping log-rate interval, PSNR interpolated as a function of log rate (same
    methods as :func:`bd_rate`). Positive means the test codec is better. Returns
    ``(dB or None, reason or None)``."""
    ar = [math.log(r) if r and r > 0 else None for r in anchor_rate]
    tr = [math.log(r) if r and r > 0 else None for r in test_rate]
    return _bd_delta(ar, anchor_psnr, tr, test_psnr, method)


# --------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------


def _mean(values):
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def ms_ssim_db(value: float | None) -> float | None:
    """MS-SSIM as -10 log10(1 - MS-SSIM), the scale on which its rate curves are near linear
    like PSNR's (None when unknown or 1)."""
    if value is None or not math.isfinite(value) or value >= 1.0:
        return None
    return -10.0 * math.log10(1.0 - value)


def _finite_psnr(record: dict) -> bool:
    """Whether a record measured a finite PSNR (not an error, not an exact copy's infinity;
    a JSON file holds infinity as the string "inf")."""
    v = record.get("psnr")
    try:
        return not record.get("error") and v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def left_out_images(records: list[dict]) -> dict[str, str]:
    """{image: why} for every image that some codec lacks a finite PSNR for at one of that
    codec's rate points (an error, an exact copy, no record yet): ``mean_curves`` leaves
    these out of every codec's means, so that all curves, and the BD-rates between them,
    average the same images."""
    points = {(r["codec"], r["point"]) for r in records}
    good: dict[tuple, set] = {}
    for r in records:
        if _finite_psnr(r):
            good.setdefault((r["codec"], r["point"]), set()).add(r["image"])
    out = {}
    for image in dict.fromkeys(r["image"] for r in records):
        for codec, point in sorted(points):
            if image in good.get((codec, point), ()):
                continue
            rec = next((r for r in records if r["image"] == image and r["codec"] == codec
                        and r["point"] == point), None)
            why = ("no record" if rec is None else f"error ({rec['error']})" if rec.get("error")
                   else "infinite PSNR (an exact copy)")
            out[image] = f"{codec} at {point}: {why}"
            break
    return out


def mean_curves(records: list[dict]) -> dict[str, list[dict]]:
    """Mean bpp / PSNR / MS-SSIM / timings per codec per rate point across images.

    Records are grouped by ``codec`` and ``point`` (the rate point's label); each curve
    is sorted by mean bpp. Points carry ``n`` (number of images averaged). Only the images
    every codec measured at every one of its points, with a finite PSNR, are averaged
    (``left_out_images`` names the others and why), so every point has the same n.
    """
    left_out = left_out_images(records)
    groups: dict[str, dict[str, list[dict]]] = {}
    for r in records:
        if r.get("error") or r["image"] in left_out:
            continue
        groups.setdefault(r["codec"], {}).setdefault(r["point"], []).append(r)
    out = {}
    for codec, pts in groups.items():
        curve = []
        for point, rs in pts.items():
            curve.append({
                "point": point,
                "target_bpp": rs[0].get("target_bpp"),
                "gaussians": rs[0].get("gaussians"),
                "n": len(rs),
                "bpp": _mean(r["bpp"] for r in rs),
                "psnr": _mean(r["psnr"] for r in rs),
                "ms_ssim": _mean(r.get("ms_ssim") for r in rs),
                "ms_ssim_db": _mean(ms_ssim_db(r.get("ms_ssim")) for r in rs),
                "encode_s": _mean(r["encode_s"] for r in rs),
                "decode_s": _mean(r["decode_s"] for r in rs),
            })
        curve.sort(key=lambda p: p["bpp"])
        out[codec] = curve
    return out


def bd_table(curves: dict[str, list[dict]], method: str = "pchip") -> list[dict]:
    """BD-rate and BD-PSNR of every codec (test) against every other (anchor), and the BD-rate
    on MS-SSIM in dB (``ms_ssim_db``; None where a curve has no MS-SSIM)."""
    rows = []
    for anchor, ca in curves.items():
        for test, ct in curves.items():
            if test == anchor:
                continue
            args = ([p["bpp"] for p in ca], [p["psnr"] for p in ca],
                    [p["bpp"] for p in ct], [p["psnr"] for p in ct])
            rate, why_r = bd_rate(*args, method=method)
            dpsnr, why_p = bd_psnr(*args, method=method)
            ms_rate, why_ms = None, "no MS-SSIM"
            qa, qt = [p.get("ms_ssim_db") for p in ca], [p.get("ms_ssim_db") for p in ct]
            if None not in qa and None not in qt:
                ms_rate, why_ms = bd_rate(args[0], qa, args[2], qt, method=method)
            rows.append({"test": test, "anchor": anchor, "bd_rate_pct": rate,
                         "bd_psnr_db": dpsnr, "bd_rate_reason": why_r,
                         "bd_psnr_reason": why_p, "bd_rate_ms_ssim_pct": ms_rate,
                         "bd_rate_ms_ssim_reason": why_ms})
    return rows


# --------------------------------------------------------------------------------------
# Reading runs (bench_rd.py JSONs) for rd_compare.py / rd_merge.py
# --------------------------------------------------------------------------------------


def _kind(value) -> str:
    """What a JSON value is, for a message: "a list", "the number 3", "null", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value) -> bool:
    return _is_number(value) and math.isfinite(value)


# What each field of a record must hold where it is present: (test, what it should be).
_RECORD_FIELDS = {
    "codec": (lambda v: isinstance(v, str), "a string"),
    "image": (lambda v: isinstance(v, str), "a string"),
    "point": (lambda v: isinstance(v, str), "a string"),
    "bpp": (lambda v: _finite(v) and v >= 0, "a number >= 0"),
    # an exact copy's PSNR is infinite: bench_rd.py writes it as the string "inf"
    "psnr": (lambda v: v is None or v == "inf" or (_is_number(v) and not math.isnan(v) and v > -math.inf),
             'a number, "inf" or null'),
    "bytes": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a whole number >= 0"),
    "target_bpp": (lambda v: v is None or (_finite(v) and v > 0), "a number > 0 or null"),
    **{key: (lambda v: v is None or _finite(v), "a number or null")
       for key in ("ms_ssim", "encode_s", "decode_s", "gaussians_final", "bits_per_gaussian")},
}


def run_problem(run, required: tuple = ("codec", "image"), measured: tuple = ("bpp", "psnr")) -> str | None:
    """What makes ``run`` (a parsed JSON) unusable as a bench_rd.py run, or None when it is one:
    an object whose "records" is a list of objects, each with the keys ``required`` and,
    unless it records an error, ``measured``, every field of the right type (``_RECORD_FIELDS``);
    whose "images", where present, is a list of objects each with a "name" (and a whole
    "width" and "height" or none); and whose "meta", where present, is an object."""
    if not isinstance(run, dict):
        return f"the file holds {_kind(run)}, not an object"
    if "records" not in run:
        return 'no "records"'
    records = run["records"]
    if not isinstance(records, list):
        return f'"records" is {_kind(records)}, not a list'
    for i, r in enumerate(records):
        where = f"record {i + 1} of {len(records)}"
        if not isinstance(r, dict):
            return f"{where} is {_kind(r)}, not an object"
        needed = required if r.get("error") else required + measured
        missing = [key for key in needed if key not in r]
        if missing:
            return f"{where} has no " + ", ".join(f'"{key}"' for key in missing)
        for key, (ok, what) in _RECORD_FIELDS.items():
            if key in r and not (ok(r[key]) or (r.get("error") and r[key] is None and key not in required)):
                return f'{where}: "{key}" is {_kind(r[key])}, expected {what}'
    if "images" in run:
        images = run["images"]
        if not isinstance(images, list):
            return f'"images" is {_kind(images)}, not a list'
        for i, im in enumerate(images):
            where = f"image {i + 1} of {len(images)}"
            if not isinstance(im, dict):
                return f"{where} is {_kind(im)}, not an object"
            if not isinstance(im.get("name"), str):
                return f'{where} has no "name"' if "name" not in im else \
                    f'{where}: "name" is {_kind(im["name"])}, expected a string'
            for key in ("width", "height"):
                v = im.get(key)
                if not (v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0)):
                    return f'{where}: "{key}" is {_kind(v)}, expected a whole number > 0'
    if "meta" in run:
        meta = run["meta"]
        if not isinstance(meta, dict):
            return f'"meta" is {_kind(meta)}, not an object'
        if not isinstance(meta.get("codec_labels", {}), dict):
            return f'"meta" "codec_labels" is {_kind(meta["codec_labels"])}, not an object'
    return None


def load_run(path, prog: str | None = None, required: tuple = ("codec", "image"),
             measured: tuple = ("bpp", "psnr")) -> dict:
    """The bench_rd.py JSON at ``path``, checked (``run_problem``); a one-line SystemExit
    "PATH: not a bench_rd.py JSON (WHY)" when it cannot be read or is not one. A run that did
    not finish is read with a warning on stderr naming ``prog`` (none when ``prog`` is None)."""
    try:
        run = json.loads(Path(path).read_bytes())
    except OSError as exc:
        why = f"{exc.strerror}" if exc.strerror else str(exc)
        raise SystemExit(f"{path}: not a bench_rd.py JSON ({why})") from None
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deep
        raise SystemExit(f"{path}: not a bench_rd.py JSON ({' '.join(str(exc).split())[:200]})") from None
    problem = run_problem(run, required, measured)
    if problem:
        raise SystemExit(f"{path}: not a bench_rd.py JSON ({problem})")
    if prog and not run.get("complete", True):
        print(f"{prog}: warning: {path} is a run that did not finish", file=sys.stderr)
    return run


def image_sizes(runs: list) -> dict:
    """image name -> (width, height) over bench_rd.py JSONs: ``runs`` holds paths (read with
    ``load_run``) or (path, run) pairs already read; a one-line SystemExit when one name has
    two sizes (runs at different --downscale, say)."""
    sizes: dict = {}
    for item in runs:
        path, run = item if isinstance(item, tuple) else (item, load_run(item))
        for im in run.get("images", []):
            size = (im.get("width"), im.get("height"))
            if sizes.setdefault(im["name"], size) != size:
                raise SystemExit(f"{path}: {im['name']} is {size[0]}x{size[1]} here and "
                                 f"{sizes[im['name']][0]}x{sizes[im['name']][1]} in another run; "
                                 f"compare runs of the same images at the same size")
    return sizes
