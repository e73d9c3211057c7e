"""Run-length sample tables (``stts``: count, delta; ``ctts``: count, offset) as two columns.

A table is read straight from the ``moov`` bytes into two ``array`` columns (one copy, one
byte swap, two strided slices: no per-entry Python work), so a 10-minute movie's 18,000
entries cost microseconds. The helpers below answer the questions timing asks of a table
with whole-column operations where the answer allows it: ``arr == same`` compares two
arrays' buffers at memory speed, where ``sum``/``count``/``set`` make an ``int`` per entry.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Sequence
from typing import NamedTuple

_NATIVE_U32 = array("I").itemsize == 4
_BLOCK = 64  # entries compared at once when looking for the runs that are not of one sample


class Runs(NamedTuple):
    """A run-length table as two columns: ``counts[i]`` samples of ``values[i]``, and the
    number of samples (the sum of ``counts``)."""

    counts: Sequence[int]
    values: Sequence[int]
    samples: int


NO_RUNS = Runs((), (), 0)
_new_runs = tuple.__new__  # a Runs without the NamedTuple's Python-level ``__new__``
_ZERO_WORD = bytes(4)
_RUN = struct.Struct(">II")
_SIGNED_RUN = struct.Struct(">Ii")
_FOLD_FROM = 256  # entries from which bounds are folded over the buffer instead of min()/max()


def u32_array(data: bytes, at: int, count: int) -> Sequence[int]:
    """``count`` big-endian u32 values at ``at`` (``array`` is ~10x faster than ``struct``)."""
    if not _NATIVE_U32:  # pragma: no cover - no mainstream platform
        return struct.unpack_from(f">{count}I", data, at)
    arr = array("I")
    arr.frombytes(memoryview(data)[at : at + 4 * count])  # one copy, straight from the moov
    if sys.byteorder == "little":
        arr.byteswap()
    return arr


def read_runs(data: bytes, at: int, count: int, signed: bool) -> Runs:
    """``count`` (u32 count, u32 or i32 value) entries at ``at``."""
    if count == 1:  # one run: the usual stts of a constant frame rate
        n, value = (_SIGNED_RUN if signed else _RUN).unpack_from(data, at)
        return _new_runs(Runs, ((n,), (value,), n))
    table = u32_array(data, at, 2 * count)
    values = table[1::2]
    if signed and isinstance(values, array):
        signed_values = array("i")
        signed_values.frombytes(memoryview(values).cast("B"))  # the same bits, as two's complement
        values = signed_values
    elif signed:  # pragma: no cover - no mainstream platform
        values = [v - (1 << 32) if v >= 1 << 31 else v for v in values]
    counts = table[0::2]
    return _new_runs(Runs, (counts, values, samples_in(counts)))


def _same(values: Sequence[int], value: int) -> bool:
    """Every item equals ``value`` (an array is compared buffer to buffer)."""
    if isinstance(values, array):
        code = values.typecode
        if (code == "I" and 0 <= value < 1 << 32) or (code == "i" and -(1 << 31) <= value < 1 << 31):
            return values == array(code, (value,)) * len(values)
    return values.count(value) == len(values)  # a value the column cannot hold: none is


def all_equal(values: Sequence[int]) -> bool:
    """True when the column holds one value (or none)."""
    return not values or _same(values, values[0])


def samples_in(counts: Sequence[int]) -> int:
    """``sum(counts)``; a column of ones (a ``ctts`` of B-frames) is counted by its length."""
    if len(counts) == 1:
        return counts[0]
    return len(counts) if counts and _same(counts, 1) else sum(counts)


def bounds(values: Sequence[int]) -> tuple[int, int]:
    """``(low, high)`` with ``low <= v <= high`` for every value (at least one), close to the
    least and the greatest value.

    A long column of non-negative 32-bit values is folded over its buffer instead of being
    read value by value: the AND of all values is at most the least, the OR at least the
    greatest (a few bits above it at worst).
    """
    if len(values) < _FOLD_FROM or not isinstance(values, array) or values.itemsize != 4:
        distinct = set(values)  # B-frame offsets take a few values: each read once
        return min(distinct), max(distinct)
    words = len(values)
    ones = int.from_bytes(values.tobytes(), "little")
    zeros = ones
    while words > 1:
        low = (words + 1) // 2  # the low words keep the odd one out
        shift = 32 * low
        mask = (1 << shift) - 1
        top = (words - low) * 32
        pad = mask ^ ((1 << top) - 1)  # the high half lacks a word when words is odd: AND with ones
        ones = (ones & mask) | (ones >> shift)
        zeros = (zeros & mask) & ((zeros >> shift) | pad)
        words = low
    if ones >> 31:  # a negative value (or an unsigned one past 2**31): compare one by one
        return min(values), max(values)
    return zeros, ones


def has_zero(counts: Sequence[int]) -> bool:
    """True when some count is 0 (a long array is searched as bytes for a zero word)."""
    if not isinstance(counts, array) or counts.itemsize != 4:
        return 0 in counts
    raw = counts.tobytes()
    at = raw.find(_ZERO_WORD)
    while at >= 0:  # a hit across two words (a count that is a multiple of 256) is skipped
        if at % 4 == 0:
            return True
        at = raw.find(_ZERO_WORD, at + 1)
    return False


def not_one(counts: Sequence[int]) -> list[int]:
    """Indexes of the runs whose count is not 1, comparing ``_BLOCK`` entries at a time."""
    if not isinstance(counts, array):
        return [i for i, n in enumerate(counts) if n != 1]
    ones = array(counts.typecode, (1,)) * _BLOCK
    out: list[int] = []
    for start in range(0, len(counts), _BLOCK):
        block = counts[start : start + _BLOCK]
        if block != ones[: len(block)]:
            out += [start + i for i, n in enumerate(block) if n != 1]
    return out


def expand(runs: Runs) -> list[int]:
    """Each run's value ``count`` times, in order.

    Composition-offset tables are mostly runs of one sample: their values are taken whole
    and only the other runs are expanded one by one.
    """
    counts, values = runs.counts, runs.values
    others = not_one(counts)
    if not others:
        return list(values)
    out: list[int] = []
    done = 0
    for i in others:
        out += values[done:i]
        out += [values[i]] * counts[i]
        done = i + 1
    out += values[done:]
    return out
