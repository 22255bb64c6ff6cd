"""Fitting: image -> N 2D Gaussians (GaussianImage++ representation) and quantization-aware training.

Public entry points live in ``gipp_codec.fit.api``: ``fit_image`` and ``fit_and_quantize``.
"""

from gipp_codec.fit.config import FitConfig, QATConfig

__all__ = ["FitConfig", "QATConfig"]
