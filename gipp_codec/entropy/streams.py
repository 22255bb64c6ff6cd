"""What a coded stream is: the stream order, the predictors, the context sources, the
context limit and a stream's configuration (spec: "Entropy coding", payload codings 1 and
2). Shared by the encoder (``gaussian_coder``) and the decoder (``side_stream``,
``gaussian_coder.decode_attributes``). Torch-free."""

from dataclasses import dataclass

import numpy as np

from gipp_codec.entropy.token_kernels import cell_counts_dense
from gipp_codec.format.constants import (  # noqa: F401  (CTX_* re-exported)
    CH_A, CH_B, CH_BLUE, CH_C, CH_GREEN, CH_RED, CH_X, CH_Y, CHANNEL_NAMES, CTX_AREA, CTX_CELLS,
)

STREAM_POSITION = -1
STREAM_ORDER = (STREAM_POSITION, CH_A, CH_C, CH_B, CH_GREEN, CH_RED, CH_BLUE)
PRED_NONE, PRED_CONST, PRED_PREV, PRED_CHANNEL = 0, 1, 2, 3
PRED_NAMES = ("none", "const", "prev", "channel")
MAX_CONTEXTS = 16

# Context sources: 0..7 are the channels (both codings); payload coding 2 adds two derived
# features of already decoded channels, CTX_CELLS and CTX_AREA (format.constants; spec:
# "Context features").
CTX_SOURCE_BITS = {1: 3, 2: 4, 3: 4}  # width of the ctx_src field per payload coding (3 codes as 2)


def context_source_name(source: int, param: int = 0) -> str:
    """Readable name of a context source ("a", "cells g=5", "a+c")."""
    if source == CTX_CELLS:
        return f"cells g={param}"
    if source == CTX_AREA:
        return "a+c"
    return CHANNEL_NAMES[source]


# Above this many table entries (and 4 N) the CTX_CELLS feature is computed by sorting,
# so that a decoder's memory stays bounded whatever the cell shift g a file declares.
DENSE_CELLS_MAX = 1 << 20


def cell_counts(qx: np.ndarray, qy: np.ndarray, g: int) -> np.ndarray:
    """CTX_CELLS feature [N] (int64): for each Gaussian, how many Gaussians (itself included)
    have (q_x >> g, q_y >> g) within one cell of its own in x and in y."""
    cx = (np.asarray(qx, np.int64) >> g) + 1  # [N], with one empty cell of margin below
    cy = (np.asarray(qy, np.int64) >> g) + 1  # [N]
    out = np.zeros(cx.size, np.int64)
    if cx.size == 0:
        return out
    width = int(cx.max()) + 2
    if width * (int(cy.max()) + 2) <= max(DENSE_CELLS_MAX, 4 * cx.size):
        cell_counts_dense(cx, cy, width, out)
        return out
    keys = cy * width + cx  # [N] cell index, distinct per cell
    cells, counts = np.unique(keys, return_counts=True)  # [U], [U]
    for dy in (-width, 0, width):
        for dx in (-1, 0, 1):
            near = keys + (dy + dx)
            at = np.minimum(np.searchsorted(cells, near), cells.size - 1)
            out += np.where(cells[at] == near, counts[at], 0)
    return out


def context_feature(source: int, param: int, q_of) -> np.ndarray:
    """The integer feature [N] contexts are split on; q_of(channel) -> that channel's
    decoded column [N] (int64)."""
    if source == CTX_CELLS:
        return cell_counts(q_of(CH_X), q_of(CH_Y), param)
    if source == CTX_AREA:
        return q_of(CH_A) + q_of(CH_C)
    return q_of(source)


def feature_limit(source: int, channel_bits, n: int) -> int:
    """Largest value of a context source's feature (thresholds must not exceed it)."""
    if source == CTX_CELLS:
        return n
    if source == CTX_AREA:
        return 2 * ((1 << channel_bits[CH_A]) - 1)
    return (1 << channel_bits[source]) - 1


def stream_name(channel: int) -> str:
    """"position" for the position stream, else the channel's name."""
    return "position" if channel == STREAM_POSITION else CHANNEL_NAMES[channel]


@dataclass
class StreamConfig:
    """How one stream is coded (all of it is in the side stream)."""

    channel: int  # STREAM_POSITION or a channel index
    pred: int = PRED_NONE
    pred_param: int = 0  # the constant (PRED_CONST) or the source channel (PRED_CHANNEL)
    ctx_source: int = -1
    ctx_param: int = 0  # g of CTX_CELLS
    thresholds: tuple = ()
    k: int = 4
    m: int = 1

    @property
    def contexts(self) -> int:
        """Number of contexts the thresholds split the stream into."""
        return len(self.thresholds) + 1
