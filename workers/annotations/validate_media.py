"""Layer 2, the media: what only ingestd knows before upload, because it probed the object.

Frame numbering. Labelbox numbers video frames from **1**: the seed's keyframe and mask
examples and Labelbox's video export examples (``"frame": 1`` is a track's first keyframe)
start at 1, and the SDK's examples count from 1 (ref/labelbox.md §2.1). So a keyframe ``frame``
and a mask ``index`` must lie in ``1..frame_count`` (``media.frame.range``). Frame *ranges*
(``frames: [{start, end}]``) must end by ``frame_count``; their start may be 0, because the
seed's temporal examples ("frame indices from the start of the asset") start at 0 — the
server's reading of 0 is unverified (ref A2.7).

Geometry. Every bbox, point and polyline / polygon vertex lies inside ``0..width`` x
``0..height`` of the displayed media (``media.bbox.bounds`` / ``media.point.bounds``, with the
values). With ``clip=True`` the geometry is clipped instead and reported as a warning
(``media.bbox.clipped`` / ``media.point.clipped``); a bbox with nothing left inside is still an
error (``media.bbox.outside``). Masks given as bytes (``imBytes``, ``png``) are PNGs the size of
the media (``media.mask.size``); masks given by URI cannot be checked without I/O.

Kinds. On a video, tools are only segments (``media.video.segments``); on anything else,
segments, video masks and frame ranges are refused (``media.kind.video_only``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence, Set

import msgspec
from msgspec import UNSET

from workers.annotations.facts import MediaFacts
from workers.annotations.model import (
    IMAGE_TOOLS,
    Annotation,
    BBox,
    ChecklistClassification,
    Classification,
    FrameRange,
    Keyframe,
    Line,
    MaskObject,
    Point,
    PointObject,
    PolygonObject,
    PolylineObject,
    RadioClassification,
    VideoMask,
    VideoObject,
)
from workers.annotations.problems import Problem
from workers.annotations.walk import FIRST_FRAME, answers, nested, plain_classifications, report
from workers.probe import png
from workers.probe.media import ProbeError
from workers.probe.sparse import Missing, Sparse


def png_size(b64: str) -> tuple[int, int] | None:
    """(width, height) of a base64 PNG, by the probe's PNG parser; None when unreadable."""
    try:
        raw = base64.b64decode(b64, validate=True)
        info = png.parse(Sparse.whole(raw))
    except (binascii.Error, ValueError, ProbeError, Missing):
        return None
    if info.width is None or info.height is None:
        return None
    return info.width, info.height


