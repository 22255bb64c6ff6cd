"""The CUDA renderer: tiled forward and backward kernels written in Triton.

Same contract and convention as ``reference.render_reference`` (pixel centres at i + 0.5,
inclusive 3-sigma cut-off m2 <= 9, invalid Gaussians contribute nothing, plain unclamped
sum, no per-tile cap). Computation is float32 whatever the input dtype; the output is
cast back to the input dtype.

Pipeline of one render:
1. Triton (``_pack_kernel``): each Gaussian's packed row with its conic (inverse
   covariance) terms ``(ia, ib, ic) = (c, b, a) / det``, so that
   ``m2 = ia*dx*dx - 2*ib*dx*dy + ic*dy*dy``, and its validity; in the backward pass
   ``_covariance_grad_kernel`` turns d/dconic into d/dcovs (the formula is in its docstring).
2. Triton and torch (``tiles_triton.bin_gaussians_triton``, the same bins as the torch
   reference ``tiles.bin_gaussians``): (tile, Gaussian) pairs sorted by tile, no cap.
3. Triton forward: one program per 16x16 tile; it walks the tile's Gaussians in blocks of
   BLOCK_G, evaluates a [BLOCK_G, 256] weight block and accumulates the three channels.
4. Triton backward: the same walk; for every (tile, Gaussian) pair the program reduces its
   256 pixels to 8 partial gradients (d mean x/y, d conic a/b/c, d colour r/g/b) and
   stores them in a per-pair buffer [P, 8]; torch then sums each Gaussian's pairs.

Why per-pair partials + a torch segmented sum rather than ``tl.atomic_add``: the result is
deterministic (bitwise reproducible run to run; float atomics are not, and a codec's
encoder is nicer to debug and test when reruns are identical), and it costs little:
with fitted sizes (3-sigma radius ~19 px) a Gaussian touches ~10 tiles, so at 10k
Gaussians the buffer is ~100k x 8 floats (~3 MB) and the segmented sum is one cheap pass.
Atomics would win only when Gaussians touch thousands of tiles each. The pairs are
written straight into Gaussian-major order (``TileBins.pair_slots``), so the sum is a
``torch.segment_reduce`` over contiguous segments, which sums each segment in a fixed
order on both CPU and CUDA.

Interpreter mode: with ``TRITON_INTERPRET=1`` set before triton is imported, the kernels
run on CPU tensors (slowly) — that is how the tests check them on machines without a GPU.
"""

import os

import torch
import triton
import triton.language as tl

from gipp_codec.errors import ConfigError
from gipp_codec.render.convention import CUTOFF_M2, ENCODER_CONVENTION, PIXEL_CENTER_OFFSET, taper_of
from gipp_codec.render.tiles import TILE
from gipp_codec.render.tiles_triton import bin_gaussians_triton

# Gaussians per inner block and warps per tile program. Not yet timed on a GPU (none was at
# hand); chosen from an ahead-of-time sm_90 compile (triton.compile with
# GPUTarget("cuda", 90, 32), cuobjdump -res-usage), registers per thread / spill bytes:
#   warps=8: fwd G=16 108/0, G=32 169/0, G=64 255/288; bwd G=16 128/0, G=32 255/0, G=64 255/264
#   warps=4: fwd G=16 128/0, G=32 207/0, G=64 spills;  bwd G=16 254/0, G=32 255/256
# G=16 with 8 warps is the only setting with <= 128 registers in both kernels (two 256-thread
# programs per SM) and no spills. tools/bench_gpu.py --sweep times the alternatives.
BLOCK_G = 16
BWD_BLOCK_G = 16
NUM_WARPS = 8
# Contract a*b+c into FMAs (Triton's historical default; explicit because Triton 3.9 warns that
# its default will flip in 3.10). Both settings are well within the tests' 1e-4 tolerance.
FP_FUSION = True
# Row layouts (8 float32 each): packed Gaussian params  mx, my, ia, ib, ic, r, g, b;
# per-pair partial gradients  d mx, d my, d ia, d ib, d ic, d r, d g, d b.


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@triton.jit
def _tile_pixels(tiles_x, height, width, TILE_SIZE: tl.constexpr, CENTER: tl.constexpr):
    """This program's tile: pixel column, row, in-image mask and pixel-centre x, y, each [256]."""
    tile = tl.program_id(0)
    ty = tile // tiles_x
    tx = tile - ty * tiles_x
    pix = tl.arange(0, TILE_SIZE * TILE_SIZE)  # [256] pixels of the tile, row-major
    col = tx * TILE_SIZE + pix % TILE_SIZE
    row = ty * TILE_SIZE + pix // TILE_SIZE
    in_image = (col < width) & (row < height)
    return col, row, in_image, col.to(tl.float32) + CENTER, row.to(tl.float32) + CENTER


