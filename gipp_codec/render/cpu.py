"""The ``cpu`` renderer: numba forward and hand-written backward behind torch autograd.

Same contract as ``render_reference`` (convention: ``gipp_codec.render.convention``).
The kernels run in float32 on CPU (``gipp_codec.render.numba_kernels``); inputs of any
float dtype are converted once and gradients are returned in each input's dtype.
Invalid Gaussians (not positive definite, or with non-finite attributes) contribute
nothing and receive zero gradient.
"""

import numpy as np
import torch

from gipp_codec.errors import ConfigError
from gipp_codec.render import numba_kernels


def _as_f32_numpy(t: torch.Tensor) -> np.ndarray:
    """Contiguous float32 CPU numpy view (a copy only where dtype/layout/device differ)."""
    t = t.detach()
    if t.dtype != torch.float32 or t.device.type != "cpu":
        t = t.to(device="cpu", dtype=torch.float32)
    if not t.is_contiguous():
        t = t.contiguous()
    return t.numpy()


class _RenderCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, covs, colors, height, width, convention):
        # The prepared scene (float32 views + per-Gaussian constants) is kept for backward:
        # no second conversion or setup pass there.
        pp = numba_kernels.prepare(_as_f32_numpy(means), _as_f32_numpy(covs), _as_f32_numpy(colors), height, width,
                                   convention)
        image = numba_kernels.forward_prepared(pp)  # [H, W, 3] float32, C order
        ctx.pp = pp
        ctx.dtypes = (means.dtype, covs.dtype, colors.dtype)
        out = torch.from_numpy(image)
        if means.dtype != torch.float32 and means.dtype.is_floating_point:
            out = out.to(means.dtype)
        return out

    @staticmethod
    def backward(ctx, grad_image):
        pp = ctx.pp
        ctx.pp = None  # free the scene constants as soon as they are used
        g = _as_f32_numpy(grad_image)  # [H, W, 3]: as-is when contiguous float32
        g_means, g_covs, g_colors = numba_kernels.backward_prepared(pp, g)
        need = ctx.needs_input_grad
        dt_m, dt_c, dt_col = ctx.dtypes
        return (
            _to(g_means, dt_m) if need[0] else None,
            _to(g_covs, dt_c) if need[1] else None,
            _to(g_colors, dt_col) if need[2] else None,
            None,
            None,
            None,
        )


class _KnownGradients(torch.autograd.Function):
    """A scalar whose backward hands each input a gradient computed beforehand:
    ``_KnownGradients.apply(n, *tensors, *grads).backward()`` backpropagates ``grads`` into
    ``tensors`` and on through whatever computed them, the same numbers as
    ``torch.autograd.backward(tensors, grads)``, whose explicit gradients make torch import
    its symbolic-shapes module (and sympy) on first use: start-up time that every encode
    would pay (BENCHMARKS.md §8)."""

    @staticmethod
    def forward(ctx, n, *tensors_and_grads):
        ctx.grads = tensors_and_grads[n:]
        return tensors_and_grads[0].new_zeros(())

    @staticmethod
    def backward(ctx, grad_out):  # grad_out is exactly 1 (a root without gradient)
        grads, ctx.grads = ctx.grads, None
        return (None, *grads, *(None,) * len(grads))


def _to(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    t = torch.from_numpy(a)
    return t if dtype == torch.float32 else t.to(dtype)


def render_cpu(
    means: torch.Tensor,  # [N, 2] (x, y) in pixels
    covs: torch.Tensor,  # [N, 3] (a, b, c) effective covariance
    colors: torch.Tensor,  # [N, 3]
    height: int,
    width: int,
    convention: int = numba_kernels.ENCODER_CONVENTION,
) -> torch.Tensor:  # [H, W, 3] unclamped, in means' dtype (float32 kernels)
    """Render Gaussians with the numba kernels in render ``convention`` (spec §7; the
    encoder's by default); differentiable in means, covs and colors."""
    if means.device.type != "cpu":
        raise ConfigError(f"render_cpu needs CPU tensors, got {means.device}")
    return _RenderCPU.apply(means, covs, colors, int(height), int(width), int(convention))


def cpu_mse_step(target: torch.Tensor):  # target [H, W, 3]
    """``step(means [N,2], covs [N,3], colors [N,3], image=True, loss=False) -> image [H, W, 3]``
    (detached, unclamped; None with ``image=False``, which skips storing it)
    for training against ``target`` on the CPU: renders, and backpropagates
    mean((image - target)^2) into means, covs and colors (through autograd, so it flows on
    through whatever computed them; leaves without a gradient yet get theirs
    assigned directly, as the engine would, so leaf hooks do not run). The same numbers as
    ``render_cpu(...).backward(2 * (image - target) / numel)``, with the loss gradient
    written by the forward kernel, from its band buffers, straight into the planar buffer
    the backward kernel reads (``forward_residual_prepared``). With ``loss=True`` it
    returns (image or None, the loss as a float), the loss summed by the same kernel."""
    if target.device.type != "cpu":
        raise ConfigError(f"cpu_mse_step needs a CPU target, got {target.device}")
    height, width = int(target.shape[0]), int(target.shape[1])
    target_planar = np.ascontiguousarray(_as_f32_numpy(target).transpose(2, 0, 1))  # [3, H, W], once
    numel = 3 * height * width
    scale = 2.0 / numel

    def step(means: torch.Tensor, covs: torch.Tensor, colors: torch.Tensor, image: bool = True,
             loss: bool = False):
        for t in (means, covs, colors):
            if t.device.type != "cpu":
                raise ConfigError(f"cpu_mse_step needs CPU tensors, got {t.device}")
        pp = numba_kernels.prepare(_as_f32_numpy(means), _as_f32_numpy(covs), _as_f32_numpy(colors), height, width)
        rendered, gp, sse = numba_kernels.forward_residual_prepared(pp, target_planar, scale, image)  # [H, W, 3], [3, H, Wp]
        grads = numba_kernels.backward_planar_prepared(pp, gp)
        pairs = [(t, _to(g, t.dtype)) for t, g in zip((means, covs, colors), grads) if t.requires_grad]
        if pairs and all(t.is_leaf and t.grad is None for t, _ in pairs):
            for t, g in pairs:  # what autograd's engine would store, without starting it
                t.grad = g
        elif pairs:
            _KnownGradients.apply(len(pairs), *(t for t, _ in pairs), *(g for _, g in pairs)).backward()
        out = None
        if rendered is not None:
            out = torch.from_numpy(rendered)
            if means.dtype != torch.float32 and means.dtype.is_floating_point:
                out = out.to(means.dtype)
        return (out, sse / numel) if loss else out

    return step
