"""Layer 1, the format: what a line must be whatever the media and the ontology.

Rules (id: what it checks; messages in walk.MESSAGES):

* ``annotation.dataRow.missing`` / ``annotation.dataRow.xor``: ``dataRow`` with exactly one
  truthy ``id`` / ``globalKey`` (the SDK's ``is_exactly_one_set``).
* ``annotation.feature.xor``: ``name`` xor ``schemaId`` on every line, nested classification,
  option answer and mask instance (video-mask lines carry their names on the instances).
* ``annotation.answer.shape``: a list answer is all options (``name``/``schemaId``) or all
  text items (``value`` with ``frames``, no ``name``).
* ``annotation.frames.order`` (``start <= end``), ``annotation.frames.negative``,
  ``annotation.frames.nested`` (a child's range inside one of its parent's ranges).
* ``annotation.frame.min``: keyframes and mask indices are 1-based (see validate_media).
* ``annotation.segments.empty``, ``annotation.keyframes.order`` (strictly ascending in a
  segment), ``annotation.segments.order`` (a segment starts after the previous one ended: one
  line is one track), ``annotation.keyframe.geometry`` (exactly one of bbox/point/line),
  ``annotation.keyframe.kind`` (one geometry kind per track).
* ``annotation.bbox.size`` (width and height > 0), ``annotation.polygon.points`` (>= 3),
  ``annotation.line.points`` (>= 2), ``annotation.mask.source`` (exactly one source),
  ``annotation.mask.index`` / ``annotation.mask.color`` (unique per video-mask line).
* ``annotation.video.segments``: a data row that has video lines (segments, masks, frames)
  takes tools only as segments ("tool annotations are required to be frame-based").
* ``annotation.uuid.format`` / ``annotation.uuid.unique`` (across the import).
* ``annotation.limit.per_feature``: <= 5,000 lines per (data row, ``name``) per import, counted
  as the SDK counts them (lines with a ``name`` only; a track of many keyframes is one line).
* ``annotation.confidence.ignored`` (a warning, once per import): MAL and ground-truth imports
  ignore ``confidence``; :func:`workers.annotations.encode.drop_confidence` removes it.

The radio / checklist / temporal-radio shape rules need the classification's type, so they are
in the ontology layer (``ontology.radio.one``, ``ontology.checklist.list``,
``ontology.radio.temporal``).
"""

from __future__ import annotations

import uuid as uuidlib
from collections import Counter
from collections.abc import Sequence, Set
from typing import Literal

from msgspec import UNSET

from workers.annotations.format_walk import FormatWalker
from workers.annotations.model import (
    IMAGE_TOOLS,
    ChecklistClassification,
    Line,
    RadioClassification,
    VideoMask,
    VideoObject,
    row_key,
)
from workers.annotations.problems import Problem
from workers.annotations.walk import answers, nested, report

ImportKind = Literal["mal", "ground_truth"]
ANNOTATION_PER_FEATURE_LIMIT = 5000


def _row(line: Line, out: list[Problem]) -> str | None:
    row = line.annotation.data_row
    if row is UNSET:
        out.append(
            report(line, "$.dataRow", "annotation.dataRow.missing", "dataRow with id or globalKey", "absent")
        )
        return None
    has_id = row.id is not UNSET and bool(row.id)
    has_key = row.global_key is not UNSET and bool(row.global_key)
    if has_id == has_key:
        got = "both" if has_id else "neither"
        out.append(
            report(line, "$.dataRow", "annotation.dataRow.xor", "exactly one non-empty id or globalKey", got)
        )
        return None
    return row_key(line.annotation)


def _uuid(line: Line, u: str, uuids: dict[str, tuple[str, int]], out: list[Problem]) -> None:
    try:
        uuidlib.UUID(u)
    except ValueError:
        out.append(report(line, "$.uuid", "annotation.uuid.format", "a UUID", u))
    here = (line.file, line.number)
    first = uuids.setdefault(u, here)
    if first != here:
        where = f"line {first[1]}" if first[0] == line.file else f"{first[0]}:{first[1]}"
        out.append(report(line, "$.uuid", "annotation.uuid.unique", f"a uuid not on {where}", u))


def check_format(
    lines: Sequence[Line], *, kind: ImportKind | None = None, plain: Set[int] = frozenset()
) -> list[Problem]:
    """Every format rule over one import's lines: per-line problems in order, then per-import ones.
    ``plain`` holds the ``id`` of lines whose segments passed
    :func:`~workers.annotations.walk.plain_track`: their keyframes are not walked again."""
    walk = FormatWalker()
    out = walk.out
    uuids: dict[str, tuple[str, int]] = {}
    per_feature: Counter[tuple[str, str]] = Counter()
    over: dict[tuple[str, str], Line] = {}
    video_rows: set[str] = set()
    image_tools: list[tuple[str, Line]] = []
    confidence_lines = 0
    for line in lines:
        ann = line.annotation
        row = _row(line, out)
        if ann.uuid is not UNSET:
            _uuid(line, ann.uuid, uuids, out)
        walk.line_has_confidence = False
        video = False
        if isinstance(ann, VideoMask):
            walk.video_mask(line, ann)
            video = True
        else:
            walk.feature(line, ann, "$")
            walk.saw_confidence(line, ann, "$")
            if row is not None and ann.name is not UNSET:
                key = (row, ann.name)
                per_feature[key] += 1
                if per_feature[key] == ANNOTATION_PER_FEATURE_LIMIT + 1:
                    over[key] = line
            if ann.classifications:
                for c, cat in nested(ann.classifications, "$"):
                    walk.classification(line, c, cat, None)
            if isinstance(ann, VideoObject):
                if id(line) not in plain:
                    walk.segments(line, ann.segments)
                video = True
            elif isinstance(ann, RadioClassification | ChecklistClassification):
                parents = None
                if ann.frames is not UNSET:
                    walk.frames(line, ann.frames, "$", None)
                    parents = ann.frames
                walk.answer(line, ann.answer, "$", parents)
                video = parents is not None or any(a.frames is not UNSET for a, _ in answers(ann.answer, "$"))
            elif isinstance(ann, IMAGE_TOOLS):
                walk.tool(line, ann)
                if row is not None:
                    image_tools.append((row, line))
        if video and row is not None:
            video_rows.add(row)
        confidence_lines += walk.line_has_confidence
    for row, line in image_tools:
        if row in video_rows:
            shape = type(line.annotation).__name__
            out.append(report(line, "$", "annotation.video.segments", "segments", shape))
    for (row, name), line in over.items():
        n = per_feature[(row, name)]
        msg = f"{n} lines for data row {row!r} and feature {name!r} in one import"
        out.append(
            report(
                line,
                "$.name",
                "annotation.limit.per_feature",
                f"<= {ANNOTATION_PER_FEATURE_LIMIT}",
                n,
                message=msg,
            )
        )
    if kind is not None and walk.confidence is not None:
        line, path = walk.confidence
        msg = f"{kind} imports ignore confidence: dropped from {confidence_lines} line(s)"
        got = f"confidence on {confidence_lines} line(s)"
        out.append(
            report(
                line,
                path,
                "annotation.confidence.ignored",
                "no confidence",
                got,
                message=msg,
                severity="warning",
            )
        )
    return out
