"""Encoding: image -> fit -> quantization-aware training -> .gimg bytes.

    encode(image_uint8 [H, W, 3], gaussians=N | bpp=B, ...) -> bytes
    encode_with_report(...) -> (bytes, EncodeReport)
    encode_float(image, gaussians=N, ...) -> (bytes, FitResult)   # lossless float32 mode

The report's bpp, PSNR and MS-SSIM are measured on the written bytes: the file is
decoded with the standalone decoder and compared with the input, so what the encoder
says is what a user gets. Rate control (``bpp=``): N starts from a bits-per-Gaussian
model (``predict_gaussians``); when QAT starts, the trainer's rate hook
(``size_to_budget``) codes the Gaussians it has into a real file, measures them, and
keeps the most important N' that fill the budget (or adds Gaussians where the error is
largest); halfway through QAT (``QATConfig.resize_frac``) the hook does the same again
with the ranges QAT has learned, now also making up for the Gaussians QAT's pruning removed
since the first sizing. If the final file still misses by more than ``BPP_TOLERANCE`` (QAT moved the
rate), one more encode runs with the budget corrected by the measured drift, and the
closer result is kept. Unless the config turns it off (``QATConfig.base_samples_across``),
the file carries a base layer of the image's block means (``format.base_layer``) and the
Gaussians are fitted to what it leaves; every file the rate control measures includes it.
A one-colour image is written as a base layer alone, 8-bit samples on the coarsest grid
(one per channel up to 1024 x 1024 pixels), which decodes to it exactly
(``one_colour_base``): Gaussians could only add error, and no rate or N asked for is spent.
"""

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from gipp_codec.encode_memory import warn_if_short
from gipp_codec.errors import ConfigError
from gipp_codec.format import constants as K
from gipp_codec.format.base_layer import MAX_FACTOR_LOG2, MIN_FACTOR_LOG2, BaseLayer, base_from_image, grid_shape, upsample
from gipp_codec.format.container import write_gimg
from gipp_codec.format.model import BitDepths, FloatGaussians, QuantizedGaussians
from gipp_codec.image_array import rgb_array
from gipp_codec.imageio import ImageMetadata
from gipp_codec.metrics import ms_ssim, psnr
from gipp_codec.render.convention import to_uint8

# First rate-control guess at 12/10/6: bits per Gaussian = the Morton-gap position code,
# about log2(4**12 / N) + POSITION_EXCESS_BITS, plus ATTRIBUTE_BITS for covariance and colour
# (kodim23 at 0.52 bpp, BENCHMARKS.md §5; the 16-file mean there is 37.1). Only a starting
# point: the rate hook measures the real file when QAT starts.
POSITION_EXCESS_BITS = 1.2
ATTRIBUTE_BITS = 36.3
BPP_TOLERANCE = 0.04  # relative; the CLI promises +-5 %
BPP_PROMISE = 0.05  # relative; the CLI warns when a file misses its target by more
MAX_BPP = 64.0
DEFAULT_BPP = 0.5  # the rate when neither gaussians nor bpp is given (the field's usual mid-rate point)


@dataclass
class EncodeReport:
    """What an encode produced, measured on the written file."""

    bytes: int
    bpp: float
    psnr: float  # dB, decoded file vs input
    ms_ssim: float | None
    gaussians: int
    seconds: float
    width: int
    height: int
    bits: tuple
    bits_per_gaussian: float | None  # None for a file of no Gaussians
    attribute_bits: dict = field(default_factory=dict)
    psnr_encoder: float = float("nan")  # the trainer's own figure for the quantized state
    iterations: int = 0
    passes: int = 1
    device: str = "cpu"
    target_bpp: float | None = None
    grey: bool = False  # a grey image, fitted with one colour per Gaussian (fit.gray): it decodes exactly grey
    # a file of the base layer alone, no Gaussians: a one-colour image (``one_colour_base``, exact)
    # or a budget so small that block colours decode better than any Gaussians it holds
    # (``better_base_alone``)
    base_only: bool = False

    def summary(self) -> dict:
        """JSON-friendly dict of the report."""
        d = asdict(self)
        d["bits"] = list(self.bits)
        return d


