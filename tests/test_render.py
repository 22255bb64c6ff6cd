"""The cpu renderer against the reference renderer and against a third, brute-force
float64 numpy evaluation of the convention written here (format_spec/gimg.md,
"Rendering"; gipp_codec/render/convention.py)."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gipp_codec.render import convention, get_renderer
from gipp_codec.render import numba_kernels as nk
from gipp_codec.render.cpu import render_cpu
from gipp_codec.render.reference import render_reference

# ---------------------------------------------------------------- oracles and scenes


def dense_numpy(means, covs, colors, height, width, taper=convention.CONVENTION_TAPERS[convention.ENCODER_CONVENTION]):
    """Brute force, float64, straight from the convention's formula: every Gaussian at
    every pixel centre (i + 0.5, j + 0.5); m2 = (c dx^2 - 2 b dx dy + a dy^2) / det,
    weight exp(-m2/2) - taper where m2 <= 9 (the encoder's convention 2 by default: taper
    exp(-9/2)); invalid or non-finite Gaussians contribute 0."""
    means = np.asarray(means, np.float64)
    covs = np.asarray(covs, np.float64)
    colors = np.asarray(colors, np.float64)
    out = np.zeros((height, width, 3))
    ys, xs = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    for (mx, my), (a, b, c), col in zip(means, covs, colors):
        det = a * c - b * b
        if not (a > 0 and c > 0 and det > 0):
            continue
        if not np.all(np.isfinite([mx, my, a, b, c, det, *col])):
            continue
        dx, dy = xs - mx, ys - my
        m2 = (c * dx * dx - 2.0 * b * dx * dy + a * dy * dy) / det
        w = np.where(m2 <= 9.0, np.exp(-0.5 * m2) - taper, 0.0)
        out += w[:, :, None] * col[None, None, :]
    return out


def cov_from(sig_major, sig_minor, theta):
    co, si = math.cos(theta), math.sin(theta)
    a = co * co * sig_major**2 + si * si * sig_minor**2
    c = si * si * sig_major**2 + co * co * sig_minor**2
    b = co * si * (sig_major**2 - sig_minor**2)
    return [a, b, c]


def random_scene(n, height, width, seed, r_lo=0.5, r_hi=8.0, margin=6.0):
    """float32 scene: centres also outside the image, log-uniform sizes, any rotation."""
    rng = np.random.default_rng(seed)
    means = np.stack(
        [rng.uniform(-margin, width + margin, n), rng.uniform(-margin, height + margin, n)], 1
    )
    covs = [
        cov_from(s1, s1 * rng.uniform(0.1, 1.0), rng.uniform(0, math.pi))
        for s1 in np.exp(rng.uniform(math.log(r_lo), math.log(r_hi), n))
    ]
    colors = rng.normal(0.0, 1.0, (n, 3))
    return (
        means.astype(np.float32),
        np.asarray(covs, np.float32),
        colors.astype(np.float32),
    )


def edge_scene(height, width):
    """Hand-made awkward Gaussians (non-round numbers keep pixel centres off m2 = 9)."""
    g = []  # (mx, my, a, b, c, r, g, b)
    # centre outside the image, ellipse reaching in (left, right, top, bottom, corner)
    g.append((-2.13, height * 0.37, *cov_from(2.1, 1.3, 0.4), 0.9, -0.3, 0.5))
    g.append((width + 1.71, height * 0.61, *cov_from(1.9, 0.8, 2.0), -0.7, 0.8, 0.2))
    g.append((width * 0.43, -1.37, *cov_from(1.7, 1.1, 1.1), 0.3, 0.3, -1.1))
    g.append((width * 0.52, height + 2.29, *cov_from(2.6, 0.9, 0.7), 1.3, 0.1, 0.4))
    g.append((-1.11, -0.93, *cov_from(1.4, 1.2, 0.3), 0.6, 0.6, 0.6))
    # very thin (det near 0) and strongly rotated
    g.append((width * 0.5 + 0.13, height * 0.5 + 0.07, *cov_from(4.3, 0.031, 0.785), 1.1, -0.6, 0.2))
    g.append((width * 0.3 + 0.21, height * 0.7 - 0.17, *cov_from(3.7, 0.047, 2.3), -0.4, 0.9, 0.7))
    # very wide (larger than the image) and huge (3 sigma >> image)
    g.append((width * 0.4 + 0.11, height * 0.6 + 0.23, *cov_from(2.1 * (width + height), 1.3 * (width + height), 0.9), 0.2, -0.1, 0.3))
    g.append((width * 3.1, -height * 2.7, *cov_from(1.0e5, 3.0e4, 0.2), -0.05, 0.07, 0.01))
    # tiny (may hit no pixel centre at all)
    g.append((width * 0.5 + 0.27, height * 0.5 + 0.31, *cov_from(0.07, 0.05, 0.3), 2.0, 2.0, 2.0))
    # far away: contributes nothing
    g.append((width + 100.3, height + 57.1, 1.3, 0.2, 0.9, 1.0, 1.0, 1.0))
    arr = np.asarray(g, np.float64)
    return arr[:, 0:2].astype(np.float32), arr[:, 2:5].astype(np.float32), arr[:, 5:8].astype(np.float32)


INVALID_COVS = [
    (0.0, 0.0, 1.0),  # a = 0
    (1.0, 0.0, -1.0),  # c < 0
    (1.0, 1.0, 1.0),  # det = 0
    (1.0, 2.0, 1.0),  # det < 0
    (-2.0, 0.5, -3.0),  # negative definite, det > 0
]


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def t64(x, grad=False):
    return torch.tensor(np.asarray(x, np.float64), dtype=torch.float64, requires_grad=grad)


def t32(x, grad=False):
    return torch.tensor(np.asarray(x, np.float32), dtype=torch.float32, requires_grad=grad)


def grads(render, means, covs, colors, height, width, grad_image, to_tensor):
    m, c, col = to_tensor(means, True), to_tensor(covs, True), to_tensor(colors, True)
    img = render(m, c, col, height, width)
    (img * grad_image.to(img.dtype)).sum().backward()
    return img.detach().numpy(), m.grad.numpy(), c.grad.numpy(), col.grad.numpy()


# ---------------------------------------------------------------- tests


def test_constants_mirror_convention():
    assert nk.CUTOFF_M2 == convention.CUTOFF_M2
    assert nk.CUTOFF_SIGMA == convention.CUTOFF_SIGMA
    assert nk.PIXEL_CENTER_OFFSET == convention.PIXEL_CENTER_OFFSET
    assert nk.CONVENTION_TAPERS == convention.CONVENTION_TAPERS
    assert nk.ENCODER_CONVENTION == convention.ENCODER_CONVENTION


def test_dense_oracle_is_sensitive():
    """The brute-force oracle is not trivially satisfied: a half-pixel shift (the
    pixel-centre convention) or a changed cut-off changes the image visibly."""
    means, covs, colors = random_scene(30, 13, 17, seed=5)
    ref = dense_numpy(means, covs, colors, 13, 17)
    shifted = dense_numpy(means + 0.5, covs, colors, 13, 17)
    assert rel(shifted, ref) > 1e-2
    assert rel(nk.forward(means, covs, colors, 13, 17), ref) < 1e-5
    assert rel(nk.forward(means + 0.5, covs, colors, 13, 17), ref) > 1e-2


@pytest.mark.parametrize("size,n,seed", [((24, 40), 80, 0), ((33, 19), 50, 1), ((8, 64), 40, 2)])
def test_cpu_matches_reference_outputs_and_gradients(size, n, seed):
    height, width = size
    means, covs, colors = random_scene(n, height, width, seed)
    g = torch.tensor(np.random.default_rng(seed + 100).normal(size=(height, width, 3)))
    ref = grads(render_reference, means, covs, colors, height, width, g, t64)
    cpu = grads(render_cpu, means, covs, colors, height, width, g, t32)
    for name, a, b in zip(("image", "means", "covs", "colors"), cpu, ref):
        assert np.all(np.isfinite(a)), name
        assert rel(a, b) <= 1e-4, (name, rel(a, b))
    assert rel(cpu[0], dense_numpy(means, covs, colors, height, width)) <= 1e-5


@pytest.mark.parametrize("conv", [1, 2])
def test_each_render_convention_against_dense_and_reference(conv):
    """Convention 1 (a hard step at the cut-off, the files of format 1.0 and 1.1) and 2 (the
    taper exp(-9/2) subtracted inside): forward, reference and gradients each follow the
    convention asked for, and the two differ by the taper times each colour inside."""
    height, width = 24, 40
    means, covs, colors = random_scene(60, height, width, seed=11)
    taper = convention.CONVENTION_TAPERS[conv]
    dense = dense_numpy(means, covs, colors, height, width, taper=taper)
    assert rel(nk.forward(means, covs, colors, height, width, conv), dense) < 1e-5
    assert rel(nk.forward_uint8(means, covs, colors, height, width, conv).astype(np.float64),
               convention.to_uint8(dense).astype(np.float64)) < 1e-2
    assert rel(render_reference(t64(means), t64(covs), t64(colors), height, width, conv).numpy(), dense) < 1e-9
    g = torch.tensor(np.random.default_rng(12).normal(size=(height, width, 3)))
    r = grads(lambda *a: render_reference(*a, convention=conv), means, covs, colors, height, width, g, t64)
    c = grads(lambda *a: render_cpu(*a, convention=conv), means, covs, colors, height, width, g, t32)
    for name, a, b in zip(("image", "means", "covs", "colors"), c, r):
        assert rel(a, b) <= 1e-4, (name, rel(a, b))
    other = dense_numpy(means, covs, colors, height, width, taper=convention.CONVENTION_TAPERS[3 - conv])
    assert rel(other, dense) > 1e-3  # the taper is visible
    with pytest.raises(ValueError, match="render convention"):
        nk.forward(means, covs, colors, height, width, 3)


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (3, 7), (16, 24), (2, 33)])
def test_edge_scenes_against_dense_and_reference(size):
    height, width = size
    means, covs, colors = edge_scene(height, width)
    dense = dense_numpy(means, covs, colors, height, width)
    cpu = nk.forward(means, covs, colors, height, width)
    assert cpu.shape == (height, width, 3) and cpu.dtype == np.float32
    ref = render_reference(t64(means), t64(covs), t64(colors), height, width).numpy()
    assert np.abs(ref - dense).max() <= 1e-9
    assert np.abs(cpu - dense).max() <= 2e-5 * max(1.0, np.abs(dense).max())
    # gradients of the same scene, cpu vs reference
    g = torch.tensor(np.random.default_rng(7).normal(size=(height, width, 3)))
    r = grads(render_reference, means, covs, colors, height, width, g, t64)
    c = grads(render_cpu, means, covs, colors, height, width, g, t32)
    for name, a, b in zip(("means", "covs", "colors"), c[1:], r[1:]):
        assert rel(a, b) <= 1e-4, (name, rel(a, b))


def test_each_edge_gaussian_alone():
    """One Gaussian at a time, so no error hides behind a larger neighbour."""
    height, width = 9, 13
    means, covs, colors = edge_scene(height, width)
    for k in range(len(means)):
        sl = slice(k, k + 1)
        dense = dense_numpy(means[sl], covs[sl], colors[sl], height, width)
        cpu = nk.forward(means[sl], covs[sl], colors[sl], height, width)
        assert np.abs(cpu - dense).max() <= 2e-5 * max(1.0, np.abs(dense).max()), k


def test_wide_gaussians_cover_whole_image():
    height, width = 5, 6
    means = np.array([[3.1, 2.4]], np.float32)
    for scale in (1e2, 1e6, 1e12):
        covs = np.array([[scale, 0.3 * scale, 0.8 * scale]], np.float32)
        colors = np.array([[1.0, -2.0, 0.5]], np.float32)
        cpu = nk.forward(means, covs, colors, height, width)
        dense = dense_numpy(means, covs, colors, height, width)
        assert np.abs(dense).min() > 0.4  # every pixel inside the ellipse
        assert np.abs(cpu - dense).max() <= 1e-5


def test_empty_and_invalid_gaussians_contribute_nothing():
    height, width = 11, 14
    for n0 in (0,):
        img = nk.forward(np.zeros((n0, 2)), np.zeros((n0, 3)), np.zeros((n0, 3)), height, width)
        assert img.shape == (height, width, 3) and not img.any()
        gm, gc, gcol = nk.backward(
            np.zeros((0, 2)), np.zeros((0, 3)), np.zeros((0, 3)), height, width,
            np.ones((height, width, 3)),
        )
        assert gm.shape == (0, 2) and gc.shape == (0, 3) and gcol.shape == (0, 3)
    out = render_cpu(torch.zeros(0, 2), torch.zeros(0, 3), torch.zeros(0, 3), height, width)
    assert out.shape == (height, width, 3) and not out.any()

    means, covs, colors = random_scene(12, height, width, seed=3)
    bad_m = np.array([[5.2, 4.1]] * len(INVALID_COVS), np.float32)
    bad_c = np.array(INVALID_COVS, np.float32)
    bad_col = np.ones((len(INVALID_COVS), 3), np.float32)
    # non-finite attributes: contribute nothing, never crash
    nan_m = np.array([[np.nan, 3.0], [4.0, np.inf], [4.0, 5.0], [4.0, 5.0], [4.0, 5.0]], np.float32)
    nan_c = np.array([[2.0, 0.1, 2.0], [2.0, 0.1, 2.0], [np.inf, 0.0, 2.0], [2.0, np.nan, 2.0], [2.0, 0.1, 2.0]], np.float32)
    nan_col = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1], [np.nan, 0, np.inf]], np.float32)
    all_m = np.concatenate([means, bad_m, nan_m])
    all_c = np.concatenate([covs, bad_c, nan_c])
    all_col = np.concatenate([colors, bad_col, nan_col])
    clean = nk.forward(means, covs, colors, height, width)
    mixed = nk.forward(all_m, all_c, all_col, height, width)
    assert np.all(np.isfinite(mixed))
    np.testing.assert_allclose(mixed, clean, rtol=0, atol=1e-6)
    assert np.abs(clean).max() > 0.1  # the valid ones do draw something
    g = np.random.default_rng(0).normal(size=(height, width, 3)).astype(np.float32)
    gm, gc, gcol = nk.backward(all_m, all_c, all_col, height, width, g)
    n = len(means)
    for arr in (gm, gc, gcol):
        assert np.all(np.isfinite(arr))
        assert not arr[n:].any()
    # the valid ones keep their gradients
    cm, cc, ccol = nk.backward(means, covs, colors, height, width, g)
    np.testing.assert_allclose(gm[:n], cm, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gc[:n], cc, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gcol[:n], ccol, rtol=1e-6, atol=1e-6)
    # the reference agrees that invalid (finite) ones contribute nothing
    fin = slice(0, n + len(INVALID_COVS))
    ref = render_reference(t64(all_m[fin]), t64(all_c[fin]), t64(all_col[fin]), height, width)
    assert rel(mixed, ref.numpy()) <= 1e-5


def test_huge_covariance_is_bounded():
    """Work is clipped to the image: a covariance of 1e30 (and a far-away centre) must
    return promptly and exactly like the dense evaluation."""
    means = np.array([[1e20, -3e19], [50.3, 40.7]], np.float32)
    covs = np.array([[1e30, 0.0, 1e30], [1e30, 1e29, 2e30]], np.float32)
    colors = np.array([[1.0, 1.0, 1.0], [0.5, -0.25, 2.0]], np.float32)
    img = nk.forward(means, covs, colors, 64, 96)
    np.testing.assert_allclose(img, dense_numpy(means, covs, colors, 64, 96), atol=1e-5)
    gm, gc, gcol = nk.backward(means, covs, colors, 64, 96, np.ones((64, 96, 3), np.float32))
    assert np.all(np.isfinite(gm)) and np.all(np.isfinite(gc)) and np.all(np.isfinite(gcol))


def test_partial_requires_grad_and_dtypes():
    height, width = 10, 12
    means, covs, colors = random_scene(15, height, width, seed=9)
    g = torch.tensor(np.random.default_rng(1).normal(size=(height, width, 3)))
    m = t64(means)
    c = t64(covs)
    col = t64(colors, grad=True)
    img = render_cpu(m, c, col, height, width)
    assert img.dtype == torch.float64 and img.shape == (height, width, 3)
    (img * g).sum().backward()
    assert m.grad is None and c.grad is None and col.grad.dtype == torch.float64
    ref_col = t64(colors, grad=True)
    (render_reference(t64(means), t64(covs), ref_col, height, width) * g).sum().backward()
    assert rel(col.grad, ref_col.grad) <= 1e-4
    # non-contiguous float32 inputs
    m32 = torch.tensor(np.asfortranarray(means)).requires_grad_(True)
    out = render_cpu(m32, t32(covs), t32(colors), height, width)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert m32.grad.shape == (15, 2) and m32.grad.dtype == torch.float32
    with torch.no_grad():
        np.testing.assert_allclose(
            render_cpu(t32(means), t32(covs), t32(colors), height, width).numpy(), out.detach().numpy()
        )


def _mse_step_grads(step, means, covs, colors):
    """(image, grads of means, covs, colors and of a scale the covariances pass through)
    after one MSE training step; the covariances are scale * leaf, so the gradient must flow
    on through what computed the renderer's inputs."""
    m, c, col = t32(means, grad=True), t32(covs, grad=True), t32(colors, grad=True)
    scale = torch.tensor(1.25, requires_grad=True)
    image = step(m, c * scale, col)
    return image, m.grad, c.grad, col.grad, scale.grad


