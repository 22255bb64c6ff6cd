"""The Triton ('cuda') renderer against the reference, on outputs and on gradients.

The tile binning is plain torch and is tested in-process. The kernels are tested:
- on CUDA, in-process (``@pytest.mark.gpu``, skipped without CUDA);
- on CPU, under Triton's interpreter. Interpreter mode is fixed when triton is imported
  (``TRITON_INTERPRET=1`` must be set before), so this file re-runs itself in a subprocess
  with the variable set (``python tests/test_render_triton.py --interpret-worker``), which
  checks every case and prints one JSON line of errors that the tests here assert on.
Everything that needs triton skips cleanly when it is not installed.
"""

import json
import math
import os
import subprocess
import sys
import time

import pytest
import torch

from gipp_codec.render.convention import CONVENTION_TAPERS, CUTOFF_M2, ENCODER_CONVENTION, PIXEL_CENTER_OFFSET
from gipp_codec.render.reference import render_reference
from gipp_codec.render.tiles import TILE, bin_gaussians, tile_rects
from triton_aot import compile_sm90

TOL = 1e-4  # norm-relative error, outputs and gradients
CASE_NAMES = ("borders_20x13", "mixed_33x17", "empty_20x13", "offscreen_20x13", "crowded_33x17", "strip_1x37")