@triton.jit
def _load_params(params_ptr, gauss_ids_ptr, k, live):
    """Packed parameters (mx, my, ia, ib, ic, r, g, b), each [G], of the pairs k [G] (live mask)."""
    gid = tl.load(gauss_ids_ptr + k, mask=live, other=0)
    row_ptr = params_ptr + gid.to(tl.int64) * 8
    mx = tl.load(row_ptr + 0, mask=live, other=0.0)
    my = tl.load(row_ptr + 1, mask=live, other=0.0)
    ia = tl.load(row_ptr + 2, mask=live, other=0.0)
    ib = tl.load(row_ptr + 3, mask=live, other=0.0)
    ic = tl.load(row_ptr + 4, mask=live, other=0.0)
    cr = tl.load(row_ptr + 5, mask=live, other=0.0)
    cg = tl.load(row_ptr + 6, mask=live, other=0.0)
    cb = tl.load(row_ptr + 7, mask=live, other=0.0)
    return mx, my, ia, ib, ic, cr, cg, cb


@triton.jit
def _forward_kernel(
    params_ptr,  # [N, 8] float32
    gauss_ids_ptr,  # [P] int32, sorted by tile
    tile_offsets_ptr,  # [T + 1] int32
    out_ptr,  # [H, W, 3] float32
    height,
    width,
    tiles_x,
    TILE_SIZE: tl.constexpr,
    BLOCK: tl.constexpr,
    CUT: tl.constexpr,
    CENTER: tl.constexpr,
    TAPER: tl.constexpr,
):
    tile = tl.program_id(0)
    col, row, in_image, px, py = _tile_pixels(tiles_x, height, width, TILE_SIZE, CENTER)
    start = tl.load(tile_offsets_ptr + tile)
    end = tl.load(tile_offsets_ptr + tile + 1)
    acc_r = tl.zeros([TILE_SIZE * TILE_SIZE], dtype=tl.float32)
    acc_g = tl.zeros([TILE_SIZE * TILE_SIZE], dtype=tl.float32)
    acc_b = tl.zeros([TILE_SIZE * TILE_SIZE], dtype=tl.float32)
    for s in range(start, end, BLOCK):
        k = s + tl.arange(0, BLOCK)  # [G] pair indices
        live = k < end
        mx, my, ia, ib, ic, cr, cg, cb = _load_params(params_ptr, gauss_ids_ptr, k, live)
        # Forward block is [G, 256] (pixels last): with Triton's default layout each thread
        # owns whole G-columns of a few pixels, so the sum over Gaussians stays in-thread.
        dx = px[None, :] - mx[:, None]  # [G, 256]
        dy = py[None, :] - my[:, None]
        m2 = ia[:, None] * dx * dx - 2.0 * ib[:, None] * dx * dy + ic[:, None] * dy * dy
        inside = (m2 <= CUT) & live[:, None]
        w = tl.where(inside, tl.exp(-0.5 * m2) - TAPER, 0.0)  # [G, 256]
        acc_r += tl.sum(w * cr[:, None], axis=0)
        acc_g += tl.sum(w * cg[:, None], axis=0)
        acc_b += tl.sum(w * cb[:, None], axis=0)
    o = (row.to(tl.int64) * width + col) * 3
    tl.store(out_ptr + o + 0, acc_r, mask=in_image)
    tl.store(out_ptr + o + 1, acc_g, mask=in_image)
    tl.store(out_ptr + o + 2, acc_b, mask=in_image)


