"""``bmff_timing`` (run-length and arithmetic) gives what a per-sample reading of the tables gives.

The reference below expands every table into one value per sample and applies the
definitions of :mod:`workers.probe.bmff_timing` literally: PTS = DTS + offset, presented
samples are those whose PTS falls inside an edit, nominal fps from the most common delta,
VFR from the distinct deltas of all samples but the last. Tables are what files hold: stts
runs of at least one sample (u32 deltas), a ctts that is absent or covers every sample.
The arithmetic for B-frames (:mod:`workers.probe.bmff_cto`) is also run with its limits
lowered, so its prefix-sum lookup and its decline (offsets spread too far) are exercised.
"""

from __future__ import annotations

import struct
from array import array
from collections import Counter
from fractions import Fraction
from functools import reduce
from itertools import accumulate
from operator import and_, or_
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.probe import bmff_cto, bmff_runs
from workers.probe.bmff_runs import Runs, all_equal, bounds, expand, has_zero, not_one, read_runs, samples_in
from workers.probe.bmff_timing import runs_timing, track_timing
from workers.probe.bmff_track import Edit

SETTINGS = settings(max_examples=250, deadline=None)


def reference(
    stts: list[tuple[int, int]],
    ctts: list[tuple[int, int]],
    timescale: int,
    media_duration: int,
    edits: list[Edit] | None,
    movie_timescale: int,
) -> tuple[object, ...]:
    deltas = [d for n, d in stts for _ in range(n)]
    offsets = [o for n, o in ctts for _ in range(n)] or [0] * len(deltas)
    dts = list(accumulate(deltas, initial=0))[:-1]
    pts = [t + o for t, o in zip(dts, offsets, strict=True)]
    media_end = max(p + d for p, d in zip(pts, deltas, strict=True))
    spans = [e for e in edits or () if e.media_time >= 0]
    if spans:
        scale, total, presented = movie_timescale, 0, 0
        for e in spans:
            lo = Fraction(e.media_time)
            hi = lo + Fraction(e.duration * timescale, movie_timescale)
            if e.duration == 0 or abs(hi - media_end) <= Fraction(timescale, movie_timescale):
                hi = Fraction(media_end)
            if hi > lo:
                total += (hi - lo) * scale
                presented += sum(1 for p in pts if lo <= p < hi)
        negative = min(pts) < spans[0].media_time
    else:
        scale = 1
        total = media_duration or sum(deltas)
        presented = sum(1 for p in pts if p >= 0)
        negative = min(pts) < 0
    weights = Counter(deltas)
    delta = min(weights, key=lambda d: (-weights[d], d))
    return (
        len(deltas),
        presented,
        Fraction(total, timescale * scale) if total else None,
        Fraction(presented * timescale * scale, total) if total else None,
        Fraction(timescale, delta) if delta else None,
        len(set(deltas[:-1])) > 1,
        negative,
    )


def fast(
    stts: list[tuple[int, int]],
    ctts: list[tuple[int, int]],
    timescale: int,
    media_duration: int,
    edits: list[Edit] | None,
    movie_timescale: int,
) -> tuple[object, ...]:
    """``track_timing`` on lists, and ``runs_timing`` on array columns (as read from a file)."""
    t = track_timing(
        stts=stts,
        ctts=ctts,
        timescale=timescale,
        media_duration=media_duration,
        edits=edits,
        movie_timescale=movie_timescale,
    )

    def columns(runs: list[tuple[int, int]]) -> Runs:
        counts = array("I", [n for n, _ in runs])
        return Runs(counts, array("i", [v for _, v in runs]), sum(counts))

    assert t == runs_timing(
        columns(stts),
        columns(ctts),
        timescale=timescale,
        media_duration=media_duration,
        edits=edits,
        movie_timescale=movie_timescale,
    )

    def frac(r: object) -> Fraction | None:
        return None if r is None else Fraction(str(r))

    return (
        t.frames,
        t.presented,
        frac(t.duration),
        frac(t.fps),
        frac(t.nominal_fps),
        t.vfr,
        t.negative_pts,
    )


@st.composite
def tables(draw: st.DrawFn) -> tuple[object, ...]:
    base = draw(st.sampled_from([1, 512, 1001]))
    one_rate = draw(st.booleans())
    deltas = st.just(base) if one_rate else st.sampled_from([0, base, 2 * base, base + 1])
    stts = draw(st.lists(st.tuples(st.integers(1, 40), deltas), min_size=1, max_size=6))
    frames = sum(n for n, _ in stts)
    ctts: list[tuple[int, int]] = []
    if draw(st.booleans()):
        offset = st.sampled_from([0, base, 2 * base, 3 * base, -base]) | st.integers(-4000, 4000)
        left = frames
        while left > 0:
            n = min(left, draw(st.integers(0, 3)))
            ctts.append((n, draw(offset)))
            left -= n
    edits = draw(
        st.none()
        | st.lists(
            st.builds(
                Edit, st.integers(0, 9000), st.sampled_from([-1, 0, base, 2 * base]) | st.integers(-1, 9000)
            ),
            max_size=3,
        )
    )
    scales = [(30000, 1000), (25, 1000), (90000, 600), (1000, 1000)]
    timescale, movie_timescale = draw(st.sampled_from(scales))
    media_duration = draw(st.sampled_from([0, sum(n * d for n, d in stts), 12345]))
    return stts, ctts, timescale, media_duration, edits, movie_timescale


