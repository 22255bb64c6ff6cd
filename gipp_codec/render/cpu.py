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
    return t.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()


class _RenderCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, covs, colors, height, width):
        m = _as_f32_numpy(means)  # [N, 2]
        c = _as_f32_numpy(covs)  # [N, 3]
        col = _as_f32_numpy(colors)  # [N, 3]
        image = numba_kernels.forward(m, c, col, height, width)  # [H, W, 3]
        ctx.save_for_backward(means, covs, colors)
        ctx.size = (height, width)
        ctx.dtypes = (means.dtype, covs.dtype, colors.dtype)
        out = torch.from_numpy(image)
        if means.dtype != torch.float32 and means.dtype.is_floating_point:
            out = out.to(means.dtype)
        return out

    @staticmethod
    def backward(ctx, grad_image):
        m, c, col = (_as_f32_numpy(t) for t in ctx.saved_tensors)
        height, width = ctx.size
        g = _as_f32_numpy(grad_image)  # [H, W, 3]
        g_means, g_covs, g_colors = numba_kernels.backward(m, c, col, height, width, g)
        need = ctx.needs_input_grad
        dt_m, dt_c, dt_col = ctx.dtypes
        return (
            torch.from_numpy(g_means).to(dt_m) if need[0] else None,
            torch.from_numpy(g_covs).to(dt_c) if need[1] else None,
            torch.from_numpy(g_colors).to(dt_col) if need[2] else None,
            None,
            None,
        )


def render_cpu(
    means: torch.Tensor,  # [N, 2] (x, y) in pixels
    covs: torch.Tensor,  # [N, 3] (a, b, c) effective covariance
    colors: torch.Tensor,  # [N, 3]
    height: int,
    width: int,
) -> torch.Tensor:  # [H, W, 3] unclamped, in means' dtype (float32 kernels)
    """Render Gaussians with the numba kernels; differentiable in means, covs and colors."""
    if means.device.type != "cpu":
        raise ConfigError(f"render_cpu needs CPU tensors, got {means.device}")
    return _RenderCPU.apply(means, covs, colors, int(height), int(width))
