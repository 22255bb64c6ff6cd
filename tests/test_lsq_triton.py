"""LSQ+'s Triton kernels (``quant/lsq_triton.py``, used on CUDA) against the CPU's forms:

- ``LSQPlus.constrain_``'s kernel against the torch form, bit for bit, on quantizer states
  that exercise every branch: ranges that shrank inside what they hold, ranges past the
  format's limits, b's range spanning 0 (psd_safe) and not;
- the fake quantizer's forward and backward (``LSQPlus.training_step`` on CUDA) against the
  numba kernels' training step (itself equal to forward + autograd, tests/test_qat.py): the
  same integers and dequantized rows, gradients within float32 rounding.

Under Triton's interpreter in a subprocess (this file with ``--interpret-worker``), and on
CUDA in-process (``@pytest.mark.gpu``)."""

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


def correlation_states(count: int = 30):
    """(scale [8], offset [8], held, psd_safe) whose b ranges are rho's: inside, past and about
    +-CORRELATION_REACH, spanning 0 or not, so that the zero snap and the step's shrink act."""
    gen = torch.Generator().manual_seed(9)
    for i, (scale, offset, held, psd) in enumerate(states(count)):
        lo = -0.999 + float(torch.rand((), generator=gen)) * (0.004 if i % 3 else 1.2)
        hi = 0.999 - float(torch.rand((), generator=gen)) * (0.004 if i % 2 else 1.2) + (0.01 if i % 5 == 0 else 0.0)
        scale[B_CHANNEL] = (hi - lo) / 127.0
        offset[B_CHANNEL] = lo
        yield scale, offset, held, psd


def compare(device: str) -> dict:
    """Count of states whose scale and offset the kernel gives exactly as the torch form does
    (with the correlation form too: ``corr_*``)."""
    from gipp_codec.quant.lsq_triton import constrain_triton

    same, total, changed = 0, 0, 0
    corr_same, corr_total, corr_changed = 0, 0, 0
    for scale, offset, held, psd in correlation_states():
        ref = LSQPlus(BITS, psd_safe=psd, correlation=True)
        with torch.no_grad():
            ref.scale.copy_(scale)
            ref.offset.copy_(offset)
        ref.held = held.clone()
        ref.constrain_()
        s, o = scale.clone().to(device), offset.clone().to(device)
        constrain_triton(s, o, ref.qmax.to(device), held, B_CHANNEL, psd, True)
        corr_total += 1
        corr_same += bool(torch.equal(s.cpu(), ref.scale.detach()) and torch.equal(o.cpu(), ref.offset.detach()))
        corr_changed += bool(not torch.equal(ref.scale.detach()[B_CHANNEL], scale[B_CHANNEL]))
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
    return {"same": same, "total": total, "changed": changed, "corr_same": corr_same, "corr_total": corr_total,
            "corr_changed": corr_changed}


def quantizer_rows(n: int, psd_safe: bool, corr: bool = False):
    """(rows [n, 8], a quantizer with clipped ranges) as tests/test_qat.py builds them; with
    ``psd_safe`` variances over ~5 decades, so b's step exceeds small Gaussians' sqrt(a c);
    ``corr``: b coded as the correlation."""
    g = torch.Generator().manual_seed(7 if psd_safe else 3)
    x = torch.rand(n, 2, generator=g) * torch.tensor([768.0, 512.0])
    spread = 2.5 if psd_safe else 1.5
    a = torch.exp(torch.randn(n, generator=g) * spread + 1.0)
    c = torch.exp(torch.randn(n, generator=g) * spread + 1.0)
    b = (torch.rand(n, generator=g) - 0.5) * 1.9 * torch.sqrt(a * c)
    rows = torch.cat((x, a[:, None], b[:, None], c[:, None], torch.randn(n, 3, generator=g) * 3), dim=1)
    quant = LSQPlus((12, 12, 10, 10, 10, 6, 6, 6), psd_safe=psd_safe, correlation=corr)
    quant.init_minmax(rows)
    with torch.no_grad():  # clip some values, as a learned range does
        quant.offset.add_(quant.scale * quant.qmax * 0.05)
        quant.scale.mul_(0.9)
    return rows, quant


