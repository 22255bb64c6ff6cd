"""The training loop: sparse init -> Adam on (means, covs, colors) with distortion-driven growth
and PSD pruning -> optionally quantization-aware training (LSQ+) for the codec.

One loop serves both pipelines (DESIGN.md §1):

- float phase, iterations 1 .. qat_start: MSE on the UNCLAMPED render, growth every
  ``grow_every`` until ``grow_stop`` (never during QAT), pruning every ``prune_every``;
- QAT phase, iterations qat_start+1 .. total (only with ``quantize=True``): the render
  uses the LSQ+ fake-quantized attributes; the quantizers have their own Adam; pruning
  runs on the DEQUANTIZED covariances. No growth, except that a rate hook (the encoder's
  ``--bpp``) resizes the set when QAT starts and, with ``qat.resize_frac``, once more
  during QAT.

The best state by PSNR of the clamped render (the quantized render during QAT) is kept,
evaluated from the forward pass already computed every ``eval_every`` iterations.
Determinism: all randomness comes from one ``torch.Generator`` seeded explicitly; no
global RNG is read.
"""

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from gipp_codec import stop, triton_path
from gipp_codec.fit import adam_kernels
from gipp_codec.fit.config import FitConfig
from gipp_codec.fit.densify import GrowthSchedule, growth_error, matched_variance, new_gaussians, select_pixels
from gipp_codec.fit.gray import is_gray, priced_channels, tie_colors_, tie_quantizer_
from gipp_codec.fit.init import gradient_density, sparse_init
from gipp_codec.fit.prune import (contrast_importance, importance, keep_mask, largest, local_variance,
                                  removal_contrast_importance, removal_importance)
from gipp_codec.fit.rate_proxy import RATE_CHANNEL_SETS, add_rate_gradients, attribute_bits
from gipp_codec.fit.tensor_adam import TensorAdam
from gipp_codec.metrics import psnr_from_mse
from gipp_codec.quant.lsq import POSITION_CHANNELS, LSQPlus, split_attributes
from gipp_codec.render import mse_step as render_mse_step


