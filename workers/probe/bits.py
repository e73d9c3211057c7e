"""Reading big-endian bit fields (FLAC STREAMINFO, ADTS, MPEG audio headers) from bytes."""

from __future__ import annotations


class BitReader:
    """MSB-first bit reader over a byte string.

    Reading past the end raises ``IndexError``-free ``EOFError`` so callers can turn it into a
    ``ProbeError`` naming their own structure.
    """

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes, bit_offset: int = 0) -> None:
        self._data = data
        self._pos = bit_offset

    @property
    def pos(self) -> int:
        """The number of bits consumed so far (from the start of ``data``)."""
        return self._pos

    def read(self, nbits: int) -> int:
        """The next ``nbits`` bits as an unsigned integer."""
        end = self._pos + nbits
        if end > len(self._data) * 8:
            raise EOFError(f"bit field of {nbits} bits at bit {self._pos} runs past {len(self._data)} bytes")
        first = self._pos >> 3
        last = (end + 7) >> 3
        chunk = int.from_bytes(self._data[first:last], "big")
        shift = last * 8 - end
        self._pos = end
        return (chunk >> shift) & ((1 << nbits) - 1)

    def skip(self, nbits: int) -> None:
        """Advance by ``nbits`` bits."""
        self._pos += nbits