@triton.jit
def _backward_kernel(
    params_ptr,  # [N, 8] float32
    gauss_ids_ptr,  # [P] int32, sorted by tile
    pair_slots_ptr,  # [P] int64, Gaussian-major row of each sorted pair
    tile_offsets_ptr,  # [T + 1] int32
    grad_out_ptr,  # [H, W, 3] float32
    partial_ptr,  # [P, 8] float32, written Gaussian-major
    height,
    width,
    tiles_x,
    TILE_SIZE: tl.constexpr,
    BLOCK: tl.constexpr,
    CUT: tl.constexpr,
    CENTER: tl.constexpr,
    TAPER: tl.constexpr,
):
    tile = tl.program_id(0)
    col, row, in_image, px, py = _tile_pixels(tiles_x, height, width, TILE_SIZE, CENTER)
    o = (row.to(tl.int64) * width + col) * 3
    # Pixels outside the image get a zero incoming gradient: they then add nothing below.
    gr = tl.load(grad_out_ptr + o + 0, mask=in_image, other=0.0)  # [256]
    gg = tl.load(grad_out_ptr + o + 1, mask=in_image, other=0.0)
    gb = tl.load(grad_out_ptr + o + 2, mask=in_image, other=0.0)
    start = tl.load(tile_offsets_ptr + tile)
    end = tl.load(tile_offsets_ptr + tile + 1)
    for s in range(start, end, BLOCK):
        k = s + tl.arange(0, BLOCK)
        live = k < end
        mx, my, ia, ib, ic, cr, cg, cb = _load_params(params_ptr, gauss_ids_ptr, k, live)
        # Backward block is [256, G] (Gaussians last): the per-Gaussian sums over pixels then
        # reduce within threads and across warps once per block, not per Gaussian.
        dx = px[:, None] - mx[None, :]  # [256, G]
        dy = py[:, None] - my[None, :]
        m2 = ia[None, :] * dx * dx - 2.0 * ib[None, :] * dx * dy + ic[None, :] * dy * dy
        inside = (m2 <= CUT) & live[None, :]
        wx = tl.where(inside, tl.exp(-0.5 * m2), 0.0)  # [256, G]: exp(-m2/2), whose derivative the geometry takes
        w = tl.where(inside, wx - TAPER, 0.0)  # the rendered weight
        # out[p, ch] += w[p, k] * col[k, ch]
        d_cr = tl.sum(w * gr[:, None], axis=0)  # [G]
        d_cg = tl.sum(w * gg[:, None], axis=0)
        d_cb = tl.sum(w * gb[:, None], axis=0)
        dw = gr[:, None] * cr[None, :] + gg[:, None] * cg[None, :] + gb[:, None] * cb[None, :]
        dm2 = -0.5 * wx * dw  # dL/dm2, [256, G]; zero outside the ellipse
        s_x = tl.sum(dm2 * dx, axis=0)
        s_y = tl.sum(dm2 * dy, axis=0)
        s_xx = tl.sum(dm2 * dx * dx, axis=0)
        s_xy = tl.sum(dm2 * dx * dy, axis=0)
        s_yy = tl.sum(dm2 * dy * dy, axis=0)
        # dm2/dmx = -2 (ia dx - ib dy), dm2/dmy = -2 (ic dy - ib dx),
        # dm2/dia = dx^2, dm2/dib = -2 dx dy, dm2/dic = dy^2.
        d_mx = -2.0 * (ia * s_x - ib * s_y)
        d_my = -2.0 * (ic * s_y - ib * s_x)
        slot = tl.load(pair_slots_ptr + k, mask=live, other=0)
        dst = partial_ptr + slot * 8
        tl.store(dst + 0, d_mx, mask=live)
        tl.store(dst + 1, d_my, mask=live)
        tl.store(dst + 2, s_xx, mask=live)
        tl.store(dst + 3, -2.0 * s_xy, mask=live)
        tl.store(dst + 4, s_yy, mask=live)
        tl.store(dst + 5, d_cr, mask=live)
        tl.store(dst + 6, d_cg, mask=live)
        tl.store(dst + 7, d_cb, mask=live)


