"""Keyframe reduction: keep only the keyframes Labelbox's interpolation cannot reproduce.

Labelbox interpolates ("tweens") a video tool between two keyframes of a segment (docs
video-editor: "all frames between keyframes will interpolate"). The docs do not name the
interpolation; we take it to be linear in the frame number, per coordinate, which is what every
labelling tool we convert from does too (CVAT's boxes and polylines are linear between keyframes):

    value(f) = value(a) + (value(b) - value(a)) * (f - a) / (b - a)      for keyframes a < f < b

For a box that is linear on ``top, left, height, width`` (equivalently on its two corners). A
shape here is a flat tuple of coordinates: ``(left, top, width, height)``, ``(x, y)``, or the
``x, y`` of every vertex of a polyline (reduced only between shapes with the same vertex count).

**Algorithm (greedy furthest reach).** From an anchor keyframe ``a``, a later
sample ``j`` can be the next keyframe when the straight line from ``a`` to ``j`` passes within the
tolerance of every sample between them. For one coordinate, each intermediate sample ``i`` allows
the slopes ``[(v_i - tol - v_a) / (f_i - f_a), (v_i + tol - v_a) / (f_i - f_a)]``; the slopes
allowed by all of them are the intersection of those intervals (a window that only narrows). ``j``
is feasible when its own slope ``(v_j - v_a) / (f_j - f_a)`` lies in the window for every
coordinate. We walk ``j`` forward, remember the last feasible one, and stop as soon as a window is
empty (no later ``j`` can be feasible); the last feasible sample becomes the next anchor. The first
and last samples of a segment are always kept. Kept keyframes carry their original values, so
every dropped sample is reproduced within ``tolerance`` on each coordinate, and the kept ones
exactly. The result is not guaranteed minimal (greedy), but each step reaches as far as any
keyframe from that anchor can. A sample is scanned once per anchor that can still reach it:
1.2 scans per sample on the MOT files of the tests and the bench, quadratic only for tracks whose
window stays open long after the last feasible keyframe.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_TOLERANCE = 0.5
# Shrinks the tolerance a hair so float rounding in the slope arithmetic can never make a
# dropped sample land a few ulps outside the promised tolerance.
_SLACK = 1e-9


def reduce(frames: Sequence[int], shapes: Sequence[Sequence[float]], tolerance: float) -> list[int]:
    """Indices (ascending) of the samples to keep as keyframes.

    ``frames`` must be strictly increasing and ``shapes`` the same length, every shape with the
    same number of coordinates.
    """
    n = len(frames)
    if n <= 2:
        return list(range(n))
    tol = max(tolerance - _SLACK, 0.0)
    width = len(shapes[0])
    inf = float("inf")
    kept = [0]
    a = 0
    while a < n - 1:
        fa = frames[a]
        va = shapes[a]
        lo = [-inf] * width
        hi = [inf] * width
        best = a + 1
        for j in range(a + 1, n):
            d = frames[j] - fa
            vj = shapes[j]
            feasible = True
            empty = False
            for c in range(width):
                diff = vj[c] - va[c]
                s = diff / d
                low, high = lo[c], hi[c]
                if s < low or s > high:
                    feasible = False
                # narrow the window by this sample's own band, for the samples after it
                bound = (diff - tol) / d
                low = bound if bound > low else low
                bound = (diff + tol) / d
                high = bound if bound < high else high
                lo[c], hi[c] = low, high
                if low > high:
                    empty = True
            if feasible:
                best = j
            if empty:
                break
        kept.append(best)
        a = best
    return kept


def interpolate(frames: Sequence[int], shapes: Sequence[Sequence[float]], frame: int) -> tuple[float, ...]:
    """The shape Labelbox renders at ``frame`` from keyframes ``frames``/``shapes`` (linear).

    ``frame`` must lie within the first and last keyframe.
    """
    lo, hi = 0, len(frames) - 1
    if not frames[lo] <= frame <= frames[hi]:
        raise ValueError(f"frame {frame} outside keyframes {frames[lo]}..{frames[hi]}")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if frames[mid] <= frame:
            lo = mid
        else:
            hi = mid
    if frames[lo] == frame or lo == hi:
        return tuple(shapes[lo])
    if frames[hi] == frame:
        return tuple(shapes[hi])
    t = (frame - frames[lo]) / (frames[hi] - frames[lo])
    a, b = shapes[lo], shapes[hi]
    return tuple(x + (y - x) * t for x, y in zip(a, b, strict=True))