@pytest.mark.parametrize("size", [(23, 37), (40, 16)])
def test_fused_cpu_mse_step_gives_the_autograd_numbers_exactly(size):
    """mse_step(render_cpu, target) (the loss gradient written by the forward kernel straight
    into the backward's planar buffer) gives bit for bit what render_cpu plus
    backward(2 (image - target) / numel) gives, on sizes that end a band early and that are
    narrower than one padded block; the generic step (reference renderer) agrees to float
    tolerance."""
    from gipp_codec.render import mse_step

    height, width = size
    means, covs, colors = random_scene(60, height, width, seed=5)
    target = torch.rand(height, width, 3, generator=torch.Generator().manual_seed(2))

    def autograd_step(m, c, col):
        image = render_cpu(m, c, col, height, width)
        with torch.no_grad():
            grad = (image.detach() - target).mul_(2.0 / image.numel())
        image.backward(grad)
        return image.detach()

    fused_step = mse_step(render_cpu, target)
    fused = _mse_step_grads(fused_step, means, covs, colors)
    plain = _mse_step_grads(autograd_step, means, covs, colors)
    for got, want in zip(fused, plain):
        assert torch.equal(got, want)
    assert float(fused[4]) != 0.0  # the scale's gradient arrived
    again = _mse_step_grads(fused_step, means, covs, colors)  # the step is reusable
    assert all(torch.equal(a, b) for a, b in zip(again, fused))
    reference = _mse_step_grads(mse_step(render_reference, target), means, covs, colors)
    for got, want in zip(reference, fused):
        assert rel(got, want) <= 1e-3