@triton.jit
def _pack_kernel(
    means_ptr, covs_ptr, colors_ptr,  # [N, 2], [N, 3], [N, 3] float32
    params_ptr, valid_ptr,  # outputs: [N, 8] float32 packed rows, [N] bool
    n,
    BLOCK: tl.constexpr,
):
    """Each Gaussian's packed row (mx, my, ia, ib, ic, r, g, b) with the conic (c, b, a) / det
    of its covariance, and whether it is valid (positive definite, finite det). An invalid
    row gets the identity's conic, so that no inf or NaN reaches the kernels (it is in no
    tile anyway)."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = i < n
    a = tl.load(covs_ptr + 3 * i, mask=live, other=1.0)
    b = tl.load(covs_ptr + 3 * i + 1, mask=live, other=0.0)
    c = tl.load(covs_ptr + 3 * i + 2, mask=live, other=1.0)
    det = a * c - b * b
    ok = (a > 0.0) & (c > 0.0) & (det > 0.0) & ((det - det) == 0.0)  # the last: det is finite
    a = tl.where(ok, a, 1.0)
    b = tl.where(ok, b, 0.0)
    c = tl.where(ok, c, 1.0)
    det = a * c - b * b
    row = params_ptr + i.to(tl.int64) * 8
    tl.store(row + 0, tl.load(means_ptr + 2 * i, mask=live, other=0.0), mask=live)
    tl.store(row + 1, tl.load(means_ptr + 2 * i + 1, mask=live, other=0.0), mask=live)
    tl.store(row + 2, tl.div_rn(c, det), mask=live)
    tl.store(row + 3, tl.div_rn(b, det), mask=live)
    tl.store(row + 4, tl.div_rn(a, det), mask=live)
    for j in tl.static_range(3):
        tl.store(row + 5 + j, tl.load(colors_ptr + 3 * i + j, mask=live, other=0.0), mask=live)
    tl.store(valid_ptr + i, ok, mask=live)


@triton.jit
def _covariance_grad_kernel(
    params_ptr,  # [N, 8] float32 packed rows (the conic ia, ib, ic in columns 2..4)
    valid_ptr,  # [N] bool
    grads_ptr,  # [N, 8] float32: d mx, d my, d ia, d ib, d ic, d r, d g, d b
    dcovs_ptr,  # output [N, 3] float32: d a, d b, d c
    n,
    BLOCK: tl.constexpr,
):
    """The loss gradient of each covariance from that of its conic. With the conic
    (ia, ib, ic) = (c, b, a) / det and its gradients (gi, gb, gc):
    d a = -(gi ia^2 + gb ia ib + gc ib^2), d c = -(gi ib^2 + gb ib ic + gc ic^2),
    d b = 2 gi ia ib + gb (ia ic + ib^2) + 2 gc ib ic  (b enters det as b^2); zero where invalid."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = i < n
    row = i.to(tl.int64) * 8
    ia = tl.load(params_ptr + row + 2, mask=live, other=0.0)
    ib = tl.load(params_ptr + row + 3, mask=live, other=0.0)
    ic = tl.load(params_ptr + row + 4, mask=live, other=0.0)
    gi = tl.load(grads_ptr + row + 2, mask=live, other=0.0)
    gb = tl.load(grads_ptr + row + 3, mask=live, other=0.0)
    gc = tl.load(grads_ptr + row + 4, mask=live, other=0.0)
    ok = tl.load(valid_ptr + i, mask=live, other=0) != 0
    da = -(gi * ia * ia + gb * ia * ib + gc * ib * ib)
    db = 2.0 * gi * ia * ib + gb * (ia * ic + ib * ib) + 2.0 * gc * ib * ic
    dc = -(gi * ib * ib + gb * ib * ic + gc * ic * ic)
    tl.store(dcovs_ptr + 3 * i, tl.where(ok, da, 0.0), mask=live)
    tl.store(dcovs_ptr + 3 * i + 1, tl.where(ok, db, 0.0), mask=live)
    tl.store(dcovs_ptr + 3 * i + 2, tl.where(ok, dc, 0.0), mask=live)


ROWS_PER_PROGRAM = 256  # Gaussians per program of the packing and covariance-gradient kernels