class _MediaWalk:
    def __init__(self, facts: MediaFacts, line: Line, fix: bool) -> None:
        self.facts, self.line, self.fix = facts, line, fix
        self.w, self.h, self.n = facts.width, facts.height, facts.frame_count
        self.out: list[Problem] = []
        self.clipped = False

    def frame(self, f: int, path: str) -> None:
        n = self.n
        if n is not None and not FIRST_FRAME <= f <= n:
            self.out.append(report(self.line, path, "media.frame.range", f"{FIRST_FRAME}..{n}", f))

    def ranges(self, frames: tuple[FrameRange, ...], path: str) -> None:
        n = self.n
        if n is None:
            return
        for i, r in enumerate(frames):
            if r.end > n or r.start > n:
                at = f"{path}.frames[{i}]"
                self.out.append(
                    report(self.line, at, "media.frame.range", f"within 0..{n}", f"{r.start}..{r.end}")
                )

    def bbox(self, b: BBox, path: str) -> None:
        w, h = self.w, self.h
        if w is None or h is None:
            return
        left, top, right, bottom = b.left, b.top, b.left + b.width, b.top + b.height
        if left >= 0 and top >= 0 and right <= w and bottom <= h:
            return
        was = f"x {left:g}..{right:g}, y {top:g}..{bottom:g}"
        if not self.fix:
            self.out.append(report(self.line, path, "media.bbox.bounds", f"inside x 0..{w}, y 0..{h}", was))
            return
        nl, nt, nr, nb = max(0.0, left), max(0.0, top), min(float(w), right), min(float(h), bottom)
        if nr <= nl or nb <= nt:
            self.out.append(report(self.line, path, "media.bbox.outside", f"overlap x 0..{w}, y 0..{h}", was))
            return
        b.left, b.top, b.width, b.height = nl, nt, nr - nl, nb - nt
        now = f"x {nl:g}..{nr:g}, y {nt:g}..{nb:g}"
        self.out.append(report(self.line, path, "media.bbox.clipped", was, now, severity="warning"))

    def point(self, p: Point, path: str) -> None:
        w, h = self.w, self.h
        if w is None or h is None or (0 <= p.x <= w and 0 <= p.y <= h):
            return
        was = f"({p.x:g}, {p.y:g})"
        if not self.fix:
            self.out.append(report(self.line, path, "media.point.bounds", f"inside x 0..{w}, y 0..{h}", was))
            return
        p.x, p.y = min(max(p.x, 0.0), float(w)), min(max(p.y, 0.0), float(h))
        self.out.append(
            report(self.line, path, "media.point.clipped", was, f"({p.x:g}, {p.y:g})", severity="warning")
        )

    def points(self, pts: tuple[Point, ...], path: str) -> None:
        for i, p in enumerate(pts):
            self.point(p, f"{path}[{i}]")

    def mask(self, b64: str, path: str) -> None:
        if self.w is None or self.h is None:
            return
        size = png_size(b64)
        if size is None:
            self.out.append(report(self.line, path, "media.mask.unreadable", "a base64 PNG", "unreadable"))
        elif size != (self.w, self.h):
            self.out.append(
                report(self.line, path, "media.mask.size", f"{self.w}x{self.h}", f"{size[0]}x{size[1]}")
            )

    def classifications(self, cs: tuple[Classification, ...] | object, path: str) -> None:
        for c, at in nested(cs, path):
            if c.frames is not UNSET:
                self.ranges(c.frames, at)
            self.answers(c.answer, at)

    def answers(self, answer: object, path: str) -> None:
        for a, at in answers(answer, path):  # type: ignore[arg-type]
            if a.frames is not UNSET:
                self.ranges(a.frames, at)
            self.classifications(a.classifications, at)

    def video_object(self, ann: VideoObject) -> None:
        n = self.n if self.n is not None else -1
        w = self.w if self.w is not None else -1
        h = self.h if self.h is not None else -1
        for si, seg in enumerate(ann.segments):
            for ki, kf in enumerate(seg.keyframes):
                f, b, cs = kf.frame, kf.bbox, kf.classifications
                if (
                    (n >= 0 and not FIRST_FRAME <= f <= n)
                    or b is UNSET
                    or (
                        w >= 0
                        and h >= 0
                        and not (
                            b.left >= 0 and b.top >= 0 and b.left + b.width <= w and b.top + b.height <= h
                        )
                    )
                    or (cs and not plain_classifications(cs))
                ):
                    self.keyframe(kf, f"$.segments[{si}].keyframes[{ki}]")

    def keyframe(self, kf: Keyframe, path: str) -> None:
        self.frame(kf.frame, f"{path}.frame")
        if kf.bbox is not UNSET:
            self.bbox(kf.bbox, f"{path}.bbox")
        if kf.point is not UNSET:
            self.point(kf.point, f"{path}.point")
        if kf.line is not UNSET:
            self.points(kf.line, f"{path}.line")
        self.classifications(kf.classifications, path)

    def annotation(self, ann: Annotation, *, plain: bool = False) -> None:
        video = self.facts.kind == "video"
        if isinstance(ann, VideoObject | VideoMask) and not video:
            what = "segments" if isinstance(ann, VideoObject) else "masks"
            self.out.append(report(self.line, f"$.{what}", "media.kind.video_only", "video", self.facts.kind))
            return
        if video and isinstance(ann, IMAGE_TOOLS):
            self.out.append(report(self.line, "$", "media.video.segments", "segments", type(ann).__name__))
            return
        if isinstance(ann, VideoObject):
            if not plain:
                self.video_object(ann)
            if ann.classifications:
                self.classifications(ann.classifications, "$")
        elif isinstance(ann, VideoMask):
            for i, fr in enumerate(ann.masks.frames):
                self.frame(fr.index, f"$.masks.frames[{i}].index")
                if fr.im_bytes is not UNSET:
                    self.mask(fr.im_bytes, f"$.masks.frames[{i}].imBytes")
        elif isinstance(ann, RadioClassification | ChecklistClassification):
            framed = ann.frames is not UNSET or any(
                a.frames is not UNSET for a, _ in answers(ann.answer, "$")
            )
            if framed and not video:
                self.out.append(report(self.line, "$", "media.kind.video_only", "video", self.facts.kind))
                return
            if ann.frames is not UNSET:
                self.ranges(ann.frames, "$")
            self.answers(ann.answer, "$")
            self.classifications(ann.classifications, "$")
        else:
            self.tool(ann)

    def tool(self, ann: Annotation) -> None:
        if isinstance(ann, PointObject):
            self.point(ann.point, "$.point")
        elif isinstance(ann, PolygonObject):
            self.points(ann.polygon, "$.polygon")
        elif isinstance(ann, PolylineObject):
            self.points(ann.line, "$.line")
        elif isinstance(ann, MaskObject):
            if ann.mask.png is not UNSET:
                self.mask(ann.mask.png, "$.mask.png")
        elif hasattr(ann, "bbox"):
            self.bbox(ann.bbox, "$.bbox")
        self.classifications(getattr(ann, "classifications", UNSET), "$")


def _copy(ann: Annotation) -> Annotation:
    return msgspec.convert(msgspec.to_builtins(ann), type=type(ann))


def check_media(
    lines: Sequence[Line], media: MediaFacts, *, clip: bool = False, plain: Set[int] = frozenset()
) -> tuple[list[Line], list[Problem]]:
    """Every media rule for lines of one data row. Returns the lines (clipped copies of those that
    needed clipping when ``clip``; inputs are never modified) and the problems. ``plain`` holds the
    ``id`` of lines whose segments :func:`~workers.annotations.walk.plain_track` passed against
    this media: their keyframes are not walked again."""
    out_lines: list[Line] = []
    problems: list[Problem] = []
    for line in lines:
        walk = _MediaWalk(media, line, fix=False)
        walk.annotation(line.annotation, plain=id(line) in plain)
        kept = line
        if clip and any(p.rule in ("media.bbox.bounds", "media.point.bounds") for p in walk.out):
            kept = msgspec.structs.replace(line, annotation=_copy(line.annotation))
            walk = _MediaWalk(media, kept, fix=True)
            walk.annotation(kept.annotation)
        out_lines.append(kept)
        problems.extend(walk.out)
    return out_lines, problems