@SETTINGS
@given(tables())
def test_timing_matches_the_per_sample_reference(case: tuple[object, ...]) -> None:
    stts, ctts, timescale, media_duration, edits, movie_timescale = case
    args = (stts, ctts, timescale, media_duration, edits, movie_timescale)
    expected = reference(*args)  # type: ignore[arg-type]
    assert fast(*args) == expected  # type: ignore[arg-type]
    with patch.object(bmff_cto, "MIN_SAMPLES", 1):  # the arithmetic, on short tables too
        assert fast(*args) == expected  # type: ignore[arg-type]
    with (
        patch.multiple(bmff_cto, MIN_SAMPLES=1, _EDGE=2),
        patch.object(bmff_runs, "_FOLD_FROM", 1),
    ):  # middle samples located by the prefix sum, offset bounds folded over the column
        assert fast(*args) == expected  # type: ignore[arg-type]
    with patch.multiple(bmff_cto, MIN_SAMPLES=1, MAX_SPREAD=1):  # wide offsets: the arithmetic declines
        assert fast(*args) == expected  # type: ignore[arg-type]


_COUNTS = st.lists(st.sampled_from([0, 1, 1, 1, 2, 5]), max_size=300)


@SETTINGS
@given(_COUNTS, st.booleans())
def test_run_columns_match_plain_lists(counts: list[int], as_array: bool) -> None:
    values = list(range(len(counts)))
    column = array("I", counts) if as_array else counts
    runs = Runs(column, array("i", values) if as_array else values, sum(counts))
    assert expand(runs) == [v for n, v in zip(counts, values, strict=True) for _ in range(n)]
    assert not_one(column) == [i for i, n in enumerate(counts) if n != 1]
    assert samples_in(column) == sum(counts)
    assert all_equal(column) == (len(set(counts)) <= 1)
    every = expand(runs)
    for size in (1, 2, 7, len(every) // 2, len(every)):  # the first and last offsets cto reads
        if 0 < size <= len(every):
            assert bmff_cto._first(runs, size) == every[:size]
            assert bmff_cto._last(runs, size) == every[len(every) - size :]


@SETTINGS
@given(st.lists(st.integers(0, 3000) | st.integers(-(1 << 31), (1 << 31) - 1), min_size=1, max_size=40))
def test_bounds_hold_every_value(values: list[int]) -> None:
    column = array("i", values)
    assert bounds(column) == (min(values), max(values))  # short: min() and max()
    with patch.object(bmff_runs, "_FOLD_FROM", 1):
        low, high = bounds(column)
    if min(values) < 0:
        assert (low, high) == (min(values), max(values))
    else:  # folded: the AND and the OR of the values
        assert (low, high) == (reduce(and_, values), reduce(or_, values))
    assert low <= min(values) and max(values) <= high


_OFFSET = st.integers(0, 300) | st.integers(0, 65535) | st.integers(-(1 << 31), (1 << 31) - 1)


@SETTINGS
@given(st.lists(_OFFSET, min_size=1, max_size=300))
def test_offset_bounds_hold_every_value(values: list[int]) -> None:
    """cto's bounds: a power of two minus 1 above offsets in [0, 65536), else ``bounds``."""
    low, high = bmff_cto.offset_bounds(array("i", values))
    if min(values) >= 0 and max(values) < 1 << 16:
        assert (low, high) == (0, (1 << max(values).bit_length()) - 1)
    else:
        assert (low, high) == bounds(array("i", values))
    assert bmff_cto.offset_bounds(values) == bounds(values)  # a list: no bytes to look at


@SETTINGS
@given(st.lists(st.sampled_from([0, 1, 3, 256, 512, 1 << 16, 1 << 24, 0xFFFFFFFF]), max_size=60))
def test_zero_counts_are_found_as_whole_words(counts: list[int]) -> None:
    """Counts that are multiples of 256 make zero bytes straddle two words: not a zero count."""
    assert has_zero(array("I", counts)) == (0 in counts)


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, (1 << 32) - 1), st.integers(0, (1 << 32) - 1)), max_size=20),
    st.binary(max_size=7),
    st.binary(max_size=7),
    st.booleans(),
)
def test_read_runs_takes_its_entries_only(
    entries: list[tuple[int, int]], before: bytes, after: bytes, signed: bool
) -> None:
    """A table read at any offset, with bytes around it, gives its (count, value) entries."""
    data = before + b"".join(struct.pack(">II", n, v) for n, v in entries) + after
    runs = read_runs(data, len(before), len(entries), signed)
    values = [v - (1 << 32) if signed and v >= 1 << 31 else v for _, v in entries]
    assert (list(runs.counts), list(runs.values), runs.samples) == (
        [n for n, _ in entries],
        values,
        sum(n for n, _ in entries),
    )