def test_fused_cpu_mse_step_on_leaves_and_without_the_image():
    """On leaf tensors the fused step assigns the gradients itself (no autograd engine) and
    with image=False it stores no image: the gradients are still autograd's, bit for bit,
    and a gradient already present is added to, as autograd does."""
    from gipp_codec.render import mse_step

    height, width = 21, 30
    means, covs, colors = random_scene(50, height, width, seed=8)
    target = torch.rand(height, width, 3, generator=torch.Generator().manual_seed(4))
    leaves = [t32(x, grad=True) for x in (means, covs, colors)]
    image = render_cpu(*leaves, height, width)
    image.backward((image.detach() - target).mul_(2.0 / image.numel()))
    want = [t.grad.clone() for t in leaves]
    step = mse_step(render_cpu, target)
    for keep_image in (True, False):
        leaves = [t32(x, grad=True) for x in (means, covs, colors)]
        out = step(*leaves, image=keep_image)
        assert torch.equal(out, image.detach()) if keep_image else out is None
        assert all(torch.equal(t.grad, w) for t, w in zip(leaves, want))
    step(*leaves, image=False)  # the gradients are there now: they accumulate
    assert all(torch.equal(t.grad, w + w) for t, w in zip(leaves, want))


@pytest.mark.parametrize("size", [(21, 30), (40, 16)])
def test_mse_steps_return_the_loss_they_backpropagate(size):
    """With loss=True both steps (the CPU kernels' and the generic one) also return
    mean((image - target)^2) of the image they rendered, with or without storing it, and
    the same gradients as without it."""
    from gipp_codec.render import mse_step

    height, width = size
    means, covs, colors = random_scene(50, height, width, seed=9)
    target = torch.rand(height, width, 3, generator=torch.Generator().manual_seed(6))
    image = render_cpu(t32(means), t32(covs), t32(colors), height, width)
    want = float(((image.double() - target.double()) ** 2).mean())
    for renderer in (render_cpu, render_reference):
        step = mse_step(renderer, target)
        plain = [t32(x, grad=True) for x in (means, covs, colors)]
        step(*plain)
        for keep_image in (True, False):
            leaves = [t32(x, grad=True) for x in (means, covs, colors)]
            out, value = step(*leaves, image=keep_image, loss=True)
            assert value == pytest.approx(want, rel=1e-5)
            assert all(torch.equal(a.grad, b.grad) for a, b in zip(leaves, plain))
            if renderer is render_cpu:
                assert torch.equal(out, image) if keep_image else out is None


