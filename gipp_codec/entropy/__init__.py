"""Entropy coding of quantized Gaussians with constriction's ANS coder (spec: "Entropy coding").

``encode_attributes`` / ``decode_attributes`` in ``gaussian_coder``; the decoder's
bit-level loops (histogram deltas, raw bits after tokens) run in the numba kernels of
``token_kernels``. The spec's ANS arithmetic is checked bit for bit against constriction
by tests/test_entropy.py, using the independent decoder ``conformance/reference_decoder.py``.
"""
