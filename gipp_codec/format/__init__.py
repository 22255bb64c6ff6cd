"""bytes <-> Gaussians: the .gimg container, header and payload (numpy only, never torch).

Spec: format_spec/gimg.md. Public API: ``write_gimg``, ``parse_gimg``, ``ParsedGimg``,
``QuantizedGaussians``, ``FloatGaussians``, ``BitDepths``, ``BaseLayer`` (1.3's base layer).
"""

from gipp_codec.format.base_layer import BaseLayer
from gipp_codec.format.container import ParsedGimg, build_container, make_chunk, parse_gimg, write_gimg
from gipp_codec.format.model import BitDepths, FloatGaussians, QuantizedGaussians

__all__ = [
    "BaseLayer",
    "BitDepths",
    "FloatGaussians",
    "ParsedGimg",
    "QuantizedGaussians",
    "build_container",
    "make_chunk",
    "parse_gimg",
    "write_gimg",
]