def training_step_diffs(device: str, psd_safe: bool, corr: bool = False) -> dict:
    """The Triton training step (on ``device``) against the numba one (on the CPU): whether the
    dequantized rows agree exactly, and the largest relative gradient differences."""
    from gipp_codec import triton_path

    rows, quant = quantizer_rows(700, psd_safe, corr)  # several programs of the backward
    w = torch.randn(700, 8, generator=torch.Generator().manual_seed(1))

    def run(dev: str, on_triton: bool):
        q = LSQPlus(quant.bits, psd_safe=psd_safe, correlation=corr).to(dev)
        with torch.no_grad():
            q.scale.copy_(quant.scale)
            q.offset.copy_(quant.offset)
        parts = [p.clone().to(dev).requires_grad_(True) for p in torch.split(rows, [2, 3, 3], dim=1)]
        seen = {}
        ww = w.to(dev)

        def step(means, covs, colors):  # nonlinear in every attribute
            seen["rows"] = torch.cat([means, covs, colors], dim=1).detach().cpu()
            ((means * ww[:, :2]).sum() + (covs.sin() * ww[:, 2:5]).sum() + (colors ** 2 * ww[:, 5:]).sum()).backward()

        original = triton_path.serves
        triton_path.serves = (lambda t: True) if on_triton else (lambda t: False)
        try:
            assert q.fused_for(parts)
            q.training_step(parts, step)
        finally:
            triton_path.serves = original
        return seen["rows"], [p.grad.cpu() for p in parts] + [q.scale.grad.cpu(), q.offset.grad.cpu()]

    rows_t, grads_t = run(device, True)
    rows_n, grads_n = run("cpu", False)
    rel = [float((a - b).abs().max() / b.abs().max().clamp(min=1e-30)) for a, b in zip(grads_t, grads_n)]
    return {"rows_equal": bool(torch.equal(rows_t, rows_n)), "grad_rel": rel,
            "nonzero": all(bool((g != 0).any()) for g in grads_t)}


@pytest.fixture(scope="module")
def interpreted():
    return run_interpreted(__file__)


def test_kernel_equals_the_torch_form_under_the_interpreter(interpreted):
    res = interpreted["constrain"]
    assert res["total"] == 40 and res["same"] == 40, res
    assert res["changed"] >= 20, res  # the states do exercise the constraints
    assert res["corr_total"] == 30 and res["corr_same"] == 30, res
    assert res["corr_changed"] >= 5, res  # rho's grid was moved: snapped, clamped or shrunk


@pytest.mark.parametrize("psd_safe", ["False", "True", "corr"])
def test_fake_quantizer_kernels_match_the_numba_training_step_under_the_interpreter(interpreted, psd_safe):
    res = interpreted["training_step"][psd_safe]
    assert res["rows_equal"] and res["nonzero"], res
    assert max(res["grad_rel"]) <= 1e-5, res


