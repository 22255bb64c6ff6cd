"""QAT's rate term on CUDA (``fit/rate_triton.py``) against the CPU's numba kernel and autograd.

The kernels run on CPU tensors under Triton's interpreter, which is fixed when triton is
imported, so the comparison runs in a subprocess with ``TRITON_INTERPRET=1`` (this file with
``--interpret-worker``) that prints one JSON line. On CUDA (``@pytest.mark.gpu``) the same
comparison runs in-process. The sm_90 compile checks Triton's compiler accepts the kernels.
"""

import json
import os
import sys

import pytest
import torch

from gipp_codec.fit.rate_proxy import RATE_CHANNEL_SETS, add_rate_gradients, attribute_bits
from gipp_codec.quant.lsq import LSQPlus
from triton_aot import compile_sm90, run_interpreted

# (name, bits, channel set, rows, residuals, correlation): the encoder's depths and the
# paper's, both channel sets, one row (an int argument equal to 1 reaches a kernel as a
# constant), an empty set, red and blue priced as residuals from green
# (``QATConfig.rate_color_residuals``), and b coded as the correlation (``LSQPlus.correlation``)
CASES = [
    ("default_all", (12, 12, 7, 7, 7, 5, 5, 5), "all", 300, False, False),
    ("paper_all", (12, 12, 10, 10, 10, 6, 6, 6), "all", 257, False, False),
    ("covariance", (11, 11, 8, 8, 8, 6, 6, 6), "covariance", 300, False, False),
    ("one_row", (12, 12, 7, 7, 7, 5, 5, 5), "all", 1, False, False),
    ("empty", (12, 12, 7, 7, 7, 5, 5, 5), "all", 0, False, False),
    ("residuals", (12, 12, 7, 7, 7, 5, 5, 5), "all", 300, True, False),
    ("residuals_paper", (12, 12, 10, 10, 10, 6, 6, 6), "all", 257, True, False),
    ("residuals_one_row", (12, 12, 7, 7, 7, 5, 5, 5), "all", 1, True, False),
    ("correlation", (12, 12, 7, 7, 7, 6, 6, 6), "all", 300, True, True),
    ("correlation_covariance", (11, 11, 8, 8, 8, 6, 6, 6), "covariance", 300, False, True),
    ("correlation_one_row", (12, 12, 7, 7, 7, 5, 5, 5), "all", 1, False, True),
]


