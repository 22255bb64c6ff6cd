"""Grayscale images: one colour, shared by the three channels.

A grayscale input (a grey PNG, or RGB whose three channels are equal everywhere) is fitted
with each Gaussian's red and blue tied to its green, and the quantizer's red and blue grids
tied to green's. Then the file's red and blue streams code nothing but zero residuals from
green (a one-token histogram: no bits per Gaussian, spec §5.6) and the decoded image is
exactly grey. Fitted freely, the three channels drift apart (the rate term prices red and
blue as residuals from green, the code search moves each channel on its own) and a grey
image comes back with colour noise of several levels.

The ties are copies: green's value overwrites red's and blue's after every step that may
move them. Adam normalises each value's gradient, so green alone following its own channel's
gradient takes the same steps as one shared value would.
"""

from gipp_codec.format.constants import CH_BLUE as BLUE, CH_GREEN as GREEN, CH_RED as RED  # columns of a row [8]


def is_gray(image) -> bool:
    """Whether an image [H, W, 3] (numpy array or torch tensor) has three equal channels."""
    return bool((image[..., 0] == image[..., 1]).all()) and bool((image[..., 1] == image[..., 2]).all())


def tie_colors_(colors) -> None:
    """Set red and blue to green in place: colors [N, 3] (a torch tensor, no autograd)."""
    colors[:, 0] = colors[:, 1]
    colors[:, 2] = colors[:, 1]


def tie_quantizer_(quant) -> None:
    """Give red and blue green's grid in place: an LSQPlus quantizer's scale and offset [8]."""
    for p in (quant.scale.data, quant.offset.data):
        p[RED] = p[GREEN]
        p[BLUE] = p[GREEN]


def tie_codes(q):
    """A copy of the codes q [N, 8] with red's and blue's columns set to green's."""
    q = q.copy()
    q[:, RED] = q[:, GREEN]
    q[:, BLUE] = q[:, GREEN]
    return q


def tie_grid(scales, offsets):
    """Copies of a file's scales and offsets [8] with red's and blue's set to green's."""
    scales, offsets = scales.copy(), offsets.copy()
    for a in (scales, offsets):
        a[RED] = a[GREEN]
        a[BLUE] = a[GREEN]
    return scales, offsets


def priced_channels(channels: tuple, gray: bool) -> tuple:
    """The rate-priced ``channels`` of a fit: without red and blue for a grey image, whose
    red and blue cost nothing once tied to green."""
    return tuple(c for c in channels if c not in (RED, BLUE)) if gray else tuple(channels)
