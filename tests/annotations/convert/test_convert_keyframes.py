"""Keyframe reduction: every original shape is reproduced by Labelbox's linear interpolation."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.annotations.convert import keyframes
from workers.annotations.convert.tracks import reduce_segment, split_at_gaps

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_reproduced(frames: list[int], shapes: list[tuple[float, ...]], kept: list[int], tol: float) -> None:
    assert kept[0] == 0
    assert kept[-1] == len(frames) - 1
    assert kept == sorted(set(kept))
    kf = [frames[i] for i in kept]
    ks = [shapes[i] for i in kept]
    for f, shape in zip(frames, shapes, strict=True):
        got = keyframes.interpolate(kf, ks, f)
        worst = max(abs(a - b) for a, b in zip(got, shape, strict=True))
        assert worst <= tol, f"frame {f}: off by {worst} > {tol}"


@st.composite
def piecewise_tracks(draw: st.DrawFn) -> tuple[list[int], list[tuple[float, ...]], float]:
    """A track of 2..400 frames: piecewise-linear motion in 1..6 coordinates, plus noise."""
    width = draw(st.sampled_from([2, 4, 6]))
    n = draw(st.integers(2, 400))
    step = draw(st.sampled_from([1, 1, 1, 2, 3]))
    frames = [1 + i * step for i in range(n)]
    pieces = draw(st.integers(1, 8))
    breaks = sorted({0, n - 1, *draw(st.lists(st.integers(0, n - 1), min_size=pieces, max_size=pieces))})
    anchors = [tuple(draw(st.floats(-2000, 4000, allow_nan=False)) for _ in range(width)) for _ in breaks]
    noise = draw(st.sampled_from([0.0, 0.05, 0.3, 0.6, 2.0]))
    rng = random.Random(draw(st.integers(0, 2**32)))
    shapes: list[tuple[float, ...]] = []
    for i in range(n):
        k = max(j for j, b in enumerate(breaks) if b <= i)
        k = min(k, len(breaks) - 2)
        t = (i - breaks[k]) / (breaks[k + 1] - breaks[k])
        base = [a + (b - a) * t for a, b in zip(anchors[k], anchors[k + 1], strict=True)]
        shapes.append(tuple(v + rng.uniform(-noise, noise) for v in base))
    tol = draw(st.sampled_from([0.5, 0.5, 0.1, 1.0, 0.0]))
    return frames, shapes, tol


class TestReduce:
    @PROPS
    @given(piecewise_tracks())
    def test_every_original_shape_within_tolerance(
        self, track: tuple[list[int], list[tuple[float, ...]], float]
    ) -> None:
        """After interpolating the kept keyframes, every original frame is within the tolerance."""
        frames, shapes, tol = track
        kept = keyframes.reduce(frames, shapes, tol)
        check_reproduced(frames, shapes, kept, tol + 1e-9)

    def test_straight_motion_keeps_two(self) -> None:
        """A box moving at constant speed needs only its first and last keyframes."""
        frames = list(range(1, 301))
        shapes = [(10 + 2.5 * f, 20 - 0.5 * f, 80 + 0.1 * f, 120.0) for f in frames]
        assert keyframes.reduce(frames, shapes, 0.5) == [0, 299]

    def test_corner_is_kept(self) -> None:
        """A change of direction is a keyframe; the segments either side collapse."""
        frames = list(range(1, 21))
        shapes = [(float(f if f <= 10 else 20 - f), 0.0) for f in frames]
        kept = keyframes.reduce(frames, shapes, 0.5)
        assert [frames[i] for i in kept] == [1, 10, 20]

    def test_zero_tolerance_keeps_any_wiggle(self) -> None:
        """With tolerance 0, a sample off the line is kept."""
        frames = [1, 2, 3]
        assert keyframes.reduce(frames, [(0.0,), (1.0,), (2.0,)], 0.0) == [0, 2]
        assert keyframes.reduce(frames, [(0.0,), (1.01,), (2.0,)], 0.0) == [0, 1, 2]

    def test_noise_under_tolerance_is_dropped_ratio(self) -> None:
        """Jitter below the tolerance on a smooth track: far fewer keyframes, all within 0.5 px."""
        rng = random.Random(3)
        frames = list(range(1, 901))
        shapes = [(300 + f * 1.7 + rng.uniform(-0.2, 0.2), 200 + rng.uniform(-0.2, 0.2)) for f in frames]
        kept = keyframes.reduce(frames, shapes, 0.5)
        check_reproduced(frames, shapes, kept, 0.5)
        assert len(kept) / len(frames) < 0.05


class TestInterpolate:
    def test_linear_between_keyframes(self) -> None:
        """Labelbox's tweening as we model it: linear in the frame number, per coordinate."""
        assert keyframes.interpolate([1, 11], [(0.0, 10.0), (10.0, 30.0)], 6) == (5.0, 20.0)
        assert keyframes.interpolate([1, 11, 21], [(0.0,), (10.0,), (0.0,)], 16) == (5.0,)
        assert keyframes.interpolate([1, 11], [(0.0,), (10.0,)], 11) == (10.0,)

    def test_outside_the_keyframes_is_an_error(self) -> None:
        """Frames before the first or after the last keyframe are not interpolated."""
        with pytest.raises(ValueError, match="outside keyframes"):
            keyframes.interpolate([5, 9], [(0.0,), (1.0,)], 10)


class TestSegments:
    def test_gap_of_one_frame_splits(self) -> None:
        """A frame without the object starts a new segment; consecutive frames stay together."""
        samples = [(f, (0.0, 0.0)) for f in (1, 2, 3, 5, 6, 9)]
        assert [[s[0] for s in run] for run in split_at_gaps(samples)] == [[1, 2, 3], [5, 6], [9]]

    def test_polyline_vertex_count_change_is_a_boundary(self) -> None:
        """Vertices appearing: each run of equal vertex count is reduced on its own, and the
        frames where the count changes stay keyframes on both sides."""
        two = [(f, (f * 1.0, 0.0, f + 10.0, 5.0)) for f in range(1, 11)]
        three = [(f, (f * 1.0, 0.0, f + 10.0, 5.0, f + 20.0, 0.0)) for f in range(11, 21)]
        kept = reduce_segment("line", two + three, 0.5)
        assert [s[0] for s in kept] == [1, 10, 11, 20]
        flicker = [(1, (0.0, 0.0, 1.0, 1.0)), (2, (0.0, 0.0, 1.0, 1.0, 2.0, 2.0)), (3, (0.0, 0.0, 1.0, 1.0))]
        assert reduce_segment("line", flicker, 0.5) == flicker

    def test_polyline_with_fixed_vertices_is_reduced(self) -> None:
        """A polyline translating at constant speed keeps its first and last keyframes."""
        seg = [(f, (f * 1.0, 0.0, f + 10.0, 5.0, f + 20.0, 0.0)) for f in range(1, 31)]
        assert [s[0] for s in reduce_segment("line", seg, 0.5)] == [1, 30]

    def test_no_tolerance_means_no_reduction(self) -> None:
        """tolerance=None writes every sample as a keyframe (the naive form)."""
        seg = [(f, (f * 1.0, 0.0)) for f in range(1, 31)]
        assert reduce_segment("point", seg, None) == seg
