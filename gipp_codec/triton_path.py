"""Where work goes to the Triton kernels: tensors on CUDA, with triton installed.

One predicate for every CUDA fast path (the renderer's choice, RowAdam's step, LSQ+'s
training step and constraints), called through this module (``triton_path.serves(t)``) so
that ``tools/gpu_op_count.py`` can route CPU tensors through the kernels under Triton's
interpreter; and the float64 constants those kernels read from memory. Training and
rendering code only: the decoder never imports it.
"""

import functools
import importlib.util

import torch

_CONSTANTS: dict = {}


@functools.cache
def available() -> bool:
    """Whether triton can be imported (looked up once)."""
    return importlib.util.find_spec("triton") is not None


def serves(t: torch.Tensor) -> bool:
    """Whether the work on tensor ``t`` runs in the Triton kernels: ``t`` on CUDA, triton there."""
    return t.is_cuda and available()


def constants(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """[len(values)] float64 on ``device``, made once per (values, device): a Python float
    passed to a Triton kernel, or written in one, becomes float32, so float64 constants that
    float32 cannot hold travel in memory."""
    key = (tuple(values), str(device))
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.tensor(values, dtype=torch.float64, device=device)
    return _CONSTANTS[key]
