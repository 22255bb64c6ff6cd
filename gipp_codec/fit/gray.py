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
from gipp_codec.output_format import is_gray  # noqa: F401  (re-exported: the test the ties follow)


def _copy_green_(a, red: int = RED, green: int = GREEN, blue: int = BLUE) -> None:
    """Set the red and blue columns of ``a`` [..., C] (numpy or torch) to its green one, in place."""
    a[..., red] = a[..., green]
    a[..., blue] = a[..., green]


def tie_colors_(colors) -> None:
    """Set red and blue to green in place: colors [N, 3] (a torch tensor, no autograd)."""
    _copy_green_(colors, 0, 1, 2)


def tie_quantizer_(quant) -> None:
    """Give red and blue green's grid in place: an LSQPlus quantizer's scale and offset [8]."""
    _copy_green_(quant.scale.data)
    _copy_green_(quant.offset.data)


def tie_codes(q):
    """A copy of the codes q [N, 8] with red's and blue's columns set to green's."""
    q = q.copy()
    _copy_green_(q)
    return q


def tie_grid(scales, offsets):
    """Copies of a file's scales and offsets [8] with red's and blue's set to green's."""
    scales, offsets = scales.copy(), offsets.copy()
    _copy_green_(scales)
    _copy_green_(offsets)
    return scales, offsets


def priced_channels(channels: tuple, gray: bool) -> tuple:
    """The rate-priced ``channels`` of a fit: without red and blue for a grey image, whose
    red and blue cost nothing once tied to green."""
    return tuple(c for c in channels if c not in (RED, BLUE)) if gray else tuple(channels)
