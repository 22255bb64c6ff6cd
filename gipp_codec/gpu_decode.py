"""Decoding on a GPU: a parsed file rendered by the Triton renderer (``gimg decode --device cuda``).

``decoder.py`` imports this module only when a device other than the CPU is asked for, so
the default decode path stays torch-free. The Gaussians are dequantized on the host exactly
as on the CPU path and summed by ``render.cuda_triton.render_cuda`` in the file's render
convention; the base layer is upsampled on the host by the spec's arithmetic and added to
the render in float32, and the 8-bit levels are taken on the host by the same ``to_uint8``
as the CPU path. The Triton kernels sum in float32 in another order than the numba kernel,
so a pixel that lies on a rounding boundary can come out one level apart: within the
conformance tolerances, checked on CUDA by the GPU tests and everywhere under Triton's
interpreter (``tests/test_gpu_decode.py``).
"""

import numpy as np
import torch

from gipp_codec import triton_path
from gipp_codec.devices import resolve_device
from gipp_codec.errors import ConfigError
from gipp_codec.format.base_layer import upsample
from gipp_codec.format.container import ParsedGimg


def resolve_decode_device(device: str) -> str:
    """The device a decode asked to run on ``device`` ("cpu", "cuda" or "auto") renders on:
    ``devices.resolve_device``'s rule (unknown names and CUDA asked for without it are a
    ConfigError), and where it gives CUDA, triton must be there too ("auto" then falls
    back to the CPU)."""
    dev = resolve_device(device)
    if dev.type == "cuda" and not triton_path.available():
        if str(device) == "auto":
            return "cpu"
        raise ConfigError("decoding on CUDA needs triton (pip install triton), which is not installed")
    return str(dev)


def render_parsed_on_device(parsed: ParsedGimg, device: str | torch.device, means: np.ndarray, covs: np.ndarray,
                            colors: np.ndarray, size: tuple[int, int] | None = None,
                            base_factors: tuple[float, float] | None = None,
                            base_origin: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The unclamped render float32 [H, W, 3] (host) of a parsed file whose dequantized
    Gaussians are means [N, 2], covs [N, 3], colors [N, 3] (float32), summed on ``device``
    by the Triton renderer, plus the file's base layer. ``size`` (W, H) and ``base_factors``
    (the base's block side in output columns and rows): a render at another size than the
    file's, of Gaussians already mapped to it (``render.rescale``); ``base_origin``: the
    (column, row) of the base's plane at the render's first pixel, for a region of the file."""
    from gipp_codec.render.cuda_triton import render_cuda

    w, h = (int(parsed.header["width"]), int(parsed.header["height"])) if size is None else size
    if means.shape[0] == 0:
        image = np.zeros((h, w, 3), np.float32)
    else:
        tensors = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device) for x in (means, covs, colors)]
        with torch.no_grad():
            image = render_cuda(*tensors, h, w, convention=int(parsed.header["render_convention"])).cpu().numpy()
    if parsed.base is not None:
        image = image + upsample(parsed.base, w, h, base_factors, base_origin)  # float32 sums, spec §7
    return np.ascontiguousarray(image, dtype=np.float32)
