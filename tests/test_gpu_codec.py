"""The codec on CUDA: fitting and encoding with ``device="cuda"`` (the Triton renderer,
Adam and QAT, the code search in Triton or, asked for, on the host) against the same work
on the CPU.

Every test here needs CUDA and triton and skips cleanly without them (``@pytest.mark.gpu``);
CI has no GPU, so these run on a lent GPU machine (``tools/gpu_session.sh``).
"""

import numpy as np
import pytest
import torch

from gipp_codec.decoder import decode
from gipp_codec.encoder import encode_with_report
from gipp_codec.fit.api import fit_image
from spec_decode import reference_psnr  # the spec's reference decoder (pytest puts tests/ on sys.path)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _image(h=48, w=64) -> np.ndarray:
    """A smooth test image with an edge and a disc: [h, w, 3] uint8."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 0.5 + 0.4 * np.sin(x / 7.0)
    g = 0.5 + 0.4 * np.cos(y / 5.0)
    b = np.where(x + y > (h + w) / 2, 0.8, 0.2)
    disc = (x - 0.6 * w) ** 2 + (y - 0.4 * h) ** 2 < (0.2 * h) ** 2
    r = np.where(disc, 0.1, r)
    return np.clip(np.stack([r, g, b], axis=2) * 255 + 0.5, 0, 255).astype(np.uint8)


def test_fit_on_cuda_uses_the_triton_renderer_and_matches_the_cpu_fit():
    pytest.importorskip("triton")
    img = _image()
    on_gpu = fit_image(img, 80, 400, seed=0, device="cuda")
    on_cpu = fit_image(img, 80, 400, seed=0, device="cpu")
    assert on_gpu.device.startswith("cuda")
    assert on_cpu.device == "cpu"
    # float32 sums in another order make the two runs differ, not the method (on the CPU the
    # numba renderer and the dense reference end 0.4 dB apart here): within 1 dB
    assert abs(on_gpu.psnr - on_cpu.psnr) < 1.0, (on_gpu.psnr, on_cpu.psnr)
    assert on_gpu.psnr > 30.0


def test_encode_on_cuda_decodes_to_the_reported_psnr_and_matches_the_cpu_encode():
    pytest.importorskip("triton")
    img = _image()
    data_gpu, rep_gpu = encode_with_report(img, bpp=1.5, iterations=400, seed=0, device="cuda")
    data_cpu, rep_cpu = encode_with_report(img, bpp=1.5, iterations=400, seed=0, device="cpu")
    assert rep_gpu.device.startswith("cuda")
    decoded = decode(data_gpu)  # the CPU decoder reads a file the GPU encoder wrote
    assert decoded.shape == img.shape
    assert abs(reference_psnr(data_gpu, img) - rep_gpu.psnr) <= 0.01  # the spec's reference decoder
    assert abs(rep_gpu.psnr - rep_cpu.psnr) < 1.0, (rep_gpu.psnr, rep_cpu.psnr)
    assert abs(rep_gpu.bpp - rep_cpu.bpp) / rep_cpu.bpp < 0.1, (rep_gpu.bpp, rep_cpu.bpp)


def test_encode_on_cuda_with_the_search_on_the_cpu(monkeypatch):
    """``QATConfig.code_search_on_gpu`` off: the encode on CUDA never calls the Triton search
    and still writes a file that decodes to its reported PSNR."""
    pytest.importorskip("triton")
    from gipp_codec.fit import code_search_triton
    from gipp_codec.fit.config import FitConfig

    def refuse(*args, **kwargs):
        raise AssertionError("the Triton code search ran")

    monkeypatch.setattr(code_search_triton, "search_codes_triton", refuse)
    img = _image()
    cfg = FitConfig().with_qat(code_search_on_gpu=False)
    data, rep = encode_with_report(img, bpp=1.5, iterations=200, seed=0, device="cuda", config=cfg)
    assert rep.device.startswith("cuda")
    assert abs(reference_psnr(data, img) - rep.psnr) <= 0.01  # the spec's reference decoder


def test_auto_device_picks_cuda():
    pytest.importorskip("triton")
    _, report = encode_with_report(_image(), gaussians=40, iterations=60, seed=0, device="auto")
    assert report.device.startswith("cuda")
