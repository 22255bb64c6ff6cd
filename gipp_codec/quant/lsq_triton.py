"""``LSQPlus.constrain_`` on CUDA in one Triton launch.

QAT constrains the quantizer after every step: each scale stays positive, each channel's
range keeps covering what it holds and stays inside the format's limits, and (``psd_safe``)
b's grid keeps 0 on it. In torch that is some forty operations on [8]-element tensors per
iteration, whose launch overhead is what a GPU pays for them (BENCHMARKS.md §7). This kernel
does the same arithmetic, lane j for channel j, in the same float32 / float64 operations
without FMA contraction, so it gives the torch form's values bit for bit (a test).
"""

import torch
import triton
import triton.language as tl

from gipp_codec.format.constants import CHANNEL_LIMITS

_CONSTANTS: dict = {}


def _constants(device: torch.device) -> torch.Tensor:
    """[9] float64 on ``device``: the channels' limits less 1e-4 of them [8], then 1e-8
    (float64 values a Triton literal would round to float32); cached per device."""
    key = str(device)
    if key not in _CONSTANTS:
        lim = torch.tensor(CHANNEL_LIMITS, dtype=torch.float64) * (1.0 - 1e-4)
        _CONSTANTS[key] = torch.cat([lim, torch.tensor([1e-8], dtype=torch.float64)]).to(device)
    return _CONSTANTS[key]


@triton.jit
def _round_half_even(x):
    """float64 x rounded to the nearest whole number, ties to even (|x| < 2^51)."""
    r = tl.floor(x + 0.5)
    tie = (r - x) == 0.5
    odd = (r - 2.0 * tl.floor(r * 0.5)) == 1.0
    return tl.where(tie & odd, r - 1.0, r)


@triton.jit
def _constrain_kernel(
    scale_ptr, offset_ptr, qmax_ptr,  # [C] float32 (scale and offset updated in place)
    held_ptr,  # [2, C] float64: the range each channel must keep covering (NaN: none)
    consts_ptr,  # [C + 1] float64: the limits, then 1e-8
    C: tl.constexpr, B: tl.constexpr, PSD: tl.constexpr, BLOCK: tl.constexpr,
):
    j = tl.arange(0, BLOCK)
    ch = j < C
    scale = tl.maximum(tl.load(scale_ptr + j, mask=ch, other=1.0), 1e-8)  # clamp_(min=1e-8), float32
    offset = tl.load(offset_ptr + j, mask=ch, other=0.0)
    qmax = tl.load(qmax_ptr + j, mask=ch, other=1.0).to(tl.float64)
    held_lo = tl.load(held_ptr + j, mask=ch, other=0.0)
    held_hi = tl.load(held_ptr + C + j, mask=ch, other=0.0)
    lim = tl.load(consts_ptr + j, mask=ch, other=1.0)
    tiny = tl.load(consts_ptr + C)
    # 1. widen a range back over what it holds (NaN: compares False, nothing held)
    lo = offset.to(tl.float64)
    hi = lo + qmax * scale.to(tl.float64)
    shrunk = (lo > held_lo) | (hi < held_hi)
    lo_new = tl.where(lo > held_lo, held_lo, lo)
    hi_new = tl.where(hi < held_hi, held_hi, hi)
    offset = tl.where(shrunk, lo_new, lo).to(tl.float32)
    scale = tl.where(shrunk, (hi_new - lo_new) / qmax, scale.to(tl.float64)).to(tl.float32)
    # 2. keep the range inside the format's limits
    lo = offset.to(tl.float64)
    hi = lo + qmax * scale.to(tl.float64)
    out = (lo < -lim) | (hi > lim)
    lo_new = tl.minimum(tl.maximum(lo, -lim), lim)
    hi_new = tl.maximum(tl.minimum(tl.maximum(hi, -lim), lim), lo_new + qmax * tiny)
    offset = tl.where(out, lo_new, lo).to(tl.float32)
    scale = tl.where(out, (hi_new - lo_new) / qmax, scale.to(tl.float64)).to(tl.float32)
    # 3. psd_safe: b's offset a whole number k of steps below 0 when its range spans 0
    if PSD:
        s = scale.to(tl.float64)
        lo = offset.to(tl.float64)
        spans = (lo < 0.0) & (lo + qmax * s > 0.0) & (j == B)
        k = tl.minimum(tl.maximum(_round_half_even(-lo / s), 0.0), qmax)
        k = tl.where(-k * s < -lim, k - 1.0, k)
        k = tl.where(-k * s + qmax * s > lim, k + 1.0, k)
        offset = tl.where(spans, (-k * s).to(tl.float32), offset)
    tl.store(scale_ptr + j, scale, mask=ch)
    tl.store(offset_ptr + j, offset, mask=ch)


def constrain_triton(scale: torch.Tensor, offset: torch.Tensor, qmax: torch.Tensor, held: torch.Tensor,
                     b_channel: int, psd_safe: bool) -> None:
    """``LSQPlus.constrain_`` of ``scale``, ``offset`` [C] float32 (in place, one launch);
    ``qmax`` [C] float32, ``held`` [2, C] float64, all on one device."""
    c = int(scale.shape[0])
    _constrain_kernel[(1,)](scale, offset, qmax, held.to(device=scale.device).contiguous(),
                            _constants(scale.device), C=c, B=int(b_channel), PSD=bool(psd_safe),
                            BLOCK=triton.next_power_of_2(c), num_warps=1, enable_fp_fusion=False)
