"""HybridUint tokens (spec: "Tokens"): a non-negative integer u becomes an entropy-coded
token plus raw bits.

With parameters k (split exponent) and m (mantissa bits in the token, m <= k):
- u < 2**k: token = u, no raw bits;
- else, with n = floor(log2 u) (n >= k): token = 2**k + (n - k) * 2**m + the m bits of u
  just below its leading 1; raw = the remaining n - m low bits of u.
"""

import numpy as np

MAX_SPLIT = 12  # k <= MAX_SPLIT
MAX_MANTISSA = 4  # m <= min(k, MAX_MANTISSA)


def bit_length(u: np.ndarray) -> np.ndarray:
    """floor(log2 u) + 1 for u >= 1, 0 for u = 0 (vectorised; exact for u < 2**53)."""
    _, exponent = np.frexp(np.asarray(u, dtype=np.uint64).astype(np.float64))
    return exponent.astype(np.int64)


def max_token(k: int, m: int, u_max: int) -> int:
    """Largest token that values 0..u_max can produce."""
    if u_max < (1 << k):
        return u_max
    n = u_max.bit_length() - 1
    return (1 << k) + (n - k) * (1 << m) + ((1 << m) - 1)


def tokenize(u: np.ndarray, k: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """u [M] -> (tokens int32 [M], raw values uint64 [M], raw bit counts int64 [M])."""
    u = np.asarray(u, dtype=np.uint64)
    n = bit_length(u) - 1  # [M], -1 for u = 0
    small = u < np.uint64(1 << k)
    nbits = np.where(small, 0, n - m).astype(np.int64)
    nn = np.where(small, m, n).astype(np.uint64)
    top = (u >> (nn - np.uint64(m))) & np.uint64((1 << m) - 1)
    token = np.where(small, u, np.uint64(1 << k) + ((nn - np.uint64(k)) << np.uint64(m)) + top)
    raw = np.where(small, np.uint64(0), u & ((np.uint64(1) << nbits.astype(np.uint64)) - np.uint64(1)))
    return token.astype(np.int32), raw, nbits
