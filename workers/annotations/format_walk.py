"""The format rules inside one line (see validate_format for the list and the per-import rules)."""

from __future__ import annotations

from msgspec import UNSET

from workers.annotations.model import (
    Answer,
    Classification,
    FrameRange,
    Keyframe,
    Line,
    MaskInstance,
    MaskObject,
    PolygonObject,
    PolylineObject,
    Segment,
    VideoMask,
)
from workers.annotations.problems import Problem
from workers.annotations.walk import (
    FIRST_FRAME,
    answers,
    nested,
    plain_classifications,
    ranges_text,
    report,
)

_GEOMETRIES = ("bbox", "point", "line")


def _contained(child: FrameRange, parents: tuple[FrameRange, ...]) -> bool:
    return any(p.start <= child.start and child.end <= p.end for p in parents)


class FormatWalker:
    """Collects problems in ``out`` and where ``confidence`` was first seen."""

    def __init__(self) -> None:
        self.out: list[Problem] = []
        self.confidence: tuple[Line, str] | None = None
        self.line_has_confidence = False

    def feature(self, line: Line, obj: Classification | Answer | MaskInstance | object, path: str) -> None:
        name, schema_id = getattr(obj, "name", UNSET), getattr(obj, "schema_id", UNSET)
        if (name is UNSET) == (schema_id is UNSET):
            got = "both" if name is not UNSET else "neither"
            self.out.append(
                report(line, path, "annotation.feature.xor", "exactly one of name, schemaId", got)
            )

    def saw_confidence(self, line: Line, obj: object, path: str) -> None:
        if getattr(obj, "confidence", UNSET) is not UNSET:
            self.line_has_confidence = True
            if self.confidence is None:
                self.confidence = (line, f"{path}.confidence")

    def frames(
        self, line: Line, frames: tuple[FrameRange, ...], path: str, parents: tuple[FrameRange, ...] | None
    ) -> None:
        for i, r in enumerate(frames):
            at = f"{path}.frames[{i}]"
            if r.start < 0:
                self.out.append(report(line, f"{at}.start", "annotation.frames.negative", ">= 0", r.start))
            if r.start > r.end:
                self.out.append(
                    report(line, at, "annotation.frames.order", f"start <= end ({r.end})", r.start)
                )
            elif parents and not _contained(r, parents):
                want = f"inside {ranges_text(parents)}"
                self.out.append(report(line, at, "annotation.frames.nested", want, f"{r.start}..{r.end}"))

    def classification(
        self, line: Line, c: Classification, path: str, parents: tuple[FrameRange, ...] | None
    ) -> None:
        self.feature(line, c, path)
        self.saw_confidence(line, c, path)
        if c.frames is not UNSET:
            self.frames(line, c.frames, path, parents)
            parents = c.frames
        self.answer(line, c.answer, path, parents)

    def answer(
        self,
        line: Line,
        answer: str | Answer | tuple[Answer, ...],
        path: str,
        parents: tuple[FrameRange, ...] | None,
    ) -> None:
        if isinstance(answer, tuple) and answer:
            texts = sum(a.value is not UNSET for a in answer)
            if texts not in (0, len(answer)):
                want = "all items with name/schemaId, or all with value"
                got = f"{texts} of {len(answer)} with value"
                self.out.append(report(line, f"{path}.answer", "annotation.answer.shape", want, got))
        for a, at in answers(answer, path):
            self.saw_confidence(line, a, at)
            if a.value is not UNSET:
                if a.name is not UNSET or a.schema_id is not UNSET:
                    self.out.append(
                        report(line, at, "annotation.answer.shape", "value only", "value and name")
                    )
                if a.frames is UNSET:
                    self.out.append(
                        report(line, at, "annotation.answer.shape", "value with frames", "no frames")
                    )
            else:
                self.feature(line, a, at)
            inner = parents
            if a.frames is not UNSET:
                self.frames(line, a.frames, at, parents)
                inner = a.frames
            for c, cat in nested(a.classifications, at):
                self.classification(line, c, cat, inner)

    def keyframe(self, line: Line, kf: Keyframe, path: str, want: str | None) -> str | None:
        kinds = [k for k in _GEOMETRIES if getattr(kf, k) is not UNSET]
        if len(kinds) != 1:
            got = ", ".join(kinds) or "none"
            self.out.append(
                report(line, path, "annotation.keyframe.geometry", "one of bbox, point, line", got)
            )
            return want
        got = kinds[0]
        if want is not None and got != want:
            self.out.append(report(line, f"{path}.{got}", "annotation.keyframe.kind", want, got))
        if kf.bbox is not UNSET:
            self.bbox(line, kf.bbox.width, kf.bbox.height, f"{path}.bbox")
        elif kf.line is not UNSET and len(kf.line) < 2:
            self.out.append(
                report(line, f"{path}.line", "annotation.line.points", ">= 2 points", len(kf.line))
            )
        for c, cat in nested(kf.classifications, path):
            self.classification(line, c, cat, None)
        return want or got

    def bbox(self, line: Line, width: float, height: float, path: str) -> None:
        if not (width > 0 and height > 0):
            got = f"width={width:g} height={height:g}"
            self.out.append(report(line, path, "annotation.bbox.size", "width > 0 and height > 0", got))

    def segments(self, line: Line, segments: tuple[Segment, ...]) -> None:
        prev_end: int | None = None
        first_kf = next((kf for seg in segments for kf in seg.keyframes), None)
        want = next((g for g in _GEOMETRIES if getattr(first_kf, g, UNSET) is not UNSET), None)
        for si, seg in enumerate(segments):
            kfs = seg.keyframes
            if not kfs:
                self.out.append(
                    report(line, f"$.segments[{si}]", "annotation.segments.empty", ">= 1 keyframe", 0)
                )
                continue
            last = kfs[0].frame - 1
            for ki, kf in enumerate(kfs):
                f, b, cs = kf.frame, kf.bbox, kf.classifications
                # the common case (an ordered bbox keyframe with plain classifications) costs a few
                # attribute reads; anything else takes the full walk, which builds paths for problems
                if (
                    f <= last
                    or f < FIRST_FRAME
                    or want != "bbox"
                    or b is UNSET
                    or kf.point is not UNSET
                    or kf.line is not UNSET
                    or not (b.width > 0 and b.height > 0)
                    or (cs and not plain_classifications(cs))
                ):
                    if f < FIRST_FRAME or f <= last:
                        self._frame(line, si, ki, f, last if ki else None)
                    self.keyframe(line, kf, f"$.segments[{si}].keyframes[{ki}]", want)
                last = f if f > last else last
            first = kfs[0].frame
            if prev_end is not None and first <= prev_end:
                at = f"$.segments[{si}].keyframes[0].frame"
                self.out.append(report(line, at, "annotation.segments.order", f"> {prev_end}", first))
            prev_end = last if prev_end is None else max(prev_end, last)

    def _frame(self, line: Line, si: int, ki: int, f: int, last: int | None) -> None:
        at = f"$.segments[{si}].keyframes[{ki}].frame"
        if f < FIRST_FRAME:
            self.out.append(report(line, at, "annotation.frame.min", f">= {FIRST_FRAME}", f))
        if last is not None and f <= last:
            self.out.append(report(line, at, "annotation.keyframes.order", f"> {last}", f))

    def video_mask(self, line: Line, ann: VideoMask) -> None:
        seen: set[int] = set()
        for i, fr in enumerate(ann.masks.frames):
            at = f"$.masks.frames[{i}]"
            if fr.index < FIRST_FRAME:
                self.out.append(
                    report(line, f"{at}.index", "annotation.frame.min", f">= {FIRST_FRAME}", fr.index)
                )
            if fr.index in seen:
                self.out.append(report(line, f"{at}.index", "annotation.mask.index", "a new frame", fr.index))
            seen.add(fr.index)
            if (fr.instance_uri is UNSET) == (fr.im_bytes is UNSET):
                got = "both" if fr.im_bytes is not UNSET else "neither"
                self.out.append(
                    report(line, at, "annotation.mask.source", "one of instanceURI, imBytes", got)
                )
        colors: set[tuple[int, int, int]] = set()
        for i, inst in enumerate(ann.masks.instances):
            at = f"$.masks.instances[{i}]"
            self.feature(line, inst, at)
            if inst.color_rgb in colors:
                rgb = list(inst.color_rgb)
                self.out.append(report(line, f"{at}.colorRGB", "annotation.mask.color", "a new colour", rgb))
            colors.add(inst.color_rgb)

    def tool(self, line: Line, ann: object) -> None:
        if isinstance(ann, PolygonObject) and len(ann.polygon) < 3:
            self.out.append(
                report(line, "$.polygon", "annotation.polygon.points", ">= 3 points", len(ann.polygon))
            )
        elif isinstance(ann, PolylineObject) and len(ann.line) < 2:
            self.out.append(report(line, "$.line", "annotation.line.points", ">= 2 points", len(ann.line)))
        elif isinstance(ann, MaskObject):
            m = ann.mask
            uri, png, color = m.instance_uri is not UNSET, m.png is not UNSET, m.color_rgb is not UNSET
            if uri == png or uri != color:
                got = [k for k, on in (("instanceURI", uri), ("colorRGB", color), ("png", png)) if on]
                want = "instanceURI and colorRGB, or png"
                self.out.append(
                    report(line, "$.mask", "annotation.mask.source", want, ", ".join(got) or "none")
                )
        else:
            b = getattr(ann, "bbox", None)
            if b is not None:
                self.bbox(line, b.width, b.height, "$.bbox")