def _state(bits: tuple, n: int, seed: int, corr: bool = False):
    """Rows [n, 8] with values off the grid, clamped at both ends of a range, at the top of a
    range exactly (a tie; for b's value, not its correlation) and below a and c's log floor;
    a quantizer fitted to most of them (``corr``: b coded as the correlation)."""
    g = torch.Generator().manual_seed(seed)
    n_rows, n = n, max(n, 40)  # the quantizer is fitted to at least 40 rows, of which n_rows are kept
    x = torch.rand(n, 2, generator=g) * 64
    a = torch.exp(torch.randn(n, generator=g))
    c = torch.exp(torch.randn(n, generator=g))
    b = (torch.rand(n, generator=g) - 0.5) * torch.sqrt(a * c)
    col = torch.randn(n, 3, generator=g) * 0.3 + 0.5
    rows = torch.cat((x, a[:, None], b[:, None], c[:, None], col), dim=1)
    quant = LSQPlus(bits, correlation=corr)
    quant.init_minmax(rows[: (5 * n) // 6])  # the last rows partly outside the ranges
    if n_rows > 10:
        rows[3, 2] = 0.0  # a at 0: below the log floor
        rows[4, 4] = -1.0  # c negative
        rows[5, 5] = -5.0  # below red's range
        rows[6, 7] = 9.0  # above blue's range
        with torch.no_grad():
            rows[7, 3] = quant.offset[3] + quant.qmax[3] * quant.scale[3]  # b at the top of its range
    return rows[:n_rows].contiguous(), quant


def compare(device: str) -> dict:
    """Per case: the largest difference between the gradients the Triton kernels add and
    those the numba kernel adds, and autograd's; and whether untouched columns stay."""
    from gipp_codec.fit import rate_triton

    out = {}
    for k, (name, bits, channel_set, n, residuals, corr) in enumerate(CASES):
        rows, quant = _state(bits, n, seed=k, corr=corr)
        channels = RATE_CHANNEL_SETS[channel_set]
        factor = torch.tensor(0.37, dtype=torch.float32)
        start = [torch.randn(n, w, generator=torch.Generator().manual_seed(w)) for w in (2, 3, 3)]

        def leaves():
            ps = [p.clone().contiguous().requires_grad_(True) for p in torch.split(rows, [2, 3, 3], dim=1)]
            for p, s in zip(ps, start):
                p.grad = s.clone()
            return ps

        numba_ps = leaves()
        add_rate_gradients(numba_ps, quant, channels, float(factor), residuals=residuals)
        auto_ps = leaves()
        (attribute_bits(torch.cat(auto_ps, dim=1), quant, channels, residuals) * factor).backward()
        tri_ps = [p.detach().to(device).requires_grad_(True) for p in leaves()]
        for p, s in zip(tri_ps, start):
            p.grad = s.clone().to(device)
        q = quant.to(device)
        fits = rate_triton.fits(tri_ps, channels)
        rate_triton.add_rate_gradients_triton(tri_ps, q.scale, q.offset, q.qmax, q.bits, channels,
                                              factor.to(device), residuals, corr)
        quant.to("cpu")
        tri = [p.grad.cpu() for p in tri_ps]

        def diff(ref):
            return max([float((t - r.grad).abs().max()) for t, r in zip(tri, ref)] + [0.0]) if n else 0.0

        scale = max([float(r.grad.abs().max()) for r in numba_ps] + [1.0]) if n else 1.0
        out[name] = {"fits": bool(fits), "numba": diff(numba_ps) / scale, "autograd": diff(auto_ps) / scale,
                     "positions_untouched": bool(torch.equal(tri[0], start[0])),
                     "moved": bool(n == 0 or not torch.equal(tri[1], start[1]))}
    return out


def _check(res: dict) -> None:
    for name, r in res.items():
        assert r["fits"] and r["positions_untouched"] and r["moved"], (name, r)
        assert r["numba"] <= 1e-6 and r["autograd"] <= 1e-5, (name, r)


@pytest.fixture(scope="module")
def interpreted():
    return run_interpreted(__file__)


def test_triton_rate_gradient_agrees_with_numba_and_autograd_under_the_interpreter(interpreted):
    assert set(interpreted) == {c[0] for c in CASES}
    _check(interpreted)


def test_fits_only_prefixes_of_the_rate_channels():
    pytest.importorskip("triton")
    from gipp_codec.fit import rate_triton

    ps = [torch.zeros(4, w, requires_grad=True) for w in (2, 3, 3)]
    for p in ps:
        p.grad = torch.zeros_like(p)
    assert rate_triton.fits(ps, (2, 3, 4, 5, 6, 7)) and rate_triton.fits(ps, (2, 3, 4))
    assert not rate_triton.fits(ps, (5, 6, 7)) and not rate_triton.fits(ps, (2, 4))
    ps[1].grad = None
    assert not rate_triton.fits(ps, (2, 3, 4))


def test_kernels_compile_for_sm90_without_a_gpu():
    pytest.importorskip("triton")
    from gipp_codec.fit import rate_triton as rt

    consts = {"CHANNELS": 6, "LEVELS": 128, "LOG_FLOOR": 1e-12, "BLOCK": rt.ROWS_PER_PROGRAM, "RESIDUALS": False,
              "CORR": False}
    hist = {"covs_ptr": "*fp32", "colors_ptr": "*fp32", "scale_ptr": "*fp32", "offset_ptr": "*fp32",
            "qmax_ptr": "*fp32", "counts_ptr": "*i32", "n": "i32"}
    grad = {"covs_ptr": "*fp32", "colors_ptr": "*fp32", "covs_grad_ptr": "*fp32", "colors_grad_ptr": "*fp32",
            "scale_ptr": "*fp32", "offset_ptr": "*fp32", "qmax_ptr": "*fp32", "counts_ptr": "*i32",
            "factor_ptr": "*fp32", "consts_ptr": "*fp64", "n": "i32"}
    options = {"num_warps": 4, "enable_fp_fusion": False}
    for kernel, sig in ((rt._rate_histogram_kernel, hist), (rt._rate_gradient_kernel, grad)):
        compile_sm90(kernel, {**sig, **{k: "constexpr" for k in consts}}, consts, options)
        compile_sm90(kernel, {**sig, **{k: "constexpr" for k in consts}}, {**consts, "RESIDUALS": True}, options)
        compiled = compile_sm90(kernel, {**sig, **{k: "constexpr" for k in consts}},
                                {**consts, "RESIDUALS": True, "CORR": True}, options)
        assert "sqrt.rn.f64" in compiled.asm["ptx"] and "div.rn.f32" in compiled.asm["ptx"]  # rho as numba takes it
        # one row: the launcher passes n = 1 as a constant
        compile_sm90(kernel, {**sig, "n": "constexpr", **{k: "constexpr" for k in consts}}, {**consts, "n": 1},
                     options)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_rate_gradient_agrees_with_numba_and_autograd_on_cuda():
    pytest.importorskip("triton")
    _check(compare("cuda"))


if __name__ == "__main__" and "--interpret-worker" in sys.argv:
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
    print(json.dumps(compare("cpu")))