def _check_image(image) -> np.ndarray:
    """``image`` as a uint8 [H, W, 3] array within the format's limits (``rgb_array``: a grey
    [H, W] or [H, W, 1] array is replicated to three channels)."""
    arr = rgb_array(image)
    h, w = arr.shape[:2]
    if w > K.MAX_WIDTH or h > K.MAX_HEIGHT or w * h > K.MAX_PIXELS:
        raise ConfigError(f"a {w}x{h} image is over the .gimg limits (width and height at most "
                          f"{K.MAX_WIDTH}, {K.MAX_PIXELS} pixels in all)")
    return arr


def one_colour_base(image: np.ndarray) -> BaseLayer | None:
    """For an image uint8 [H, W, 3] of one colour, the base layer that alone decodes to it
    exactly: 8-bit samples (a sample s is the value s / 255, which the decoder's rounding
    returns as s) on the coarsest grid, ``MAX_FACTOR_LOG2``; None for any other image."""
    if image.size == 0 or not np.array_equal(image, np.broadcast_to(image[:1, :1], image.shape)):
        return None
    h, w = image.shape[:2]
    samples = np.broadcast_to(image[0, 0], (*grid_shape(w, h, MAX_FACTOR_LOG2), 3)).copy()  # [gh, gw, 3] uint8
    base = BaseLayer(MAX_FACTOR_LOG2, 8, samples)
    return base if np.array_equal(to_uint8(upsample(base, w, h)), image) else None


# With --bpp, the encoder weighs the base layer alone against its file only when the file holds
# this many Gaussians or fewer (a tiny budget): the check decodes up to eight base-only files, 0.4 s on a
# Kodak-sized image, which a file of thousands of Gaussians never loses to.
BASE_ALONE_CHECK_UP_TO = 32


def better_base_alone(arr: np.ndarray, data: bytes, psnr_of_data: float, bits: BitDepths, metadata,
                      sample_bits: int, budget_bits: float | None = None) -> tuple[bytes, float] | None:
    """(file, PSNR) of the base layer alone, no Gaussians, when one is no larger than ``data``
    (the encoder's file of arr uint8 [H, W, 3], decoding at ``psnr_of_data`` dB) and decodes
    better: each grid from the coarsest (one sample a channel up to 1024 x 1024 pixels) to
    8-pixel blocks of ``sample_bits``-bit block means is tried, while its file is no larger.
    The best of those within ``budget_bits`` is taken, or, when none is, the smallest (the
    coarsest grid). A tiny budget (a 32 x 32 image at 0.1 bpp, a 1 x 32 image) leaves room for
    one or two poorly fitted Gaussians, which can decode below the image's block colours; else
    None."""
    from gipp_codec.decoder import decode

    h, w = arr.shape[:2]
    better = []  # (file, PSNR) of the grids that beat data, coarsest first
    for f in range(MAX_FACTOR_LOG2, MIN_FACTOR_LOG2 - 1, -1):
        candidate = _base_only_file(w, h, bits, base_from_image(arr, f, sample_bits), metadata)
        if len(candidate) > len(data):
            break  # finer grids only grow
        p = psnr(decode(candidate), arr)
        if p > psnr_of_data:
            better.append((candidate, p))
    if not better:
        return None
    fitting = [c for c in better if budget_bits is None or 8 * len(c[0]) <= budget_bits]
    return max(fitting, key=lambda c: c[1]) if fitting else min(better, key=lambda c: len(c[0]))


def _base_only_file(width: int, height: int, bits: BitDepths, base: BaseLayer, metadata) -> bytes:
    """A .gimg file of no Gaussians over ``base`` (each channel's grid spans [0, 1): steps of
    2^-bits, which attribute mode 2 holds)."""
    steps = np.array([2.0 ** -b for b in bits.per_channel()], np.float64)  # [8]
    empty = QuantizedGaussians(width=width, height=height, bits=bits, q=np.zeros((0, K.NUM_CHANNELS), np.uint16),
                               scales=steps.astype(np.float32), offsets=np.zeros(K.NUM_CHANNELS, np.float32))
    return write_gimg(empty, metadata, base=base)