class RowAdam:
    """Adam over tensors whose rows are Gaussians, with per-row step counts.

    Rows can be removed (``keep``) or appended (``append``); appended rows start with zero
    moments and their own bias correction, so a new Gaussian's first step has the nominal
    size lr (torch's Adam with state surgery would give it ~3x lr). With ``warmup`` W > 0 a
    row's steps are scaled by min(1, age / W), its age counted in its own steps.
    """

    def __init__(self, params: list[torch.Tensor], lrs: list[float], betas=(0.9, 0.999), eps=1e-8,
                 new_rows: str = "zero", warmup: int = 0):
        self.new_rows = new_rows  # second moment of appended rows: "zero", or "median" of the others'
        self.warmup = int(warmup)  # per-row lr warm-up, steps (0: none)
        self.params = params
        self.base_lrs = list(lrs)
        self.lrs = list(lrs)
        self.b1, self.b2 = betas
        self.eps = eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        n = params[0].shape[0]
        self.steps = torch.zeros(n, 1, device=params[0].device, dtype=params[0].dtype)

    def set_factor(self, factor: float) -> None:
        """Set every learning rate to its base value times ``factor`` (the schedule's)."""
        self.lrs = [lr * factor for lr in self.base_lrs]

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step of every parameter that has a gradient: on float32 CPU tensors by
        the one-pass kernels of ``adam_kernels``, on CUDA by the one Triton kernel of
        ``adam_triton`` (three float32 parameters with gradients), elsewhere by
        ``step_composed``."""
        if not all(_cpu_f32(t) for t in [self.steps] + self.params):
            if triton_path.serves(self.steps):
                from gipp_codec.fit import adam_triton

                if adam_triton.fits(self.steps, self.params, self.m, self.v):
                    adam_triton.row_adam_step(self.steps, self.params, self.m, self.v, self.lrs,
                                              self.b1, self.b2, self.eps, self.warmup)
                    return
            self.step_composed()
            return
        steps = self.steps.view(-1).numpy()  # [N] (a view: steps is [N, 1], contiguous)
        bc1, bc2 = np.empty_like(steps), np.empty_like(steps)
        adam_kernels.advance_steps(steps, self.b1, self.b2, bc1, bc2, float(self.warmup))
        for p, m, v, lr in zip(self.params, self.m, self.v, self.lrs):
            if p.grad is None:
                continue
            adam_kernels.adam_rows(p.detach().numpy(), p.grad.contiguous().numpy(), m.numpy(), v.numpy(),
                                   bc1, bc2, lr, self.b1, self.b2, self.eps)

    @torch.no_grad()
    def step_composed(self) -> None:
        """``step`` written with torch operations (any device)."""
        self.steps += 1
        bc1 = 1.0 - self.b1 ** self.steps  # [N, 1]
        if self.warmup > 0:
            bc1 = bc1 / (self.steps / self.warmup).clamp(max=1.0)
        bc2 = 1.0 - self.b2 ** self.steps
        for p, m, v, lr in zip(self.params, self.m, self.v, self.lrs):
            g = p.grad
            if g is None:
                continue
            m.mul_(self.b1).add_(g, alpha=1.0 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1.0 - self.b2)
            p.sub_(lr * (m / bc1) / ((v / bc2).sqrt() + self.eps))

    def replace(self, params: list[torch.Tensor], keep: torch.Tensor | None, n_new: int) -> None:
        """Re-point at ``params`` after rows were kept by ``keep`` and ``n_new`` rows appended."""
        def fix(t, start=None):  # start: [k] per-column values of the appended rows (default 0)
            if keep is not None:
                t = t[keep]
            if n_new:
                tail = t.new_zeros((n_new,) + t.shape[1:])
                if start is not None:
                    tail += start
                t = torch.cat((t, tail), dim=0)
            return t

        def v_start(v):  # [k] or None: the kept rows' median second moment, per column
            kept = v[keep] if keep is not None else v
            return kept.median(dim=0).values if self.new_rows == "median" and kept.shape[0] else None

        self.params = params
        self.m = [fix(m) for m in self.m]
        self.v = [fix(v, v_start(v)) for v in self.v]
        self.steps = fix(self.steps)


def _rate_kernel_for(params: list[torch.Tensor], quant: LSQPlus) -> bool:
    """Whether QAT's rate term runs as the CPU kernel of ``rate_kernels`` (float32 CPU rows);
    elsewhere it is ``attribute_bits`` through autograd."""
    on_cpu = all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params)
    return on_cpu and quant.scale.device.type == "cpu"


def _add_rate_term(params: list[torch.Tensor], quant: LSQPlus, channels: tuple, factor,
                   residuals: bool = False) -> None:
    """Add ``factor`` * d ``attribute_bits`` / d params to the params' ``.grad``: by the CPU
    kernel of ``rate_kernels`` on float32 CPU rows, by the two Triton kernels of
    ``rate_triton`` on CUDA, elsewhere through autograd (the three agree: tests)."""
    if _rate_kernel_for(params, quant):  # the CPU kernel, without autograd's engine
        add_rate_gradients(params, quant, channels, factor, residuals=residuals)
        return
    if triton_path.serves(quant.scale):
        from gipp_codec.fit import rate_triton

        if rate_triton.fits(params, channels):
            rate_triton.add_rate_gradients_triton(params, quant.scale, quant.offset, quant.qmax, quant.bits,
                                                  channels, factor, residuals, quant.correlation)
            return
    (attribute_bits(torch.cat(params, dim=1), quant, channels, residuals) * factor).backward()


def _cpu_f32(t: torch.Tensor) -> bool:
    """A contiguous float32 CPU tensor (numpy can share its memory)."""
    return t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous()


@dataclass
class TrainOutput:
    """What ``train`` returns; tensors are detached float32 on the training device."""

    means: torch.Tensor  # [N, 2]
    covs: torch.Tensor  # [N, 3]
    colors: torch.Tensor  # [N, 3]
    psnr: float  # of the kept (best) state's clamped render (quantized during QAT)
    best_iteration: int
    iterations: int
    history: list = field(default_factory=list)  # (iteration, psnr, n_gaussians)
    quantizer: LSQPlus | None = None  # with the best state's scales/offsets
    seconds_float: float = 0.0
    seconds_qat: float = 0.0
    qat_start: int = 0


def lr_factor(t: int, total: int, cfg: FitConfig, halve_every_frac: float | None = None) -> float:
    """Multiplier of the initial learning rates at iteration t (1-based) of ``total``; the
    "step" schedule halves every ``halve_every_frac`` of the budget (None:
    ``cfg.lr_halve_every_frac``)."""
    if cfg.lr_schedule == "step":
        frac = cfg.lr_halve_every_frac if halve_every_frac is None else halve_every_frac
        every = max(1, round(frac * total))
        return 0.5 ** ((t - 1) // every)
    warm = round(cfg.lr_warmup_frac * total)
    if warm and t <= warm:
        return t / warm
    p = (t - warm) / max(1, total - warm)
    return cfg.lr_final_frac + (1.0 - cfg.lr_final_frac) * 0.5 * (1.0 + math.cos(math.pi * min(p, 1.0)))


def geometry_lr_scale(n_max: int, height: int, width: int, cfg: FitConfig) -> float:
    """Multiplier of ``lr_means`` and ``lr_covs`` for a fit of ``n_max`` Gaussians to an image
    of height x width: sqrt(``cfg.lr_density_ref`` / (n_max / pixels)) where the fit is
    sparser than that reference, else (or when it is None) 1."""
    if cfg.lr_density_ref is None:
        return 1.0
    return max(1.0, math.sqrt(cfg.lr_density_ref / (max(1, n_max) / (height * width))))


def _mse(img: torch.Tensor, target: torch.Tensor, clamp: bool = False) -> float:
    """mean((img - target)^2) over [H, W, 3], with img clamped to [0, 1] first when ``clamp``.
    ``mse_loss`` gives the same float32 value as writing it out with ``** 2`` (tested)
    without torch's pow and its image-sized temporaries."""
    return float(torch.nn.functional.mse_loss(img.clamp(0.0, 1.0) if clamp else img, target))


