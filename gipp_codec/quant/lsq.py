"""LSQ+ quantizers (torch) for the 8 Gaussian attribute channels x, y, a, b, c, r, g, b.

Per channel j a learnable scale s_j > 0 and offset beta_j act on the channel's value in
its coding domain t (t = log(a) for the two variances a and c, t = x otherwise):

    q    = round(clamp((t - beta) / s, 0, 2^bits - 1))      straight-through rounding
    that = q * s + beta
    xhat = exp(that) for a, c;  xhat = that otherwise

The gradients reaching s and beta are scaled by g = 1 / sqrt(N * (2^bits - 1)) (LSQ's
step-size gradient scale; the reference code computes it and drops it).

Exactness contract with the numpy dequantizer (``gipp_codec.quant.dequant``): the value
used in training is computed exactly as the decoder computes it from the stored integers
and the stored float32 scales/offsets:

    value = float32(float64(q) * float64(scale) + float64(offset))
    a, c  = float32(exp(float64(value)))

``dequantize_reference`` is that formula in numpy; the tests check that the training-time
``LSQPlus.forward`` reproduces it bit for bit.

On float32 CPU rows (with or without ``psd_safe`` or ``correlation``) the forward and its backward run as one
numba pass each (``gipp_codec.quant.lsq_kernels``); ``forward_composed`` is the same
computation in torch operations, used on other devices and as the tests' reference.
"""

import numpy as np
import torch
from torch import nn

from gipp_codec import triton_path
from gipp_codec.format.constants import CHANNEL_LIMITS
from gipp_codec.quant import lsq_kernels

CHANNELS = ("x", "y", "a", "b", "c", "r", "g", "b_color")  # order of the 8 channels in q [N, 8]
LOG_CHANNELS = (2, 4)  # a and c are quantized in the log domain
B_CHANNEL = 3  # the off-diagonal covariance b, uniform
POSITION_CHANNELS = (0, 1)  # x and y
# Smallest variance representable in the log domain for a latent value <= 0 (such a Gaussian is
# invalid and pruned; the clamp only keeps log() finite until then).
_LOG_FLOOR = 1e-12
# with ``LSQPlus.correlation`` rho's grid stays inside +-this (|rho| = 1 would be a degenerate covariance)
CORRELATION_REACH = 0.999


class _RoundSTE(torch.autograd.Function):
    """round() forward (half to even, like numpy), identity backward."""

    @staticmethod
    def forward(ctx, v):  # noqa: D401
        return torch.round(v)

    @staticmethod
    def backward(ctx, grad):
        return grad


_IS_LOG = np.array([j in LOG_CHANNELS for j in range(len(CHANNELS))])  # [8] bool


def _numpy_f32(t: torch.Tensor) -> np.ndarray:
    """A contiguous float32 numpy view of a CPU tensor (a copy only if needed)."""
    return t.detach().contiguous().numpy()


def _fake_quant_numpy(x: torch.Tensor, scale, offset, qmax, psd_safe: bool = False, corr: bool = False):
    """(dequantized rows [N, 8], integers q [N, 8], v [N, 8], e [N, 8] float64) by
    ``lsq_kernels.fake_quant_forward`` (q, v and e are what its backward needs; ``corr``:
    b coded as the correlation)."""
    xs = _numpy_f32(x)
    out, q, v = np.empty_like(xs), np.empty_like(xs), np.empty_like(xs)
    e = np.empty(xs.shape, np.float64)
    lsq_kernels.fake_quant_forward(xs, _numpy_f32(scale), _numpy_f32(offset), _numpy_f32(qmax), _IS_LOG,
                                   out, q, v, e, psd_safe, corr)
    return out, q, v, e


def _fake_quant_backward_numpy(x: torch.Tensor, q, v, e, scale, offset, qmax, grad_out: torch.Tensor,
                               corr: bool = False):
    """(grad_x [N, 8], grad_scale [8], grad_offset [8]) float32 numpy, the unscaled LSQ+
    gradients by ``lsq_kernels.fake_quant_backward`` from the forward's q, v and e and the
    loss gradient ``grad_out`` [N, 8] of its output."""
    xs = _numpy_f32(x)
    grad_x = np.empty_like(xs)
    grad_s = np.empty(xs.shape[1], np.float32)
    grad_o = np.empty(xs.shape[1], np.float32)
    lsq_kernels.fake_quant_backward(xs, q, v, e, _numpy_f32(scale), _numpy_f32(offset), _numpy_f32(qmax), _IS_LOG,
                                    _numpy_f32(grad_out.float()), grad_x, grad_s, grad_o, corr)
    return grad_x, grad_s, grad_o