def _encode_once(arr, gaussians, iterations, bits: BitDepths, seed, device, config, metadata, progress,
                 rate_hook=None, budget_bits=None, base: BaseLayer | None = None):
    """One fit + QAT + serialisation starting from N Gaussians; returns (bytes, QuantReport).
    With ``budget_bits``, a file over the budget is trimmed to it (``_trim_to_budget``).
    With a ``base`` layer the file carries it and the Gaussians are fitted on top of it."""
    from gipp_codec.fit.api import fit_and_quantize

    h, w = arr.shape[:2]
    corr = config is not None and config.qat.codes_correlation()  # b as a correlation: payload coding 3

    def file_of(qq, scales, offsets):
        return write_gimg(QuantizedGaussians(width=w, height=h, bits=bits, q=qq, scales=scales, offsets=offsets,
                                             correlation=corr), metadata, base=base)

    def to_budget(qq, scales, offsets, priority):  # the rows of the largest file within the budget: [N', 8]
        if budget_bits is None or qq.shape[0] <= 1 or 8 * len(file_of(qq, scales, offsets)) <= budget_bits:
            return qq
        return _trim_to_budget(qq, scales, offsets, budget_bits, lambda x: file_of(x, scales, offsets), priority,
                               corr)[1]

    # the set is trimmed to the budget before the colour refit and the code search, which
    # then tune the Gaussians the file keeps (with a rate term, after the search, which saves bits)
    q, scales, offsets, qreport = fit_and_quantize(
        arr, gaussians, iterations=iterations, bits=(bits.position, bits.covariance, bits.color),
        seed=seed, device=device, config=config, progress=progress, rate_hook=rate_hook, reduce=to_budget,
        base=None if base is None else upsample(base, w, h),
    )
    data = file_of(q, scales, offsets)
    if budget_bits is not None and 8 * len(data) > budget_bits and q.shape[0] > 1:
        # the post-QAT steps moved the entropy coder's statistics a little (or, with a rate
        # term, the set was not trimmed before the search): trim again
        priority = None
        if qreport.render is not None:
            from gipp_codec.fit.code_search import removal_costs

            priority = removal_costs(q, scales, offsets, qreport.render, arr / 255.0, corr)
        data, rows = _trim_to_budget(q, scales, offsets, budget_bits, lambda x: file_of(x, scales, offsets),
                                     priority, corr)
        qreport.gaussians = int(rows.shape[0])
        from gipp_codec.decoder import decode

        qreport.psnr = psnr(decode(data), arr)  # the encoder's figure is the file's
        qreport.render = None
    return data, qreport


def _trim_to_budget(q: np.ndarray, scales, offsets, budget_bits: float, file_of: Callable,
                    priority: np.ndarray | None = None, correlation: bool = False) -> tuple[bytes, np.ndarray]:
    """Drop the least important Gaussians of q [N, 8] until the file fits ``budget_bits``;
    returns the largest file that fits and the rows [N', 8] it holds. Importance is
    ``priority`` [N] (the encoder's: ``code_search.removal_costs``, what removing each one
    adds to the error), else the smallest rendered energy (``fit.prune.importance``;
    ``correlation``: b's codes are payload coding 3's correlation).

    The count is searched like a bisection that keeps a bracket (lo fits, hi + 1 does not),
    but each step probes where the straight line through the bracket's two file sizes meets
    the budget (file size grows almost linearly with the count), falling back to the
    bracket's middle after a step that did not halve it: a few codings of the set instead
    of log2(N) (each coding runs the entropy coder's configuration search)."""
    import torch

    from gipp_codec.fit.prune import importance
    from gipp_codec.quant.dequant import dequantize_rows

    if priority is None:
        rows = torch.from_numpy(dequantize_rows(q, scales, offsets, correlation)).double()  # [N, 8]
        priority = importance(rows[:, 2:5], rows[:, 5:8]).numpy()  # [N]
    order = np.argsort(-np.asarray(priority), kind="stable")
    n = q.shape[0]
    best = file_of(q[np.sort(order[:1])])
    lo, hi = 1, n - 1  # largest count that fits lies in [lo, hi]; count n is known not to fit
    bits_lo, bits_out = 8.0 * len(best), 8.0 * len(file_of(q))  # files of lo and of hi + 1 Gaussians
    interpolate = True
    while lo < hi:
        width = hi - lo
        if interpolate:
            frac = (budget_bits - bits_lo) / max(bits_out - bits_lo, 1.0)
            mid = lo + int(frac * (hi + 1 - lo))
        else:
            mid = (lo + hi + 1) // 2
        mid = min(max(mid, lo + 1), hi)
        data = file_of(q[np.sort(order[:mid])])
        if 8 * len(data) <= budget_bits:
            lo, best, bits_lo = mid, data, 8.0 * len(data)
        else:
            hi, bits_out = mid - 1, 8.0 * len(data)
        interpolate = 2 * (hi - lo) <= width  # the step halved the bracket: keep interpolating
    return best, q[np.sort(order[:lo])]  # best is always the file of the top ``lo`` Gaussians


