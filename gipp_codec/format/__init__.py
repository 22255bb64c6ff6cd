"""bytes <-> Gaussians: the .gimg container, header and payload (numpy only, never torch).

Spec: format_spec/gimg.md. Public API: ``write_gimg``, ``parse_gimg``, ``ParsedGimg``,
``QuantizedGaussians``, ``FloatGaussians``, ``BitDepths``.
"""

from gipp_codec.format.container import ParsedGimg, build_container, make_chunk, parse_gimg, write_gimg
from gipp_codec.format.model import BitDepths, FloatGaussians, QuantizedGaussians

__all__ = [
    "BitDepths",
    "FloatGaussians",
    "ParsedGimg",
    "QuantizedGaussians",
    "build_container",
    "make_chunk",
    "parse_gimg",
    "write_gimg",
]
