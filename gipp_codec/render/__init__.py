"""Renderers: one contract, several backends.

Contract (every backend): ``render(means [N,2], covs [N,3], colors [N,3], height, width)
-> image [H, W, 3]``, a torch function differentiable in means, covs and colors,
following ``gipp_codec.render.convention``. Backends:

- ``reference``: plain torch, any device, dense; the oracle.
- ``cpu``: numba forward and hand-written backward; the default on CPU.
- ``cuda``: Triton kernels with GPU tile binning; the default on CUDA when triton
  is installed (it ships with CUDA builds of torch).

Training steps use ``mse_step(renderer, target)``: render and backpropagate the MSE in one call
(fused for the ``cpu`` backend). The torch-free forward used by the decoder lives in
``gipp_codec.render.numba_kernels``.
"""

from typing import Callable

from gipp_codec.errors import ConfigError

# torch is imported inside get_renderer only: the decoder imports
# gipp_codec.render.numba_kernels through this package and must not load torch.

BACKENDS = ("reference", "cpu", "cuda")


def get_renderer(backend: str = "auto", device="cpu") -> Callable:
    """Return the render function for ``backend`` ("auto", "reference", "cpu", "cuda") on ``device``."""
    import torch

    from gipp_codec import triton_path

    device = torch.device(device)
    if backend == "auto":
        if device.type == "cpu":
            backend = "cpu"
        elif device.type == "cuda" and triton_path.available():
            backend = "cuda"
        else:
            backend = "reference"
    if backend == "reference":
        from gipp_codec.render.reference import render_reference

        return render_reference
    if backend == "cpu":
        if device.type != "cpu":
            raise ConfigError(f"the 'cpu' renderer needs a CPU device, got {device}")
        from gipp_codec.render.cpu import render_cpu

        return render_cpu
    if backend == "cuda":
        if device.type != "cuda":
            raise ConfigError(f"the 'cuda' renderer needs a CUDA device, got {device}")
        try:
            from gipp_codec.render.cuda_triton import render_cuda
        except ImportError as exc:
            raise ConfigError(f"the 'cuda' renderer needs triton (pip install triton): {exc}") from None
        return render_cuda
    raise ConfigError(f"unknown renderer backend {backend!r}; expected one of auto, {', '.join(BACKENDS)}")


def mse_step(renderer: Callable, target) -> Callable:
    """``step(means, covs, colors, image=True, loss=False) -> image [H, W, 3]`` (detached) for
    training against ``target`` [H, W, 3]: renders with ``renderer`` and backpropagates
    mean((image - target)^2) into means, covs and colors. With ``image=False`` the caller
    does not need the image: the step may return None instead. With ``loss=True`` it
    returns (image or None, that mean squared error: a float from the numba path, a 0-dim
    float64 tensor from the others, which a GPU need not sync for). For the ``cpu`` renderer the
    numba path (``cpu_mse_step``) writes the loss gradient straight into its backward's
    buffer (and then stores no image unless asked); any other renderer goes through
    autograd with the gradient 2 (image - target) / numel. Both give the same numbers."""
    from gipp_codec.render.cpu import cpu_mse_step, render_cpu

    if renderer is render_cpu:
        return cpu_mse_step(target)
    height, width = int(target.shape[0]), int(target.shape[1])

    def step(means, covs, colors, image=True, loss=False):
        import torch

        rendered = renderer(means, covs, colors, height, width)
        with torch.no_grad():
            residual = rendered.detach() - target  # [H, W, 3]
            # a 0-dim float64 tensor, not a float: reading it on the host would sync a GPU
            value = residual.square().mean().double() if loss else None
            grad = residual.mul_(2.0 / rendered.numel())
        rendered.backward(grad)
        return (rendered.detach(), value) if loss else rendered.detach()

    return step