def _measure(data: bytes, arr: np.ndarray) -> tuple[float, float | None, dict]:
    """Decode ``data`` with the standalone decoder; PSNR, MS-SSIM and the file's bit accounting."""
    from gipp_codec.decoder import decode, read_info

    decoded = decode(data)
    return psnr(decoded, arr), ms_ssim(decoded, arr), read_info(data)


def measured_file_bits(rows, quant, bits: BitDepths, width: int, height: int, metadata,
                       base: BaseLayer | None = None) -> tuple[float, float]:
    """(fixed bits, bits per Gaussian) of the file that ``quant`` (an LSQPlus) makes of the
    float rows [N, 8]: the cost of an empty file (container, headers, metadata), and what
    each Gaussian adds on average."""
    q = quant.quantize(rows)  # [N, 8] uint16
    scales, offsets = quant.export()

    def file_bits(qq):  # with the counts' nearest levels, as before their search: the hook sizes N as it did
        return 8 * len(write_gimg(QuantizedGaussians(width, height, bits, qq, scales, offsets, quant.correlation),
                                  metadata, base=base, priced_levels=False))

    fixed = file_bits(q[:0])
    return fixed, max(1.0, (file_bits(q) - fixed) / max(1, int(q.shape[0])))


def size_to_budget(budget_bits: float, bits: BitDepths, width: int, height: int, metadata,
                   margin: float, base: BaseLayer | None = None) -> Callable:
    """The trainer's rate hook for a file of ``budget_bits``: (rows [N, 8], quantizer) -> N'.

    It quantizes the float Gaussians with the trainer's quantizer (at QAT start: its
    initialised ranges), codes them into a complete file, and from the measured bits per
    Gaussian (``measured_file_bits``) solves for the N' that fills the budget, with position
    gaps costing log2(N/N') bits more per Gaussian when the set shrinks (Morton gaps grow).
    The budget it fills is ``budget_bits`` * (1 + ``margin``) at the first call (the
    encoder's margin is ``QATConfig.hook_margin``); at later
    calls the margin is at least the fraction of Gaussians lost since the previous call
    (QAT's pruning goes on after the hook; the encoder trims any excess at the end).
    """
    asked = {"n": None}  # the N' of the previous call

    def hook(rows, quant):  # rows: torch [N, 8] float (x, y, a, b, c, r, g, b); quant: LSQPlus
        n = int(rows.shape[0])
        over = 1.0 + margin
        if asked["n"]:
            lost = min(0.5, max(0.0, 1.0 - n / asked["n"]))
            over = max(over, 1.0 / (1.0 - lost))
        fixed, per = measured_file_bits(rows, quant, bits, width, height, metadata, base)
        room = max(per, budget_bits * over - fixed)
        n_new = room / per
        for _ in range(20):
            n_new = room / max(1.0, per + np.log2(n / n_new))
        asked["n"] = max(1, int(round(n_new)))
        return asked["n"]

    return hook


