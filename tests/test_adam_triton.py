"""RowAdam's Triton step (``fit/adam_triton.py``, used on CUDA) against its torch form.

The kernel runs on CPU tensors under Triton's interpreter, which is fixed when triton is
imported, so the comparison runs in a subprocess with ``TRITON_INTERPRET=1`` (this file
with ``--interpret-worker``) that prints one JSON line. On CUDA (``@pytest.mark.gpu``) the
same comparison runs in-process. The sm_90 compile checks Triton's compiler accepts it.
"""

import json
import os
import sys

import pytest
import torch

from gipp_codec.fit.trainer import RowAdam
from triton_aot import compile_sm90, run_interpreted


def compare(device: str, warmup: int) -> dict:
    """Max abs differences between the Triton step and step_composed over 12 steps with rows
    removed and appended (step counts differ between rows); and whether steps agree."""
    from gipp_codec.fit import adam_triton

    gen = torch.Generator().manual_seed(1 + warmup)
    start = [torch.randn(300, c, generator=gen) for c in (2, 3, 3)]
    tri = [t.clone().to(device).requires_grad_(True) for t in start]
    ref = [t.clone().to(device).requires_grad_(True) for t in start]
    a = RowAdam(tri, [0.01, 0.003, 0.005], warmup=warmup)
    b = RowAdam(ref, [0.01, 0.003, 0.005], warmup=warmup)
    used = True
    for i in range(12):
        if i == 5:  # drop rows, append fresh ones
            keep = (torch.arange(300) % 3 != 0).to(device)
            tri = [torch.cat((p.detach()[keep], torch.ones(17, p.shape[1], device=device))).requires_grad_(True)
                   for p in tri]
            ref = [torch.cat((p.detach()[keep], torch.ones(17, p.shape[1], device=device))).requires_grad_(True)
                   for p in ref]
            a.replace(tri, keep, 17)
            b.replace(ref, keep, 17)
        for pt, pr in zip(tri, ref):
            g = torch.randn(pt.shape, generator=gen).to(device)
            pt.grad, pr.grad = g.clone(), g.clone()
        used = used and adam_triton.fits(a.steps, a.params, a.m, a.v)
        adam_triton.row_adam_step(a.steps, a.params, a.m, a.v, a.lrs, a.b1, a.b2, a.eps, a.warmup)
        b.step_composed()
    diff = lambda xs, ys: max(float((x.detach() - y.detach()).abs().max()) for x, y in zip(xs, ys))  # noqa: E731
    return {"fits": bool(used), "steps_equal": bool(torch.equal(a.steps, b.steps)),
            "step_counts": sorted(set(a.steps.view(-1).tolist())),
            "params": diff(tri, ref), "m": diff(a.m, b.m), "v": diff(a.v, b.v)}


def _check(res: dict) -> None:
    assert res["fits"] and res["steps_equal"] and res["step_counts"] == [7.0, 12.0], res
    assert res["params"] <= 2e-6 and res["m"] <= 1e-6 and res["v"] <= 1e-6, res


@pytest.fixture(scope="module")
def interpreted():
    return run_interpreted(__file__)


@pytest.mark.parametrize("warmup", ["0", "4"])
def test_triton_step_agrees_with_the_torch_step_under_the_interpreter(interpreted, warmup):
    _check(interpreted[warmup])


def test_cpu_rows_do_not_take_the_triton_step():
    from gipp_codec import triton_path

    assert not triton_path.serves(torch.zeros(3, 1))


def test_kernel_compiles_for_sm90_without_a_gpu():
    pytest.importorskip("triton")
    from gipp_codec.fit import adam_triton

    sig = {"steps_ptr": "*fp32"}
    for k in range(3):
        sig.update({f"{x}{k}": "*fp32" for x in "pgmv"})
    sig.update({"n": "i32", **{name: "fp32" for name in ("lr0", "lr1", "lr2", "b1", "b2", "log2_b1", "log2_b2",
                                                          "eps", "warmup")}})
    consts = {"W0": 2, "W1": 3, "W2": 3, "WARMUP": True, "BLOCK": adam_triton.ROWS_PER_PROGRAM}
    sig.update({k: "constexpr" for k in consts})
    compile_sm90(adam_triton._row_adam_kernel, sig, consts, {"num_warps": 4, "enable_fp_fusion": False})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("warmup", [0, 4])
def test_triton_step_agrees_with_the_torch_step_on_cuda(warmup):
    pytest.importorskip("triton")
    _check(compare("cuda", warmup))


if __name__ == "__main__" and "--interpret-worker" in sys.argv:
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
    print(json.dumps({str(w): compare("cpu", w) for w in (0, 4)}))