def _rand_covs(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    """Positive-definite covariances [n, 3] with variances in [lo, hi) and random rotation."""
    s1 = lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
    s2 = lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
    th = math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    ct, st = torch.cos(th), torch.sin(th)
    return torch.stack([ct * ct * s1 + st * st * s2, ct * st * (s1 - s2), st * st * s1 + ct * ct * s2], 1)


def make_case(name: str):
    """(height, width, means [N,2], covs [N,3], colors [N,3]) float64, deterministic per name."""
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    f64 = torch.float64
    if name == "borders_20x13":  # means up to 10 px beyond every border
        h, w, n = 13, 20, 40
        means = torch.rand(n, 2, generator=gen, dtype=f64) * torch.tensor([w + 20.0, h + 20.0], dtype=f64) - 10.0
        covs = _rand_covs(gen, n, 0.3, 20.0)
    elif name == "mixed_33x17":
        h, w = 17, 33
        rows = [
            # thin, nearly degenerate, axis-aligned and rotated
            ((16.0, 8.0), (0.05, 0.0, 40.0)),
            ((10.3, 5.2), (30.0, 0.99 * math.sqrt(30.0 * 0.08), 0.08)),
            ((20.0, 9.0), (25.0, -24.5, 25.0)),
            # wide: covers every tile
            ((16.5, 8.5), (300.0, 40.0, 150.0)),
            # centre outside the image, body inside
            ((-6.0, -4.0), (30.0, 5.0, 20.0)),
            ((40.0, 20.0), (15.0, -3.0, 9.0)),
            # wholly outside (cut off before reaching a pixel centre)
            ((-30.0, 8.0), (4.0, 0.0, 4.0)),
            ((16.0, 60.0), (4.0, 1.0, 4.0)),
            # sub-pixel
            ((7.5, 7.5), (0.01, 0.0, 0.01)),
            ((3.2, 12.7), (0.02, 0.005, 0.03)),
            # invalid: a <= 0, c <= 0, det <= 0, all zero (non-finite ones: see _nonfinite_ok,
            # the reference's autograd turns their zero weight into NaN gradients)
            ((10.0, 10.0), (-1.0, 0.0, 5.0)),
            ((12.0, 6.0), (5.0, 0.0, 0.0)),
            ((14.0, 9.0), (4.0, 3.0, 2.0)),
            ((5.0, 5.0), (0.0, 0.0, 0.0)),
        ]
        means = torch.tensor([r[0] for r in rows], dtype=f64)
        covs = torch.tensor([r[1] for r in rows], dtype=f64)
        n0 = len(rows)
        extra = 25
        means = torch.cat([means, torch.rand(extra, 2, generator=gen, dtype=f64) * torch.tensor([w, h], dtype=f64)])
        covs = torch.cat([covs, _rand_covs(gen, extra, 0.5, 60.0)])
        n = n0 + extra
    elif name == "empty_20x13":
        h, w, n = 13, 20, 0
        means = torch.zeros(0, 2, dtype=f64)
        covs = torch.zeros(0, 3, dtype=f64)
    elif name == "offscreen_20x13":  # N > 0 but no (tile, Gaussian) pair at all
        h, w, n = 13, 20, 4
        means = torch.tensor([[-9.0, 5.0], [30.0, 5.0], [10.0, -9.0], [10.0, 25.0]], dtype=f64)
        covs = torch.tensor([[4.0, 0.0, 4.0]] * n, dtype=f64)
    elif name == "crowded_33x17":  # 300 Gaussians wholly inside tile 0: no cap at 256
        h, w, n = 17, 33, 300
        means = 4.0 + 8.0 * torch.rand(n, 2, generator=gen, dtype=f64)
        covs = _rand_covs(gen, n, 0.2, 1.5)
    elif name == "strip_1x37":
        h, w, n = 1, 37, 12
        # rows from -1 to 2: Gaussians above, on and below the single pixel row
        means = torch.rand(n, 2, generator=gen, dtype=f64) * torch.tensor([w, 3.0], dtype=f64)
        means[:, 1] -= 1.0
        covs = _rand_covs(gen, n, 0.5, 10.0)
    else:
        raise KeyError(name)
    colors = torch.randn(n, 3, generator=gen, dtype=f64)
    return h, w, means, covs, colors


def _rel(a: torch.Tensor | None, b: torch.Tensor | None, like: torch.Tensor) -> float:
    a = torch.zeros_like(like) if a is None else a
    b = torch.zeros_like(like) if b is None else b
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if not torch.isfinite(a).all():
        return math.inf
    return ((a - b).norm() / b.norm().clamp(min=1e-30)).item() if b.norm() > 0 else a.norm().item()


def check_case(render, name: str, device: str) -> dict:
    """Norm-relative errors of ``render`` against the reference on one case: out, d means, d covs, d colors."""
    h, w, means, covs, colors = make_case(name)
    gen = torch.Generator().manual_seed(1234)
    grad_out = torch.randn(h, w, 3, generator=gen, dtype=torch.float64)
    results = {}
    for label, fn, dev in (("test", render, device), ("ref", render_reference, "cpu")):
        inputs = [t.to(dev).clone().requires_grad_() for t in (means, covs, colors)]
        out = fn(*inputs, h, w)
        if out.requires_grad:
            grads = torch.autograd.grad((out * grad_out.to(dev)).sum(), inputs, allow_unused=True)
        else:  # the reference renders N = 0 as constant zeros
            grads = (None, None, None)
        results[label] = (out, grads, inputs)
    out_t, grads_t, ins = results["test"]
    out_r, grads_r, _ = results["ref"]
    errs = {"out": _rel(out_t, out_r, out_r)}
    for key, gt, gr, like in zip(("means", "covs", "colors"), grads_t, grads_r, ins):
        errs[key] = _rel(gt, gr, like.cpu())
    errs["shape_ok"] = tuple(out_t.shape) == (h, w, 3) and out_t.dtype == torch.float64
    return errs


# ---------------------------------------------------------------- tiling (plain torch)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_binning_covers_every_touched_pixel(name):
    h, w, means, covs, _ = make_case(name)
    bins = bin_gaussians(means, covs, h, w)
    n = means.shape[0]
    tiles_x, tiles_y = bins.tiles_x, bins.tiles_y
    offsets = bins.tile_offsets.long()
    assert offsets[0] == 0 and offsets[-1] == bins.gauss_ids.numel() == int(bins.counts.sum())
    listed = set()
    for t in range(tiles_x * tiles_y):
        ids = bins.gauss_ids[offsets[t]:offsets[t + 1]].long()
        assert torch.all(ids[1:] > ids[:-1]), "a tile lists its Gaussians once each, in index order"
        listed.update((t, int(g)) for g in ids)
    # pair_slots: sorted pair -> Gaussian-major position; Gaussian-major owner must match.
    owner = torch.repeat_interleave(torch.arange(n), bins.counts)
    assert torch.equal(owner[bins.pair_slots], bins.gauss_ids.long())
    assert sorted(bins.pair_slots.tolist()) == list(range(bins.gauss_ids.numel()))
    # Brute force: every pixel with m2 <= cut-off of a valid Gaussian has its tile listed.
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    for g in range(n):
        a, b, c = covs[g].tolist()
        det = a * c - b * b
        if not (a > 0 and c > 0 and det > 0):
            assert bins.counts[g] == 0
            continue
        dx = xs + PIXEL_CENTER_OFFSET - means[g, 0]
        dy = ys + PIXEL_CENTER_OFFSET - means[g, 1]
        m2 = (c * dx * dx - 2 * b * dx * dy + a * dy * dy) / det
        rr, cc = torch.nonzero(m2 <= CUTOFF_M2, as_tuple=True)
        need = {int(r // TILE) * tiles_x + int(q // TILE) for r, q in zip(rr, cc)}
        have = {t for t, gg in listed if gg == g}
        assert need <= have, (name, g, need - have)
        assert len(have) == int(bins.counts[g])


def test_binning_has_no_cap():
    h, w, means, covs, _ = make_case("crowded_33x17")
    bins = bin_gaussians(means, covs, h, w)
    per_tile = bins.tile_offsets[1:] - bins.tile_offsets[:-1]
    assert int(per_tile[0]) == 300 > 256


def test_tile_rects_box_is_tight_and_clamped():
    # An axis-aligned Gaussian with sigma_x = 2 (3-sigma half-width 6) at x = 40.5 in a 64-wide
    # image touches columns 34..46, i.e. tiles 2 only; a far one touches nothing.
    means = torch.tensor([[40.5, 8.0], [-100.0, 8.0], [8.0, 1e30]], dtype=torch.float64)
    covs = torch.tensor([[4.0, 0.0, 1.0], [4.0, 0.0, 4.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
    x0, x1, y0, y1 = tile_rects(means, covs, 16, 64)
    assert (x0[0].item(), x1[0].item(), y0[0].item(), y1[0].item()) == (2, 3, 0, 1)
    assert (x1[1:] - x0[1:]).mul(y1[1:] - y0[1:]).eq(0).all()


# ---------------------------------------------------------------- kernels


def _run_interpreter_worker() -> tuple[dict, float]:
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--interpret-worker"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise AssertionError(f"interpreter worker failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), elapsed


@pytest.fixture(scope="module")
def interpreter_results():
    pytest.importorskip("triton")
    return _run_interpreter_worker()[0]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_interpreter_parity(interpreter_results, name):
    errs = interpreter_results["cases"][name]
    assert errs["shape_ok"], errs
    for key in ("out", "means", "covs", "colors"):
        assert errs[key] <= TOL, (name, key, errs)


def test_interpreter_gradients_deterministic(interpreter_results):
    assert interpreter_results["deterministic"]


def test_interpreter_nonfinite_gaussians_are_invalid(interpreter_results):
    assert interpreter_results["nonfinite_ok"]


def test_interpreter_float32_in_float32_out(interpreter_results):
    assert interpreter_results["float32_ok"]


def test_interpreter_triton_binning_matches_torch(interpreter_results):
    """The renderer's Triton binning lists the same pairs, in the same order, with the same
    offsets and counts as the torch reference, on every scene (invalid ones included)."""
    assert len(interpreter_results["bins_match"]) == len(CASE_NAMES) + 2
    assert all(interpreter_results["bins_match"].values()), interpreter_results["bins_match"]


def test_cpu_tensors_without_interpreter_are_refused():
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("this process runs triton in interpreter mode")
    from gipp_codec.errors import ConfigError
    from gipp_codec.render.cuda_triton import render_cuda

    h, w, means, covs, colors = make_case("borders_20x13")
    with pytest.raises(ConfigError, match="CUDA"):
        render_cuda(means, covs, colors, h, w)


TRITON_MODULES = ("render/cuda_triton.py", "render/tiles_triton.py", "fit/adam_triton.py",
                  "fit/code_search_triton.py", "fit/rate_triton.py", "quant/lsq_triton.py")


def _launches_without_fp_fusion(source: str) -> tuple[int, list]:
    """(launches, those that leave FP fusion to Triton's default): every call ``kernel[grid](...)``
    must pass ``enable_fp_fusion`` itself or through ``**name``, name a dict built in the same
    function with that keyword."""
    import ast

    tree = ast.parse(source)
    launches, missing = 0, []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        dicts = {t.id for node in ast.walk(fn) if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)
                 and isinstance(node.value, ast.Call) and any(k.arg == "enable_fp_fusion" for k in node.value.keywords)}
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Subscript):
                launches += 1
                named = any(k.arg == "enable_fp_fusion" for k in node.keywords)
                spread = any(k.arg is None and isinstance(k.value, ast.Name) and k.value.id in dicts for k in node.keywords)
                if not (named or spread):
                    missing.append(f"line {node.lineno}")
    return launches, missing


def test_every_triton_launch_states_its_fp_fusion():
    """Triton fuses a * b + c into an FMA unless told otherwise, and its default is to change
    (off from Triton 3.10): each launch says which it wants, so that the GPU's numbers do not
    move with Triton's version. The check itself catches a launch without it."""
    import gipp_codec

    root = os.path.dirname(gipp_codec.__file__)
    total = 0
    for name in TRITON_MODULES:
        with open(os.path.join(root, name)) as f:
            launches, missing = _launches_without_fp_fusion(f.read())
        assert not missing, f"{name}: launches without enable_fp_fusion at {missing}"
        total += launches
    assert total >= 12
    bad = "def f(k, x):\n    opts = dict(num_warps=4)\n    k[(1,)](x, **opts)\n    k[(1,)](x, enable_fp_fusion=True)\n"
    assert _launches_without_fp_fusion(bad) == (2, ["line 3"])


def test_kernels_compile_for_sm90_without_a_gpu():
    """Ahead-of-time compile the renderer's and the binning's kernels to an H100/H200 cubin."""
    pytest.importorskip("triton")
    from gipp_codec.render import cuda_triton as ct
    from gipp_codec.render import tiles_triton as tt

    consts = {"TILE_SIZE": TILE, "BLOCK": ct.BLOCK_G, "CUT": CUTOFF_M2, "CENTER": PIXEL_CENTER_OFFSET,
              "TAPER": CONVENTION_TAPERS[ENCODER_CONVENTION]}
    ints = {"height": "i32", "width": "i32", "tiles_x": "i32"}
    cexpr = {k: "constexpr" for k in consts}
    render_options = {"num_warps": ct.NUM_WARPS, "enable_fp_fusion": ct.FP_FUSION}
    compile_sm90(ct._forward_kernel, {"params_ptr": "*fp32", "gauss_ids_ptr": "*i32", "tile_offsets_ptr": "*i32",
                                      "out_ptr": "*fp32", **ints, **cexpr}, consts, render_options)
    compile_sm90(ct._backward_kernel, {"params_ptr": "*fp32", "gauss_ids_ptr": "*i32", "pair_slots_ptr": "*i64",
                                       "tile_offsets_ptr": "*i32", "grad_out_ptr": "*fp32", "partial_ptr": "*fp32",
                                       **ints, **cexpr}, consts, render_options)
    rows = {"BLOCK": ct.ROWS_PER_PROGRAM}
    compile_sm90(ct._pack_kernel, {"means_ptr": "*fp32", "covs_ptr": "*fp32", "colors_ptr": "*fp32",
                                   "params_ptr": "*fp32", "valid_ptr": "*i1", "n": "i32", "BLOCK": "constexpr"},
                 rows, {"num_warps": 4, "enable_fp_fusion": False})
    compile_sm90(ct._covariance_grad_kernel, {"params_ptr": "*fp32", "valid_ptr": "*i1", "grads_ptr": "*fp32",
                                              "dcovs_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"},
                 rows, {"num_warps": 4, "enable_fp_fusion": False})
    rect_sig = {"means_ptr": "*fp32", "covs_ptr": "*fp32", "valid_ptr": "*i1", "consts_ptr": "*fp64",
                "x0_ptr": "*i32", "y0_ptr": "*i32", "nx_ptr": "*i32", "counts_ptr": "*i64",
                "n": "i32", "height": "i32", "width": "i32",
                "TILE_SIZE": "constexpr", "CUT": "constexpr", "CENTER": "constexpr", "BLOCK": "constexpr"}
    rect_consts = {"TILE_SIZE": TILE, "CUT": CUTOFF_M2, "CENTER": PIXEL_CENTER_OFFSET, "BLOCK": tt.RECT_BLOCK}
    rect = compile_sm90(tt._tile_rect_kernel, rect_sig, rect_consts, {"num_warps": 4, "enable_fp_fusion": False})
    assert "sqrt.rn.f64" in rect.asm["ptx"] and "fma" not in rect.asm["ptx"]  # the torch form's roundings
    # Triton's launcher turns an int argument equal to 1 into a constant (a 1-pixel-wide or
    # -high image, a single Gaussian or tile column): the kernels must compile that way too
    ones = {"n": "constexpr", "height": "constexpr", "width": "constexpr"}
    compile_sm90(tt._tile_rect_kernel, {**rect_sig, **ones}, {**rect_consts, "n": 1, "height": 1, "width": 1},
                 {"num_warps": 4, "enable_fp_fusion": False})
    compile_sm90(tt._expand_pairs_kernel,
                 {"x0_ptr": "*i32", "y0_ptr": "*i32", "nx_ptr": "*i32", "counts_ptr": "*i64", "first_ptr": "*i64",
                  "tile_ids_ptr": "*i32", "owners_ptr": "*i32", "tiles_x": "i32", "BLOCK": "constexpr"},
                 {"BLOCK": tt.EXPAND_BLOCK}, {"num_warps": 1, "enable_fp_fusion": False})


_NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@_NEEDS_CUDA
@pytest.mark.parametrize("name", CASE_NAMES)
def test_cuda_parity(name):
    pytest.importorskip("triton")
    from gipp_codec.render.cuda_triton import render_cuda

    errs = check_case(render_cuda, name, "cuda")
    assert errs["shape_ok"], errs
    for key in ("out", "means", "covs", "colors"):
        assert errs[key] <= TOL, (name, key, errs)


@pytest.mark.gpu
@_NEEDS_CUDA
def test_cuda_binning_matches_torch():
    pytest.importorskip("triton")
    assert all(_bins_match("cuda").values())


@pytest.mark.gpu
@_NEEDS_CUDA
def test_cuda_gradients_deterministic_and_no_cap_at_scale():
    pytest.importorskip("triton")
    from gipp_codec.render.cuda_triton import render_cuda

    assert _deterministic(render_cuda, "cuda")
    assert _nonfinite_ok(render_cuda, "cuda")
    assert _float32_ok(render_cuda, "cuda")
    # 2000 Gaussians stacked on one tile of a 48x32 image.
    gen = torch.Generator().manual_seed(7)
    n = 2000
    means = (2.0 + 12.0 * torch.rand(n, 2, generator=gen, dtype=torch.float64)).cuda()
    covs = _rand_covs(gen, n, 0.2, 1.0).cuda()
    colors = torch.randn(n, 3, generator=gen, dtype=torch.float64).cuda()
    out = render_cuda(means, covs, colors, 32, 48)
    ref = render_reference(means, covs, colors, 32, 48)
    assert _rel(out, ref, ref) <= TOL


def _deterministic(render, device: str) -> bool:
    h, w, means, covs, colors = make_case("mixed_33x17")
    grad_out = torch.randn(h, w, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).to(device)
    runs = []
    for _ in range(2):
        inputs = [t.to(device).clone().requires_grad_() for t in (means, covs, colors)]
        out = render(*inputs, h, w)
        runs.append(torch.autograd.grad((out * grad_out).sum(), inputs))
    return all(torch.equal(a, b) for a, b in zip(*runs))


def _nonfinite_ok(render, device: str) -> bool:
    """Non-finite Gaussians are invalid: finite image equal to the image without them, zero grads."""
    h, w, means, covs, colors = make_case("borders_20x13")
    bad_m = torch.tensor([[5.0, 5.0], [float("nan"), 3.0], [4.0, 4.0]], dtype=torch.float64)
    bad_c = torch.tensor([[float("nan"), 0.0, 3.0], [3.0, 0.0, 3.0], [float("inf"), 0.0, 2.0]], dtype=torch.float64)
    inputs = [torch.cat([a, b]).to(device).requires_grad_() for a, b in
              ((means, bad_m), (covs, bad_c), (colors, torch.ones(3, 3, dtype=torch.float64)))]
    out = render(*inputs, h, w)
    grads = torch.autograd.grad(out.sum(), inputs)
    clean = render(means.to(device), covs.to(device), colors.to(device), h, w)
    n = means.shape[0]
    return bool(torch.isfinite(out).all() and torch.allclose(out, clean)
                and all(torch.isfinite(g).all() and g[n:].abs().sum() == 0 for g in grads))


def _float32_ok(render, device: str) -> bool:
    """float32 in, float32 out, within tolerance of the float64 reference."""
    h, w, means, covs, colors = make_case("mixed_33x17")
    out = render(means.float().to(device), covs.float().to(device), colors.float().to(device), h, w)
    ref = render_reference(means, covs, colors, h, w)
    return out.dtype == torch.float32 and _rel(out, ref, ref) <= TOL


def _binning_scenes():
    """(name, height, width, means [N, 2] f32, covs [N, 3] f32, valid [N] bool or None): the
    cases, plus a larger mixed scene with huge, degenerate, non-finite and far-away Gaussians."""
    for name in CASE_NAMES:
        h, w, means, covs, _ = make_case(name)
        yield name, h, w, means.float(), covs.float(), None
    gen = torch.Generator().manual_seed(11)
    h, w, n = 70, 99, 400
    means = torch.rand(n, 2, generator=gen, dtype=torch.float64) * torch.tensor([w + 40.0, h + 40.0]) - 20.0
    covs = _rand_covs(gen, n, 0.05, 400.0)
    covs[::37, 1] = torch.sqrt(covs[::37, 0] * covs[::37, 2])  # det = 0: invalid
    covs[5::41, 0] = -1.0
    means[7::43, 0] = float("nan")
    covs[9::47, 2] = float("inf")
    means[11::53, 1] = 1e30
    valid = torch.rand(n, generator=gen) > 0.1
    yield "mixed_99x70", h, w, means.float(), covs.float(), None
    yield "mixed_99x70_valid", h, w, means.float(), covs.float(), valid


def _bins_match(device: str) -> dict:
    """Per scene: whether ``bin_gaussians_triton`` gives exactly ``bin_gaussians``'s bins."""
    from gipp_codec.render.tiles_triton import bin_gaussians_triton

    out = {}
    for name, h, w, means, covs, valid in _binning_scenes():
        ref = bin_gaussians(means, covs, h, w, valid=valid)
        dev_valid = None if valid is None else valid.to(device)
        got = bin_gaussians_triton(means.to(device), covs.to(device), h, w, valid=dev_valid)
        out[name] = bool(
            got.tiles_x == ref.tiles_x and got.tiles_y == ref.tiles_y
            and got.gauss_ids.dtype == torch.int32 and got.tile_offsets.dtype == torch.int32
            and torch.equal(got.gauss_ids.cpu(), ref.gauss_ids) and torch.equal(got.tile_offsets.cpu(), ref.tile_offsets)
            and torch.equal(got.pair_slots.cpu(), ref.pair_slots) and torch.equal(got.counts.cpu(), ref.counts))
    return out


def _worker_main() -> None:
    """Check every case under the interpreter on CPU; print one JSON line."""
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
    torch.set_num_threads(1)
    from gipp_codec.render.cuda_triton import render_cuda

    t0 = time.perf_counter()
    cases = {name: check_case(render_cuda, name, "cpu") for name in CASE_NAMES}
    result = {"cases": cases, "deterministic": _deterministic(render_cuda, "cpu"),
              "nonfinite_ok": _nonfinite_ok(render_cuda, "cpu"),
              "float32_ok": _float32_ok(render_cuda, "cpu"),
              "bins_match": _bins_match("cpu"),
              "seconds": time.perf_counter() - t0}
    print(json.dumps(result))


if __name__ == "__main__" and "--interpret-worker" in sys.argv:
    _worker_main()