def model_bits_per_gaussian(n: float, bits: BitDepths) -> float:
    """The rate model's bits per Gaussian for a file of ``n`` Gaussians at depths ``bits``:
    log2(4**p / n) + POSITION_EXCESS_BITS for the position gaps (p the position depth) plus
    ATTRIBUTE_BITS * s, with s the covariance and colour depths relative to 10/6."""
    per_attr = ATTRIBUTE_BITS * (3 * bits.covariance + 3 * bits.color) / 48.0
    return max(1.0, 2.0 * bits.position - np.log2(max(1.0, n)) + POSITION_EXCESS_BITS) + per_attr


def predict_gaussians(budget_bits: float, bits: BitDepths) -> int:
    """N whose file should take about ``budget_bits`` at bit depths ``bits`` (first rate guess).

    Solves N * ``model_bits_per_gaussian(N, bits)`` = budget by fixed-point iteration.
    """
    n = max(1.0, budget_bits / model_bits_per_gaussian(1.0, bits))
    for _ in range(20):
        n = max(1.0, budget_bits / model_bits_per_gaussian(n, bits))
    return max(1, int(round(n)))


def nominal_bpp(qat, gaussians: int | None, bpp: float | None, width: int, height: int) -> float | None:
    """The rate an encode's defaults are chosen for: ``bpp``, or for N Gaussians the bpp that N
    takes in the rate model at ``qat.depths()``; None when N is not a count (fit_and_quantize
    then says what is wrong with it)."""
    if bpp is not None:
        return bpp
    if isinstance(gaussians, bool) or not isinstance(gaussians, (int, np.integer)) or gaussians < 1:
        return None
    return int(gaussians) * model_bits_per_gaussian(int(gaussians), BitDepths(*qat.depths())) / (width * height)


def default_depths(qat, gaussians: int | None, bpp: float | None, width: int, height: int) -> BitDepths:
    """The depths an encode uses when none are given: ``qat.depths_at`` the ``nominal_bpp``,
    with the position depth from ``qat.position_depth`` for N Gaussians, or at a rate for
    the N that the rate model predicts at the depths ``depths_at`` gives."""
    rate = nominal_bpp(qat, gaussians, bpp, width, height)
    if rate is None:  # N is not a count: fit_and_quantize says what is wrong with it
        return BitDepths(*qat.depths_at(None))
    p, c, k = qat.depths_at(rate)
    n = int(gaussians) if bpp is None else predict_gaussians(bpp * width * height, BitDepths(p, c, k))
    return BitDepths(qat.position_depth(n, width, height), c, k)


def resolve_rate(gaussians: int | None, bpp: float | None, names=("gaussians=", "bpp=")) -> tuple:
    """(gaussians, bpp) with at most one given; neither means bpp = DEFAULT_BPP. Both given is
    a ConfigError naming them as ``names`` (the CLI passes its option names)."""
    if gaussians is not None and bpp is not None:
        raise ConfigError(f"give at most one of {names[0]} and {names[1]}")
    if gaussians is None and bpp is None:
        bpp = DEFAULT_BPP
    return gaussians, bpp


