"""CVAT for video 1.1 XML -> Labelbox video lines (and :func:`convert` picking video or images).

A CVAT video export is ``<annotations>`` with one ``<track id label>`` per object; a track's
children are its shapes, one per frame: ``<box frame outside occluded keyframe xtl ytl xbr ybr>``,
``<polyline ... points="x,y;x,y">`` or ``<points ... points="x,y">``. CVAT interpolates linearly
between its keyframes and exports every frame of the track, ``keyframe="0"`` for interpolated
ones, and marks the frames where the object is gone with ``outside="1"``.

- **Segments.** A shape with ``outside="1"`` ends the current segment; the next visible shape
  starts a new one. Frames between two visible shapes that the file does not list belong to the
  same segment, since CVAT (like Labelbox) interpolates across them.
- **Keyframes.** CVAT's ``keyframe`` flags are not copied: every visible shape is a sample and
  the reduction (``keyframes``) keeps what Labelbox's linear interpolation needs, which for a
  CVAT track is at most CVAT's own keyframes.
- **Frames.** CVAT counts frames from 0; Labelbox from 1 (``lines.LABELBOX_FIRST_FRAME``), so
  frame ``f`` becomes ``f + 1``. CVAT numbers a task's frames relative to the part of the video
  it was made from (``<start_frame>`` and ``<frame_filter>step=N</frame_filter>`` in ``<meta>``);
  the data row is the whole video, so frame ``f`` is video frame ``start_frame + f * step``.
- A ``<points>`` shape with several points becomes one point track per point index.
- Labelbox video has no polygon, ellipse, cuboid or skeleton tool; such tracks are reported,
  as are rotated boxes. Attributes are not converted (a warning lists them).
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from workers.annotations.convert import cvat_images, cvat_shapes, xmlsafe
from workers.annotations.convert.keyframes import DEFAULT_TOLERANCE
from workers.annotations.convert.lines import LABELBOX_FIRST_FRAME
from workers.annotations.convert.result import ConvertResult, Problems, Reduction
from workers.annotations.convert.tracks import Kind, Sample, track_line

CVAT_FIRST_FRAME = 0
KIND_OF: dict[str, Kind] = {"box": "bbox", "points": "point", "polyline": "line"}


def convert(
    data: bytes,
    *,
    source: str,
    global_key: str | None = None,
    global_key_for: Callable[[str], str | None] | None = None,
    tolerance: float | None = DEFAULT_TOLERANCE,
) -> ConvertResult:
    """A CVAT export of either kind: ``<track>`` elements mean video, ``<image>`` elements images.

    Video needs ``global_key`` (the video's data row); images need ``global_key_for`` (image
    ``name`` -> data row global key, None when unknown).
    """
    problems = Problems(source)
    root = xmlsafe.parse(data, problems)
    if root is None:
        return _empty(problems, tolerance)
    if root.find("track") is not None:
        if global_key is None:
            problems.add(
                "cvat.global_key", "a CVAT video export needs the video's global key", path="/annotations"
            )
            return _empty(problems, tolerance)
        return video(root, problems, global_key=global_key, tolerance=tolerance)
    if root.find("image") is not None:
        if global_key_for is None:
            problems.add(
                "cvat.global_key", "a CVAT images export needs image name -> global key", path="/annotations"
            )
            return _empty(problems, tolerance)
        return cvat_images.images(root, problems, global_key_for=global_key_for)
    problems.add(
        "cvat.root",
        "not a CVAT 1.1 export with tracks or images",
        path=f"/{root.tag}",
        expected="<annotations> with <track> or <image>",
        actual=f"<{root.tag}> with {[c.tag for c in root][:5]}",
    )
    return _empty(problems, tolerance)


def convert_video(
    data: bytes, *, source: str, global_key: str, tolerance: float | None = DEFAULT_TOLERANCE
) -> ConvertResult:
    """CVAT for video 1.1 XML -> one line per track (per point index for multi-point tracks)."""
    problems = Problems(source)
    root = xmlsafe.parse(data, problems)
    if root is None:
        return _empty(problems, tolerance)
    return video(root, problems, global_key=global_key, tolerance=tolerance)


def _empty(problems: Problems, tolerance: float | None) -> ConvertResult:
    return ConvertResult(lines=[], problems=problems.done(), reduction=Reduction(tolerance=tolerance))


def video(root: ET.Element, problems: Problems, *, global_key: str, tolerance: float | None) -> ConvertResult:
    frames = _frame_numbering(root, problems)
    if frames is None:
        return _empty(problems, tolerance)
    out: list[dict[str, Any]] = []
    total = Reduction(tolerance=tolerance)
    attributes: set[str] = set()
    for t, track in enumerate(root.iter("track")):
        path = f"/annotations/track[{t}]"
        label = track.get("label")
        if not label:
            problems.add("cvat.track.label", "a track needs a label", path=path, expected="label attribute")
            continue
        tags = {child.tag for child in track}
        if not tags:
            continue
        if len(tags) > 1 or next(iter(tags)) not in KIND_OF:
            problems.add(
                "cvat.track.shape",
                "Labelbox video tools are bbox, point and polyline; this track cannot be converted",
                path=path,
                expected="<box>, <points> or <polyline> shapes",
                actual=sorted(tags),
            )
            continue
        tag = next(iter(tags))
        per_index = _track_segments(track, tag, path, problems, attributes=attributes, numbering=frames)
        if per_index is None:
            continue
        for segments in per_index:
            if not segments:
                continue
            line, stats = track_line(
                name=label, global_key=global_key, kind=KIND_OF[tag], segments=segments, tolerance=tolerance
            )
            out.append(line)
            total.add(stats)
    cvat_shapes.warn_attributes(problems, attributes)
    return ConvertResult(lines=out, problems=problems.done(), reduction=total)


def _frame_numbering(root: ET.Element, problems: Problems) -> tuple[int, int] | None:
    """``(start_frame, step)`` of the task's frames in the video, from ``<meta>`` (default 0, 1)."""
    meta = root.find("meta")
    start_el = None if meta is None else next(meta.iter("start_frame"), None)
    filter_el = None if meta is None else next(meta.iter("frame_filter"), None)
    start_text = (start_el.text or "0").strip() if start_el is not None else "0"
    step_text = (filter_el.text or "").strip() if filter_el is not None else ""
    step_text = step_text.removeprefix("step=") or "1"
    if not (start_text.isdigit() and step_text.isdigit() and int(step_text) > 0) or len(start_text) > 9:
        problems.add(
            "cvat.meta.frames",
            "start_frame must be an integer >= 0 and frame_filter 'step=N'",
            path="/annotations/meta",
            expected="<start_frame>0</start_frame>, <frame_filter>step=1</frame_filter>",
            actual=f"start_frame={start_text!r} frame_filter={step_text!r}",
        )
        return None
    return int(start_text), int(step_text)


