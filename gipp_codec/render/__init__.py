"""Renderers: one contract, several backends.

Contract (every backend): ``render(means [N,2], covs [N,3], colors [N,3], height, width)
-> image [H, W, 3]``, a torch function differentiable in means, covs and colors,
following ``gipp_codec.render.convention``. Backends:

- ``reference``: plain torch, any device, dense; the oracle.
- ``cpu``: numba forward and hand-written backward; the default on CPU.

The torch-free forward used by the decoder lives in ``gipp_codec.render.numba_kernels``.
"""

from typing import Callable

import torch

from gipp_codec.errors import ConfigError

BACKENDS = ("reference", "cpu")


def get_renderer(backend: str = "auto", device: torch.device | str = "cpu") -> Callable:
    """Return the render function for ``backend`` ("auto", "reference", "cpu") on ``device``."""
    device = torch.device(device)
    if backend == "auto":
        backend = "cpu" if device.type == "cpu" else "reference"
    if backend == "reference":
        from gipp_codec.render.reference import render_reference

        return render_reference
    if backend == "cpu":
        if device.type != "cpu":
            raise ConfigError(f"the 'cpu' renderer needs a CPU device, got {device}")
        from gipp_codec.render.cpu import render_cpu

        return render_cpu
    raise ConfigError(f"unknown renderer backend {backend!r}; expected one of auto, {', '.join(BACKENDS)}")