def encode_with_report(
    image: np.ndarray,
    gaussians: int | None = None,
    bpp: float | None = None,
    iterations: int | None = None,
    seed: int = 0,
    device: str = "auto",
    bits: BitDepths | tuple | None = None,
    config=None,
    metadata: ImageMetadata | None = None,
    progress: Callable | None = None,
) -> tuple[bytes, EncodeReport]:
    """Encode an 8-bit RGB image [H, W, 3] (or a grey one, [H, W] or [H, W, 1]) at N Gaussians or
    a target bpp (``DEFAULT_BPP``, 0.5, when neither is given); return bytes and a report.

    ``iterations``: the fit's length (None: ``config.iterations``); ``seed``: its random
    start (deterministic on the CPU); ``device``: "auto", "cpu" or "cuda"; ``metadata``: the
    ICC profile and EXIF block to carry (``imageio.ImageMetadata``); ``progress(iteration,
    total, info)``: called after each fit iteration (``info``: "phase", "psnr",
    "gaussians"). The report's ``psnr`` is infinite for an exact decode (a one-colour image,
    ``base_only``). Bad arguments raise a ConfigError or an InputImageError.

    ``bits`` = (position, covariance, colour) bit depths; None takes them from ``config``
    at the rate asked for (``default_depths``; ``FitConfig()``: P/7/5, P/7/6 from
    ``COLOR_HIGH_RATE_BPP`` up, P from the Gaussians' spacing, ``QATConfig.position_depth``:
    on a Kodak-sized image 10 below 0.15 bpp, 11 up to 1.0 bpp, 12 from 1.25 bpp;
    ``FitConfig.paper()``: the paper's 12/10/6 at every rate). The QAT rate term's weight
    (``QATConfig.rate_weight_at``), the covariance form (``QATConfig.covariance_form_at``)
    and the base layer's grid (``QATConfig.base_factor_log2``) follow the same rate."""
    from gipp_codec.devices import resolve_device
    from gipp_codec.fit.api import check_gaussians, check_iterations, check_seed
    from gipp_codec.fit.config import FitConfig
    from gipp_codec.output_format import is_gray

    arr = _check_image(image)
    check_seed(seed)
    h, w = arr.shape[:2]
    config = config if config is not None else FitConfig()
    if not isinstance(config, FitConfig):
        raise ConfigError(f"config must be a FitConfig, got {type(config).__name__}")
    qat = config.qat
    gaussians, bpp = resolve_rate(gaussians, bpp)
    if bpp is not None and (isinstance(bpp, bool) or not (isinstance(bpp, (int, float, np.integer, np.floating))
                                                         and np.isfinite(bpp) and 0 < bpp <= MAX_BPP)):
        raise ConfigError(f"bpp must be a number in (0, {MAX_BPP}], got {bpp!r}")
    bpp = None if bpp is None else float(bpp)  # a numpy scalar would carry its type into derived settings
    gaussians = None if gaussians is None else check_gaussians(gaussians, w, h)
    config.validate()
    check_iterations(iterations, config)
    resolve_device(device)
    if progress is not None and not callable(progress):
        raise ConfigError(f"progress must be a callable or None, got {type(progress).__name__}")
    if bits is None:
        bits = default_depths(qat, gaussians, bpp, w, h)
    rate = nominal_bpp(qat, gaussians, bpp, w, h)  # the rate the defaults follow
    weight = qat.rate_weight_at(rate)
    if weight != qat.rate_weight:  # the fit reads one weight
        config = config.with_qat(rate_weight=weight)
    form = qat.covariance_form_at(rate, is_gray(arr))
    if form != qat.covariance_form:  # and one covariance form ("auto" resolved)
        config = config.with_qat(covariance_form=form)
    if not isinstance(bits, BitDepths):
        if (isinstance(bits, (str, bytes)) or not hasattr(bits, "__len__") or len(bits) != 3
                or any(isinstance(b, bool) for b in bits)):
            raise ConfigError(f"bits must be three bit depths (position, covariance, colour), got {bits!r}")
        bits = BitDepths(*bits)
    bits.check(ConfigError)
    warn_if_short(w, h, "encoding")
    f = qat.base_factor_log2(w, h, None if bpp is None else bpp * h * w, rate)  # finer from high_rate_bpp
    base = None if f is None else base_from_image(arr, f, qat.base_bits)
    t0 = time.perf_counter()
    passes = 1
    flat = None if qat.base_samples_across_at(rate) is None else one_colour_base(arr)  # where a base may be
    if flat is not None:  # exact already: Gaussians could only add error
        data = _base_only_file(w, h, bits, flat, metadata)
        seconds = time.perf_counter() - t0
        p, m, info = _measure(data, arr)
        return data, EncodeReport(
            bytes=len(data), bpp=len(data) * 8 / (h * w), psnr=p, ms_ssim=m, gaussians=0, seconds=seconds,
            width=w, height=h, bits=(bits.position, bits.covariance, bits.color), bits_per_gaussian=None,
            attribute_bits=info.get("bits", {}), psnr_encoder=p, iterations=0, passes=0, device="cpu",
            target_bpp=bpp, grey=is_gray(arr), base_only=True)
    if gaussians is not None:
        data, qreport = _encode_once(arr, gaussians, iterations, bits, seed, device, config, metadata, progress,
                                     base=base)
    else:
        budget = bpp * h * w
        n = predict_gaussians(budget, bits)  # the rate hook then accounts for headers and metadata
        # aim a little high at QAT start (QAT and its pruning shrink the file by a few %),
        # then trim the finished file to the budget
        hook = size_to_budget(budget, bits, w, h, metadata, qat.hook_margin, base)
        data, qreport = _encode_once(arr, n, iterations, bits, seed, device, config, metadata, progress, hook,
                                     budget, base)
        achieved = len(data) * 8 / (h * w)
        if abs(achieved / bpp - 1.0) > BPP_TOLERANCE and qreport.gaussians > 0:
            # the hook sized the set at QAT start; what QAT did to the rate after that is
            # now measured: ask again with the budget corrected by that drift
            drift = achieved / bpp
            hook2 = size_to_budget(budget / drift, bits, w, h, metadata, qat.hook_margin, base)
            n2 = max(1, int(round(qreport.gaussians / drift)))
            data2, qreport2 = _encode_once(arr, n2, iterations, bits, seed, device, config, metadata, progress,
                                           hook2, budget, base)
            passes = 2
            if abs(len(data2) * 8 / (h * w) / bpp - 1.0) <= abs(achieved / bpp - 1.0):
                data, qreport = data2, qreport2
    seconds = time.perf_counter() - t0
    p, m, info = _measure(data, arr)
    t1 = time.perf_counter()
    n_kept = int(info.get("header", {}).get("gaussian_count", qreport.gaussians))
    alone = None  # with --bpp only: a count asked for (--gaussians) is kept
    if bpp is not None and qat.base_samples_across_at(rate) is not None and n_kept <= BASE_ALONE_CHECK_UP_TO:
        alone = better_base_alone(arr, data, p, bits, metadata, qat.base_bits, bpp * h * w)
    if alone is not None:  # block colours beat the Gaussians the budget holds
        data = alone[0]
        seconds += time.perf_counter() - t1
        p, m, info = _measure(data, arr)
    n_final = int(info.get("header", {}).get("gaussian_count", qreport.gaussians))  # the file's
    report = EncodeReport(
        bytes=len(data), bpp=len(data) * 8 / (h * w), psnr=p, ms_ssim=m, gaussians=n_final,
        seconds=seconds, width=w, height=h, bits=(bits.position, bits.covariance, bits.color),
        bits_per_gaussian=len(data) * 8 / n_final if n_final else None,
        attribute_bits=info.get("bits", {}), psnr_encoder=p if alone is not None else qreport.psnr,
        iterations=qreport.iterations, passes=passes, device=qreport.device, target_bpp=bpp, grey=is_gray(arr),
        base_only=alone is not None,
    )
    return data, report


