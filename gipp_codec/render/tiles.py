"""Tile binning for the tiled renderers, in plain torch (runs on any device).

The image is cut into TILE x TILE pixel tiles, numbered row-major: tile (tx, ty) has id
``ty * tiles_x + tx``. A Gaussian is listed in every tile its 3-sigma ellipse's pixel
bounding box touches. The list has NO cap: a tile holds as many Gaussians as touch it
(the reference CUDA code drew only the first 256 per tile; we do not).

The box is the exact axis-aligned bounding box of the ellipse ``m2 <= CUTOFF_M2``: its
half-widths are ``3*sqrt(a)`` in x and ``3*sqrt(c)`` in y (a = Sigma_xx, c = Sigma_yy).
It lies inside the square of side ``2 * convention.bounding_radius`` (3*sqrt(lambda_max)),
and is tighter for elongated, rotated Gaussians, so fewer (tile, Gaussian) pairs. It is
widened by a hair (``_BOX_MARGIN``) so that a pixel whose float32 m2 rounds onto the
cut-off is never lost to a tile it does not get listed in. Invalid Gaussians (covariance
not positive definite) and non-finite ones are in no tile.

Output (``TileBins``):
- ``gauss_ids``  [P] int32  Gaussian index of each pair, pairs sorted by tile id (stable,
  so within a tile by Gaussian index: the layout, and every sum over it, is deterministic);
- ``tile_offsets`` [T+1] int32  pairs of tile t are ``gauss_ids[tile_offsets[t]:tile_offsets[t+1]]``;
- ``pair_slots`` [P] int64  for each sorted pair, its position in the Gaussian-major
  order (all pairs of Gaussian 0, then of Gaussian 1, ...), so per-pair results can be
  written Gaussian-major and summed per Gaussian with a segmented sum, deterministically;
- ``counts`` [N] int64  number of tiles of each Gaussian (the segment lengths).
"""

from typing import NamedTuple

import torch

from gipp_codec.render.convention import CUTOFF_M2, PIXEL_CENTER_OFFSET, valid_mask

TILE = 16
# Absolute widening (pixels) of each half-width: covers float32 rounding of m2 near the cut-off.
_BOX_MARGIN = 1e-3


class TileBins(NamedTuple):
    """The (Gaussian, tile) pairs of a scene, sorted by tile, with each tile's range."""

    gauss_ids: torch.Tensor  # [P] int32, sorted by tile id
    tile_offsets: torch.Tensor  # [T + 1] int32
    pair_slots: torch.Tensor  # [P] int64, Gaussian-major position of each sorted pair
    counts: torch.Tensor  # [N] int64, tiles per Gaussian
    tiles_x: int
    tiles_y: int


def tile_rects(
    means: torch.Tensor,  # [N, 2]
    covs: torch.Tensor,  # [N, 3]
    height: int,
    width: int,
    tile: int = TILE,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inclusive-exclusive tile rectangle [x0, x1) x [y0, y1) of each Gaussian, int64 [N] each.

    Empty (x1 <= x0 or y1 <= y0) for invalid or non-finite Gaussians and for those whose box
    holds no pixel centre of the image. ``valid`` [N] bool, if given, is ANDed with the
    positive-definiteness test (a renderer passes the mask it computed in its own dtype, so
    that a nearly degenerate Gaussian is valid or invalid for both binning and kernel).
    """
    m = means.detach().to(torch.float64)
    cv = covs.detach().to(torch.float64)
    ok = valid_mask(cv) & torch.isfinite(m).all(dim=1) & torch.isfinite(cv).all(dim=1)
    if valid is not None:
        ok = ok & valid.to(ok.device)
    # Half-widths of the cut-off ellipse's bounding box: sqrt(CUTOFF_M2 * Sigma_xx), ... .
    hx = torch.sqrt(torch.clamp(CUTOFF_M2 * cv[:, 0], min=0.0)) + _BOX_MARGIN
    hy = torch.sqrt(torch.clamp(CUTOFF_M2 * cv[:, 2], min=0.0)) + _BOX_MARGIN
    # Pixel columns i with |i + 0.5 - mx| <= hx, clamped to the image (clamping first keeps
    # huge or far-away values from overflowing the integer conversion).
    lo_x = torch.ceil(torch.clamp(m[:, 0] - hx - PIXEL_CENTER_OFFSET, -1.0, width + 1.0))
    hi_x = torch.floor(torch.clamp(m[:, 0] + hx - PIXEL_CENTER_OFFSET, -1.0, width + 1.0))
    lo_y = torch.ceil(torch.clamp(m[:, 1] - hy - PIXEL_CENTER_OFFSET, -1.0, height + 1.0))
    hi_y = torch.floor(torch.clamp(m[:, 1] + hy - PIXEL_CENTER_OFFSET, -1.0, height + 1.0))
    px0 = lo_x.clamp(min=0).long()
    px1 = hi_x.clamp(max=width - 1).long()  # inclusive last column
    py0 = lo_y.clamp(min=0).long()
    py1 = hi_y.clamp(max=height - 1).long()
    ok = ok & (px1 >= px0) & (py1 >= py0)
    x0, x1 = px0 // tile, px1 // tile + 1
    y0, y1 = py0 // tile, py1 // tile + 1
    zero = torch.zeros_like(x0)
    x1 = torch.where(ok, x1, zero)
    y1 = torch.where(ok, y1, zero)
    x0 = torch.where(ok, x0, zero)
    y0 = torch.where(ok, y0, zero)
    return x0, x1, y0, y1


def bin_gaussians(
    means: torch.Tensor,  # [N, 2]
    covs: torch.Tensor,  # [N, 3]
    height: int,
    width: int,
    tile: int = TILE,
    valid: torch.Tensor | None = None,
) -> TileBins:
    """List every (tile, Gaussian) pair, sorted by tile, with per-tile offsets; no cap per tile."""
    device = means.device
    n = means.shape[0]
    tiles_x = (width + tile - 1) // tile
    tiles_y = (height + tile - 1) // tile
    num_tiles = tiles_x * tiles_y
    x0, x1, y0, y1 = tile_rects(means, covs, height, width, tile, valid)
    nx = x1 - x0  # [N]
    counts = nx * (y1 - y0)  # [N] tiles per Gaussian (0 when empty)
    num_pairs = int(counts.sum().item())  # the one host sync of the binning
    if num_pairs >= 2**31:
        raise ValueError(f"{num_pairs} (tile, Gaussian) pairs exceed the int32 indexing of the kernels")
    # Expand Gaussian-major: pair k belongs to Gaussian owner[k] and is its local-th tile.
    owner = torch.repeat_interleave(torch.arange(n, device=device), counts)  # [P]
    first = torch.cumsum(counts, 0) - counts  # [N] first pair of each Gaussian
    local = torch.arange(num_pairs, device=device) - first[owner]  # [P]
    nx_o = nx[owner]
    tx = x0[owner] + local % torch.clamp(nx_o, min=1)
    ty = y0[owner] + local // torch.clamp(nx_o, min=1)
    tile_id = ty * tiles_x + tx  # [P]
    # Stable sort: within a tile, pairs stay in Gaussian order (deterministic layout).
    sorted_tile, order = torch.sort(tile_id, stable=True)  # order: sorted pos -> Gaussian-major pos
    gauss_ids = owner[order].to(torch.int32)
    bounds = torch.arange(num_tiles + 1, device=device, dtype=sorted_tile.dtype)
    tile_offsets = torch.searchsorted(sorted_tile, bounds).to(torch.int32)  # [T + 1]
    return TileBins(gauss_ids, tile_offsets, order, counts, tiles_x, tiles_y)
