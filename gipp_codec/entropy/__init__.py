"""Entropy coding of quantized Gaussians with constriction's ANS coder (spec: "Entropy coding").

``encode_attributes`` / ``decode_attributes`` in ``gaussian_coder``. The spec's ANS
arithmetic is checked bit for bit against constriction by tests/test_entropy.py, using
the independent decoder ``conformance/reference_decoder.py``.
"""
