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
from collections import Counter
from fractions import Fraction
from itertools import accumulate, starmap
from operator import add, itemgetter, mul

import msgspec

from workers.probe.bmff_track import Edit
from workers.probe.media import ProbeError

# Per-sample timestamps are only built for varying composition offsets (B-frames); a table
# that claims more samples than any real movie (24 h at 60 fps is 5.2 million) is refused
# rather than expanded into gigabytes.
MAX_EXPANDED_SAMPLES = 20_000_000


class Timing(msgspec.Struct, kw_only=True):
    """Derived timing of one track."""

    frames: int
    presented: int
    duration: Fraction | None  # seconds
    fps: Fraction | None
    nominal_fps: Fraction | None
    vfr: bool
    negative_pts: bool


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


def _expand(runs: list[tuple[int, int]]) -> list[int]:
    out: list[int] = []
    for n, value in runs:
        out += [value] * n
    return out


def _pts_list(stts: list[tuple[int, int]], ctts: list[tuple[int, int]]) -> tuple[list[int], int]:
    """Every sample's PTS, sorted, and the media end (max PTS + the sample's delta).

    One ``stts`` run (constant frame rate, the common case) needs no per-sample delta list:
    the decode times are a ``range`` and the end is the largest PTS plus the one delta.
    """
    if len(stts) == 1 and stts[0][1] != 0:
        n, delta = stts[0]
        offsets = _expand(ctts)
        if len(offsets) < n:
            offsets += [0] * (n - len(offsets))
        pts = list(map(add, range(0, n * delta, delta), offsets))
        pts.sort()
        return pts, (pts[-1] + delta if pts else 0)
    deltas = _expand(stts)
    offsets = _expand(ctts)
    if len(offsets) < len(deltas):  # fragments without offsets after a moov with them
        offsets += [0] * (len(deltas) - len(offsets))
    dts = accumulate(deltas, initial=0)
    pts = list(map(add, dts, offsets[: len(deltas)]))
    end = max(map(add, pts, deltas), default=0)
    pts.sort()
    return pts, end


def _deltas(stts: list[tuple[int, int]]) -> tuple[int, bool]:
    """``(most common delta, vfr)``; delta 0 when there is none."""
    weights: Counter[int] = Counter()
    for n, d in stts:
        weights[d] += n
    if not weights:
        return 0, False
    delta = min(weights, key=lambda d: (-weights[d], d))
    head = [(n, d) for n, d in stts[:-1]] + [(stts[-1][0] - 1, stts[-1][1])]
    vfr = len({d for n, d in head if n > 0}) > 1
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
    """Timing of a track from its (possibly fragment-extended) tables."""
    frames = sum(map(itemgetter(0), stts))
    shifts = set(map(itemgetter(1), ctts))
    if len(shifts) > 1:
        if frames > MAX_EXPANDED_SAMPLES:
            raise ProbeError(
                f"track has {frames} samples with varying composition offsets; the probe expands "
                f"at most {MAX_EXPANDED_SAMPLES}"
            )
        pts, media_end = _pts_list(stts, ctts)
        first_pts = pts[0] if pts else 0

        def count(lo: int, hi: int) -> int:
            return bisect_left(pts, hi) - bisect_left(pts, lo)
    else:  # PTS = DTS + one constant offset: count by arithmetic over the stts runs
        shift = shifts.pop() if shifts else 0
        media_end = sum(starmap(mul, stts)) + shift
        first_pts = shift if frames else 0

        def count(lo: int, hi: int) -> int:
            return _count_runs_in(stts, lo - shift, hi - shift)

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
        total = media_duration or sum(starmap(mul, stts))
    duration = Fraction(total, timescale * scale) if total else None
    delta, vfr = _deltas(stts)
    return Timing(
        frames=frames,
        presented=presented,
        duration=duration,
        fps=Fraction(presented * timescale * scale, total) if total else None,
        nominal_fps=Fraction(timescale, delta) if delta else None,
        vfr=vfr,
        negative_pts=negative,
    )