class _FakeQuantCPU(torch.autograd.Function):
    """LSQ+ fake quantization of CPU rows [N, 8] in one kernel pass each way; the gradients
    of scale and offset [8] are multiplied by LSQ's gradient scale ``g`` [8]."""

    @staticmethod
    def forward(ctx, x, scale, offset, qmax, g, psd_safe, corr):
        out, q, v, e = _fake_quant_numpy(x, scale, offset, qmax, psd_safe, corr)
        ctx.save_for_backward(x, scale, offset, qmax, g)
        ctx.kernel_state = (q, v, e, corr)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_out):
        x, scale, offset, qmax, g = ctx.saved_tensors
        q, v, e, corr = ctx.kernel_state
        ctx.kernel_state = None
        grad_x, grad_s, grad_o = _fake_quant_backward_numpy(x, q, v, e, scale, offset, qmax, grad_out, corr)
        return (torch.from_numpy(grad_x), torch.from_numpy(grad_s) * g, torch.from_numpy(grad_o) * g, None, None,
                None, None)


class _GradScale(torch.autograd.Function):
    """Identity forward (bit-exact), gradient multiplied by ``scale`` [C] backward."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        (scale,) = ctx.saved_tensors
        return grad * scale, None


def to_coding_domain(x: torch.Tensor, correlation: bool = False) -> torch.Tensor:  # [N, 8] -> [N, 8]
    """Attribute rows (x, y, a, b, c, r, g, b) to the quantizer's domain (log for a and c;
    with ``correlation``, payload coding 3's rho = b / sqrt(a c) for b)."""
    t = x.clone()
    for j in LOG_CHANNELS:
        t[:, j] = torch.log(x[:, j].clamp_min(_LOG_FLOOR))
    if correlation:  # the root in float64, rounded to float32 (lsq_kernels._correlation_root says why)
        a, c = (x[:, j].clamp_min(_LOG_FLOOR).double() for j in LOG_CHANNELS)
        t[:, B_CHANNEL] = x[:, B_CHANNEL] / torch.sqrt(a * c).float()
    return t


def _from_value(value_f32: torch.Tensor, correlation: bool = False) -> torch.Tensor:  # [N, 8]
    """Apply exp to the log channels in float64, cast back to float32 (the decoder's rule);
    with ``correlation`` b = float32(rho * sqrt(a * c)) in float64 from the float32 a and c."""
    cols = []
    for j in range(value_f32.shape[1]):
        v = value_f32[:, j]
        cols.append(torch.exp(v.double()).float() if j in LOG_CHANNELS else v)
    if correlation:
        a, c = (cols[j].double() for j in LOG_CHANNELS)
        cols[B_CHANNEL] = (cols[B_CHANNEL].double() * torch.sqrt(a * c)).float()
    return torch.stack(cols, dim=1)