class _TiledSum(torch.autograd.Function):
    """Render float32 (means, covs, colors): pack, bin, forward kernel; backward kernel,
    per-Gaussian sums, and the covariance gradient from the conic's."""

    @staticmethod
    def forward(ctx, means, covs, colors, height, width, block, bwd_block, taper):
        n = means.shape[0]
        params = torch.empty(n, 8, device=means.device, dtype=torch.float32)
        valid = torch.empty(n, device=means.device, dtype=torch.bool)
        grid = (triton.cdiv(n, ROWS_PER_PROGRAM),)
        _pack_kernel[grid](means, covs, colors, params, valid, n, BLOCK=ROWS_PER_PROGRAM,
                           num_warps=4, enable_fp_fusion=False)
        bins = bin_gaussians_triton(means, covs, height, width, valid=valid)  # invalid ones are in no tile
        out = torch.zeros(height, width, 3, device=means.device, dtype=torch.float32)
        num_tiles = bins.tiles_x * bins.tiles_y
        if num_tiles > 0:
            _forward_kernel[(num_tiles,)](
                params, bins.gauss_ids, bins.tile_offsets, out, height, width, bins.tiles_x,
                TILE_SIZE=TILE, BLOCK=block, CUT=CUTOFF_M2, CENTER=PIXEL_CENTER_OFFSET, TAPER=taper,
                num_warps=NUM_WARPS, enable_fp_fusion=FP_FUSION,
            )
        ctx.save_for_backward(params, valid)
        ctx.bins, ctx.height, ctx.width, ctx.block, ctx.taper = bins, height, width, bwd_block, taper
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        params, valid = ctx.saved_tensors
        bins = ctx.bins
        n = params.shape[0]
        num_pairs = bins.gauss_ids.shape[0]
        num_tiles = bins.tiles_x * bins.tiles_y
        if num_pairs == 0 or num_tiles == 0:  # nothing drawn
            grads = params.new_zeros(n, 8)
        else:
            partial = torch.empty(num_pairs, 8, device=params.device, dtype=torch.float32)
            _backward_kernel[(num_tiles,)](
                params, bins.gauss_ids, bins.pair_slots, bins.tile_offsets,
                grad_out.to(torch.float32).contiguous(), partial,
                ctx.height, ctx.width, bins.tiles_x,
                TILE_SIZE=TILE, BLOCK=ctx.block, CUT=CUTOFF_M2, CENTER=PIXEL_CENTER_OFFSET, TAPER=ctx.taper,
                num_warps=NUM_WARPS, enable_fp_fusion=FP_FUSION,
            )
            # Deterministic per-Gaussian sum of its pairs (contiguous, Gaussian-major).
            grads = torch.segment_reduce(partial, "sum", lengths=bins.counts, axis=0)  # [N, 8]
        dcovs = torch.empty(n, 3, device=params.device, dtype=torch.float32)
        _covariance_grad_kernel[(triton.cdiv(n, ROWS_PER_PROGRAM),)](
            params, valid, grads, dcovs, n, BLOCK=ROWS_PER_PROGRAM, num_warps=4, enable_fp_fusion=False)
        return grads[:, 0:2], dcovs, grads[:, 5:8], None, None, None, None, None


def render_cuda(
    means: torch.Tensor,  # [N, 2] (x, y) in pixels
    covs: torch.Tensor,  # [N, 3] (a, b, c) effective covariance
    colors: torch.Tensor,  # [N, 3]
    height: int,
    width: int,
    block: int = BLOCK_G,
    bwd_block: int = BWD_BLOCK_G,
    convention: int = ENCODER_CONVENTION,
) -> torch.Tensor:  # [H, W, 3] unclamped
    """Render with the tiled Triton kernels in render ``convention`` (spec §7; the
    encoder's by default); differentiable in means, covs and colors."""
    taper = taper_of(convention)
    if not means.is_cuda and not _interpreting():
        raise ConfigError(
            f"the 'cuda' renderer needs CUDA tensors, got device {means.device} "
            "(or set TRITON_INTERPRET=1 before importing triton to run its kernels on CPU, slowly)"
        )
    if means.shape[0] == 0 or height == 0 or width == 0:
        # Nothing to launch; keep the result connected to the inputs for autograd.
        zero = (means.sum() + covs.sum() + colors.sum()) * 0.0
        return zero + torch.zeros(height, width, 3, device=means.device, dtype=means.dtype)
    dtype = means.dtype
    f32 = [t.to(torch.float32).contiguous() for t in (means, covs, colors)]
    out = _TiledSum.apply(*f32, height, width, block, bwd_block, taper)
    return out.to(dtype)
