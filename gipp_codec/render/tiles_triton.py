"""Tile binning for the CUDA renderer in two Triton kernels: the same ``TileBins`` as
``tiles.bin_gaussians``, element for element, in about a tenth of the launches.

On a GPU the torch form of the binning (``tiles.bin_gaussians``) costs about 100 small
operations per render, and their launch overhead made it as slow as the whole forward pass
on an H200 (BENCHMARKS.md §7). Here:

1. ``_tile_rect_kernel`` (one lane per Gaussian): the tile rectangle of
   ``tiles.tile_rects``, computed in float64 with no FMA contraction so that every rounding
   is the torch form's, and the Gaussian's tile count;
2. torch: the counts' running sum (each Gaussian's first pair), the number of pairs (the
   one host sync, to size the pair buffers);
3. ``_expand_pairs_kernel`` (one program per Gaussian): writes the tile id and owner of each
   of its pairs, Gaussian-major;
4. torch: the stable sort by tile id, the owners in that order, and each tile's offset.

The torch form stays as the readable reference; the tests check both give the same bins.
"""

import torch
import triton
import triton.language as tl

from gipp_codec import triton_path
from gipp_codec.render.convention import CUTOFF_M2, PIXEL_CENTER_OFFSET
from gipp_codec.render.tiles import _BOX_MARGIN, TILE, TileBins

RECT_BLOCK = 128  # Gaussians per program of the rectangle kernel
EXPAND_BLOCK = 64  # pairs written per step of the expansion kernel


@triton.jit
def _finite(x):
    """True where x is neither infinite nor NaN (x - x is 0 exactly then, else NaN)."""
    return (x - x) == 0.0


