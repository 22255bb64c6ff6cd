"""A whole encode down the CUDA code path, run on the CPU under Triton's interpreter.

``tests/test_gpu_codec.py`` runs the encoder on CUDA, and only where a GPU is lent. This
file runs the same branches everywhere: CPU tensors go through every Triton kernel (the
renderer, Adam, the fake quantizer and its constraints, the rate term, the code search)
with the CPU-only shortcuts switched off (``tools/gpu_op_count.py``'s
``use_cuda_branches``), at the encoder's defaults, so the base layer under the Gaussians,
the recycling at each growth step, the sizing to the budget during QAT and the trim at
the end all run as they do on CUDA; then once more with the other covariance form (b itself
or its correlation, payload codings 2 and 3, ``QATConfig.covariance_form``), whose kernels
take another branch. The interpreter
is fixed when triton is imported and is slow, so the encodes run in a subprocess (this file with ``--interpret-worker``) on a small
image with a short fit, and prints one JSON line.
"""

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spec_decode import reference_psnr  # noqa: E402
from triton_aot import run_interpreted  # noqa: E402

HEIGHT, WIDTH, ITERATIONS, BPP, SWEEPS = 48, 64, 40, 1.5, 2

# the Triton kernels each stage of the CUDA path launches: (module, kernel)
KERNELS = [
    ("gipp_codec.render.cuda_triton", "_forward_kernel"),
    ("gipp_codec.render.cuda_triton", "_backward_kernel"),
    ("gipp_codec.render.tiles_triton", "_expand_pairs_kernel"),
    ("gipp_codec.fit.adam_triton", "_row_adam_kernel"),
    ("gipp_codec.quant.lsq_triton", "_fake_quant_forward_kernel"),
    ("gipp_codec.quant.lsq_triton", "_fake_quant_backward_kernel"),
    ("gipp_codec.quant.lsq_triton", "_constrain_kernel"),
    ("gipp_codec.fit.rate_triton", "_rate_gradient_kernel"),
    ("gipp_codec.fit.code_search_triton", "_sweep_phase_kernel"),
]


def interpret_worker() -> dict:
    """Encode a synthetic image on the CPU path, then down the CUDA path under the
    interpreter (same settings and seed); what each wrote and what the CUDA path launched."""
    import importlib

    sys.path.insert(0, str(ROOT / "tools"))
    from gpu_op_count import OpCounter, _CountedKernel, synthetic_image, use_cuda_branches

    from gipp_codec.decoder import read_info
    from gipp_codec.encoder import encode_with_report
    from gipp_codec.fit import api, trainer
    from gipp_codec.fit.config import FitConfig
    from gipp_codec.render.cuda_triton import render_cuda

    image = synthetic_image(HEIGHT, WIDTH)  # [H, W, 3] uint8
    cfg = FitConfig().with_qat(code_search_sweeps=SWEEPS, code_search_min_sweeps=SWEEPS)

    def encode(config=cfg) -> dict:
        data, report = encode_with_report(image, bpp=BPP, iterations=ITERATIONS, seed=0, device="cpu", config=config)
        info = read_info(data)
        return {"psnr": report.psnr, "bpp": report.bpp, "gaussians": report.gaussians,
                "decoded_psnr": reference_psnr(data, image), "base": info["base"],
                "payload_coding": info["header"]["payload_coding"]}

    out = {"cpu": encode()}
    use_cuda_branches()
    api.get_renderer = lambda backend, dev: render_cuda  # the CUDA renderer for CPU tensors
    counter = OpCounter()  # its tallies only: no dispatch mode is entered
    for module_name, name in KERNELS:
        module = importlib.import_module(module_name)
        setattr(module, name, _CountedKernel(getattr(module, name), name, counter))
    recycled = []
    ranking = trainer.removal_contrast_importance

    def counting_ranking(*args, **kwargs):  # called only when a growth step recycles
        recycled.append(1)
        return ranking(*args, **kwargs)

    trainer.removal_contrast_importance = counting_ranking
    out["cuda_path"] = encode()
    out["launches"] = {name: counter.ops[f"triton:{name}"] for _, name in KERNELS}
    out["recycling_steps"] = len(recycled)
    other = "b" if cfg.qat.covariance_form_at(BPP) == "correlation" else "correlation"
    out["cuda_path_other_form"] = encode(cfg.with_qat(covariance_form=other))
    out["launches_other_form"] = {name: counter.ops[f"triton:{name}"] - out["launches"][name] for _, name in KERNELS}
    return out


@pytest.fixture(scope="module")
def run():
    return run_interpreted(__file__)


def test_the_cuda_path_writes_a_file_that_decodes_to_its_reported_psnr(run):
    got = run["cuda_path"]
    assert abs(got["decoded_psnr"] - got["psnr"]) <= 0.01, got
    assert got["base"] is not None and got["base"]["grid"][0] * got["base"]["grid"][1] >= 1, got


def test_every_stage_of_the_cuda_path_ran_its_triton_kernels(run):
    missing = [name for name, count in run["launches"].items() if count == 0]
    assert not missing, run["launches"]
    assert run["recycling_steps"] > 0, run


def test_the_cuda_path_codes_both_covariance_forms_through_its_kernels(run):
    got, default = run["cuda_path_other_form"], run["cuda_path"]
    assert {got["payload_coding"], default["payload_coding"]} == {2, 3}, (got, default)
    assert abs(got["decoded_psnr"] - got["psnr"]) <= 0.01, got
    missing = [name for name, count in run["launches_other_form"].items() if count == 0]
    assert not missing, run["launches_other_form"]
    assert abs(got["psnr"] - default["psnr"]) < 1.0 and abs(got["bpp"] - BPP) / BPP < 0.05, (got, default)


def test_the_cuda_path_encodes_as_well_as_the_cpu_path(run):
    cpu, cuda = run["cpu"], run["cuda_path"]
    assert cpu["base"] == cuda["base"], (cpu, cuda)
    # float32 sums in another order make the two fits differ, not the method: within 1 dB and
    # 10 % of the rate, on a target both reach
    assert abs(cuda["psnr"] - cpu["psnr"]) < 1.0, (cpu, cuda)
    assert abs(cuda["bpp"] - cpu["bpp"]) / cpu["bpp"] < 0.1, (cpu, cuda)
    assert abs(cuda["bpp"] - BPP) / BPP < 0.05 and cuda["psnr"] > 23.0, cuda


if __name__ == "__main__" and "--interpret-worker" in sys.argv:
    print(json.dumps(interpret_worker()))
