"""gimg: an image codec built on GaussianImage++ (2D Gaussian splatting).

Public API (imported lazily so ``import gipp_codec`` stays light and the decode
path never loads torch):

- ``encode(image_uint8 [H, W, 3], ...) -> bytes``
- ``encode_with_report(image_uint8 [H, W, 3], ...) -> (bytes, EncodeReport)``
- ``decode(data, device="cpu", *, crop=None, scale=None, size=None) -> uint8 [H, W, 3]``
- ``open_gimg(data: bytes) -> GimgImage``: parse once, then ``.render(crop=, scale=, size=, device=)``
  many times (regions for a tile viewer)
- ``read_info(data: bytes) -> dict``
- ``read_gaussians(data: bytes) -> GaussianSet`` (the Gaussians as arrays, ``gipp_codec.export``)
- ``pack_gaussians(arrays, bits=None, float32=False, render_convention=None) -> bytes`` (arrays into a
  file, ``gipp_codec.pack``)
- ``fit_image(image, gaussians=..., ...)`` (representation only)
- the errors (``gipp_codec.errors``): ``GimgError`` (a ValueError) and its subclasses
  ``InputImageError``, ``ConfigError`` and ``FormatError`` (a damaged or invalid .gimg, with
  subclasses of its own); ``GimgWarning``
"""

import os as _os

__version__ = "0.1.0"

# torch and numba both run OpenMP thread pools; with the default spin-waiting they
# steal each other's cores (measured: 72 ms vs 18 ms per forward+backward at 10k
# Gaussians on 2 cores, BENCHMARKS.md). This must be set before torch is imported;
# a value the user set is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_LAZY = {
    "encode": ("gipp_codec.encoder", "encode"),
    "encode_with_report": ("gipp_codec.encoder", "encode_with_report"),
    "decode": ("gipp_codec.decoder", "decode"),
    "open_gimg": ("gipp_codec.decoder", "open_gimg"),
    "read_info": ("gipp_codec.decoder", "read_info"),
    "read_gaussians": ("gipp_codec.export", "read_gaussians"),
    "pack_gaussians": ("gipp_codec.pack", "pack_gaussians"),
    "fit_image": ("gipp_codec.fit.api", "fit_image"),
    **{name: ("gipp_codec.errors", name)
       for name in ("GimgError", "InputImageError", "ConfigError", "FormatError", "ArgumentTypeError",
                    "GimgWarning")},
}


__all__ = list(_LAZY)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module 'gipp_codec' has no attribute {name!r}")