def _track_segments(
    track: ET.Element,
    tag: str,
    path: str,
    problems: Problems,
    *,
    attributes: set[str],
    numbering: tuple[int, int],
) -> list[list[list[Sample]]] | None:
    """For each point index (one for boxes and polylines), the track's segments of samples."""
    shapes: list[tuple[int, bool, list[float]]] = []
    for i, el in enumerate(track):
        where = f"{path}/{tag}[{i}]"
        frame_raw = el.get("frame", "")
        frame = int(frame_raw) if frame_raw.isdigit() and len(frame_raw) < 10 else None
        if frame is None:
            problems.add("cvat.frame", "frame must be an integer >= 0", path=where, actual=frame_raw)
            return None
        attributes.update(a.get("name", "?") for a in el.iter("attribute"))
        outside = el.get("outside", "0") == "1"
        shape = [] if outside else cvat_shapes.shape(el, where, problems)
        if shape is None:
            return None
        start, step = numbering
        shapes.append((start + frame * step + LABELBOX_FIRST_FRAME - CVAT_FIRST_FRAME, outside, shape))
    shapes.sort(key=lambda s: s[0])
    for (f0, _, _), (f1, _, _) in itertools.pairwise(shapes):
        if f0 == f1:
            problems.add("cvat.frame.duplicate", "two shapes at one frame", path=path, actual=f"frame {f1}")
            return None
    width = 2 if tag == "points" else None
    counts = {len(s) for _, outside, s in shapes if not outside}
    if tag == "points" and len(counts) > 1:
        problems.add(
            "cvat.points.count",
            "the number of points changes along the track",
            path=path,
            expected="the same number of points on every frame",
            actual=sorted(c // 2 for c in counts),
        )
        return None
    n_tracks = (max(counts) // 2 if counts else 0) if tag == "points" else 1
    result: list[list[list[Sample]]] = []
    for k in range(n_tracks):
        segments: list[list[Sample]] = []
        current: list[Sample] = []
        for frame, outside, shape in shapes:
            if outside:
                if current:
                    segments.append(current)
                current = []
                continue
            part = tuple(shape[2 * k : 2 * k + 2]) if width else tuple(shape)
            current.append((frame, part))
        if current:
            segments.append(current)
        result.append(segments)
    return result
