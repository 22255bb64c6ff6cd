"""Decoding on a GPU (``gpu_decode``: ``decode(data, device="cuda")``, ``gimg decode --device``)
against the conformance vectors' expected images and the CPU decoder.

Everywhere: the Triton render of the decode path runs on CPU tensors under Triton's
interpreter, in a subprocess (this file with ``--interpret-worker``: the interpreter is
fixed when triton is imported), on every valid vector of at most 128 x 96 pixels (both
render conventions, the base layer, the float32 mode, no Gaussians). With CUDA
(``@pytest.mark.gpu``): ``decode(..., device="cuda")`` on all of them. Without CUDA: the
refusals.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from triton_aot import run_interpreted  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = ROOT / "conformance"
INTERPRETED_MAX_PIXELS = 128 * 96


def _valid_vectors(max_pixels=None) -> list:
    manifest = json.loads((CONFORMANCE / "manifest.json").read_text())
    return [v for v in manifest["valid"] if max_pixels is None or v["width"] * v["height"] <= max_pixels]


def compare(decode_on_device, vectors) -> dict:
    """Per vector: the largest and RMS difference (8-bit levels) of ``decode_on_device(data)``
    from the expected image, the vector's tolerances, and the pixels that differ from the
    CPU decoder's output."""
    from gipp_codec.decoder import decode
    from gipp_codec.imageio import load_image

    out = {}
    for v in vectors:
        data = (CONFORMANCE / v["input"]).read_bytes()
        got = decode_on_device(data).astype(np.int64)  # [H, W, 3]
        expected = load_image(CONFORMANCE / v["expected"])[0].astype(np.int64)
        diff = np.abs(got - expected)
        out[v["name"]] = {"max_abs": int(diff.max()), "rms": float(np.sqrt(np.mean(diff.astype(np.float64) ** 2))),
                          "tol_max_abs": v["max_abs"], "tol_rms": v["rms"],
                          "differ_from_cpu": int(np.any(got != decode(data), axis=2).sum()),
                          "pixels": v["width"] * v["height"]}
    return out


def interpret_worker() -> dict:
    """The GPU decode path's render on CPU tensors under the interpreter."""
    from gipp_codec import gpu_decode
    from gipp_codec.decoder import gaussians_as_floats
    from gipp_codec.format.container import parse_gimg
    from gipp_codec.render.convention import to_uint8

    def on_device(data):
        parsed = parse_gimg(data)
        return to_uint8(gpu_decode.render_parsed_on_device(parsed, "cpu", *gaussians_as_floats(parsed)))

    results = compare(on_device, _valid_vectors(INTERPRETED_MAX_PIXELS))
    results["_scaled"] = interpret_scaled()
    return results


# (vector, output size, region): at another size, of a region, and both
SCALED_CASES = (("base_odd_7x3", (21, 9), None), ("base_1bit_f1024_64x48", (96, 24), None),
                ("small_64x48_n300", (128, 96), None), ("small_64x48_n300", (37, 29), (9, 5, 37, 29)),
                ("grey_tied_64x48_n300", (30, 20), (21, 13, 30, 20)), ("base_zero_gaussians", (11, 9), (27, 5, 11, 9)),
                ("grey_tied_64x48_n300", (50, 62), (3, 17, 25, 31)), ("base_odd_7x3", (5, 2), (2, 1, 5, 2)))


def interpret_scaled() -> dict:
    """Decodes at another size or of a region (``decoder.render_parsed_uint8`` with a size or
    a crop) through the GPU branch, its Triton render run on CPU tensors: pixels that differ
    from the CPU decode."""
    from gipp_codec import decoder, gpu_decode
    from gipp_codec.format.container import parse_gimg

    real = gpu_decode.render_parsed_on_device
    gpu_decode.resolve_decode_device = lambda device: "cuda"  # take the GPU branch ...
    gpu_decode.render_parsed_on_device = lambda parsed, device, *rest: real(parsed, "cpu", *rest)  # ... on the CPU
    out = {}
    for name, size, crop in SCALED_CASES:
        parsed = parse_gimg((CONFORMANCE / "valid" / f"{name}.gimg").read_bytes())
        got = decoder.render_parsed_uint8(parsed, "cuda", size, crop)
        want = decoder.render_parsed_uint8(parsed, "cpu", size, crop)
        out[f"{name} {size} {crop}"] = {"shape": list(got.shape), "differ_from_cpu": int(np.any(got != want, axis=2).sum()),
                     "max_abs": int(np.abs(got.astype(int) - want).max())}
    return out


