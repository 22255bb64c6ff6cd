"""tools/gpu_op_count.py: what one training iteration of the CUDA code path launches, counted
on the CPU under Triton's interpreter (in a subprocess: the interpreter is fixed when triton
is imported)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    pytest.importorskip("triton")
    out = tmp_path_factory.mktemp("ops") / "ops.json"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_op_count.py"), "--iterations", "12",
                           "--top", "0", "--json", str(out)],
                          env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


def test_a_float_iteration_syncs_once_and_launches_each_kernel_once(counts):
    """One host sync per float iteration (sizing the tile pairs), and the packing, binning,
    render, covariance-gradient and Adam kernels once each: nothing falls back to the torch
    forms on CUDA."""
    float_phase = counts["float"]
    assert float_phase["syncs_median"] == 1
    ops = float_phase["ops_per_iteration"]
    for kernel in ("_pack_kernel", "_tile_rect_kernel", "_expand_pairs_kernel", "_forward_kernel",
                   "_backward_kernel", "_covariance_grad_kernel", "_row_adam_kernel"):
        assert ops[f"triton:{kernel}"] == pytest.approx(1.0, abs=0.15), (kernel, ops)
    # the torch forms of the binning, Adam and the conic (with its autograd backward)
    assert "repeat_interleave" not in ops and "addcmul_" not in ops and "select_backward" not in ops


def test_a_qat_iteration_syncs_once_too(counts):
    """QAT on CUDA reads nothing on the host but the binning's pair count: the fake quantizer
    runs as Triton kernels (not the torch form, whose PSD-safe rounding syncs), the rate
    term as two kernels (its table's width from the bit depths, not its torch form with a
    bincount), the loss stays a device tensor and the quantizer's constraints run as one
    kernel."""
    qat = counts["qat"]
    assert qat["iterations"] >= 1 and qat["ops_median"] > counts["float"]["ops_median"]
    assert qat["syncs_median"] == 1
    ops = qat["ops_per_iteration"]
    for kernel in ("_constrain_kernel", "_fake_quant_forward_kernel", "_fake_quant_backward_kernel",
                   "_rate_histogram_kernel", "_rate_gradient_kernel"):
        assert ops[f"triton:{kernel}"] >= 1, (kernel, ops)
    assert "bincount" not in ops, ops
