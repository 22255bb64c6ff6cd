"""The data model of a .gimg file (numpy only): what the payload decodes to.

Channel order of quantized attributes (spec: "Attributes"): x, y, a, b, c, red, green,
blue, where (a, b, c) = (Sigma_xx, Sigma_xy, Sigma_yy) is the effective covariance.
Dequantization (``gipp_codec.quant.dequant``): value = float32(q*scale + offset in
float64); for a and c the variance is float32(exp(float64(value))).
"""

from dataclasses import dataclass, field

import numpy as np

from gipp_codec.format.constants import (
    MAX_ABS_COLOR,
    MAX_ABS_COVARIANCE,
    MAX_ABS_POSITION,
    MAX_BITS,
    MIN_BITS,
    NUM_CHANNELS,
)


@dataclass(frozen=True)
class BitDepths:
    """Bits per quantized channel group; each 1..16. The field defaults are the paper's
    12/10/6; the encoder's default depths come from ``QATConfig`` (P/7/5 below 0.25 bpp,
    P/7/6 from there up)."""

    position: int = 12
    covariance: int = 10
    color: int = 6

    def per_channel(self) -> tuple[int, ...]:
        """Bit depth of each of the 8 channels, in channel order."""
        p, v, c = self.position, self.covariance, self.color
        return (p, p, v, v, v, c, c, c)

    def check(self, error=ValueError) -> None:
        """Raise ``error`` unless every depth is an int in [MIN_BITS, MAX_BITS]."""
        for name in ("position", "covariance", "color"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not MIN_BITS <= int(value) <= MAX_BITS:
                raise error(f"bit depth {name}={value!r} is invalid; expected an integer in {MIN_BITS}..{MAX_BITS}")


@dataclass
class QuantizedGaussians:
    """Quantized Gaussians: integers q [N, 8] plus per-channel float32 scales/offsets [8]."""

    width: int
    height: int
    bits: BitDepths
    q: np.ndarray  # [N, 8] non-negative integers, q[:, j] < 2**bits_j
    scales: np.ndarray  # [8] float32, finite, > 0
    offsets: np.ndarray  # [8] float32, finite
    # channel b holds the correlation rho and b = rho * sqrt(a * c) (payload coding 3, spec §6)
    correlation: bool = False

    def __post_init__(self):
        self.correlation = bool(self.correlation)
        self.q = np.asarray(self.q)
        if self.q.ndim != 2 or self.q.shape[1] != NUM_CHANNELS:
            raise ValueError(f"q must have shape [N, {NUM_CHANNELS}], got {self.q.shape}")
        self.scales = np.asarray(self.scales, dtype=np.float32).reshape(-1)
        self.offsets = np.asarray(self.offsets, dtype=np.float32).reshape(-1)
        if self.scales.shape != (NUM_CHANNELS,) or self.offsets.shape != (NUM_CHANNELS,):
            raise ValueError(f"scales and offsets must have {NUM_CHANNELS} entries")

    @property
    def count(self) -> int:
        """N, the number of Gaussians."""
        return int(self.q.shape[0])

    def check_values(self, error=ValueError) -> None:
        """Raise ``error`` if any q is out of range for its bit depth."""
        self.bits.check(error)
        if self.q.size == 0:
            return
        if not np.issubdtype(self.q.dtype, np.integer):
            raise error(f"q must be integers, got dtype {self.q.dtype}")
        lo = self.q.min(axis=0)
        hi = self.q.max(axis=0)
        for j, b in enumerate(self.bits.per_channel()):
            if lo[j] < 0 or hi[j] > (1 << b) - 1:
                raise error(f"q channel {j} has values in [{lo[j]}, {hi[j]}], expected 0..{(1 << b) - 1}")

    def rows_uint16(self) -> np.ndarray:
        """q as a C-contiguous uint16 [N, 8] array (all valid values fit)."""
        return np.ascontiguousarray(self.q, dtype=np.uint16)


@dataclass
class FloatGaussians:
    """Lossless float mode: float32 means [N, 2], effective covariances (a, b, c) [N, 3], colours [N, 3]."""

    width: int
    height: int
    means: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # [N, 2]
    covs: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))  # [N, 3]
    colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))  # [N, 3]

    def __post_init__(self):
        self.means = np.ascontiguousarray(self.means, dtype=np.float32)
        self.covs = np.ascontiguousarray(self.covs, dtype=np.float32)
        self.colors = np.ascontiguousarray(self.colors, dtype=np.float32)
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        if (self.means.shape != (n, 2) or self.covs.shape != (n, 3) or self.colors.shape != (n, 3)):
            raise ValueError(
                f"float Gaussians need means [N,2], covs [N,3], colors [N,3]; got "
                f"{self.means.shape}, {self.covs.shape}, {self.colors.shape}"
            )

    @property
    def count(self) -> int:
        """N, the number of Gaussians."""
        return int(self.means.shape[0])

    def within_limits(self) -> "FloatGaussians":
        """A copy whose values fit the format's limits, so that a fit's result can always be
        written: a and c above MAX_ABS_COVARIANCE (a Gaussian grown into a near-constant
        term) are scaled down to it, with b scaled by the geometric mean of the two factors
        (the correlation, and so positive definiteness, is kept); positions and colours are
        clamped. Values already inside are unchanged."""
        lim_c = np.float32(MAX_ABS_COVARIANCE * (1.0 - 1e-4))
        covs = self.covs.astype(np.float64)  # [N, 3]
        fa = np.minimum(1.0, lim_c / np.maximum(np.abs(covs[:, 0]), 1e-30))  # [N]
        fc = np.minimum(1.0, lim_c / np.maximum(np.abs(covs[:, 2]), 1e-30))  # [N]
        scaled = covs * np.stack([fa, np.sqrt(fa * fc), fc], axis=1)
        covs = np.where(((fa < 1.0) | (fc < 1.0))[:, None], scaled, covs)
        lim_p, lim_k = MAX_ABS_POSITION * (1.0 - 1e-4), MAX_ABS_COLOR * (1.0 - 1e-4)
        return FloatGaussians(self.width, self.height, np.clip(self.means, -lim_p, lim_p), covs.astype(np.float32),
                              np.clip(self.colors, -lim_k, lim_k))

    def rows(self) -> np.ndarray:
        """float32 [N, 8] rows in channel order (x, y, a, b, c, red, green, blue)."""
        return np.concatenate([self.means, self.covs, self.colors], axis=1).astype(np.float32)
