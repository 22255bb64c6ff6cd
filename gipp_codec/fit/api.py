"""Public fitting API: ``fit_image`` (representation) and ``fit_and_quantize`` (codec front end).

    fit_image(image_uint8 [H, W, 3], gaussians, iterations=None, seed=0, device="auto",
              config=None, progress=None) -> FitResult
    fit_and_quantize(image_uint8, gaussians, iterations=None, bits=None, seed=0, device="auto",
                     config=None, progress=None) -> (q uint16 [N, 8], scales float32 [8],
                                                     offsets float32 [8], QuantReport)

``progress(iteration, total, info)`` is called after every iteration (see
``gipp_codec.fit.trainer.train``). ``device="auto"`` picks CUDA when available, else CPU;
the renderer is ``get_renderer(backend, device)`` with ``backend="auto"`` by default
("reference" forces the dense torch oracle, e.g. in tests).
"""

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from gipp_codec import triton_path
from gipp_codec.devices import resolve_device  # noqa: F401  (re-exported: tools and tests import it here)
from gipp_codec.encode_memory import warn_if_short
from gipp_codec.errors import ConfigError
from gipp_codec.fit.code_search import bit_price, rate_tables, removal_costs, search_codes, table_bits
from gipp_codec.fit.color_refit import refit_color_codes
from gipp_codec.fit.config import FitConfig
from gipp_codec.fit.gray import is_gray, priced_channels, tie_codes, tie_grid
from gipp_codec.fit.prune import keep_mask
from gipp_codec.fit.rate_proxy import RATE_CHANNEL_SETS
from gipp_codec.fit.threads import cpu_fitting_threads
from gipp_codec.fit.trainer import train
from gipp_codec.format import constants as K
from gipp_codec.format.constants import CH_BLUE, CH_GREEN, CH_RED
from gipp_codec.image_array import rgb_array
from gipp_codec.metrics import ms_ssim, psnr
from gipp_codec.quant.lsq import CHANNELS, dequantize_reference, split_attributes
from gipp_codec.render import get_renderer
from gipp_codec.render.convention import to_uint8

MAX_GAUSSIANS = K.MAX_GAUSSIANS  # absolute cap on N, the format's (also bounded by 4 x the pixel count)
MAX_ITERATIONS = 10_000_000
# torch's CPU generator (mt19937) keeps 32 bits of a seed: seeds 2^32 apart gave the same file
MAX_SEED = (1 << 32) - 1


@dataclass
class FitResult:
    """A fitted representation. Arrays are numpy float32 on the CPU."""

    means: np.ndarray  # [N, 2] (x, y) pixels
    covs: np.ndarray  # [N, 3] effective covariance (a, b, c)
    colors: np.ndarray  # [N, 3]
    psnr: float  # dB, of the 8-bit image a viewer gets (to_uint8 of the render)
    ms_ssim: float | None  # None when the short side is <= 160 px
    gaussians: int  # final count
    iterations: int
    seconds: float  # wall time of the optimisation
    render: np.ndarray  # [H, W, 3] float32, unclamped render of the kept state
    history: list = field(default_factory=list)  # (iteration, psnr of the clamped float render, N)
    best_iteration: int = 0
    device: str = "cpu"
    config: FitConfig | None = None

    @property
    def image(self) -> np.ndarray:
        """The rendered image as uint8 [H, W, 3] (the rendering convention's rounding)."""
        return to_uint8(self.render)

    def summary(self) -> dict:
        """JSON-friendly summary (no arrays)."""
        return {
            "psnr": self.psnr, "ms_ssim": self.ms_ssim, "gaussians": self.gaussians,
            "iterations": self.iterations, "seconds": self.seconds, "best_iteration": self.best_iteration,
            "device": self.device,
        }


@dataclass
class QuantReport:
    """What ``fit_and_quantize`` measured. PSNR is of the decoder's output (dequantized q)."""

    psnr: float  # dB of to_uint8(render(dequantize(q, scales, offsets))) vs the image
    ms_ssim: float | None
    psnr_float_warmup: float  # best clamped-render PSNR at the end of the float phase
    gaussians: int
    iterations: int
    qat_start: int
    bits: tuple
    seconds: float  # total wall time
    seconds_float: float
    seconds_qat: float
    history: list = field(default_factory=list)
    render: np.ndarray | None = None  # [H, W, 3] float32, the decoder-equivalent render
    device: str = "cpu"

    def summary(self) -> dict:
        """The result's scalar facts and bit depths as a JSON-ready dict (no arrays)."""
        d = {k: getattr(self, k) for k in ("psnr", "ms_ssim", "psnr_float_warmup", "gaussians", "iterations",
                                           "qat_start", "seconds", "seconds_float", "seconds_qat", "device")}
        d["bits"] = list(self.bits)
        return d


