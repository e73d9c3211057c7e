"""Per-frame tracks -> one Labelbox video line per (track, feature), keyframes reduced.

A tracker writes one shape per object per frame. Labelbox wants one line per object instance and
feature, its frames grouped into ``segments`` (each a continuous stretch where the object is
present) of ``keyframes`` it interpolates between (see ``keyframes``). :class:`TrackBuilder`
collects samples in any order, splits a track into segments where it is absent for one frame or
more, reduces each segment's keyframes and builds the lines.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from workers.annotations.convert import keyframes, lines
from workers.annotations.convert.result import Problems, Reduction

Kind = Literal["bbox", "point", "line"]
KINDS: tuple[Kind, ...] = ("bbox", "point", "line")


# One shape of a track at one frame (Labelbox numbering), coordinates flat: ``(frame, shape)``.
# bbox: ``(left, top, width, height)``; point: ``(x, y)``; line: ``(x0, y0, x1, y1, ...)``.
# A plain tuple, not a NamedTuple: a tracker file has millions and tuples are built in C.
Sample: TypeAlias = tuple[int, tuple[float, ...]]


def keyframe(kind: Kind, sample: Sample) -> dict[str, Any]:
    frame, s = sample
    if kind == "bbox":
        return {"frame": frame, "bbox": lines.bbox(s[0], s[1], s[2], s[3])}
    if kind == "point":
        return {"frame": frame, "point": lines.point(s[0], s[1])}
    return {"frame": frame, "line": lines.vertices(s)}


def split_at_gaps(samples: list[Sample]) -> list[list[Sample]]:
    """Runs of consecutive frames: a frame missing between two samples starts a new segment."""
    runs: list[list[Sample]] = []
    for s in samples:
        if runs and s[0] == runs[-1][-1][0] + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


def reduce_segment(kind: Kind, segment: list[Sample], tolerance: float | None) -> list[Sample]:
    """The keyframes to write for one segment (all of them when ``tolerance`` is None).

    A polyline whose vertex count changes is reduced within each run of samples with the same
    count; the first and last sample of every run stay, so no frame is ever interpolated
    between two lines of different vertex counts.
    """
    if tolerance is None or len(segment) <= 2:
        return segment
    if kind == "line":
        runs: list[list[Sample]] = []
        for s in segment:
            if runs and len(runs[-1][-1][1]) == len(s[1]):
                runs[-1].append(s)
            else:
                runs.append([s])
        if len(runs) > 1:
            return [k for run in runs for k in _reduce(run, tolerance)]
    return _reduce(segment, tolerance)


def _reduce(samples: list[Sample], tolerance: float) -> list[Sample]:
    kept = keyframes.reduce([s[0] for s in samples], [s[1] for s in samples], tolerance)
    return [samples[i] for i in kept]


def track_line(
    *,
    name: str,
    global_key: str,
    kind: Kind,
    segments: list[list[Sample]],
    tolerance: float | None,
) -> tuple[dict[str, Any], Reduction]:
    """One NDJSON line for one track of one feature, and what the reduction did to it."""
    out: list[dict[str, Any]] = []
    stats = Reduction(tracks=1, tolerance=tolerance)
    for segment in segments:
        kept = reduce_segment(kind, segment, tolerance)
        stats.segments += 1
        stats.shapes_in += len(segment)
        stats.keyframes_out += len(kept)
        out.append({"keyframes": [keyframe(kind, s) for s in kept]})
    line = {"dataRow": lines.data_row(global_key), "name": name, "segments": out}
    return lines.finish(line, global_key), stats


def _track_order(item: tuple[tuple[str, str, Kind], object]) -> tuple[int, int, str, str, str]:
    """Lines in track order: numeric ids by value, then other ids as text."""
    track, name, kind = item[0]
    numeric = track.isdigit() and len(track) < 19
    return (0 if numeric else 1, int(track) if numeric else 0, track, name, kind)


class TrackBuilder:
    """Collects per-frame samples of many tracks, then builds one line per (track, feature).

    Lines come out ordered by track id (numerically when the ids are numbers), so the output does
    not depend on the order of the input rows.
    """

    __slots__ = ("_tracks", "global_key", "problems", "tolerance")

    def __init__(self, problems: Problems, *, global_key: str, tolerance: float | None) -> None:
        self.problems = problems
        self.global_key = global_key
        self.tolerance = tolerance
        self._tracks: dict[tuple[str, str, Kind], dict[int, tuple[float, ...]]] = {}

    def add(
        self, track: str, name: str, kind: Kind, frame: int, shape: tuple[float, ...], *, line: int
    ) -> None:
        frames = self._tracks.setdefault((track, name, kind), {})
        if frame in frames:
            self.problems.add(
                "track.duplicate_frame",
                f"track {track!r} ({name}) has two shapes at frame {frame}; the first is kept",
                line=line,
                expected="one shape per track and frame",
                actual=f"frame {frame} again",
            )
            return
        frames[frame] = shape

    def build(self) -> tuple[list[dict[str, Any]], Reduction]:
        out: list[dict[str, Any]] = []
        total = Reduction(tolerance=self.tolerance)
        for (_track, name, kind), frames in sorted(self._tracks.items(), key=_track_order):
            order = sorted(frames)  # already in order for most files: timsort is then one pass
            samples = list(zip(order, map(frames.__getitem__, order), strict=True))
            line, stats = track_line(
                name=name,
                global_key=self.global_key,
                kind=kind,
                segments=split_at_gaps(samples),
                tolerance=self.tolerance,
            )
            out.append(line)
            total.add(stats)
        return out, total