def _check(results: dict, expected_names: list) -> None:
    assert sorted(results) == sorted(expected_names)
    for name, r in results.items():
        assert r["max_abs"] <= r["tol_max_abs"] and r["rms"] <= r["tol_rms"], (name, r)
        # float32 sums in another order: a level apart on at most the rare pixel at a rounding boundary
        assert r["differ_from_cpu"] <= max(1, r["pixels"] // 1000), (name, r)


def test_the_gpu_decode_render_meets_every_small_vector_under_the_interpreter():
    results = run_interpreted(__file__)
    scaled = results.pop("_scaled")
    assert len(scaled) == len(SCALED_CASES)
    for name, size, crop in SCALED_CASES:  # at another size and of a region too (render.rescale)
        r = scaled[f"{name} {size} {crop}"]
        assert r["shape"] == [size[1], size[0], 3] and r["max_abs"] <= 1, (name, r)
        assert r["differ_from_cpu"] <= max(1, size[0] * size[1] // 1000), (name, r)
    _check(results, [v["name"] for v in _valid_vectors(INTERPRETED_MAX_PIXELS)])
    assert len(results) >= 15


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_decode_on_cuda_meets_every_vector():
    pytest.importorskip("triton")
    from gipp_codec.decoder import decode

    _check(compare(lambda data: decode(data, device="cuda"), _valid_vectors()),
           [v["name"] for v in _valid_vectors()])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_regions_on_cuda_match_the_cpu_decode():
    """``decode(..., device="cuda", crop=...)``: a region through the Triton path, alone and
    enlarged, against the CPU's (a level apart on at most the rare pixel)."""
    pytest.importorskip("triton")
    from gipp_codec.decoder import decode

    for name, kw in (("base_kodak_768x512_n5000", {"crop": (301, 77, 130, 90)}),
                     ("correlation_base_kodak_768x512_n5000", {"crop": (0, 400, 768, 112)}),
                     ("base_odd_513x257_n3000", {"crop": (500, 250, 13, 7), "scale": 3}),
                     ("zero_gaussians", {"crop": (3, 4, 5, 6)})):
        data = (CONFORMANCE / "valid" / f"{name}.gimg").read_bytes()
        got, want = decode(data, device="cuda", **kw).astype(int), decode(data, **kw).astype(int)
        assert got.shape == want.shape and np.abs(got - want).max() <= 1, name
        assert np.any(got != want, axis=2).sum() <= max(1, want.shape[0] * want.shape[1] // 1000), name


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where there is no CUDA")
def test_cuda_asked_for_without_cuda_is_a_one_line_error_and_auto_falls_back(tmp_path):
    from gipp_codec.decoder import decode
    from gipp_codec.errors import ConfigError
    from gipp_codec.gpu_decode import resolve_decode_device

    data = (CONFORMANCE / "valid" / "small_64x48_n300.gimg").read_bytes()
    with pytest.raises(ConfigError, match="CUDA is not available"):
        decode(data, device="cuda")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_decode_device("tpu")
    assert resolve_decode_device("auto") == "cpu"
    assert np.array_equal(decode(data, device="auto"), decode(data))
    out = tmp_path / "o.png"
    r = subprocess.run([sys.executable, "-m", "gipp_codec", "decode", "--device", "cuda",
                        str(CONFORMANCE / "valid" / "small_64x48_n300.gimg"), str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "CUDA is not available" in r.stderr, r.stderr
    assert not out.exists()
    r = subprocess.run([sys.executable, "-m", "gipp_codec", "decode", "--device", "auto", "--json",
                        str(CONFORMANCE / "valid" / "small_64x48_n300.gimg"), str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    facts = json.loads(r.stdout.splitlines()[-1])
    assert facts["device"] == "cpu" and facts["kernels"] in ("prebuilt", "jit")


if __name__ == "__main__" and "--interpret-worker" in sys.argv:
    print(json.dumps(interpret_worker()))
