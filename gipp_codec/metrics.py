"""Image quality metrics used everywhere in gimg: PSNR and MS-SSIM (pytorch-msssim).

Both compare RGB images; uint8 arrays are scaled to [0, 1]. MS-SSIM needs the short
side of the image to be larger than 160 pixels (5 scales of an 11-tap window); for
smaller images ``ms_ssim`` returns ``None``.
"""

import math

import numpy as np

MS_SSIM_MIN_SIDE = 161


def _as_float01(image) -> np.ndarray:
    """Return image as float64 [H, W, C] in [0, 1]; uint8 input is divided by 255."""
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    return arr.astype(np.float64)


def mse(a, b) -> float:
    """Mean squared error between two images of the same shape, on the [0, 1] scale."""
    fa, fb = _as_float01(a), _as_float01(b)
    if fa.shape != fb.shape:
        raise ValueError(f"shape mismatch {fa.shape} vs {fb.shape}")
    return float(np.mean((fa - fb) ** 2))


def psnr(a, b) -> float:
    """PSNR in dB between two images (uint8 or float in [0, 1]); inf when identical."""
    err = mse(a, b)
    return math.inf if err == 0.0 else 10.0 * math.log10(1.0 / err)


def psnr_from_mse(err: float) -> float:
    """PSNR in dB for a mean squared error on the [0, 1] scale."""
    return math.inf if err <= 0.0 else 10.0 * math.log10(1.0 / err)


def ms_ssim(a, b) -> float | None:
    """MS-SSIM (pytorch-msssim, data_range 1) of two [H, W, 3] images; None if too small."""
    fa, fb = _as_float01(a), _as_float01(b)
    if min(fa.shape[0], fa.shape[1]) < MS_SSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    ta = torch.from_numpy(fa).permute(2, 0, 1)[None].float().clamp(0, 1)
    tb = torch.from_numpy(fb).permute(2, 0, 1)[None].float().clamp(0, 1)
    with torch.no_grad():
        return float(_ms_ssim(ta, tb, data_range=1.0, size_average=True))