def _quantized_mse(rows: torch.Tensor, renderer: Callable, target: torch.Tensor,
                   base: torch.Tensor | None = None) -> float:
    """Mean squared error of the clamped render of attribute rows [N, 8] (plus ``base`` [H, W, 3]
    when given) against target [H, W, 3]."""
    means, covs, colors = split_attributes(rows)
    with torch.no_grad():
        img = renderer(means.contiguous(), covs.contiguous(), colors.contiguous(), target.shape[0], target.shape[1])
        return _mse(img if base is None else img + base, target, clamp=True)


def _init_quantizer(quant: LSQPlus, rows: torch.Tensor, init: str, rendered_error: Callable) -> None:
    """Initialise the LSQ+ ranges from the float rows [N, 8] by the QAT config's rule."""
    if init == "render":
        quant.init_render(rows, rendered_error)
    elif init == "mse":
        quant.init_mse(rows)
    else:
        quant.init_minmax(rows)


@dataclass(frozen=True)
class _ImageUses:
    """Iterations whose render the rate hook reads after the step (-1: none)."""

    resize_at: int  # the second sizing, during QAT
    sizing_at: int  # the first sizing reads the render of the last float iteration


def _evaluates(t: int, in_qat: bool, cfg: FitConfig) -> bool:
    """Whether iteration t measures the PSNR of its render (for the best-state tracking)."""
    return t % (cfg.qat.eval_every if in_qat else cfg.eval_every) == 0 or t == 1


def _image_needed(t: int, in_qat: bool, cfg: FitConfig, schedule: GrowthSchedule, uses: _ImageUses,
                  evaluates: bool = True) -> bool:
    """Whether iteration t's render is read after its training step: for the PSNR of the
    best-state tracking (unless ``evaluates`` is False), growth at the largest errors, or the
    rate hook's sizings. Other iterations only need the loss gradient (and the rate term
    the loss, which the step returns), and the CPU step then skips storing the image."""
    grows = not in_qat and t % schedule.every == 0 and t <= schedule.stop
    return (evaluates and _evaluates(t, in_qat, cfg)) or grows or t in (uses.resize_at, uses.sizing_at)


