"""Shared by the validators: building problems for a line, and visiting nested classifications."""

from __future__ import annotations

from collections.abc import Iterator

from msgspec import UNSET

from workers.annotations.model import Answer, Classification, FrameRange, Line, Segment
from workers.annotations.problems import Problem, Severity

FIRST_FRAME = 1  # Labelbox numbers video frames from 1 (see validate_media)


def report(
    line: Line,
    path: str,
    rule: str,
    expected: object = "",
    actual: object = "",
    *,
    message: str | None = None,
    severity: Severity = "error",
) -> Problem:
    """A problem located at ``path`` in ``line``; the message defaults to the rule's in MESSAGES."""
    return Problem(
        file=line.file,
        line=line.number,
        path=path,
        rule=rule,
        message=MESSAGES.get(rule, rule) if message is None else message,
        expected=str(expected),
        actual=str(actual),
        severity=severity,
    )


MESSAGES: dict[str, str] = {
    # format (validate_format)
    "annotation.dataRow.missing": "every line names its data row",
    "annotation.dataRow.xor": "a data row is named by id or globalKey",
    "annotation.feature.xor": "name a feature by name or schemaId",
    "annotation.answer.shape": "a list answer holds options (name/schemaId) or text items (value + frames)",
    "annotation.frames.negative": "frame ranges cannot start before the first frame",
    "annotation.frames.order": "a frame range needs start <= end",
    "annotation.frames.nested": "a child's frames must lie inside its parent's range",
    "annotation.frame.min": "video frames are numbered from 1",
    "annotation.segments.empty": "a segment needs keyframes",
    "annotation.keyframes.order": "keyframes ascend strictly within a segment",
    "annotation.segments.order": "segments of a track follow each other without overlap",
    "annotation.keyframe.geometry": "a keyframe has exactly one geometry",
    "annotation.keyframe.kind": "every keyframe of a track has the same geometry",
    "annotation.bbox.size": "a bbox needs a positive size",
    "annotation.polygon.points": "a polygon needs 3 points",
    "annotation.line.points": "a polyline needs 2 points",
    "annotation.mask.source": "a mask has exactly one source",
    "annotation.mask.index": "one composite mask per frame",
    "annotation.mask.color": "each mask instance has its own colour",
    "annotation.video.segments": "on a video, tools go in segments of keyframes",
    "annotation.uuid.format": "uuid is not a UUID",
    "annotation.uuid.unique": "uuids are unique in an import",
    "annotation.limit.per_feature": "too many lines for one data row and feature in one import",
    "annotation.confidence.ignored": "MAL and ground-truth imports ignore confidence: dropped",
    # media (validate_media)
    "media.kind.video_only": "segments, masks and frames belong on a video",
    "media.video.segments": "the media is a video: its tools go in segments of keyframes",
    "media.frame.range": "frame outside the probed video",
    "media.bbox.bounds": "bbox reaches outside the probed image",
    "media.bbox.clipped": "bbox clipped to the probed image",
    "media.bbox.outside": "bbox lies wholly outside the probed image",
    "media.point.bounds": "point outside the probed image",
    "media.point.clipped": "point clamped to the probed image",
    "media.mask.size": "mask size differs from the media's",
    "media.mask.unreadable": "mask is not a readable base64 PNG",
    # ontology (validate_ontology)
    "ontology.feature.unknown": "feature not in the ontology",
    "ontology.feature.kind": "feature is of another kind in the ontology",
    "ontology.tool.type": "tool type differs from the ontology's",
    "ontology.classification.type": "answer shape does not fit the classification's type",
    "ontology.radio.one": "a radio takes one answer",
    "ontology.checklist.list": "a checklist answer is a list",
    "ontology.radio.temporal": "a temporal radio has one item per answer and one answer per frame",
    "ontology.classification.scope": "frames need an index-scoped classification, and only those",
    "ontology.answer.unknown": "answer not among the classification's options",
}


def ranges_text(frames: tuple[FrameRange, ...]) -> str:
    return ", ".join(f"{r.start}..{r.end}" for r in frames)


def answers(answer: str | Answer | tuple[Answer, ...], path: str) -> Iterator[tuple[Answer, str]]:
    """Each answer object of a classification with its path (none for free text)."""
    if isinstance(answer, Answer):
        yield answer, f"{path}.answer"
    elif isinstance(answer, tuple):
        for i, a in enumerate(answer):
            yield a, f"{path}.answer[{i}]"


def nested(
    classifications: tuple[Classification, ...] | object, path: str
) -> Iterator[tuple[Classification, str]]:
    """The classifications in a ``classifications`` list, with their paths."""
    if classifications is UNSET or not isinstance(classifications, tuple):
        return
    for i, c in enumerate(classifications):
        yield c, f"{path}.classifications[{i}]"


def _plain_option(a: Answer) -> bool:
    return (
        (a.name is UNSET) != (a.schema_id is UNSET)
        and a.value is UNSET
        and a.frames is UNSET
        and a.confidence is UNSET
        and not a.classifications
    )


def plain_classifications(cs: tuple[Classification, ...]) -> bool:
    """True when every classification is a named one-level radio/checklist/text without frames,
    confidence or nesting: nothing any layer's rules could object to inside them except the
    ontology's names. The validators' fast path; anything else takes the full walk."""
    for c in cs:
        if (c.name is UNSET) == (c.schema_id is UNSET) or c.frames is not UNSET or c.confidence is not UNSET:
            return False
        a = c.answer
        if type(a) is tuple:
            for x in a:
                if not _plain_option(x):
                    return False
        elif type(a) is not str and not _plain_option(a):  # type: ignore[arg-type]
            return False
    return True


def plain_track(segments: tuple[Segment, ...], frames: float, width: float, height: float) -> bool:
    """True when a track is ordered bbox keyframes inside ``1..frames`` and ``width x height``
    with plain classifications: nothing the format or media rules could report in its segments
    (pass ``inf`` for what is not known). The fused fast path of validate_lines."""
    last = FIRST_FRAME - 1
    for seg in segments:
        kfs = seg.keyframes
        if not kfs:
            return False
        for kf in kfs:
            f, b, cs = kf.frame, kf.bbox, kf.classifications
            if f <= last or f > frames or b is UNSET or kf.point is not UNSET or kf.line is not UNSET:
                return False
            left, top, w, h = b.left, b.top, b.width, b.height
            if not (w > 0 and h > 0 and left >= 0 and top >= 0 and left + w <= width and top + h <= height):
                return False
            if cs and not plain_classifications(cs):
                return False
            last = f
    return True
