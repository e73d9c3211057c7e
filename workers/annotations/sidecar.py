"""One sidecar file -> Labelbox NDJSON lines for its one media (pure).

The format comes from ``[annotations] format`` or, with ``auto``, from the file's suffix and its
first bytes:

=========  ==============================================================================
suffix     format
=========  ==============================================================================
.ndjson    Labelbox NDJSON as in the seed (every line must name this media's global key)
.json      Labelbox NDJSON (objects with ``dataRow``), COCO (an object with ``images``) or plain
           tracker JSON (``frame, track, label...``)
.csv       MOT Challenge (first field numeric) or plain tracker CSV (a header row)
.xml       CVAT 1.1 (video tracks or images)
.txt       YOLO (normalised centre boxes, scaled by the probed width x height)
=========  ==============================================================================

Converted lines name the media by ``global_key``; every problem is a
:class:`~workers.annotations.problems.Problem` naming the file and line.
"""

from __future__ import annotations

import posixpath
from typing import Literal

import msgspec

from workers.annotations.convert import coco, cvat, mot, yolo
from workers.annotations.convert.result import ConvertResult
from workers.annotations.decode import convert_dicts, decode_ndjson
from workers.annotations.encode import line_with_deterministic_uuid
from workers.annotations.facts import MediaFacts
from workers.annotations.model import Line, row_key
from workers.annotations.problems import Problem

Format = Literal["auto", "ndjson", "mot", "tracks", "cvat", "coco", "yolo"]


class LoadOptions(msgspec.Struct, frozen=True, kw_only=True):
    format: Format = "auto"
    names: tuple[str, ...] = ()  # YOLO class ids (0-based) / MOT class ids (1-based)
    default_name: str = "object"
    tolerance: float = 0.5


def detect(data: bytes, suffix: str) -> Format | None:
    """The format of a sidecar from its suffix (``.labels.csv`` -> ``.csv``) and first bytes."""
    ext = posixpath.splitext(suffix)[1].lower() or suffix.lower()
    head = data.lstrip()[:4096]
    if ext == ".ndjson":
        return "ndjson"
    if ext == ".json":
        if head.startswith(b"{") and b'"dataRow"' in head:
            return "ndjson"  # Labelbox lines saved with a .json name
        return "coco" if b'"images"' in data[:1_000_000] and head.startswith(b"{") else "tracks"
    if ext == ".csv":
        first = head.split(b"\n", 1)[0].split(b",", 1)[0].strip()
        return "mot" if first.lstrip(b"-").replace(b".", b"").isdigit() else "tracks"
    if ext == ".xml":
        return "cvat"
    if ext == ".txt":
        return "yolo"
    return None


def _convert(
    data: bytes, fmt: Format, *, source: str, global_key: str, facts: MediaFacts | None, o: LoadOptions
) -> ConvertResult:
    tolerance = o.tolerance if o.tolerance > 0 else None

    def one_media(file_name: str) -> str | None:
        # a sidecar labels one media: every image it names is that media
        return global_key

    if fmt == "mot":
        classes = {i + 1: n for i, n in enumerate(o.names)} or None
        return mot.convert(
            data,
            source=source,
            global_key=global_key,
            classes=classes,
            default_name=o.default_name,
            tolerance=tolerance,
        )
    if fmt == "tracks":
        return mot.convert_plain(data, source=source, global_key=global_key, tolerance=tolerance)
    if fmt == "cvat":
        return cvat.convert(
            data, source=source, global_key=global_key, global_key_for=one_media, tolerance=tolerance
        )
    if fmt == "coco":
        return coco.convert(data, source=source, global_key_for=one_media)
    width = facts.width if facts is not None else None
    height = facts.height if facts is not None else None
    return yolo.convert(data, source=source, global_key=global_key, width=width, height=height, names=o.names)


def load_sidecar(
    data: bytes,
    *,
    source: str,
    suffix: str,
    global_key: str,
    facts: MediaFacts | None,
    options: LoadOptions,
) -> tuple[list[Line], list[Problem]]:
    """Decode or convert one sidecar into lines for ``global_key``; never raises for bad input."""
    fmt = options.format if options.format != "auto" else detect(data, suffix)
    if fmt is None:
        return [], [
            Problem(
                file=source,
                line=0,
                path="$",
                rule="annotation.format",
                message=f"cannot tell the annotation format of {suffix!r} files",
                expected="auto | ndjson | mot | tracks | cvat | coco | yolo",
                actual=suffix,
            )
        ]
    if fmt == "ndjson":
        lines, problems = decode_ndjson(data, source=source)
    else:
        result = _convert(data, fmt, source=source, global_key=global_key, facts=facts, o=options)
        lines, problems = convert_dicts(result.lines, source=source)
        problems = result.problems + problems
    lines = [line_with_deterministic_uuid(line) for line in lines]  # a re-sent line is the same line
    for line in lines:
        named = row_key(line.annotation)
        if named is not None and named != global_key:
            problems.append(
                Problem(
                    file=source,
                    line=line.number,
                    path="$.dataRow",
                    rule="annotation.data_row",
                    message="the line names another data row than the sidecar's media",
                    expected=global_key,
                    actual=named,
                )
            )
    return lines, problems