def half_resolution(target: torch.Tensor) -> torch.Tensor:  # [H//2, W//2, 3]
    """The mean of each 2x2 block of ``target`` [H, W, 3] (an odd last row or column is
    dropped). Its pixel (j, i) has its centre at full-resolution (2i + 1, 2j + 1), so a
    Gaussian with mean m and covariance S renders there as one with m / 2 and S / 4."""
    h2, w2 = int(target.shape[0]) // 2, int(target.shape[1]) // 2
    blocks = target[: 2 * h2, : 2 * w2].reshape(h2, 2, w2, 2, target.shape[2])
    return blocks.mean(dim=(1, 3)).contiguous()


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def train(
    target: torch.Tensor,  # [H, W, 3] float32 in [0, 1] on the training device
    n_max: int,
    iterations: int,
    cfg: FitConfig,
    renderer: Callable,
    seed: int = 0,
    quantize: bool = False,
    progress: Callable | None = None,
    rate_hook: Callable | None = None,
    base: torch.Tensor | None = None,  # [H, W, 3] float32: the file's base layer, added before clamping
) -> TrainOutput:
    """Fit ``n_max`` Gaussians to ``target`` for ``iterations`` steps (see the module docstring).

    ``progress(iteration, total, info)`` is called after every iteration with
    info = {"phase": "float"|"qat", "psnr": last evaluated PSNR or None, "gaussians": N}.
    ``rate_hook(rows [N, 8], quantizer)`` (quantizing only) is called once when QAT starts,
    with the float Gaussians about to be quantized and the LSQ+ quantizer QAT starts from
    (ranges initialised by ``cfg.qat.init`` on those rows); it returns the count N' the
    file's rate budget allows, and the trainer keeps the N' most important Gaussians
    (``prune.importance``) or adds N' - N at the largest errors. With ``cfg.qat.resize_frac``
    > 0 it is called again that far into QAT, with the quantizer learned so far, and the set
    is resized the same way (the best-state tracking restarts there).
    With a ``base`` image the Gaussians fit ``target - base`` (the loss, growth and new
    colours read that residual), and every clamped measure is of their render plus the base.
    """
    device = target.device
    height, width = int(target.shape[0]), int(target.shape[1])
    fit_target = target if base is None else (target - base).contiguous()  # [H, W, 3] what the Gaussians add up to
    gray = is_gray(target) and (base is None or is_gray(base))  # red and blue tied to green (fit.gray)

    def shown(img: torch.Tensor) -> torch.Tensor:  # the render as decoded, before clamping
        return img if base is None else img + base

    mse_step = render_mse_step(renderer, fit_target)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    # QAT always gets at least the last iteration when quantizing
    qat_start = min(round(cfg.qat.start_frac * iterations), iterations - 1) if quantize else iterations
    schedule = GrowthSchedule.from_config(cfg, iterations, n_max, grow_until=qat_start, pixels=height * width)

    n0 = max(1, min(n_max, round(cfg.init_fraction_at(n_max, height * width) * n_max)))
    peak_radius = cfg.grow_peak_radius_at(n_max, height * width)
    residual_colors = cfg.new_color_at(n_max, height * width) == "residual"
    grow_error = cfg.grow_error_at(n_max, height * width)  # the error map growth takes its pixels from
    density = gradient_density(target, cfg.init_uniform_share) if cfg.init_positions == "gradient" else None
    means, covs, colors = (t.to(device) for t in sparse_init(
        n0, height, width, gen, cfg.caf, cfg.caf_max, density, caf_by_density=cfg.init_caf == "density"))
    if gray:
        tie_colors_(colors)
    params = [_leaf(means), _leaf(covs), _leaf(colors)]
    geometry = geometry_lr_scale(n_max, height, width, cfg)
    halve_every_frac = cfg.lr_halve_every_frac_at(n_max, height * width)
    opt = RowAdam(params, [cfg.lr_means * geometry, cfg.lr_covs * geometry, cfg.lr_colors],
                  betas=(cfg.adam_beta1, cfg.adam_beta2),
                  eps=cfg.adam_eps, new_rows=cfg.adam_new_rows, warmup=cfg.adam_row_warmup)

    quant: LSQPlus | None = None
    qopt = None
    qat_every = max(1, round(cfg.qat.lr_halve_every_frac * iterations))
    resize_at = -1  # iteration after which the rate hook is called a second time
    if quantize and rate_hook is not None and cfg.qat.resize_frac > 0:
        resize_at = qat_start + max(1, round(cfg.qat.resize_frac * (iterations - qat_start)))
        resize_at = resize_at if resize_at < iterations else -1
    history: list = []
    best = (-math.inf, 0, None)  # (psnr, iteration, snapshot)
    last_psnr = None
    t0 = time.perf_counter()
    t_qat0 = None

    # coarse-to-fine: iterations 1 .. coarse_until train at half resolution (float phase only)
    coarse_until = min(round(cfg.coarse_frac * iterations), qat_start - 1) if min(height, width) >= 2 else 0
    coarse_step = render_mse_step(renderer, half_resolution(fit_target)) if coarse_until > 0 else None

    n_max_total = max(n_max, 4 * height * width)  # the rate hook may ask for more than n_max
    uses = _ImageUses(resize_at=resize_at, sizing_at=qat_start if (quantize and rate_hook is not None) else -1)

    def add_at_errors(ps, k, img_now):  # -> params with up to k new Gaussians at the largest errors
        with torch.no_grad():
            variance = matched_variance(height, width, int(ps[0].shape[0]) + k, cfg)  # of the matched map's kernel
            error = growth_error(img_now, fit_target, grow_error, variance)  # [H, W]
            pix = select_pixels(error, k,
                                gen if cfg.grow_pixels == "sample" else None, cfg.grow_error_power,
                                peak_radius)
            k = int(pix.shape[0])
            if k == 0:
                return ps
            residual = cfg.new_color_gain * (fit_target - img_now) if residual_colors else None
            new = new_gaussians(pix, int(ps[0].shape[0]) + k, height, width, gen, cfg, residual)
        if gray:
            tie_colors_(new[2])
        ps = [_leaf(torch.cat((p.detach(), nw.to(device)), dim=0)) for p, nw in zip(ps, new)]
        opt.replace(ps, None, k)
        return ps

    def recycle_scores(ps, by, img_now):  # [N]: what each Gaussian is worth; the lowest are recycled
        m, c, col = (p.detach() for p in ps)
        if by == "energy":
            return importance(c, col)
        if by == "contrast":
            return contrast_importance(m, c, col, contrast_map, cfg.recycle_variance_floor)
        if by == "removal":
            return removal_importance(m, c, col, shown(img_now), target)
        return removal_contrast_importance(m, c, col, shown(img_now), target, contrast_map,
                                           cfg.recycle_variance_floor)

    def drop_least_important(ps, n_drop, by="energy", img_now=None):  # -> params without the n_drop least important
        n_now = int(ps[0].shape[0])
        scores = recycle_scores(ps, by, img_now)  # [n_now]
        idx = largest(scores, max(1, n_now - n_drop))
        sel = torch.zeros(n_now, dtype=torch.bool, device=idx.device)
        sel[idx] = True
        ps = [_leaf(p.detach()[sel]) for p in ps]
        opt.replace(ps, sel, 0)
        return ps

    recycle = math.ceil(cfg.grow_recycle_frac * n_max)  # Gaussians recycled per growth step
    recycle_until = int(cfg.recycle_stop_frac * iterations)  # the last iteration that recycles
    contrast_map = None  # [H, W] the target's local variance, for the "contrast" rankings
    if recycle and cfg.grow_recycle_by in ("contrast", "removal_contrast"):
        spacing = math.sqrt(height * width / max(1, n_max))
        contrast_map = local_variance(target, 2 * max(1, round(spacing / 2)) + 1)

    def resize(ps, n_want, img_now):  # -> params holding the n_want the rate hook asked for
        n_now = int(ps[0].shape[0])
        n_want = max(1, min(int(n_want), n_max_total))
        if n_want < n_now:
            ps = drop_least_important(ps, n_now - n_want)
        elif n_want > n_now:
            if img_now is None:  # no render yet (a one-iteration run): make one
                with torch.no_grad():
                    img_now = renderer(*attributes(ps, quant), height, width)
            ps = add_at_errors(ps, n_want - n_now, img_now)
        return ps

    def attributes(ps, q):  # -> means, covs, colors used for rendering
        if q is None:
            return ps
        rows = q(torch.cat(ps, dim=1))  # [N, 8] dequantized
        return split_attributes(rows)

    for t in range(1, iterations + 1):
        in_qat = t > qat_start
        if in_qat and quant is None:  # enter QAT: drop invalid Gaussians, init quantizers
            t_qat0 = time.perf_counter()
            with torch.no_grad():
                keep = keep_mask(params[0], params[1], height, width, cfg.prune_offscreen)
            if bool(keep.any()) and not bool(keep.all()):
                params = [_leaf(p[keep]) for p in params]
                opt.replace(params, keep, 0)
            quant = LSQPlus(cfg.qat.bits(), psd_safe=cfg.qat.psd_safe,
                            correlation=cfg.qat.codes_correlation(), compact=cfg.qat.compact_grid).to(device)
            rows = torch.cat([p.detach() for p in params], dim=1)  # [N, 8]
            _init_quantizer(quant, rows, cfg.qat.init, lambda r: _quantized_mse(r, renderer, target, base))
            if cfg.qat.position_hold == "initial":
                quant.hold_range_(POSITION_CHANNELS)
            elif cfg.qat.position_hold == "image":
                quant.hold_range_(POSITION_CHANNELS, bounds=((0.0, float(width)), (0.0, float(height))))
            if gray:
                tie_quantizer_(quant)
            quant.round_compact_()  # the hook prices, and the first step uses, the grid the file holds
            if rate_hook is not None:
                params = resize(params, rate_hook(rows, quant), None if t == 1 else img.detach())
            qopt = TensorAdam(list(quant.parameters()), lr=cfg.qat.lr, eps=cfg.qat.adam_eps)
            best = (-math.inf, 0, None)  # the float best is not a candidate for a quantized output

        opt.set_factor(lr_factor(t, iterations, cfg, halve_every_frac) * (cfg.qat.params_lr_scale if in_qat else 1.0))
        if qopt is not None:
            qopt.lr = cfg.qat.lr * 0.5 ** ((t - qat_start - 1) // qat_every)

        for p in params:
            p.grad = None
        if qopt is not None:
            qopt.zero_grad()
        # loss = mean((img - target)^2): rendered and backpropagated in one call, its gradient
        # 2 (img - target) / numel going straight into the renderer's backward
        # [H, W, 3] unclamped, detached; None where no step below uses it (not stored)
        coarse = t <= coarse_until
        if coarse:  # half resolution: the gradient reaches the params through the scaling
            coarse_step(params[0] * 0.5, params[1] * 0.25, params[2], image=False)
            img = None
            if _image_needed(t, in_qat, cfg, schedule, uses, evaluates=False):  # growth reads it
                with torch.no_grad():
                    img = renderer(*params, height, width)
        else:
            need = _image_needed(t, in_qat, cfg, schedule, uses)
            rated = quant is not None and cfg.qat.rate_weight > 0  # the rate term reads the loss
            if quant is not None and quant.fused_for(params):  # QAT in kernels (CPU or CUDA), no autograd engine
                out = quant.training_step(params, lambda m, c, k: mse_step(m, c, k, image=need, loss=rated))
            else:
                out = mse_step(*attributes(params, quant), image=need, loss=rated)
            img, mse_now = out if rated else (out, None)  # the render (or None) and, for the term, its MSE
        if quant is not None and cfg.qat.rate_weight > 0:  # rate term: gradients add to the params'
            factor = cfg.qat.rate_weight * mse_now / (height * width)
            channels = priced_channels(RATE_CHANNEL_SETS[cfg.qat.rate_channels], gray)
            _add_rate_term(params, quant, channels, factor, cfg.qat.rate_color_residuals)

        if _evaluates(t, in_qat, cfg) and not coarse:
            with torch.no_grad():
                mse = _mse(shown(img.detach()), target, clamp=True)
            last_psnr = psnr_from_mse(mse)
            history.append((t, last_psnr, int(params[0].shape[0])))
            if last_psnr > best[0]:  # snapshot of the state that produced this render (pre-step)
                snap = [p.detach().clone() for p in params]
                qsnap = None if quant is None else (quant.scale.detach().clone(), quant.offset.detach().clone())
                best = (last_psnr, t - 1, (snap, qsnap))

        opt.step()
        if qopt is not None:
            quant.restore_master_()  # Adam steps the master values (the gradient is the rounded grid's)
            qopt.step()
            quant.constrain_()
        if gray:  # green's step is the shared colour's (Adam normalises the gradient)
            tie_colors_(params[2].data)
            if quant is not None:
                tie_quantizer_(quant)
        if qopt is not None:
            quant.round_compact_()

        n_now = int(params[0].shape[0])
        keep = None
        if t % cfg.prune_every == 0:
            with torch.no_grad():
                m_p, c_p, _ = attributes(params, quant)
                keep = keep_mask(m_p, c_p, height, width, cfg.prune_offscreen)
            if bool(keep.all()) or not bool(keep.any()):
                keep = None
        k = 0 if in_qat else schedule.k_at(t, n_now if keep is None else int(keep.sum()))
        if keep is not None:
            params = [_leaf(p.detach()[keep]) for p in params]
            opt.replace(params, keep, 0)
        if (recycle and not in_qat and t <= recycle_until and schedule.grows_at(t)
                and int(params[0].shape[0]) + k >= n_max):
            params = drop_least_important(params, recycle, cfg.grow_recycle_by, img.detach())
            k = n_max - int(params[0].shape[0])
        if k:
            params = add_at_errors(params, k, img.detach())
        if t == resize_at:  # size the set again with the quantizer QAT has learned so far
            with torch.no_grad():
                rows = torch.cat([p.detach() for p in params], dim=1)  # [N, 8]
            params = resize(params, rate_hook(rows, quant), img.detach())
            best = (-math.inf, 0, None)  # only states of the resized set are candidates

        stop.check()  # a Ctrl-C that a ctypes callback (numba compiling) swallowed
        if progress is not None:
            progress(t, iterations, {"phase": "qat" if in_qat else "float", "psnr": last_psnr,
                                     "gaussians": int(params[0].shape[0])})

    # the state after the last step has not been evaluated yet
    with torch.no_grad():
        m_r, c_r, col_r = attributes(params, quant)
        img = renderer(m_r, c_r, col_r, height, width)
        final_psnr = psnr_from_mse(_mse(shown(img), target, clamp=True))
    history.append((iterations, final_psnr, int(params[0].shape[0])))
    if final_psnr >= best[0]:
        snap = [p.detach().clone() for p in params]
        qsnap = None if quant is None else (quant.scale.detach().clone(), quant.offset.detach().clone())
        best = (final_psnr, iterations, (snap, qsnap))

    t_end = time.perf_counter()
    psnr_best, best_it, (snap, qsnap) = best
    if quant is not None and qsnap is not None:
        quant.scale.data.copy_(qsnap[0])
        quant.offset.data.copy_(qsnap[1])
    return TrainOutput(
        means=snap[0], covs=snap[1], colors=snap[2], psnr=psnr_best, best_iteration=best_it,
        iterations=iterations, history=history, quantizer=quant,
        seconds_float=(t_qat0 or t_end) - t0, seconds_qat=(t_end - t_qat0) if t_qat0 else 0.0,
        qat_start=qat_start,
    )