def check_seed(seed) -> int:
    """``seed`` as an int if it is an integer in 0 .. 2^32 - 1 (the seeds that give different
    fits), else a ConfigError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"seed must be an integer in 0..{MAX_SEED}, got {seed!r}")
    return int(seed)


def check_gaussians(gaussians, width: int, height: int) -> int:
    """``gaussians`` as an int if it is an integer from 1 to the most a ``width`` x ``height``
    image takes (4 per pixel, ``MAX_GAUSSIANS`` in all), else a ConfigError."""
    if isinstance(gaussians, bool) or not isinstance(gaussians, (int, np.integer)):
        raise ConfigError(f"number of Gaussians must be an integer, got {gaussians!r}")
    limit = min(4 * height * width, MAX_GAUSSIANS)
    if gaussians <= 0:
        raise ConfigError(f"number of Gaussians must be >= 1, got {gaussians}")
    if gaussians > limit:
        raise ConfigError(
            f"number of Gaussians {gaussians} is too large for a {width}x{height} image "
            f"(at most {limit}: the fitter takes up to 4 per pixel, and the format at most 2^22 in all)"
        )
    return int(gaussians)


def _validate(image, gaussians, iterations, config: FitConfig | None, seed) -> tuple[np.ndarray, int, FitConfig]:
    check_seed(seed)
    arr = rgb_array(image)  # [H, W, 3]
    h, w = arr.shape[:2]
    check_gaussians(gaussians, w, h)
    cfg = config if config is not None else FitConfig()
    if not isinstance(cfg, FitConfig):
        raise ConfigError(f"config must be a FitConfig, got {type(cfg).__name__}")
    cfg.validate()
    return np.ascontiguousarray(arr), check_iterations(iterations, cfg), cfg


def check_iterations(iterations, config: FitConfig) -> int:
    """The fit's length: ``iterations``, or ``config.iterations`` when None, as an int if it
    is an integer from 1 to ``MAX_ITERATIONS``, else a ConfigError."""
    its = config.iterations if iterations is None else iterations
    if isinstance(its, bool) or not isinstance(its, (int, np.integer)):
        raise ConfigError(f"iterations must be an integer, got {its!r}")
    if its < 1:
        raise ConfigError(f"iterations must be >= 1, got {its}")
    if its > MAX_ITERATIONS:
        raise ConfigError(f"iterations must be <= {MAX_ITERATIONS}, got {its}")
    return int(its)


def _target(arr: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(arr.astype(np.float32) / np.float32(255.0)).to(device)


def _train_on_device(arr, gaussians, its, cfg, device, backend, seed, quantize, progress, rate_hook=None, base=None):
    """Resolve the device and renderer, then run the trainer; returns (trainer output, renderer, device)."""
    dev = resolve_device(device)
    renderer = get_renderer(backend, dev)
    with cpu_fitting_threads(dev):
        out = train(_target(arr, dev), int(gaussians), its, cfg, renderer, seed=seed, quantize=quantize,
                    progress=progress, rate_hook=rate_hook,
                    base=None if base is None else torch.from_numpy(base).to(dev))
    return out, renderer, dev


def fit_image(
    image_uint8: np.ndarray,
    gaussians: int,
    iterations: int | None = None,
    seed: int = 0,
    device: str = "auto",
    config: FitConfig | None = None,
    progress: Callable | None = None,
    backend: str = "auto",
) -> FitResult:
    """Fit ``gaussians`` 2D Gaussians to an 8-bit image (GaussianImage++ representation,
    float32, no quantization) and return a ``FitResult`` (means [N, 2], covs [N, 3],
    colors [N, 3], the render, PSNR, MS-SSIM, the history).

    ``image_uint8``: uint8 [H, W, 3], or grey [H, W] / [H, W, 1] (fitted with one colour per
    Gaussian, ``fit.gray``); ``gaussians``: N, 1 to 4 per pixel and 2^22 in all (a few may
    be dropped when they leave the image or collapse); ``iterations``: None for
    ``config.iterations``; ``seed``: the random start (deterministic on the CPU);
    ``device``: "auto", "cpu" or "cuda"; ``config``: a ``FitConfig`` (default ours,
    ``FitConfig.paper()`` the paper's); ``progress(iteration, total, info)``: called after
    each iteration, ``info`` a dict with "phase", "psnr" and "gaussians"; ``backend``: the
    renderer ("auto", "cpu", "reference", "cuda"). Bad arguments raise a ConfigError or an
    InputImageError."""
    arr, its, cfg = _validate(image_uint8, gaussians, iterations, config, seed)
    warn_if_short(arr.shape[1], arr.shape[0], "fitting")
    t0 = time.perf_counter()
    out, renderer, dev = _train_on_device(arr, gaussians, its, cfg, device, backend, seed, False, progress)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        keep = keep_mask(out.means, out.covs, arr.shape[0], arr.shape[1], offscreen=False)
        means, covs, colors = out.means[keep], out.covs[keep], out.colors[keep]
        render = renderer(means, covs, colors, arr.shape[0], arr.shape[1]).float().cpu().numpy()
    img8 = to_uint8(render)
    return FitResult(
        means=means.cpu().numpy().astype(np.float32), covs=covs.cpu().numpy().astype(np.float32),
        colors=colors.cpu().numpy().astype(np.float32), psnr=psnr(img8, arr), ms_ssim=ms_ssim(img8, arr),
        gaussians=int(means.shape[0]), iterations=its, seconds=seconds, render=render,
        history=out.history, best_iteration=out.best_iteration, device=str(dev), config=cfg,
    )


def _refits_colors(cfg: FitConfig) -> bool:
    """Whether the colour codes are re-chosen after QAT (``QATConfig.refit_colors``): not
    when a rate term covers the colours, whose savings a rate-blind least squares would undo."""
    q = cfg.qat
    colors = {CH_RED, CH_GREEN, CH_BLUE}
    return q.refit_colors and not (q.rate_weight > 0 and bool(set(RATE_CHANNEL_SETS[q.rate_channels]) & colors))


def _searches_codes(cfg: FitConfig) -> bool:
    """Whether the code search runs after QAT (``QATConfig.code_search_sweeps``); with a rate
    term it weighs the rate of the channels the term covers (``_search``)."""
    return cfg.qat.code_search_sweeps > 0


def _search(q: np.ndarray, scales: np.ndarray, offsets: np.ndarray, cfg: FitConfig, render: np.ndarray,
            arr: np.ndarray, renderer: Callable, dev: torch.device,
            base: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(codes [N, 8], their render [H, W, 3]) after ``code_search.search_codes`` (on CUDA
    ``code_search_triton.search_codes_triton``, the same search, unless
    ``QATConfig.code_search_on_gpu`` is off) from q and its render; q and ``render``
    themselves when the searched codes are not better by the renderer's own render of them
    against the image ``arr`` [H, W, 3] uint8: a smaller squared error once clamped, or with
    a rate term (``QATConfig.rate_weight`` w) a smaller squared error + mu * bits of the
    channels the term covers (``code_search.rate_tables``), mu = ``bit_price`` of q's
    squared error. ``render`` and the render returned include ``base`` [H, W, 3] when given.
    For a grey image (``fit.gray``) red and blue are left unpriced and set to green after the
    sweeps.
    """
    target = arr.astype(np.float32) / np.float32(255.0)  # [H, W, 3]
    qat = cfg.qat
    gray = is_gray(arr)
    channels = priced_channels(RATE_CHANNEL_SETS[qat.rate_channels], gray) if qat.rate_weight > 0 else ()
    residuals = qat.rate_color_residuals
    corr = cfg.qat.codes_correlation()
    search, args, extra = search_codes, (render, target), {"correlation": corr}
    if qat.code_search_on_gpu and triton_path.serves(torch.empty(0, device=dev)):  # Triton on CUDA
        from gipp_codec.fit.code_search_triton import search_codes_triton as search

        args = (torch.from_numpy(render).to(dev), torch.from_numpy(target).to(dev))
    searched, _ = search(q, scales, offsets, qat.bits(), *args, qat.code_search_sweeps,
                         rate_weight=qat.rate_weight, rate_channels=channels, residuals=residuals, **extra)
    if gray:
        searched = tie_codes(searched)
    new_render = _render_rows(_dequantize(searched, scales, offsets, corr), renderer, dev, arr.shape[0], arr.shape[1],
                              base)

    def error(image: np.ndarray) -> float:
        return float(np.sum((np.clip(image, 0.0, 1.0, dtype=np.float64) - target) ** 2))

    before, after = error(render), error(new_render)
    if channels:
        mu = bit_price(qat.rate_weight, before, arr.shape[0] * arr.shape[1])
        def bits(codes: np.ndarray) -> float:
            return table_bits(codes, *rate_tables(codes, qat.bits(), channels, scales, offsets, residuals), channels)

        before += mu * bits(q)
        after += mu * bits(searched)
    if after < before:
        return searched, new_render
    return q, render


def _render_rows(rows: np.ndarray, renderer: Callable, dev: torch.device, height: int, width: int,
                 base: np.ndarray | None = None) -> np.ndarray:
    """The unclamped render [H, W, 3] float32 of dequantized attribute rows [N, 8], plus
    ``base`` [H, W, 3] when given (as the decoder adds it)."""
    parts = (torch.from_numpy(np.ascontiguousarray(x)).to(dev) for x in split_attributes(rows))
    with torch.no_grad():
        image = renderer(*parts, height, width).float().cpu().numpy()
    return image if base is None else image + base


def _dequantize(q: np.ndarray, scales: np.ndarray, offsets: np.ndarray, correlation: bool = False) -> np.ndarray:
    """The decoder's dequantizer (``gipp_codec.quant.dequant.dequantize_rows``) when it is
    importable, else the reference copy of the same formula in ``gipp_codec.quant.lsq``
    (``correlation``: b's codes are payload coding 3's correlation)."""
    try:
        from gipp_codec.quant.dequant import dequantize_rows
    except ImportError:
        return dequantize_reference(q, scales, offsets, correlation)
    return np.asarray(dequantize_rows(q, scales, offsets, correlation), dtype=np.float32)


def fit_and_quantize(
    image: np.ndarray,
    gaussians: int,
    iterations: int | None = None,
    bits: tuple[int, int, int] | None = None,
    seed: int = 0,
    device: str = "auto",
    config: FitConfig | None = None,
    progress: Callable | None = None,
    backend: str = "auto",
    rate_hook: Callable | None = None,
    reduce: Callable | None = None,
    base: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, QuantReport]:
    """Fit, then quantization-aware train; return what the file stores.

    ``rate_hook(rows [N, 8] float, quantizer) -> N'`` is passed to the trainer (called once when QAT
    starts; the encoder's rate control uses it to resize the set to the rate budget).
    ``reduce(q [N, 8], scales, offsets, priority [N]) -> q' [N', 8]`` (rows of q) is applied
    to the quantized set before the colour refit and the code search (the encoder's trim to
    the rate budget); ``priority`` is ``code_search.removal_costs``: what removing each
    Gaussian alone would add to the clamped render's squared error. With a rate term and
    the code search it is applied after the search instead, and the search runs again on
    the rows kept: that search saves bits (up to 3.4 % of a file on the four CPU Kodak images
    at 12/10/6, BENCHMARKS.md §5), which a set trimmed before it would leave unspent.

    ``bits`` = (position, covariance, colour) bit depths, default ``config.qat.depths()``
    (12, 7, 5, the rate-free depths; the encoder picks them by rate, ``encoder.default_depths``;
    the paper's 12, 10, 6 with ``FitConfig.paper()``). Returns ``q`` uint16
    [N, 8] (channels x, y, a, b, c, r, g, b; a and c in the log domain), ``scales`` float32 [8], ``offsets`` float32 [8], and a QuantReport whose
    PSNR is that of the decoder's output: every Gaussian of ``q`` is valid after
    dequantization, and ``render(dequantize(q, scales, offsets))`` is the image measured.
    ``base`` (float32 [H, W, 3]) is the file's base layer, which the decoder adds to that
    render before clamping: the Gaussians are fitted to what it leaves.
    """
    cfg = config if config is not None else FitConfig()
    if bits is not None:
        if len(tuple(bits)) != 3:
            raise ConfigError(f"bits must be (position, covariance, colour), got {bits!r}")
        p, c, k = (int(b) for b in bits)
        cfg = cfg.with_qat(bits_position=p, bits_covariance=c, bits_color=k)
    arr, its, cfg = _validate(image, gaussians, iterations, cfg, seed)
    cfg = cfg.with_qat(code_search_sweeps=cfg.qat.sweeps_for(its))  # fewer for a short fit
    t0 = time.perf_counter()
    if base is not None:
        base = np.ascontiguousarray(base, dtype=np.float32)
        if base.shape != arr.shape:
            raise ConfigError(f"base must have the image's shape {arr.shape}, got {base.shape}")
    out, renderer, dev = _train_on_device(arr, gaussians, its, cfg, device, backend, seed, True, progress,
                                          rate_hook, base)
    quant = out.quantizer
    rows = torch.cat((out.means, out.covs, out.colors), dim=1)
    q = quant.quantize(rows)  # [N, 8] uint16
    scales, offsets = quant.export()
    gray = is_gray(arr)  # red and blue tied to green (fit.gray)
    if gray:  # the trainer kept them tied: this only makes sure
        q, (scales, offsets) = tie_codes(q), tie_grid(scales, offsets)
    h, w = arr.shape[:2]
    corr = cfg.qat.codes_correlation()
    deq = _dequantize(q, scales, offsets, corr)  # [N, 8] float32
    m, c, col = (torch.from_numpy(np.ascontiguousarray(x)) for x in split_attributes(deq))
    keep = keep_mask(m, c, h, w, offscreen=True).numpy()
    q = np.ascontiguousarray(q[keep])
    rate_search = cfg.qat.rate_weight > 0 and _searches_codes(cfg)  # the search saves bits: trim after it
    if reduce is not None and q.shape[0] > 0 and not rate_search:
        render = _render_rows(deq[keep], renderer, dev, h, w, base)
        q = np.ascontiguousarray(reduce(q, scales, offsets, removal_costs(q, scales, offsets, render, arr / 255.0, corr)))
    deq = _dequantize(q, scales, offsets, corr)
    m, c, col = (torch.from_numpy(np.ascontiguousarray(x)).to(dev) for x in split_attributes(deq))
    if _refits_colors(cfg) and q.shape[0] > 0:
        with cpu_fitting_threads(dev):
            q[:, 5:8] = refit_color_codes(renderer, m, c, q[:, 5:8], scales[5:8], offsets[5:8],
                                          1 << cfg.qat.bits_color, _target(arr, dev),
                                          None if base is None else torch.from_numpy(base).to(dev))
        if gray:
            q = tie_codes(q)
        deq = _dequantize(q, scales, offsets, corr)
        col = torch.from_numpy(np.ascontiguousarray(split_attributes(deq)[2])).to(dev)
    with torch.no_grad():
        render = renderer(m, c, col, h, w).float().cpu().numpy()  # [H, W, 3], with the base from here on
    if base is not None:
        render = render + base
    if _searches_codes(cfg) and q.shape[0] > 0:
        if progress is not None:
            progress(its, its, {"phase": "code search", "psnr": None, "gaussians": int(q.shape[0])})
        q, render = _search(q, scales, offsets, cfg, render, arr, renderer, dev, base)
        if rate_search and reduce is not None:
            kept = np.ascontiguousarray(reduce(q, scales, offsets, removal_costs(q, scales, offsets, render, arr / 255.0, corr)))
            if 0 < kept.shape[0] < q.shape[0]:  # trimmed: search again for the Gaussians kept
                render = _render_rows(_dequantize(kept, scales, offsets, corr), renderer, dev, h, w, base)
                q, render = _search(kept, scales, offsets, cfg, render, arr, renderer, dev, base)
    seconds = time.perf_counter() - t0
    img8 = to_uint8(render)
    float_hist = [p for (it, p, _) in out.history if it <= out.qat_start]
    report = QuantReport(
        psnr=psnr(img8, arr), ms_ssim=ms_ssim(img8, arr),
        psnr_float_warmup=max(float_hist) if float_hist else float("nan"),
        gaussians=int(q.shape[0]), iterations=its, qat_start=out.qat_start, bits=cfg.qat.bits(),
        seconds=seconds, seconds_float=out.seconds_float, seconds_qat=out.seconds_qat,
        history=out.history, render=render, device=str(dev),
    )
    assert q.shape[1] == len(CHANNELS)
    return q, scales, offsets, report