def test_get_renderer_dispatch():
    assert get_renderer("cpu") is render_cpu
    assert get_renderer("auto", "cpu") is render_cpu


def test_reference_gradcheck_away_from_cutoff():
    """Finite differences on the reference (float64) for a scene with no pixel centre
    near the m2 = 9 cut-off, where the rendering is smooth."""
    height, width = 5, 6
    means, covs, colors = random_scene(4, height, width, seed=11, r_lo=0.6, r_hi=1.6, margin=0.0)
    m, c = means.astype(np.float64), covs.astype(np.float64)
    ys, xs = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    for (mx, my), (a, b, cc) in zip(m, c):
        dx, dy = xs - mx, ys - my
        m2 = (cc * dx * dx - 2 * b * dx * dy + a * dy * dy) / (a * cc - b * b)
        assert np.abs(m2 - 9.0).min() > 1e-2  # the scene really is away from the cut-off
    args = (t64(means, True), t64(covs, True), t64(colors, True))
    assert torch.autograd.gradcheck(
        lambda a, b, col: render_reference(a, b, col, height, width), args, eps=1e-6, atol=1e-6, fast_mode=True
    )


def test_kernel_module_does_not_import_torch():
    """numba_kernels serves the torch-free decoder: loaded on its own it pulls no torch."""
    path = Path(nk.__file__)
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('nkonly', {str(path)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_scratch_reuse_across_calls_and_sizes():
    """The backward reuses per-thread scratch buffers: results must not depend on the
    previous call (other sizes, other gradients), and widths around the LANES padding
    must agree with the float64 reference."""
    for height, width in ((9, 31), (5, 16), (7, 17), (9, 31)):
        means, covs, colors = random_scene(25, height, width, seed=width)
        pp = nk.prepare(means, covs, colors, height, width)
        for seed in (0, 1):
            g = np.random.default_rng(seed).normal(size=(height, width, 3)).astype(np.float32)
            got = nk.backward_prepared(pp, g)
            ref = grads(render_reference, means, covs, colors, height, width, torch.tensor(g, dtype=torch.float64), t64)
            for name, a, b in zip(("means", "covs", "colors"), got, ref[1:]):
                assert rel(a, b) <= 1e-4, (height, width, seed, name, rel(a, b))
        np.testing.assert_array_equal(nk.forward_prepared(pp), nk.forward(means, covs, colors, height, width))


def test_reference_gradients_stay_finite_with_invalid_gaussians():
    # an indefinite covariance far from the pixels makes m2 hugely negative: exp would
    # overflow, and a masked exp must not leak 0 * inf = NaN into the gradients
    height, width = 9, 12
    means = torch.tensor([[4.0, 4.0], [60.0, 60.0], [5.5, 3.5]], dtype=torch.float32, requires_grad=True)
    covs = torch.tensor([[2.0, 0.3, 1.5], [1.0, 3.0, 1.0], [1.2, 0.0, 0.8]], dtype=torch.float32, requires_grad=True)
    colors = torch.tensor([[0.5, 0.2, 0.1], [1.0, 1.0, 1.0], [0.3, 0.3, 0.3]], requires_grad=True)
    out = render_reference(means, covs, colors, height, width)
    out.sum().backward()
    for t in (means, covs, colors):
        assert torch.isfinite(t.grad).all()
    assert not means.grad[1].any() and not covs.grad[1].any() and not colors.grad[1].any()
    assert means.grad[0].abs().sum() > 0  # the valid ones still get gradients


def test_both_block_widths_give_the_same_render_and_gradients(tmp_path):
    """LANES is the host's vector width (8, or 16 with AVX-512), so CI exercises one of them:
    the kernel module compiled with the other width must give the same image bit for bit
    (each pixel sums the same Gaussians in the same order; the extra lanes hold zero
    weights) and the same gradients up to the order of the row sums' vector reduction."""
    import importlib.util

    other = 8 if nk.LANES == 16 else 16
    source = Path(nk.__file__).read_text()
    assert "LANES = host_vector_lanes()" in source
    path = tmp_path / "nk_other_lanes.py"
    path.write_text(source.replace("LANES = host_vector_lanes()", f"LANES = {other}"))
    spec = importlib.util.spec_from_file_location("nk_other_lanes", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.LANES == other
    for height, width, n in ((37, 53, 60), (16, 40, 30), (5, 7, 12)):
        means, covs, colors = random_scene(n, height, width, seed=height)
        g = np.random.default_rng(height).normal(size=(height, width, 3)).astype(np.float32)
        np.testing.assert_array_equal(mod.forward_uint8(means, covs, colors, height, width),
                                      nk.forward_uint8(means, covs, colors, height, width))
        np.testing.assert_array_equal(mod.forward(means, covs, colors, height, width),
                                      nk.forward(means, covs, colors, height, width))
        for a, b in zip(mod.backward(means, covs, colors, height, width, g),
                        nk.backward(means, covs, colors, height, width, g)):
            assert rel(a, b) <= 1e-5


def test_known_gradients_backpropagate_like_autograd_backward():
    """cpu_mse_step's way into autograd gives the same gradients as
    torch.autograd.backward(tensors, grads), through non-leaf tensors and accumulation."""
    from gipp_codec.render.cpu import _KnownGradients

    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(6, 4, generator=gen)
    grads = [torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)]
    results = []
    for use_known in (False, True):
        x = x0.clone().requires_grad_(True)
        x.grad = torch.ones_like(x)  # accumulates onto an existing gradient
        y = torch.exp(x) * 3.0
        parts = [y[:, :2], y[:, 2:]]
        if use_known:
            _KnownGradients.apply(2, *parts, *grads).backward()
        else:
            torch.autograd.backward(parts, grads)
        results.append(x.grad.clone())
    assert torch.equal(results[0], results[1]) and not torch.equal(results[0], torch.ones_like(x0))


def test_kernel_weight_is_exp_to_float32_accuracy_and_zero_outside():
    """The kernels' weight exp(-m2/2) / exp(-9/4) (polynomial, four squarings) stays within
    3e-6 of exp in relative terms over the whole ellipse, m2 in [0, 9], and is 0 past the
    cut-off and for NaN; its polynomial is the one tools/fit_exp_polynomial.py derives."""
    m2 = np.linspace(0.0, 9.0, 4001).astype(np.float32)  # [4001]
    zero, one = np.float32(0.0), np.float32(1.0)
    got = np.array([nk._weight(zero, one, v, zero) for v in m2], np.float64) * nk._EXP_SCALE  # e = 0: m2 = m2r
    exact = np.exp(-0.5 * m2.astype(np.float64))
    assert np.abs(got / exact - 1.0).max() < 3e-6
    taper = nk.kernel_taper(2)  # convention 2: exp(-m2/2) - exp(-9/2), continuous at the cut-off
    tapered = np.array([nk._weight(zero, one, v, taper) for v in m2], np.float64) * nk._EXP_SCALE
    assert np.abs(tapered - (exact - np.exp(-4.5))).max() < 3e-6 and abs(tapered[-1]) < 1e-7
    for outside in (np.nextafter(np.float32(9.0), np.float32(10.0)), np.float32(40.0), np.float32("nan")):
        assert nk._weight(zero, one, outside, zero) == 0.0 and nk._weight(zero, one, outside, taper) == 0.0

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import fit_exp_polynomial

    fitted = fit_exp_polynomial.lawson_fit(len(nk._EXP_POLY) - 1, 200).astype(np.float32)
    np.testing.assert_array_equal(fitted, np.array(nk._EXP_POLY, np.float32))
    # the box's lanes outside the ellipse evaluate it too (v down to -64 at m2 ~ 2052): kept
    # well away from 0 there, its 16th power never goes subnormal (slow on x86)
    v = np.linspace(-64.0, 9.0 / 64.0, 200001)
    assert np.polynomial.polynomial.polyval(v, np.array(nk._EXP_POLY, np.float64)).min() > 0.1


def test_render_work_counts_the_pixels_of_each_bounding_square():
    """``convention.render_work`` against a count of the pixel centres within r of the mean
    on both axes, Gaussian by Gaussian (invalid ones count nothing)."""
    rng = np.random.default_rng(5)
    n, width, height = 60, 23, 17
    means = rng.uniform(-10, 33, (n, 2))  # [N, 2], some off the image
    covs = np.stack([rng.uniform(0.1, 30, n), rng.uniform(-3, 3, n), rng.uniform(0.1, 30, n)], 1)  # [N, 3]
    covs[:5, 1] = 100.0  # not positive definite
    r = convention.bounding_radius(covs)
    cols, rows = np.arange(width) + 0.5, np.arange(height) + 0.5
    expected = 0
    for k in range(n):
        if convention.valid_mask(covs[k:k + 1])[0]:
            expected += int((np.abs(cols - means[k, 0]) <= r[k]).sum() * (np.abs(rows - means[k, 1]) <= r[k]).sum())
    assert expected > 0
    assert convention.render_work(means, covs, width, height) == expected


def test_render_work_kernel_equals_the_numpy_statement():
    """The decoder's ``render_work_kernel`` gives exactly ``convention.render_work``, on fitted
    sizes and on what a damaged file can hold: NaN, infinities, zeros, negative and
    non-positive-definite covariances, means far off the image, radii wider than it."""
    rng = np.random.default_rng(8)
    n, width, height = 4000, 97, 61
    means = rng.uniform(-40, 140, (n, 2)).astype(np.float32)  # [N, 2]
    covs = np.stack([rng.lognormal(2, 2, n), rng.normal(0, 20, n), rng.lognormal(2, 2, n)], 1).astype(np.float32)
    odd = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1e-30, 3e38, 1e20], np.float32)
    k = rng.integers(0, n, 1500)
    covs[k, rng.integers(0, 3, 1500)] = rng.choice(odd, 1500)
    k = rng.integers(0, n, 500)
    means[k, rng.integers(0, 2, 500)] = rng.choice(odd, 500)
    means[:50] = [[0.5, 0.5]]  # centres on a pixel centre: the bounds' equality cases
    covs[:50] = [[1.0, 0.0, 1.0]]  # radius exactly 3
    with np.errstate(invalid="ignore", over="ignore"):  # the statement's valid_mask on infinities
        expected = convention.render_work(means, covs, width, height)
        per_size = {size: convention.render_work(means, covs, size, size) for size in (1, 65535)}
    assert expected > 0
    assert nk.render_work_kernel(means, covs, width, height) == expected
    for size, work in per_size.items():  # one pixel; the widest image
        assert nk.render_work_kernel(means, covs, size, size) == work
    empty = np.zeros((0, 2), np.float32), np.zeros((0, 3), np.float32)
    assert nk.render_work_kernel(*empty, width, height) == 0


def test_forward_into_a_given_out_and_refusing_a_bad_one():
    """forward_prepared writes into a caller's C-contiguous out of the render's shape and
    type (the same values as into its own), and refuses any other out with a ValueError
    (its rows are written through flat views)."""
    height, width = 9, 21
    means, covs, colors = random_scene(30, height, width, seed=3)
    pp = nk.prepare(means, covs, colors, height, width)
    for uint8, dtype in ((False, np.float32), (True, np.uint8)):
        out = np.full((height, width, 3), 7, dtype)
        got = nk.forward_prepared(pp, out, uint8=uint8)
        assert got is out
        np.testing.assert_array_equal(out, nk.forward_prepared(pp, uint8=uint8))
        wide = np.zeros((height, 2 * width, 3), dtype)
        bad_outs = (np.zeros((height, width, 3), np.float64), np.zeros((height + 1, width, 3), dtype),
                    wide[:, ::2], np.zeros((height, width, 3), np.uint8 if dtype == np.float32 else np.float32))
        for bad in bad_outs:
            with pytest.raises(ValueError, match="out must be a C-contiguous"):
                nk.forward_prepared(pp, bad, uint8=uint8)
