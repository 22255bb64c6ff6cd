"""Bit-packed streams (spec: "Bit streams"): bits are written MSB first within each byte,
the last byte is padded with zero bits. ``ue``/``se`` are order-0 exp-Golomb codes.

Readers never read past their data: an overrun raises PayloadError.
"""

import numpy as np

from gipp_codec.errors import PayloadError

MAX_UE_PREFIX = 32  # longest zero prefix of a valid ue() code (values < 2**32 - 1)
READ_PAD = 8  # zero bytes after BitReader.array: token_kernels' readers load 8 bytes at a time


class BitWriter:
    """Append-only bit writer."""

    def __init__(self):
        self._bits: list[np.ndarray] = []
        self.nbits = 0

    def u(self, value: int, nbits: int) -> None:
        """Write ``value`` as an unsigned ``nbits``-bit field."""
        if nbits == 0:
            return
        value = int(value)
        if value < 0 or value >> nbits:
            raise ValueError(f"value {value} does not fit in {nbits} bits")
        bits = (value >> np.arange(nbits - 1, -1, -1, dtype=np.int64)) & 1
        self._bits.append(bits.astype(np.uint8))
        self.nbits += nbits

    def ue(self, value: int) -> None:
        """Order-0 exp-Golomb code of a non-negative integer."""
        v1 = int(value) + 1
        nb = v1.bit_length()
        self.u(0, nb - 1) if nb > 1 else None
        self.u(v1, nb)

    def se(self, value: int) -> None:
        """Signed exp-Golomb: v > 0 -> 2v - 1, v <= 0 -> -2v."""
        value = int(value)
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def many(self, values: np.ndarray, nbits: np.ndarray) -> None:
        """Write values[i] in nbits[i] bits (0..32) each, in order, vectorised."""
        values = np.asarray(values, dtype=np.uint64)
        nbits = np.asarray(nbits, dtype=np.int64)
        total = int(nbits.sum())
        if total == 0:
            return
        starts = np.cumsum(nbits) - nbits
        out = np.zeros(total, dtype=np.uint8)
        for b in range(int(nbits.max())):
            sel = nbits > b
            shift = (nbits[sel] - 1 - b).astype(np.uint64)
            out[starts[sel] + b] = ((values[sel] >> shift) & np.uint64(1)).astype(np.uint8)
        self._bits.append(out)
        self.nbits += total

    def getvalue(self) -> bytes:
        """The bits written so far, MSB first, zero-padded to whole bytes."""
        if not self._bits:
            return b""
        return np.packbits(np.concatenate(self._bits)).tobytes()


def ue_length(values: np.ndarray) -> np.ndarray:
    """Bit length of ue(v) for each v (vectorised)."""
    v1 = np.asarray(values, dtype=np.int64) + 1
    nb = np.floor(np.log2(v1)).astype(np.int64) + 1  # exact for v1 < 2**52
    return 2 * nb - 1


def ue_bits(v: int) -> int:
    """Bit length of ue(v) for one Python int v >= 0 (ue_length without numpy)."""
    return 2 * (v + 1).bit_length() - 1


def se_length(values: np.ndarray) -> np.ndarray:
    """Bit length of se(v) for each v (vectorised)."""
    v = np.asarray(values, dtype=np.int64)
    return ue_length(np.where(v > 0, 2 * v - 1, -2 * v))


class BitReader:
    """Reader over a bit-packed stream; ``what`` names the stream in error messages.

    Single fields (u, ue, se) are read from a string of '0'/'1' characters, so each is a
    few C-level string operations; bulk reads run in ``token_kernels`` over ``array``.
    """

    def __init__(self, data: bytes, what: str, base_offset: int = 0):
        self._data = bytes(data)
        self._size = 8 * len(self._data)
        self._text = None  # the bits as '0'/'1' characters, built on first use
        self._arr = None  # uint8 view, built on first use
        self.pos = 0
        self.what = what
        self.base_offset = base_offset  # byte offset of the stream in the file, for messages

    @property
    def nbits(self) -> int:
        """The stream's length in bits (without the read padding)."""
        return self._size

    @property
    def array(self) -> np.ndarray:
        """The stream's bytes as uint8 [B + READ_PAD] (for the numba readers in token_kernels):
        READ_PAD zero bytes follow the stream so that a reader may load whole 64-bit words;
        ``nbits`` stays the stream's own length."""
        if self._arr is None:
            self._arr = np.frombuffer(bytearray(self._data + bytes(READ_PAD)), dtype=np.uint8)  # writeable
        return self._arr

    def _bits_text(self) -> str:
        if self._text is None:
            self._text = format(int.from_bytes(self._data, "big"), f"0{self._size}b") if self._data else ""
        return self._text

    def _need(self, n: int) -> None:
        if self.pos + n > self._size:
            raise PayloadError(
                f"{self.what} stream overrun at byte {self.base_offset + self.pos // 8}: "
                f"need {n} more bits, {self._size - self.pos} left"
            )

    def u(self, nbits: int) -> int:
        """The next ``nbits`` bits as an unsigned integer, MSB first (0 for nbits = 0)."""
        if nbits == 0:
            return 0
        self._need(nbits)
        value = int(self._bits_text()[self.pos:self.pos + nbits], 2)
        self.pos += nbits
        return value

    def ue(self) -> int:
        """The next order-0 exp-Golomb code's value (a prefix longer than MAX_UE_PREFIX is an error)."""
        text = self._bits_text()
        one = text.find("1", self.pos, self.pos + MAX_UE_PREFIX + 1)
        if one < 0:
            if self.pos + MAX_UE_PREFIX + 1 <= self._size:
                raise PayloadError(
                    f"{self.what} stream: exp-Golomb code too long at byte "
                    f"{self.base_offset + (self.pos + MAX_UE_PREFIX + 1) // 8}"
                )
            self._need(self._size - self.pos + 1)  # ran off the end: overrun
        zeros = one - self.pos
        self.pos = one
        return self.u(zeros + 1) - 1

    def rice(self, k: int, max_prefix: int) -> int:
        """The next Rice code's value: z zero bits before a one bit (z > ``max_prefix`` is an
        error), then k bits r; the value is (z << k) | r."""
        text = self._bits_text()
        one = text.find("1", self.pos, self.pos + max_prefix + 1)
        if one < 0:
            if self.pos + max_prefix + 1 <= self._size:
                raise PayloadError(f"{self.what} stream: a Rice prefix longer than {max_prefix} at byte "
                                   f"{self.base_offset + self.pos // 8}")
            self._need(self._size - self.pos + 1)  # ran off the end: overrun
        zeros = one - self.pos
        self.pos = one + 1
        return (zeros << k) | self.u(k)

    def se(self) -> int:
        """The next signed exp-Golomb code's value: ue 0, 1, 2, 3, 4 ... map to 0, 1, -1, 2, -2 ..."""
        v = self.ue()
        return (v + 1) // 2 if v & 1 else -(v // 2)

    def finish(self) -> None:
        """Require that only zero padding (< 8 bits) remains."""
        rest = self._size - self.pos
        if rest >= 8 or (rest and self._data[-1] & ((1 << rest) - 1)):
            raise PayloadError(
                f"{self.what} stream: {rest} unused bits at the end (expected only zero padding < 8 bits)"
            )