def encode(image: np.ndarray, gaussians: int | None = None, bpp: float | None = None, **kwargs) -> bytes:
    """Encode an 8-bit RGB image [H, W, 3] (or a grey one, [H, W] or [H, W, 1]) to .gimg bytes at N
    Gaussians or a target bpp (0.5 when neither is given; see ``encode_with_report`` for the other
    options)."""
    data, _ = encode_with_report(image, gaussians=gaussians, bpp=bpp, **kwargs)
    return data


def encode_float(image: np.ndarray, gaussians: int, iterations: int | None = None, seed: int = 0,
                 device: str = "auto", config=None, metadata: ImageMetadata | None = None,
                 progress: Callable | None = None):
    """Fit without quantization and store float32 attributes losslessly; returns (bytes, FitResult)."""
    from gipp_codec.fit.api import fit_image

    arr = _check_image(image)
    result = fit_image(arr, gaussians, iterations=iterations, seed=seed, device=device, config=config,
                       progress=progress)
    h, w = arr.shape[:2]
    return float_file(result, w, h, metadata), result


def float_file(result, width: int, height: int, metadata: ImageMetadata | None = None) -> bytes:
    """.gimg bytes (float32 mode) of a fit's result (``FitResult``), its values scaled into
    the format's limits first (``FloatGaussians.within_limits``) so it can always be written."""
    fg = FloatGaussians(width=width, height=height, means=result.means, covs=result.covs, colors=result.colors)
    return write_gimg(fg.within_limits(), metadata)