class LSQPlus(nn.Module):
    """Eight per-channel LSQ+ quantizers with learnable float32 ``scale`` [8] and ``offset`` [8].

    With ``psd_safe`` the off-diagonal b is quantized so that the dequantized covariance
    stays positive definite wherever the grid allows it: b's grid holds 0 (its offset is kept
    a whole number of steps below 0 whenever its range spans 0), and a Gaussian whose
    rounded b would give a*c <= b*b (with the dequantized a and c) takes the nearest grid
    value of b that does not, which 0 always is. Plain rounding makes small Gaussians
    invalid when b's step, set by the largest Gaussians, exceeds their sqrt(a*c); QAT then
    pruned them (BENCHMARKS.md §4). The choice is the encoder's: a decoder only
    dequantizes the integers it reads.

    With ``correlation`` (payload coding 3) channel b is quantized as rho = b / sqrt(a c)
    and dequantized as rho * sqrt(a c) with the dequantized a and c; rho's grid stays inside
    +-``CORRELATION_REACH`` with 0 on it, so every covariance is valid and ``psd_safe`` is
    off. The CPU and Triton kernels know this form as ``forward_composed`` does.
    """

    def __init__(self, bits: tuple[int, ...], psd_safe: bool = False, correlation: bool = False,
                 compact: bool = False):
        super().__init__()
        if len(bits) != len(CHANNELS):
            raise ValueError(f"need {len(CHANNELS)} bit depths, got {len(bits)}")
        if any(not (1 <= int(b) <= 16) for b in bits):
            raise ValueError(f"bit depths must be in 1..16, got {bits}")
        self.bits = tuple(int(b) for b in bits)
        # correlation: b is quantized as rho = b / sqrt(a c) on a grid inside +-CORRELATION_REACH
        # (payload coding 3), every covariance then valid, so psd_safe has nothing to do
        self.correlation = bool(correlation)
        self.psd_safe = bool(psd_safe) and not self.correlation
        self.register_buffer("qmax", torch.tensor([(1 << b) - 1 for b in self.bits], dtype=torch.float32))
        self.scale = nn.Parameter(torch.ones(len(bits), dtype=torch.float32))
        self.offset = nn.Parameter(torch.zeros(len(bits), dtype=torch.float32))
        # [2, 8] float64: the range [lo, hi] each channel's grid must keep covering (NaN: none)
        self.held = torch.full((2, len(bits)), float("nan"), dtype=torch.float64)
        # compact: the parameters hold the nearest grid that attribute mode 2 stores
        # (``round_compact_``); the optimiser steps the float32 master values kept here
        self.compact = bool(compact)
        self._master: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- initialisation ---------------------------------------------------------------
    @torch.no_grad()
    def init_minmax(self, x: torch.Tensor) -> None:
        """scale = (max - min) / qmax, offset = min of each channel in the coding domain."""
        t = to_coding_domain(x.detach().float(), self.correlation)
        lo, hi = t.min(dim=0).values, t.max(dim=0).values
        self._set_range(lo, hi)

    @torch.no_grad()
    def init_mse(self, x: torch.Tensor, candidates: int = 24) -> None:
        """Per channel, the clipping range [quantile p, quantile 1-p] minimising quantization MSE
        (in the coding domain) over ``candidates`` values of p in [0, 0.05]."""
        t = to_coding_domain(x.detach().float(), self.correlation).double()
        lo_best, hi_best = t.min(dim=0).values, t.max(dim=0).values
        best = torch.full((t.shape[1],), float("inf"), dtype=torch.float64)
        qmax = self.qmax.double()
        for p in np.linspace(0.0, 0.05, candidates):
            lo = torch.quantile(t, float(p), dim=0)
            hi = torch.quantile(t, 1.0 - float(p), dim=0)
            s = ((hi - lo) / qmax).clamp_min(1e-12)
            q = torch.round(torch.clamp((t - lo) / s, torch.zeros_like(qmax), qmax))
            err = ((q * s + lo - t) ** 2).mean(dim=0)
            better = err < best
            best = torch.where(better, err, best)
            lo_best = torch.where(better, lo, lo_best)
            hi_best = torch.where(better, hi, hi_best)
        self._set_range(lo_best.float(), hi_best.float())

    @torch.no_grad()
    def init_render(self, x: torch.Tensor, rendered_error, groups=((5, 6, 7), (2, 3, 4), (0, 1)),
                    clip_fractions=(0.0, 0.0005, 0.001, 0.002, 0.005, 0.01)) -> None:
        """minmax, then, group by group (colours first), the clipping range [quantile p,
        quantile 1-p] of the group's channels whose fake-quantized rows x [N, 8] give the
        smallest ``rendered_error(rows [N, 8]) -> float`` (the image error of the quantized
        render). Long fits leave a few Gaussians with large, mutually cancelling colours;
        a range stretched to cover them makes every colour step coarse, and clipping them
        costs far less in the image than the coarse steps cost everywhere (BENCHMARKS.md §4)."""
        self.init_minmax(x)
        t = to_coding_domain(x.detach().float(), self.correlation)  # [N, 8]
        for group in groups:
            cols = list(group)
            base = (self.scale.detach().clone(), self.offset.detach().clone())
            best_err, best = float(rendered_error(self(x))), base
            for p in clip_fractions:
                if p <= 0.0:
                    continue  # the range as it is
                lo = torch.quantile(t[:, cols], p, dim=0)  # [len(cols)]
                hi = torch.quantile(t[:, cols], 1.0 - p, dim=0)
                self.scale.copy_(base[0])
                self.offset.copy_(base[1])
                self.scale[cols] = ((hi - lo).clamp_min(1e-6) / self.qmax[cols]).to(self.scale.device)
                self.offset[cols] = lo.to(self.offset.device)
                self.constrain_()
                err = float(rendered_error(self(x)))
                if err < best_err:
                    best_err, best = err, (self.scale.detach().clone(), self.offset.detach().clone())
            self.scale.copy_(best[0])
            self.offset.copy_(best[1])

    def _set_range(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        span = (hi - lo).clamp_min(1e-6)
        self.scale.data.copy_((span / self.qmax).float().to(self.scale.device))
        self.offset.data.copy_(lo.float().to(self.offset.device))
        self.constrain_()

    @torch.no_grad()
    def hold_range_(self, channels, bounds=None) -> None:
        """From now on keep a range of each of ``channels`` covered: learning may widen it but
        not shrink it (``constrain_``). The range held is the current one, [offset, offset +
        qmax * scale], or with ``bounds`` (one (lo, hi) per channel) that one, which the
        grid is widened to cover at once. For positions: LSQ+ once shrank kodim16's y range
        at 12/10/6 to end 15 pixels above the image's bottom edge, clamping every Gaussian
        below it there (holding it: +1.13 dB; BENCHMARKS.md §4)."""
        channels = list(channels)
        given = bounds is not None
        if not given:
            lo = self.offset.detach().double().cpu()
            hi = lo + self.qmax.double().cpu() * self.scale.detach().double().cpu()
            bounds = [(float(lo[j]), float(hi[j])) for j in channels]
        if len(bounds) != len(channels):
            raise ValueError(f"need one (lo, hi) per channel, got {len(bounds)} for {len(channels)}")
        for j, (lo_j, hi_j) in zip(channels, bounds):
            if not lo_j < hi_j:
                raise ValueError(f"channel {j}: held range needs lo < hi, got ({lo_j}, {hi_j})")
            self.held[0, j] = lo_j
            self.held[1, j] = hi_j
        if given:
            self.constrain_()

    @torch.no_grad()
    def constrain_(self) -> None:
        """Keep each scale > 0 and each channel's dequantized range [offset, offset +
        qmax * scale] inside the file format's limits (``CHANNEL_LIMITS``, less 1e-4 of them
        for float32 rounding), so that every state can be written; a range already inside
        is left bit for bit as it is, except that with ``psd_safe`` b's offset is moved
        (by at most half a step) to put 0 on b's grid. (A Gaussian whose log-variance ran past the limit,
        a near-constant term over the whole image, is then clamped to the limit.) First, a
        range ``hold_range_`` holds is widened back to cover what it held."""
        if triton_path.serves(self.scale):
            from gipp_codec.quant.lsq_triton import constrain_triton  # the same values, one launch

            constrain_triton(self.scale.data, self.offset.data, self.qmax, self.held, B_CHANNEL, self.psd_safe,
                             self.correlation)
            return
        # Written without host syncs (no ``if bool(mask.any())``): where a mask is False the
        # float32 values go through float64 and back unchanged, so each step is a no-op there.
        self.scale.clamp_(min=1e-8)
        qmax = self.qmax.double()
        held = self.held.to(qmax.device)
        lo, hi = self.offset.double(), self.offset.double() + qmax * self.scale.double()
        shrunk = (lo > held[0]) | (hi < held[1])  # NaN (not held) compares False
        lo_new = torch.where(lo > held[0], held[0], lo)
        hi_new = torch.where(hi < held[1], held[1], hi)
        self.offset.copy_(torch.where(shrunk, lo_new, lo).float())
        self.scale.copy_(torch.where(shrunk, (hi_new - lo_new) / qmax, self.scale.double()).float())
        lim = torch.tensor(CHANNEL_LIMITS, dtype=torch.float64, device=qmax.device) * (1.0 - 1e-4)
        if self.correlation:
            lim[B_CHANNEL] = CORRELATION_REACH
        lo = self.offset.double()
        hi = lo + qmax * self.scale.double()
        out = (lo < -lim) | (hi > lim)
        lo_new = lo.clamp(-lim, lim)
        hi_new = torch.maximum(hi.clamp(-lim, lim), lo_new + qmax * 1e-8)
        self.offset.copy_(torch.where(out, lo_new, lo).float())
        self.scale.copy_(torch.where(out, (hi_new - lo_new) / qmax, self.scale.double()).float())
        if self.correlation:
            self._zero_on_b_grid_(CORRELATION_REACH)
            self._b_grid_inside_(CORRELATION_REACH)
        elif self.psd_safe:
            self._zero_on_b_grid_(CHANNEL_LIMITS[B_CHANNEL] * (1.0 - 1e-4))

    @torch.no_grad()
    def _zero_on_b_grid_(self, lim: float) -> None:
        """Move b's offset to the nearest whole number of steps below 0 (staying inside
        +-``lim``) when b's range spans 0, so that the grid value q = -offset / scale is 0.
        In float64 tensor operations on the parameters' device (no host sync); the steps k
        are whole numbers, rounded half to even."""
        s = self.scale[B_CHANNEL].double()
        lo = self.offset[B_CHANNEL].double()
        qmax = self.qmax[B_CHANNEL].double()
        spans = (lo < 0.0) & (lo + qmax * s > 0.0)
        k = torch.minimum(torch.clamp(torch.round(-lo / s), min=0.0), qmax)
        k = torch.where(-k * s < -lim, k - 1.0, k)
        k = torch.where(-k * s + qmax * s > lim, k + 1.0, k)
        self.offset[B_CHANNEL] = torch.where(spans, (-k * s).float(), self.offset[B_CHANNEL])

    @torch.no_grad()
    def _b_grid_inside_(self, lim: float) -> None:
        """When b's grid holds 0 but reaches past +-``lim`` (a range as wide as 2 ``lim``
        cannot always put 0 on its grid within it), shrink its step about 0 until both ends
        are inside: step = lim / max(k, qmax - k) for 0 at grid index k. A grid already
        inside is left as it is. Float64 tensor operations, no host sync."""
        s = self.scale[B_CHANNEL].double()
        lo = self.offset[B_CHANNEL].double()
        qmax = self.qmax[B_CHANNEL].double()
        k = torch.minimum(torch.clamp(torch.round(-lo / s), min=0.0), qmax)
        outside = (lo < -lim) | (lo + qmax * s > lim)
        fix = outside & (lo < 0.0) & (lo + qmax * s > 0.0)
        step = torch.minimum(s, lim / torch.maximum(k, qmax - k))
        self.scale[B_CHANNEL] = torch.where(fix, step.float(), self.scale[B_CHANNEL])
        self.offset[B_CHANNEL] = torch.where(fix, (-k * step).float(), self.offset[B_CHANNEL])

    # -- the compact grid (attribute mode 2) ------------------------------------------
    @torch.no_grad()
    def round_compact_(self) -> None:
        """With ``compact``: keep the current scale and offset as the master values and put
        the nearest grid that attribute mode 2 holds in their place (each scale binary16, each
        offset a binary16 count of steps, ``format.compact_grid.round_to_compact``, which
        keeps b's 0 on its grid), so the forward pass, ``quantize`` and ``export`` use it: a
        straight-through rounding of the grid. A channel whose rounded grid would leave the
        format's limits keeps its own values (the file is then written in mode 0). Without
        ``compact``, nothing."""
        if not self.compact:
            return
        s32, o32 = self.export()  # [8], [8] (one host copy of 16 numbers a step: a sync on CUDA)
        self._master = (self.scale.detach().clone(), self.offset.detach().clone())
        lim = np.array(CHANNEL_LIMITS, np.float64)
        if self.correlation:
            lim[B_CHANNEL] = 1.0
        s, o = compact_grid(s32, o32, self.qmax.double().cpu().numpy(), self.held.numpy(), lim)
        self.scale.copy_(torch.from_numpy(s).to(self.scale.device))
        self.offset.copy_(torch.from_numpy(o).to(self.offset.device))

    @torch.no_grad()
    def restore_master_(self) -> None:
        """Put back the master values that ``round_compact_`` kept (before an optimiser step)."""
        if self._master is not None:
            self.scale.copy_(self._master[0])
            self.offset.copy_(self._master[1])
            self._master = None

    # -- forward ----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 8] -> [N, 8]
        """Fake-quantize attribute rows: the dequantized values, differentiable (LSQ+).
        On the CPU by the one-pass kernels of ``lsq_kernels``,
        elsewhere by ``forward_composed``; the two agree (tests/test_qat.py)."""
        if self._fused(x):
            g = (1.0 / torch.sqrt(max(x.shape[0], 1) * self.qmax))  # [8]
            return _FakeQuantCPU.apply(x, self.scale, self.offset, self.qmax, g, self.psd_safe, self.correlation)
        return self.forward_composed(x)

    def training_step(self, parts: list[torch.Tensor], step) -> "torch.Tensor | None":
        """One QAT training step without autograd's engine, for ``fused_for(parts)`` rows (numba
        kernels on the CPU, Triton ones on CUDA): fake-quantizes the leaf tensors ``parts``
        (means [N, 2], covs [N, 3], colors [N, 3], the rows' columns in order) with the
        forward kernel, calls ``step(means, covs, colors)`` on the dequantized attributes as
        new leaves (it must leave their loss gradients in ``.grad``, as ``render.mse_step``'s
        step does) and returns what it
        returns; then the backward kernel sets ``parts[i].grad`` and the scale's and offset's
        ``.grad`` (LSQ's gradient scale applied). The same numbers as ``forward`` followed
        by autograd's backward (tests/test_qat.py)."""
        x = torch.cat([p.detach() for p in parts], dim=1)  # [N, 8]
        on_triton = triton_path.serves(x)
        if on_triton:  # CUDA: the same passes in Triton (lsq_triton)
            from gipp_codec.quant import lsq_triton

            rows, state = lsq_triton.fake_quant_forward_triton(x, self.scale, self.offset, self.qmax, self.psd_safe,
                                                               self.correlation)
        else:
            out, q, v, e = _fake_quant_numpy(x, self.scale, self.offset, self.qmax, self.psd_safe, self.correlation)
            rows = torch.from_numpy(out)  # [N, 8] dequantized
        widths = [int(p.shape[1]) for p in parts]
        leaves = [r.contiguous().requires_grad_(True) for r in torch.split(rows, widths, dim=1)]
        result = step(*leaves)
        grad_out = torch.cat([leaf.grad if leaf.grad is not None else torch.zeros_like(leaf) for leaf in leaves],
                             dim=1)  # [N, 8]
        if on_triton:
            grad_x, grad_s, grad_o = lsq_triton.fake_quant_backward_triton(state, self.scale, self.offset, self.qmax,
                                                                           grad_out)
        else:
            grad_x, grad_s, grad_o = (torch.from_numpy(a) for a in _fake_quant_backward_numpy(
                x, q, v, e, self.scale, self.offset, self.qmax, grad_out, self.correlation))
        g = 1.0 / torch.sqrt(max(x.shape[0], 1) * self.qmax)  # [8]
        for p, grad in zip(parts, torch.split(grad_x, widths, dim=1)):
            p.grad = grad.contiguous()  # [N, width], the layout autograd would accumulate into
        self.scale.grad = grad_s * g
        self.offset.grad = grad_o * g
        return result

    def fused_for(self, parts: list[torch.Tensor]) -> bool:
        """Whether ``training_step`` serves these parts: float32 tensors on the CPU (numba
        kernels) or, with triton, on CUDA (``lsq_triton``), on the quantizer's device."""
        return all(self._fused(p) or (p.dtype == torch.float32 and p.device == self.scale.device
                                      and triton_path.serves(p)) for p in parts)

    def _fused(self, x: torch.Tensor) -> bool:
        """Whether the CPU kernels serve x: float32 CPU rows."""
        return x.device.type == "cpu" and x.dtype == torch.float32 and self.scale.device.type == "cpu"

    def forward_composed(self, x: torch.Tensor) -> torch.Tensor:  # [N, 8] -> [N, 8]
        """``forward`` written with torch operations (any device; autograd's backward)."""
        n = x.shape[0]
        g = (1.0 / torch.sqrt(max(n, 1) * self.qmax)).to(x.device)  # [8]
        s = _GradScale.apply(self.scale, g)
        beta = _GradScale.apply(self.offset, g)
        t = to_coding_domain(x, self.correlation)
        v = torch.clamp((t - beta) / s, torch.zeros_like(self.qmax), self.qmax)
        q = _RoundSTE.apply(v)
        if self.psd_safe:
            q = q + self._psd_shift(q.detach())  # integer steps of b, no gradient of their own
        value = (q.double() * s.double() + beta.double()).float()
        return _from_value(value, self.correlation)

    @torch.no_grad()
    def _psd_shift(self, q: torch.Tensor) -> torch.Tensor:  # q [N, 8] rounded -> [N, 8]
        """Integer change of each row's b (column ``B_CHANNEL``; zero elsewhere) that moves b
        to the grid value nearest its rounded one for which a*c - b*b > 0 holds in float32
        with the dequantized a and c (``convention.valid_mask``'s rule, as every decoder
        applies it). Rows with no such grid value are left as they are. The CPU kernels do the
        same per row (``lsq_kernels.psd_safe_level``)."""
        s64, beta64 = self.scale.double(), self.offset.double()  # [8]
        value = (q.double() * s64 + beta64).float()  # [N, 8] the decoder's values
        a = torch.exp(value[:, LOG_CHANNELS[0]].double()).float()  # [N]
        c = torch.exp(value[:, LOG_CHANNELS[1]].double()).float()
        sb, ob, qmax = s64[B_CHANNEL], beta64[B_CHANNEL], float(self.qmax[B_CHANNEL])
        qb = q[:, B_CHANNEL].double()  # [N]
        bound = torch.sqrt(a.double() * c.double()) * (1.0 - 1e-4)  # |b| below this is safe
        lo = torch.ceil((-bound - ob) / sb).clamp(0.0, qmax)
        hi = torch.floor((bound - ob) / sb).clamp(0.0, qmax)
        target = torch.where(lo <= hi, torch.minimum(torch.maximum(qb, lo), hi), qb)
        zero = torch.round(-ob / sb).clamp(0.0, qmax)  # the grid index nearest to b = 0
        for _ in range(4):  # float32 edge cases: one more step towards 0 until valid
            vb = (target * sb + ob).float()
            bad = ~(a * c - vb * vb > 0) & (target != zero)
            if not bool(bad.any()):
                break
            target = target + torch.sign(zero - target) * bad
        shift = torch.zeros_like(q)
        shift[:, B_CHANNEL] = (target - qb).to(q.dtype)
        return shift

    @torch.no_grad()
    def quantize(self, x: torch.Tensor) -> np.ndarray:  # [N, 8] uint16
        """The integers q the forward pass uses, as uint16 [N, 8] (channel order x,y,a,b,c,r,g,b)."""
        if self._fused(x.float()):  # the integers the CPU training forward used, exactly
            _, q, _, _ = _fake_quant_numpy(x.float(), self.scale, self.offset, self.qmax, self.psd_safe,
                                           self.correlation)
            return q.astype(np.uint16)
        t = to_coding_domain(x.float(), self.correlation)
        v = torch.clamp((t - self.offset) / self.scale, torch.zeros_like(self.qmax), self.qmax)
        q = torch.round(v)
        if self.psd_safe:
            q = q + self._psd_shift(q)
        return q.cpu().numpy().astype(np.uint16)

    def grad_scale(self, n: int) -> torch.Tensor:
        """The per-channel gradient scale 1 / sqrt(n * (2^bits - 1)) applied to s and beta."""
        return 1.0 / torch.sqrt(n * self.qmax)

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 scales [8] and offsets [8], exactly the values used in training."""
        return (
            self.scale.detach().cpu().numpy().astype(np.float32).copy(),
            self.offset.detach().cpu().numpy().astype(np.float32).copy(),
        )


COMPACT_STEPS_MAX = 65000.0  # |offset / scale| a compact grid keeps below binary16's 65504
SMALLEST_BINARY16 = 2.0 ** -24
SMALLEST_NORMAL_BINARY16 = 2.0 ** -14


def compact_grid(scales: np.ndarray, offsets: np.ndarray, qmax: np.ndarray, held: np.ndarray,
                 limits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's grid on values attribute mode 2 holds: float32 scales [8] and offsets [8]
    from float32 ``scales`` and ``offsets`` [8] (``qmax`` [8] the largest codes, ``held`` [2, 8]
    the ranges each grid must keep covering, NaN where none, ``limits`` [8] the header's).

    Each channel is ``format.compact_grid.round_to_compact``'s nearest grid, after two fixes:
    a scale below binary16's range or too small for its offset to be a binary16 count of
    steps is raised to max(2^-24, |offset| / 65000) first, and the scale of a channel whose
    range collapsed (a step of 1e-8, ``constrain_``'s floor, or a span of 1e-6, ``_set_range``'s,
    as every channel but x and y of a one-Gaussian fit has) to max(2^-14, |offset| / 65000), a normal binary16
    value; such a channel's one value then moves by binary16's precision of its offset
    (about 2^-11 of it), which the fit's other parameters absorb; and a held range that rounding left
    uncovered (binary16's nearest scale can be the smaller one, shortening the grid by up to
    qmax half-ulps; the image's width is held) gets its
    step count lowered or its scale raised by one binary16 ulp at a time until covered. A
    channel whose grid would then leave ``limits`` (the header's range check) keeps its own
    values, and the file is written in mode 0."""
    from gipp_codec.format.compact_grid import round_to_compact

    s32 = np.asarray(scales, np.float32)
    o32 = np.asarray(offsets, np.float32)
    # [8] a collapsed range: constrain_'s floor of 1e-8 a step, or _set_range's 1e-6 span
    collapsed = (s32 <= 1.01e-8) | (s32.astype(np.float64) * qmax <= 1.01e-6)
    floor = np.maximum(np.where(collapsed, SMALLEST_NORMAL_BINARY16, SMALLEST_BINARY16),
                       np.abs(o32.astype(np.float64)) / COMPACT_STEPS_MAX)  # [8]
    s, o = round_to_compact(np.maximum(s32.astype(np.float64), floor).astype(np.float32), o32)
    for j in np.flatnonzero(np.isfinite(held[0]) & np.isfinite(held[1])):
        s16 = np.float16(s[j])
        t16 = np.float16(np.float64(o[j]) / np.float64(s16))  # exact: the grid is compact
        for _ in range(64):
            lo = np.float32(np.float64(t16) * np.float64(s16))
            hi = np.float32(np.float64(qmax[j]) * np.float64(s16) + np.float64(lo))
            if lo <= held[0, j] and hi >= held[1, j]:
                break
            if lo > held[0, j]:
                t16 = np.nextafter(t16, np.float16(-np.inf))
            else:
                s16 = np.nextafter(s16, np.float16(np.inf))
        s[j], o[j] = np.float32(s16), np.float32(np.float64(t16) * np.float64(s16))
    hi = (qmax * s.astype(np.float64) + o.astype(np.float64)).astype(np.float32).astype(np.float64)
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(hi) & (o >= -limits) & (hi <= limits)  # [8] the header's range check
    return np.where(inside, s, s32).astype(np.float32), np.where(inside, o, o32).astype(np.float32)


def dequantize_reference(q: np.ndarray, scales: np.ndarray, offsets: np.ndarray,
                         correlation: bool = False) -> np.ndarray:
    """The decoder's dequantization (numpy): q uint16 [N, 8] -> float32 [N, 8] attributes.

    value = float32(q * scale + offset in float64); a, c = float32(exp(float64(value)));
    with ``correlation`` (payload coding 3) b = float32(value_b * sqrt(a * c)) in float64.
    A readable copy of the normative rule, used to check the training path against it.
    """
    value = (q.astype(np.float64) * scales.astype(np.float32).astype(np.float64)
             + offsets.astype(np.float32).astype(np.float64)).astype(np.float32)
    out = value.copy()
    for j in LOG_CHANNELS:
        out[:, j] = np.exp(value[:, j].astype(np.float64)).astype(np.float32)
    if correlation:
        root = np.sqrt(out[:, 2].astype(np.float64) * out[:, 4].astype(np.float64))
        out[:, B_CHANNEL] = (value[:, B_CHANNEL].astype(np.float64) * root).astype(np.float32)
    return out


def split_attributes(rows: np.ndarray | torch.Tensor):
    """[N, 8] rows -> (means [N, 2], covs [N, 3], colors [N, 3]) views."""
    return rows[:, 0:2], rows[:, 2:5], rows[:, 5:8]

