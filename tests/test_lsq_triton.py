"""``LSQPlus.constrain_``'s Triton kernel (``quant/lsq_triton.py``, used on CUDA) against
the torch form, bit for bit, on quantizer states that exercise every branch: ranges that
shrank inside what they hold, ranges past the format's limits, b's range spanning 0 (psd_safe)
and not. Under Triton's interpreter in a subprocess (this file with ``--interpret-worker``),
and on CUDA in-process (``@pytest.mark.gpu``)."""

import json
import os
import sys

import pytest
import torch

from gipp_codec.format.constants import CHANNEL_LIMITS
from gipp_codec.quant.lsq import B_CHANNEL, LSQPlus
from triton_aot import compile_sm90, run_interpreted

BITS = (12, 12, 7, 7, 7, 6, 6, 6)


def states(count: int = 40):
    """(scale [8], offset [8], held [2, 8] float64, psd_safe) of varied quantizers."""
    gen = torch.Generator().manual_seed(5)
    lim = torch.tensor(CHANNEL_LIMITS, dtype=torch.float64)
    for i in range(count):
        scale = torch.exp(torch.randn(8, generator=gen, dtype=torch.float64) * 3.0).float()
        offset = (torch.randn(8, generator=gen, dtype=torch.float64) * lim * 0.6).float()
        if i % 5 == 0:
            scale[B_CHANNEL] = 1e-9  # below the floor
        if i % 3 == 0:
            offset[B_CHANNEL] = -float(scale[B_CHANNEL]) * 37.3  # spans 0
        held = torch.full((2, 8), float("nan"), dtype=torch.float64)
        if i % 2 == 0:
            held[0, :2] = offset[:2].double() - 5.0  # holds more than the range: widened
            held[1, :2] = offset[:2].double() + 4096.0 * scale[:2].double() + 7.0
        yield scale, offset, held, i % 4 != 1


def compare(device: str) -> dict:
    """Count of states whose scale and offset the kernel gives exactly as the torch form does."""
    from gipp_codec.quant.lsq_triton import constrain_triton

    same, total, changed = 0, 0, 0
    for scale, offset, held, psd in states():
        ref = LSQPlus(BITS, psd_safe=psd)
        with torch.no_grad():
            ref.scale.copy_(scale)
            ref.offset.copy_(offset)
        ref.held = held.clone()
        ref.constrain_()  # CPU tensors: the torch form
        s, o = scale.clone().to(device), offset.clone().to(device)
        constrain_triton(s, o, ref.qmax.to(device), held, B_CHANNEL, psd)
        total += 1
        same += bool(torch.equal(s.cpu(), ref.scale.detach()) and torch.equal(o.cpu(), ref.offset.detach()))
        changed += bool(not torch.equal(ref.offset.detach(), offset) or not torch.equal(ref.scale.detach(), scale))
    return {"same": same, "total": total, "changed": changed}


def test_kernel_equals_the_torch_form_under_the_interpreter():
    res = run_interpreted(__file__)
    assert res["total"] == 40 and res["same"] == 40, res
    assert res["changed"] >= 20, res  # the states do exercise the constraints


def test_kernel_compiles_for_sm90_without_a_gpu():
    pytest.importorskip("triton")
    from gipp_codec.quant import lsq_triton

    compiled = compile_sm90(
        lsq_triton._constrain_kernel,
        {"scale_ptr": "*fp32", "offset_ptr": "*fp32", "qmax_ptr": "*fp32", "held_ptr": "*fp64", "consts_ptr": "*fp64",
         "C": "constexpr", "B": "constexpr", "PSD": "constexpr", "BLOCK": "constexpr"},
        {"C": 8, "B": B_CHANNEL, "PSD": True, "BLOCK": 8}, {"num_warps": 1, "enable_fp_fusion": False})
    assert "div.rn.f64" in compiled.asm["ptx"] and "fma" not in compiled.asm["ptx"]  # the torch form's roundings


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_kernel_equals_the_torch_form_on_cuda():
    pytest.importorskip("triton")
    res = compare("cuda")
    assert res["same"] == res["total"] == 40, res


if __name__ == "__main__" and "--interpret-worker" in sys.argv:
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
    print(json.dumps(compare("cpu")))
