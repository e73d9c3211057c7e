"""The parsers' view of an object: a sparse set of byte ranges of a file of known size.

Theory of operation (after h11's readers): a parser is a pure function of a ``Sparse`` that
either returns its result or stops with "I need bytes [offset, offset + length)". Parsers are
written straight-line: they call :meth:`Sparse.get` and, when the bytes are not there yet, the
``Missing`` signal unwinds to :func:`run_parser`, which turns it into a :class:`Need`. The driver
reads those bytes (usually more) and calls the parser again from the start. Re-parsing a header
is microseconds; keeping parsers free of resumable state keeps them simple and testable whole,
byte by byte and with trailing data.

``get`` clips at the end of the file: asking for bytes past ``size`` returns the bytes that
exist (possibly ``b""``), so a parser checks lengths and raises ``ProbeError`` for truncation.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import TypeVar

import msgspec

T = TypeVar("T")


class Need(msgspec.Struct, frozen=True):
    """The parser needs bytes ``[offset, offset + length)`` before it can go on."""

    offset: int
    length: int


class Missing(Exception):
    """Raised inside a parser by :meth:`Sparse.get`; caught by :func:`run_parser`."""

    def __init__(self, offset: int, length: int) -> None:
        super().__init__(offset, length)
        self.offset = offset
        self.length = length


class Sparse:
    """Known byte ranges of one object. Ranges are kept sorted and merged."""

    __slots__ = ("_data", "_starts", "size")

    def __init__(self, size: int, chunks: list[tuple[int, bytes]] | None = None) -> None:
        self.size = size
        self._starts: list[int] = []
        self._data: list[bytes] = []
        for offset, data in chunks or ():
            self.add(offset, data)

    @classmethod
    def whole(cls, data: bytes) -> Sparse:
        """All of an object's bytes (tests, local files read whole)."""
        return cls(len(data), [(0, data)])

    def add(self, offset: int, data: bytes) -> None:
        """Remember ``data`` at ``offset`` (clipped to the file size), merging neighbours."""
        if offset < 0:
            raise ValueError("negative offset")
        data = bytes(data[: max(0, self.size - offset)])
        if not data:
            return
        if not self._starts:  # the first range (the driver's head read): nothing to merge with
            self._starts.append(offset)
            self._data.append(data)
            return
        start, end = offset, offset + len(data)
        i = bisect_right(self._starts, start) - 1
        if i >= 0 and self._starts[i] + len(self._data[i]) >= start:
            # merge with the previous range
            prev_start = self._starts[i]
            prev = self._data[i]
            if prev_start + len(prev) >= end:
                return
            data = prev[: start - prev_start] + data
            start = prev_start
            del self._starts[i], self._data[i]
        else:
            i += 1
        # absorb following ranges that overlap or touch
        while i < len(self._starts) and self._starts[i] <= start + len(data):
            nxt_start, nxt = self._starts[i], self._data[i]
            nxt_end = nxt_start + len(nxt)
            if nxt_end > start + len(data):
                data = data + nxt[start + len(data) - nxt_start :]
            del self._starts[i], self._data[i]
        self._starts.insert(i, start)
        self._data.insert(i, data)

    def has(self, offset: int, length: int) -> bool:
        """True if ``[offset, offset+length)`` (clipped to the size) is known."""
        end = min(offset + length, self.size)
        if end <= offset:
            return True
        i = bisect_right(self._starts, offset) - 1
        return i >= 0 and self._starts[i] + len(self._data[i]) >= end

    def get(self, offset: int, length: int) -> bytes:
        """The bytes at ``[offset, offset+length)``, clipped at end of file.

        Raises :class:`Missing` naming the first unknown part of the range.
        """
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        end = min(offset + length, self.size)
        if end <= offset:
            return b""
        i = bisect_right(self._starts, offset) - 1
        if i >= 0:
            s, d = self._starts[i], self._data[i]
            if s + len(d) >= end:
                return d[offset - s : end - s]
            if s + len(d) > offset:
                # partly known: ask for the rest
                raise Missing(s + len(d), end - (s + len(d)))
        # unknown from offset: ask up to the next known range (or the end)
        nxt = self._starts[i + 1] if i + 1 < len(self._starts) else end
        raise Missing(offset, min(nxt, end) - offset)

    def prefix(self) -> bytes:
        """The known bytes from offset 0 (``b""`` when the start is not known)."""
        return self._data[0] if self._starts and self._starts[0] == 0 else b""

    @property
    def known(self) -> int:
        """Number of known bytes."""
        return sum(len(d) for d in self._data)


def run_parser(parse: Callable[[Sparse], T], buf: Sparse) -> T | Need:
    """Run a straight-line parser; turn the ``Missing`` signal into a :class:`Need`.

    ``ProbeError`` propagates: the caller (the probe driver) turns it into ``valid: false``.
    """
    try:
        return parse(buf)
    except Missing as m:
        return Need(m.offset, m.length)
