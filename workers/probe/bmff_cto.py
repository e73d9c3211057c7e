"""Presentation times of a constant-rate track with composition offsets, by arithmetic.

Sample ``i`` of a track with one ``stts`` run (``n`` samples of ``delta > 0``) is presented at
``i * delta + offset(i)``, ``offset(i)`` read from the ``ctts`` runs. Every offset lies in
``[low, high]`` (the table's least and greatest value), so a sample far enough from the ends
of a time range is inside or outside it by its decode time alone: only the samples whose
decode time is within ``high - low`` of a range's end need their own offset. B-frame offsets
span a few frames, so timing a 10-minute movie looks at a handful of samples instead of
building, sorting and searching 18,000 timestamps.

The answers are those of the per-sample definition (:mod:`workers.probe.bmff_timing` keeps
it, and the tests compare the two): the first presentation time, the media end (the last
presentation time plus ``delta``) and the number of samples presented in ``[lo, hi)``.
When the offsets spread over more than ``MAX_SPREAD`` frames the arithmetic is declined.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate
from operator import add

from workers.probe.bmff_runs import Runs, bounds

MAX_SPREAD = 4096  # frames between the least and the greatest offset
MIN_SAMPLES = 64  # below, building and sorting every PTS (all in C) is the cheaper way
_EDGE = 4096  # samples from either end located by walking the runs; beyond, a prefix sum
_BIT_LENGTHS = bytes(b.bit_length() for b in range(256))  # a translate table: byte -> its bit length
_LITTLE = sys.byteorder == "little"


def offset_bounds(values: Sequence[int]) -> tuple[int, int]:
    """``(low, high)`` with every value in between: :func:`bounds`, or for a column of 32-bit
    offsets in ``[0, 65536)`` (the usual B-frame table) ``0`` and the next power of two minus 1
    above the greatest one. The loose bound costs a few more samples at each end; it is found
    without an ``int`` per value (a short column's ``min``/``max`` would make one each): the
    words' bytes sliced into lanes, a lane mapped to bit lengths and searched from the top."""
    if not isinstance(values, array) or values.itemsize != 4 or not _LITTLE:
        return bounds(values)
    raw, n = values.tobytes(), len(values)
    if raw[3::4].count(0) != n or raw[2::4].count(0) != n:  # a negative offset, or one past 65535
        return bounds(values)
    lane, shift = raw[1::4], 8
    if lane.count(0) == n:
        lane, shift = raw[0::4], 0
    lengths = lane.translate(_BIT_LENGTHS)
    top = 8
    while top and top not in lengths:
        top -= 1
    return 0, (1 << (shift + top)) - 1


class _Offsets:
    """The offsets of given samples, located in the runs (which cover exactly ``n`` samples)."""

    def __init__(self, runs: Runs, n: int) -> None:
        self.counts, self.values = runs.counts, runs.values
        self.n = n
        self._starts: list[int] = []

    def _run_at(self, i: int) -> tuple[int, int]:
        """``(run index, first sample of that run)`` for sample ``i`` (``0 <= i < n``)."""
        counts = self.counts
        if i < _EDGE and i <= self.n - i:
            r, start = 0, 0
            while start + counts[r] <= i:
                start += counts[r]
                r += 1
            return r, start
        if self.n - i <= _EDGE:
            r, end = len(counts) - 1, self.n
            while end - counts[r] > i:
                end -= counts[r]
                r -= 1
            return r, end - counts[r]
        if not self._starts:
            self._starts = list(accumulate(counts, initial=0))
        r = bisect_right(self._starts, i) - 1
        return r, self._starts[r]

    def between(self, start: int, stop: int) -> list[int]:
        """Offsets of samples ``[start, stop)``."""
        if start >= stop:
            return []
        r, first = self._run_at(start)
        out: list[int] = []
        left = stop - start
        take = min(left, first + self.counts[r] - start)
        while True:
            out += [self.values[r]] * take
            left -= take
            if left <= 0:
                return out
            r += 1
            take = min(left, self.counts[r])


def _first(runs: Runs, size: int) -> list[int]:
    """The offsets of the first ``size`` samples."""
    if 0 < size <= len(runs.counts) and runs.counts[:size].count(1) == size:  # runs of one sample
        return list(runs.values[:size])
    out: list[int] = []
    for count, value in zip(runs.counts, runs.values, strict=True):
        out += [value] * count
        if len(out) >= size:
            break
    del out[size:]
    return out


def _last(runs: Runs, size: int) -> list[int]:
    """The offsets of the last ``size`` samples."""
    if 0 < size <= len(runs.counts) and runs.counts[-size:].count(1) == size:  # runs of one sample
        return list(runs.values[-size:])
    out: list[int] = []
    for count, value in zip(reversed(runs.counts), reversed(runs.values), strict=True):
        out += [value] * count
        if len(out) >= size:
            break
    del out[size:]
    out.reverse()
    return out


def _within(pts: list[int], lo: int, hi: int) -> int:
    """How many of ``pts`` (a list of its own, sorted here) lie in ``[lo, hi)``."""
    pts.sort()
    return bisect_left(pts, hi) - bisect_left(pts, lo)


def cto_timing(stts: Runs, ctts: Runs) -> tuple[int, int, Callable[[int, int], int]] | None:
    """``(first PTS, media end, count(lo, hi))`` for one stts run of ``delta > 0`` whose
    ctts covers exactly its samples; ``None`` for a short track or offsets spread too far."""
    n, delta = stts.counts[0], stts.values[0]
    if n < MIN_SAMPLES:
        return None
    low, high = offset_bounds(ctts.values)
    spread = (high - low) // delta
    if spread > MAX_SPREAD:
        return None
    # The first PTS is at most sample 0's, so only samples with DTS + low below it, the first
    # ``spread + 1``, compete; likewise for the last PTS at the other end.
    window = min(n, spread + 2)
    tail_from = n - window
    head = list(map(add, range(0, window * delta, delta), _first(ctts, window)))
    tail = list(map(add, range(tail_from * delta, n * delta, delta), _last(ctts, window)))

    middle: list[_Offsets] = []

    def presented(start: int, stop: int) -> list[int]:
        if stop <= window:
            return head[start:stop]
        if start >= tail_from:
            return tail[start - tail_from : stop - tail_from]
        if not middle:  # a range in the middle (an edit starts or ends there): runs located once
            middle.append(_Offsets(ctts, n))
        return list(map(add, range(start * delta, stop * delta, delta), middle[0].between(start, stop)))

    def count(lo: int, hi: int) -> int:
        # ceil((x - bound) / delta), clipped to [0, n], inline: this runs once per edit
        out_below = -((high - lo) // delta)  # i below: PTS < lo whatever the offset
        out_below = 0 if out_below < 0 else n if out_below > n else out_below
        in_from = -((low - lo) // delta)  # i from here: PTS >= lo whatever the offset
        in_from = 0 if in_from < 0 else n if in_from > n else in_from
        in_to = -((high - hi) // delta)  # i below: PTS < hi whatever the offset
        in_to = 0 if in_to < 0 else n if in_to > n else in_to
        out_from = -((low - hi) // delta)  # i from here: PTS >= hi whatever the offset
        out_from = 0 if out_from < 0 else n if out_from > n else out_from
        if in_from < in_to:
            inside = in_to - in_from
            if out_below < in_from:
                inside += _within(presented(out_below, in_from), lo, hi)
            if in_to < out_from:
                inside += _within(presented(in_to, out_from), lo, hi)
            return inside
        if out_below < out_from:
            return _within(presented(out_below, out_from), lo, hi)
        return 0

    return min(head), max(tail) + delta, count