def test_kernel_compiles_for_sm90_without_a_gpu():
    pytest.importorskip("triton")
    from gipp_codec.quant import lsq_triton

    compiled = compile_sm90(
        lsq_triton._constrain_kernel,
        {"scale_ptr": "*fp32", "offset_ptr": "*fp32", "qmax_ptr": "*fp32", "held_ptr": "*fp64", "consts_ptr": "*fp64",
         "C": "constexpr", "B": "constexpr", "PSD": "constexpr", "BLOCK": "constexpr"},
        {"C": 8, "B": B_CHANNEL, "PSD": True, "CORR": False, "BLOCK": 8}, {"num_warps": 1, "enable_fp_fusion": False})
    assert "div.rn.f64" in compiled.asm["ptx"] and "fma" not in compiled.asm["ptx"]  # the torch form's roundings
    compiled = compile_sm90(
        lsq_triton._constrain_kernel,
        {"scale_ptr": "*fp32", "offset_ptr": "*fp32", "qmax_ptr": "*fp32", "held_ptr": "*fp64", "consts_ptr": "*fp64",
         "C": "constexpr", "B": "constexpr", "PSD": "constexpr", "CORR": "constexpr", "BLOCK": "constexpr"},
        {"C": 8, "B": B_CHANNEL, "PSD": False, "CORR": True, "BLOCK": 8}, {"num_warps": 1, "enable_fp_fusion": False})
    assert "fma" not in compiled.asm["ptx"]
    fake = {"x_ptr": "*fp32", "scale_ptr": "*fp32", "offset_ptr": "*fp32", "qmax_ptr": "*fp32", "consts_ptr": "*fp64",
            "out_ptr": "*fp32", "q_ptr": "*fp32", "v_ptr": "*fp32", "e_ptr": "*fp64", "n": "i32",
            "PSD": "constexpr", "CORR": "constexpr", "NCH": "constexpr", "BLOCK": "constexpr"}
    backward = {"x_ptr": "*fp32", "q_ptr": "*fp32", "v_ptr": "*fp32", "e_ptr": "*fp64", "scale_ptr": "*fp32",
                "offset_ptr": "*fp32", "qmax_ptr": "*fp32", "grad_out_ptr": "*fp32", "grad_x_ptr": "*fp32",
                "partial_ptr": "*fp64", "n": "i32", "CORR": "constexpr", "BLOCK": "constexpr"}
    for psd, corr in ((True, False), (False, True)):
        compiled = compile_sm90(lsq_triton._fake_quant_forward_kernel, fake,
                                {"PSD": psd, "CORR": corr, "NCH": 8, "BLOCK": lsq_triton.ROWS_PER_PROGRAM},
                                {"num_warps": 4, "enable_fp_fusion": False})  # (its float32 log is CUDA's, with FMAs)
        if corr:  # rho's divisor and b's dequantized value: IEEE square roots and division
            assert "sqrt.rn.f64" in compiled.asm["ptx"] and "div.rn.f32" in compiled.asm["ptx"]
        compiled = compile_sm90(lsq_triton._fake_quant_backward_kernel, backward,
                                {"CORR": corr, "BLOCK": lsq_triton.ROWS_PER_PROGRAM},
                                {"num_warps": 4, "enable_fp_fusion": False})
        if corr:
            assert "sqrt.rn.f64" in compiled.asm["ptx"]


def test_channel_layout_agrees_with_lsq():
    pytest.importorskip("triton")
    from gipp_codec.quant import lsq, lsq_triton

    layout = (lsq_triton.LOG_A.value, lsq_triton.LOG_C.value, lsq_triton.B_COL.value)
    assert layout == (*lsq.LOG_CHANNELS, lsq.B_CHANNEL)
    assert lsq_triton.CORRELATION_REACH == lsq.CORRELATION_REACH


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_kernel_equals_the_torch_form_on_cuda():
    pytest.importorskip("triton")
    res = compare("cuda")
    assert res["same"] == res["total"] == 40, res


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("psd_safe,corr", [(False, False), (True, False), (False, True)])
def test_fake_quantizer_kernels_match_the_numba_training_step_on_cuda(psd_safe, corr):
    """On the GPU the float32 log and the float64 exp are CUDA's, not libm's: a value may
    round to the neighbouring integer now and then, so rows agree to float32 rounding there."""
    pytest.importorskip("triton")
    res = training_step_diffs("cuda", psd_safe, corr)
    assert res["nonzero"] and max(res["grad_rel"]) <= 1e-3, res


if __name__ == "__main__" and "--interpret-worker" in sys.argv:
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
    print(json.dumps({"constrain": compare("cpu"),
                      "training_step": {**{str(p): training_step_diffs("cpu", p) for p in (False, True)},
                                        "corr": training_step_diffs("cpu", False, True)}}))
