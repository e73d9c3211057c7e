"""Frame timing of one track: frames presented, duration, fps, nominal fps, VFR, negative PTS.

Definitions (see :mod:`workers.probe.media`), in the track's media timescale:

* a sample's decode time is the sum of the ``stts`` deltas before it; its presentation time
  (PTS) adds its ``ctts`` offset;
* a non-empty edit ``(duration, media_time)`` presents media times
  ``[media_time, media_time + duration * timescale / movie_timescale)``. The edit duration is
  rounded to the movie timescale by writers (often milliseconds), so an edit that ends within
  one movie tick of the media's end (the end of its last presented sample) is taken to end
  exactly there: otherwise 29.97 fps would come out as 29.96 or 29.98;
* ``duration`` is the sum of the non-empty edits' spans (empty edits only delay the start, they
  present nothing); without an edit list it is ``mdhd``'s duration, or the sum of the deltas
  when ``mdhd`` says 0 (fragmented files), never shifted by composition offsets;
* presented frames are the samples whose PTS falls inside some edit (all samples with a PTS
  >= 0 without an edit list); ``fps`` is presented frames / duration, exact as a Fraction;
* ``negative_pts``: some sample's PTS lies before the first edit's ``media_time`` (or below
  0 without an edit list), so it maps before the start of the timeline and is discarded;
* ``nominal_fps`` is ``timescale / the most common delta`` (ties go to the shorter delta);
* ``vfr``: more than one distinct delta among all samples but the last.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from itertools import accumulate, compress
from math import gcd
from operator import add, itemgetter, mul
from typing import NamedTuple

import msgspec

from workers.probe.bmff_cto import cto_timing
from workers.probe.bmff_runs import Runs, all_equal, expand, has_zero
from workers.probe.bmff_track import Edit
from workers.probe.media import ProbeError

# Per-sample timestamps are only built for varying composition offsets (B-frames); a table
# that claims more samples than any real movie (24 h at 60 fps is 5.2 million) is refused
# rather than expanded into gigabytes.
MAX_EXPANDED_SAMPLES = 20_000_000
# Weights of distinct deltas are summed one C-level pass per distinct delta up to this many.
_FEW_DELTAS = 8
_positive = (0).__lt__
_new_tuple = tuple.__new__


class Ratio(NamedTuple):
    """An exact ratio in lowest terms, denominator > 0 (what ``Fraction`` would hold)."""

    num: int
    den: int

    @classmethod
    def of(cls, num: int, den: int) -> Ratio:
        """``num / den`` reduced; ``den`` must not be 0."""
        g = gcd(num, den)
        if den < 0:
            g = -g
        return _new_tuple(cls, (num // g, den // g))  # without the Python-level ``__new__``

    def __float__(self) -> float:
        return self.num / self.den  # int / int is correctly rounded, as float(Fraction) is

    def __str__(self) -> str:
        return f"{self.num}/{self.den}"


class Timing(msgspec.Struct, kw_only=True):
    """Derived timing of one track."""

    frames: int
    presented: int
    duration: Ratio | None  # seconds
    fps: Ratio | None
    nominal_fps: Ratio | None
    vfr: bool
    negative_pts: bool


def pair_runs(runs: Sequence[tuple[int, int]]) -> Runs:
    """``(count, value)`` pairs as :class:`Runs`."""
    counts = list(map(itemgetter(0), runs))
    return Runs(counts, list(map(itemgetter(1), runs)), sum(counts))


def _count_runs_in(stts: list[tuple[int, int]], lo: int, hi: int) -> int:
    """Samples with decode time in ``[lo, hi)`` when PTS == DTS (no composition offsets)."""
    total, t = 0, 0
    for n, d in stts:
        if d == 0:
            total += n if lo <= t < hi else 0
            continue
        # k in [0, n) with lo <= t + k*d < hi
        first = max(0, -((t - lo) // d))  # ceil((lo - t) / d)
        last = min(n, -((t - hi) // d))  # ceil((hi - t) / d), exclusive
        total += max(0, last - first)
        t += n * d
    return total


def _run_counter(stts: Runs, frames: int, total: int) -> Callable[[int, int], int]:
    """``count(lo, hi)``: samples with decode time in ``[lo, hi)``.

    With no negative delta the decode times rise from 0 to the last sample's, so a range
    holding both ends holds every sample: answered without a pass over the runs.
    """
    counts, values = stts.counts, stts.values
    last_dts = None
    if frames and min(values) >= 0:
        last = len(counts) - 1
        while counts[last] <= 0:
            last -= 1
        last_dts = total - values[last]

    def count(lo: int, hi: int) -> int:
        if last_dts is not None and lo <= 0 and last_dts < hi:
            return frames
        return _count_runs_in(list(zip(counts, values, strict=True)), lo, hi)

    return count


def _unsorted_pts(stts: Runs, ctts: Runs) -> tuple[list[int], int]:
    """Every sample's PTS in decode order, and the media end (max PTS + the sample's delta).

    One ``stts`` run (constant frame rate, the common case) needs no per-sample delta list:
    the decode times are a ``range`` and the end is the largest PTS plus the one delta.
    """
    counts, values = stts.counts, stts.values
    if len(counts) == 1 and values[0] != 0:
        n, delta = counts[0], values[0]
        offsets = expand(ctts)
        if len(offsets) < n:
            offsets += [0] * (n - len(offsets))
        pts = list(map(add, range(0, n * delta, delta), offsets))
        return pts, (max(pts) + delta if pts else 0)
    deltas = expand(stts)
    offsets = expand(ctts)
    if len(offsets) < len(deltas):  # fragments without offsets after a moov with them
        offsets += [0] * (len(deltas) - len(offsets))
    elif len(offsets) > len(deltas):
        del offsets[len(deltas) :]
    pts = list(map(add, accumulate(deltas, initial=0), offsets))
    return pts, max(map(add, pts, deltas), default=0)


def _pts_list(stts: list[tuple[int, int]], ctts: list[tuple[int, int]]) -> tuple[list[int], int]:
    """Every sample's PTS, sorted, and the media end (max PTS + the sample's delta)."""
    pts, end = _unsorted_pts(pair_runs(stts), pair_runs(ctts))
    pts.sort()
    return pts, end


def _deltas(stts: Runs) -> tuple[int, bool]:
    """``(most common delta, vfr)``; delta 0 when there is none.

    VFR: more than one distinct delta among the samples but the last (runs of count 0 hold
    no sample).
    """
    counts, values = stts.counts, stts.values
    if not counts:
        return 0, False
    if all_equal(values):
        return max(values[0], 0), False
    distinct = set(values)
    weights: dict[int, int] = {}
    if len(distinct) == 2:  # n_a + n_b = samples, a n_a + b n_b = the decode total: solved
        a, b = distinct
        weights[a] = (sum(map(mul, counts, values)) - b * stts.samples) // (a - b)
        weights[b] = stts.samples - weights[a]
    elif len(distinct) <= _FEW_DELTAS:
        for d in distinct:
            weights[d] = sum(compress(counts, map(d.__eq__, values)))
    else:
        for n, d in zip(counts, values, strict=True):
            weights[d] = weights.get(d, 0) + n
    delta = min(weights, key=lambda d: (-weights[d], d))
    if has_zero(counts):
        seen = set(compress(values[:-1], map(_positive, counts[:-1])))
        if counts[-1] > 1:
            seen.add(values[-1])
        vfr = len(seen) > 1
    else:  # every run but the last is a delta some sample has
        vfr = not all_equal(values[:-1]) or (counts[-1] > 1 and values[-1] != values[0])
    return max(delta, 0), vfr


def track_timing(
    *,
    stts: list[tuple[int, int]],
    ctts: list[tuple[int, int]],
    timescale: int,
    media_duration: int,
    edits: list[Edit] | None,
    movie_timescale: int,
) -> Timing:
    """Timing of a track from ``(count, value)`` tables (see :func:`runs_timing`)."""
    return runs_timing(
        pair_runs(stts),
        pair_runs(ctts),
        timescale=timescale,
        media_duration=media_duration,
        edits=edits,
        movie_timescale=movie_timescale,
    )


def runs_timing(
    stts: Runs,
    ctts: Runs,
    *,
    timescale: int,
    media_duration: int,
    edits: list[Edit] | None,
    movie_timescale: int,
) -> Timing:
    """Timing of a track from its (possibly fragment-extended) run tables."""
    frames = stts.samples
    offsets = ctts.values
    count: Callable[[int, int], int]
    if not all_equal(offsets):
        if frames > MAX_EXPANDED_SAMPLES:
            raise ProbeError(
                f"track has {frames} samples with varying composition offsets; the probe expands "
                f"at most {MAX_EXPANDED_SAMPLES}"
            )
        cto = None
        if frames and len(stts.counts) == 1 and stts.values[0] > 0 and ctts.samples == frames:
            cto = cto_timing(stts, ctts)
        if cto is not None:
            first_pts, media_end, count = cto
        else:
            pts, media_end = _unsorted_pts(stts, ctts)
            pts.sort()
            first_pts = pts[0] if pts else 0

            def count(lo: int, hi: int) -> int:
                return bisect_left(pts, hi) - bisect_left(pts, lo)
    else:  # PTS = DTS + one constant offset: count by arithmetic over the stts runs
        shift = offsets[0] if offsets else 0
        decode_end = sum(map(mul, stts.counts, stts.values))
        media_end = decode_end + shift
        first_pts = shift if frames else 0
        by_dts = _run_counter(stts, frames, decode_end)

        def count(lo: int, hi: int) -> int:
            return by_dts(lo - shift, hi - shift)

    # Edit arithmetic in integers of 1 / (timescale * movie_timescale) s: media time t is
    # t * movie_timescale, an edit duration d (movie timescale) is d * timescale.
    spans = [e for e in edits or () if e.media_time >= 0]
    if spans:
        scale = movie_timescale
        end_scaled, total, presented = media_end * scale, 0, 0
        for e in spans:
            lo = e.media_time * scale
            hi = lo + e.duration * timescale
            if e.duration == 0 or abs(hi - end_scaled) <= timescale:
                hi = end_scaled
            if hi > lo:
                total += hi - lo
                presented += count(e.media_time, -(-hi // scale))  # PTS < hi/scale <=> PTS < ceil
        negative = frames > 0 and first_pts < spans[0].media_time
    else:
        scale = 1
        presented = count(0, 1 << 62)
        negative = frames > 0 and first_pts < 0
        total = media_duration or sum(map(mul, stts.counts, stts.values))
    delta, vfr = _deltas(stts)
    return Timing(
        frames=frames,
        presented=presented,
        duration=Ratio.of(total, timescale * scale) if total else None,
        fps=Ratio.of(presented * timescale * scale, total) if total else None,
        nominal_fps=Ratio.of(timescale, delta) if delta else None,
        vfr=vfr,
        negative_pts=negative,
    )