@triton.jit
def _tile_rect_kernel(
    means_ptr, covs_ptr, valid_ptr, consts_ptr,  # [N, 2] f32, [N, 3] f32, [N] bool, [1] f64
    x0_ptr, y0_ptr, nx_ptr, counts_ptr,  # outputs [N]: int32 x3, int64
    n, height, width,
    TILE_SIZE: tl.constexpr, CUT: tl.constexpr, CENTER: tl.constexpr, BLOCK: tl.constexpr,
):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = i < n
    mx = tl.load(means_ptr + 2 * i, mask=live, other=0.0).to(tl.float64)
    my = tl.load(means_ptr + 2 * i + 1, mask=live, other=0.0).to(tl.float64)
    a = tl.load(covs_ptr + 3 * i, mask=live, other=0.0).to(tl.float64)
    b = tl.load(covs_ptr + 3 * i + 1, mask=live, other=0.0).to(tl.float64)
    c = tl.load(covs_ptr + 3 * i + 2, mask=live, other=0.0).to(tl.float64)
    given = tl.load(valid_ptr + i, mask=live, other=0) != 0
    margin = tl.load(consts_ptr)
    ok = (a > 0.0) & (c > 0.0) & (a * c - b * b > 0.0) & given
    ok = ok & _finite(mx) & _finite(my) & _finite(a) & _finite(b) & _finite(c)
    # half-widths of the cut-off ellipse's bounding box, widened by the margin
    hx = tl.sqrt(tl.maximum(a * CUT, 0.0)) + margin  # float64: sqrt.rn.f64, exact (a test reads the PTX)
    hy = tl.sqrt(tl.maximum(c * CUT, 0.0)) + margin
    # the launcher specializes an int argument equal to 1 into a Python int, which has no
    # .to(): adding a float64 zero converts either form exactly
    w64 = width + tl.zeros_like(mx)
    h64 = height + tl.zeros_like(mx)
    lo_x = tl.ceil(tl.minimum(tl.maximum(mx - hx - CENTER, -1.0), w64 + 1.0))
    hi_x = tl.floor(tl.minimum(tl.maximum(mx + hx - CENTER, -1.0), w64 + 1.0))
    lo_y = tl.ceil(tl.minimum(tl.maximum(my - hy - CENTER, -1.0), h64 + 1.0))
    hi_y = tl.floor(tl.minimum(tl.maximum(my + hy - CENTER, -1.0), h64 + 1.0))
    # zero the values of invalid lanes before the integer conversion (NaN has no integer)
    lo_x = tl.where(ok, lo_x, 0.0)
    hi_x = tl.where(ok, hi_x, 0.0)
    lo_y = tl.where(ok, lo_y, 0.0)
    hi_y = tl.where(ok, hi_y, 0.0)
    px0 = tl.maximum(lo_x, 0.0).to(tl.int32)
    px1 = tl.minimum(hi_x, w64 - 1.0).to(tl.int32)  # inclusive last column
    py0 = tl.maximum(lo_y, 0.0).to(tl.int32)
    py1 = tl.minimum(hi_y, h64 - 1.0).to(tl.int32)
    ok = ok & (px1 >= px0) & (py1 >= py0)  # so px1, py1 >= 0 below: // is floor division
    x0 = tl.where(ok, px0 // TILE_SIZE, 0)
    y0 = tl.where(ok, py0 // TILE_SIZE, 0)
    nx = tl.where(ok, px1 // TILE_SIZE + 1 - x0, 0)
    ny = tl.where(ok, py1 // TILE_SIZE + 1 - y0, 0)
    tl.store(x0_ptr + i, x0, mask=live)
    tl.store(y0_ptr + i, y0, mask=live)
    tl.store(nx_ptr + i, nx, mask=live)
    tl.store(counts_ptr + i, nx.to(tl.int64) * ny.to(tl.int64), mask=live)


@triton.jit
def _expand_pairs_kernel(
    x0_ptr, y0_ptr, nx_ptr, counts_ptr, first_ptr,  # [N] int32 x3, int64, int64
    tile_ids_ptr, owners_ptr,  # outputs [P] int32: tile id and Gaussian of each pair
    tiles_x,
    BLOCK: tl.constexpr,
):
    g = tl.program_id(0)
    count = tl.load(counts_ptr + g)
    first = tl.load(first_ptr + g)
    x0 = tl.load(x0_ptr + g)
    y0 = tl.load(y0_ptr + g)
    nx = tl.maximum(tl.load(nx_ptr + g), 1)  # >= 1 whenever count > 0
    for start in range(0, count, BLOCK):
        local = start + tl.arange(0, BLOCK)  # the Gaussian's local-th tile, row-major
        live = local < count
        tile = (y0 + local // nx) * tiles_x + x0 + local % nx
        tl.store(tile_ids_ptr + first + local, tile.to(tl.int32), mask=live)
        tl.store(owners_ptr + first + local, tl.zeros_like(local).to(tl.int32) + g, mask=live)


def bin_gaussians_triton(
    means: torch.Tensor,  # [N, 2] float32
    covs: torch.Tensor,  # [N, 3] float32
    height: int,
    width: int,
    valid: torch.Tensor | None = None,  # [N] bool, ANDed with the positive-definiteness test
) -> TileBins:
    """``tiles.bin_gaussians(means, covs, height, width, TILE, valid)`` with Triton kernels:
    the same pairs, order, offsets and counts (see the module docstring)."""
    device = means.device
    n = int(means.shape[0])
    tiles_x = (width + TILE - 1) // TILE
    tiles_y = (height + TILE - 1) // TILE
    num_tiles = tiles_x * tiles_y
    m = means.detach().to(torch.float32).contiguous()
    cv = covs.detach().to(torch.float32).contiguous()
    given = (torch.ones(n, dtype=torch.bool, device=device) if valid is None
             else valid.to(device=device, dtype=torch.bool).contiguous())
    x0 = torch.empty(n, dtype=torch.int32, device=device)
    y0 = torch.empty(n, dtype=torch.int32, device=device)
    nx = torch.empty(n, dtype=torch.int32, device=device)
    counts = torch.empty(n, dtype=torch.int64, device=device)
    if n > 0:
        _tile_rect_kernel[(triton.cdiv(n, RECT_BLOCK),)](
            # the box margin (1e-3) from memory: float32 cannot hold it
            m, cv, given, triton_path.constants((_BOX_MARGIN,), device), x0, y0, nx, counts, n, height, width,
            TILE_SIZE=TILE, CUT=CUTOFF_M2, CENTER=PIXEL_CENTER_OFFSET, BLOCK=RECT_BLOCK,
            enable_fp_fusion=False,
        )
    ends = torch.cumsum(counts, 0)  # [N] one past each Gaussian's last pair
    num_pairs = int(ends[-1]) if n > 0 else 0  # the one host sync of the binning
    if num_pairs >= 2**31:
        raise ValueError(f"{num_pairs} (tile, Gaussian) pairs exceed the int32 indexing of the kernels")
    first = ends - counts  # [N] first pair of each Gaussian
    tile_ids = torch.empty(num_pairs, dtype=torch.int32, device=device)
    owners = torch.empty(num_pairs, dtype=torch.int32, device=device)
    if num_pairs > 0:
        _expand_pairs_kernel[(n,)](x0, y0, nx, counts, first, tile_ids, owners, tiles_x,
                                   BLOCK=EXPAND_BLOCK, num_warps=1, enable_fp_fusion=False)
    # Stable sort: within a tile, pairs stay in Gaussian order (deterministic layout).
    sorted_tile, order = torch.sort(tile_ids, stable=True)  # order: sorted pos -> Gaussian-major pos
    gauss_ids = owners[order]  # [P] int32
    bounds = torch.arange(num_tiles + 1, device=device, dtype=torch.int32)
    tile_offsets = torch.searchsorted(sorted_tile, bounds, out_int32=True)  # [T + 1]
    return TileBins(gauss_ids, tile_offsets, order, counts, tiles_x, tiles_y)
