"""Tracker output -> Labelbox video lines: MOT Challenge CSV and a plain ``frame, track, label, box``.

**MOT Challenge** (MOT15-20 ``gt.txt`` and tracker results): one box per line,
``frame,id,left,top,width,height,conf,class,visibility`` (results put ``-1`` or ``x,y,z`` in the
last three); frames count from 1, as Labelbox's do. The feature name comes from ``classes``
(class id -> name) when the file has a class column and a mapping is given, else ``default_name``.
``min_confidence`` drops boxes below it (in ground truth, ``conf`` 0 marks boxes to ignore).
Detections without a track (``id == -1``) cannot become tracks and are reported.

**Plain** tracker output: CSV with the header ``frame,track,label,x,y,w,h`` (any column order,
extra columns are refused), or a JSON array of ``{"frame", "track", "label", "x", "y", "w", "h"}``
objects (unknown keys are refused); ``x, y`` is the top-left corner. ``first_frame`` says how the
file counts (default 1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Annotated

import msgspec
from msgspec import Meta

from workers.annotations.convert.keyframes import DEFAULT_TOLERANCE
from workers.annotations.convert.lines import LABELBOX_FIRST_FRAME, integer, number
from workers.annotations.convert.result import ConvertResult, Problems, Reduction, text_of
from workers.annotations.convert.tracks import TrackBuilder

PLAIN_COLUMNS = ("frame", "track", "label", "x", "y", "w", "h")


def _result(builder: TrackBuilder, problems: Problems) -> ConvertResult:
    out, reduction = builder.build()
    return ConvertResult(lines=out, problems=problems.done(), reduction=reduction)


def _empty(problems: Problems, tolerance: float | None) -> ConvertResult:
    return ConvertResult(lines=[], problems=problems.done(), reduction=Reduction(tolerance=tolerance))


def _box_problem(problems: Problems, line: int, path: str, w: float, h: float) -> bool:
    if w > 0 and h > 0:
        return False
    problems.add(
        "box.size",
        "a box needs a positive width and height",
        line=line,
        path=path,
        expected="w > 0 and h > 0",
        actual=f"w={w:g} h={h:g}",
    )
    return True


def convert(
    data: bytes,
    *,
    source: str,
    global_key: str,
    classes: Mapping[int, str] | None = None,
    default_name: str = "object",
    tolerance: float | None = DEFAULT_TOLERANCE,
    min_confidence: float | None = None,
) -> ConvertResult:
    """MOT Challenge CSV -> one line per track (see the module docstring)."""
    problems = Problems(source)
    text = text_of(data, problems)
    if text is None:
        return _empty(problems, tolerance)
    builder = TrackBuilder(problems, global_key=global_key, tolerance=tolerance)
    shift = LABELBOX_FIRST_FRAME - 1
    rows = _bulk_rows(text)
    for n, frame, track, box, conf, cls_value in rows if rows is not None else _line_rows(text, problems):
        if min_confidence is not None and conf is not None and conf < min_confidence:
            continue
        name = default_name
        cls = _class(cls_value) if classes is not None else None
        if classes is not None and cls is not None and cls >= 0:
            mapped = classes.get(cls)
            if mapped is None:
                problems.add(
                    "mot.class",
                    f"class {cls} has no feature name in the class mapping",
                    line=n,
                    path="class",
                    expected=f"one of {sorted(classes)}",
                    actual=cls,
                )
                continue
            name = mapped
        builder.add(str(track), name, "bbox", frame + shift, box, line=n)
    return _result(builder, problems)


# line, frame, track id, (left, top, width, height), confidence, class (as read: a float)
Parsed = tuple[int, int, int, tuple[float, float, float, float], float | None, float | None]


class MotRow(msgspec.Struct, array_like=True, gc=False):
    """A clean MOT row as a JSON array; the constraints are checked by msgspec, in C."""

    frame: Annotated[int, Meta(ge=1)]
    track: Annotated[int, Meta(ge=0)]
    left: float
    top: float
    width: Annotated[float, Meta(gt=0)]
    height: Annotated[float, Meta(gt=0)]
    conf: float | None = None
    cls: float | None = None  # the class in ground truth, a 3D x (-1) in tracker results
    visibility: float | None = None
    z: float | None = None


_bulk_decoder = msgspec.json.Decoder(list[MotRow])


def _class(value: float | None) -> int | None:
    return int(value) if value is not None and abs(value) < 2**31 and value == int(value) else None


def _bulk_rows(text: str) -> Iterator[Parsed] | None:
    """All rows at once when the whole file is clean numeric CSV, else None (then line by line).

    A clean MOT file is, after ``\n`` -> ``],[``, a JSON array of number arrays, which msgspec
    decodes and checks (:class:`MotRow`) in C; that is most of the speed of this converter.
    Anything unusual (comments, blank lines, spaces as separators, ``nan``, ``1.0`` as a frame,
    a short, long or out-of-range row) falls back to the line-by-line path, which reports each
    problem with its line.
    """
    body = text.replace("\r\n", "\n").rstrip("\n")
    if not body:
        return iter(())
    if "[" in body or "]" in body:  # a line must not be able to open or close rows of its own
        return None
    try:
        rows = _bulk_decoder.decode(("[[" + body.replace("\n", "],[") + "]]").encode())
    except msgspec.MsgspecError:
        return None
    total = sum(r.left + r.top + r.width + r.height for r in rows)
    if total - total != 0:  # an infinity (JSON allows 1e999) somewhere: the careful path finds it
        return None
    return (
        (n, r.frame, r.track, (r.left, r.top, r.width, r.height), r.conf, r.cls)
        for n, r in enumerate(rows, start=1)
    )


def _line_rows(text: str, problems: Problems) -> Iterator[Parsed]:
    for n, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split(",")
        parsed = _fast_row(fields) if len(fields) >= 6 else None
        if parsed is None:
            row = raw.strip()
            if not row or row.startswith("#"):
                continue
            fields = [f.strip() for f in (row.split(",") if "," in row else row.split())]
            parsed = _careful_row(fields, n, row, problems)
            if parsed is None:
                continue
        frame, track, box = parsed
        conf = number(fields[6]) if len(fields) > 6 else None
        yield n, frame, track, box, conf, number(fields[7]) if len(fields) > 7 else None


Row = tuple[int, int, tuple[float, float, float, float]]


def _fast_row(fields: list[str]) -> Row | None:
    """frame, id and box of a well-formed row, or None to take the careful path (the hot loop)."""
    try:
        frame_f, track_f = float(fields[0]), float(fields[1])
        left, top, w, h = float(fields[2]), float(fields[3]), float(fields[4]), float(fields[5])
    except ValueError:
        return None
    total = frame_f + track_f + left + top + w + h
    if total - total != 0 or frame_f < 1 or track_f < 0 or w <= 0 or h <= 0:
        return None  # not finite, or out of range: the careful path says which
    frame, track = int(frame_f), int(track_f)
    if frame != frame_f or track != track_f:
        return None
    return frame, track, (left, top, w, h)


def _careful_row(fields: list[str], n: int, row: str, problems: Problems) -> Row | None:
    """The same row checked field by field, each failure a problem naming it."""
    if len(fields) < 6:
        problems.add(
            "mot.columns",
            "a MOT row has at least frame,id,left,top,width,height",
            line=n,
            expected=">= 6 columns",
            actual=f"{len(fields)} columns",
        )
        return None
    frame, track = integer(fields[0]), integer(fields[1])
    box = [number(f) for f in fields[2:6]]
    if frame is None or frame < 1:
        problems.add("mot.frame", "frame must be an integer >= 1", line=n, path="frame", actual=fields[0])
        return None
    if track is None:
        problems.add("mot.id", "track id must be an integer", line=n, path="id", actual=fields[1])
        return None
    if track < 0:
        problems.add(
            "mot.id",
            "a detection without a track id cannot be part of a video track",
            line=n,
            path="id",
            expected="id >= 0",
            actual=fields[1],
        )
        return None
    if any(v is None for v in box):
        problems.add("mot.box", "left,top,width,height must be finite numbers", line=n, actual=row)
        return None
    left, top, w, h = (v for v in box if v is not None)
    if _box_problem(problems, n, "width,height", w, h):
        return None
    return frame, track, (left, top, w, h)


class PlainRow(msgspec.Struct, forbid_unknown_fields=True):
    frame: int
    track: str | int
    label: str
    x: float
    y: float
    w: float
    h: float


_plain_rows = msgspec.json.Decoder(list[msgspec.Raw])
_plain_row = msgspec.json.Decoder(PlainRow)


def convert_plain(
    data: bytes,
    *,
    source: str,
    global_key: str,
    tolerance: float | None = DEFAULT_TOLERANCE,
    first_frame: int = 1,
) -> ConvertResult:
    """Plain ``frame, track, label, x, y, w, h`` as CSV or JSON -> one line per (track, label)."""
    problems = Problems(source)
    builder = TrackBuilder(problems, global_key=global_key, tolerance=tolerance)
    rows = _json_rows(data, problems) if data.lstrip()[:1] == b"[" else _csv_rows(data, problems)
    shift = LABELBOX_FIRST_FRAME - first_frame
    for n, path, row in rows:
        if row.frame < first_frame:
            problems.add(
                "plain.frame",
                f"frame counts from {first_frame}",
                line=n,
                path=f"{path}.frame",
                expected=f">= {first_frame}",
                actual=row.frame,
            )
            continue
        if not row.label:
            problems.add("plain.label", "label is empty", line=n, path=f"{path}.label")
            continue
        bad = [k for k in ("x", "y", "w", "h") if number(str(getattr(row, k))) is None]
        if bad:
            problems.add("plain.box", "coordinates must be finite", line=n, path=f"{path}.{bad[0]}")
            continue
        if _box_problem(problems, n, f"{path}.w", row.w, row.h):
            continue
        builder.add(
            str(row.track), row.label, "bbox", row.frame + shift, (row.x, row.y, row.w, row.h), line=n
        )
    return _result(builder, problems)


def _json_rows(data: bytes, problems: Problems) -> list[tuple[int, str, PlainRow]]:
    try:
        raws = _plain_rows.decode(data)
    except msgspec.DecodeError as e:
        problems.add("json.syntax", str(e), path="$", expected="a JSON array of objects")
        return []
    rows: list[tuple[int, str, PlainRow]] = []
    for i, raw in enumerate(raws):
        try:
            rows.append((0, f"$[{i}]", _plain_row.decode(raw)))
        except msgspec.ValidationError as e:
            problems.add("plain.row", str(e), path=f"$[{i}]", expected=", ".join(PLAIN_COLUMNS))
    return rows


def _csv_rows(data: bytes, problems: Problems) -> list[tuple[int, str, PlainRow]]:
    text = text_of(data, problems)
    if text is None:
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error):
        header = []
    if sorted(header) != sorted(PLAIN_COLUMNS):
        problems.add(
            "plain.header",
            "the first CSV row names the columns",
            line=1,
            expected=",".join(PLAIN_COLUMNS),
            actual=",".join(header),
        )
        return []
    at = {name: header.index(name) for name in PLAIN_COLUMNS}
    rows: list[tuple[int, str, PlainRow]] = []
    try:
        for fields in reader:
            n = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                problems.add(
                    "plain.columns",
                    "wrong number of columns",
                    line=n,
                    expected=str(len(header)),
                    actual=len(fields),
                )
                continue
            frame = integer(fields[at["frame"]])
            coords = [number(fields[at[k]]) for k in ("x", "y", "w", "h")]
            if frame is None or any(c is None for c in coords):
                problems.add(
                    "plain.number", "frame must be an integer and x,y,w,h numbers", line=n, actual=fields
                )
                continue
            x, y, w, h = (c for c in coords if c is not None)
            track, label = fields[at["track"]].strip(), fields[at["label"]].strip()
            rows.append((n, "$", PlainRow(frame=frame, track=track, label=label, x=x, y=y, w=w, h=h)))
    except csv.Error as e:
        problems.add("csv.syntax", str(e), line=reader.line_num)
    return rows
