"""Bytes or dicts -> :class:`~workers.annotations.model.Line`, one problem per bad line.

Theory of operation. An NDJSON line has no tag saying what it is; its shape does. Each line is
decoded twice by msgspec, never walked in Python (tracks once: a line holding ``"segments"`` is
first tried as a :class:`VideoObject`, which can only succeed when that is its shape): first
into :class:`_Shape`, whose fields are
the shape keys as :class:`msgspec.Raw` (so their values are only scanned, not built), then,
with the shape known, into that shape's Struct with unknown keys forbidden. ``answer``'s first
byte tells text (``"``), radio (``{``) and list answers (``[``) apart. A line that fails yields a
:class:`~workers.annotations.problems.Problem` with msgspec's JSON path; the others flow on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from workers.annotations.model import (
    SHAPE_KEYS,
    Annotation,
    Base,
    ChecklistClassification,
    Line,
    RadioClassification,
    TextClassification,
    VideoObject,
)
from workers.annotations.problems import Problem


class _Shape(msgspec.Struct, gc=False):
    segments: msgspec.Raw | UnsetType = UNSET
    masks: msgspec.Raw | UnsetType = UNSET
    bbox: msgspec.Raw | UnsetType = UNSET
    polygon: msgspec.Raw | UnsetType = UNSET
    point: msgspec.Raw | UnsetType = UNSET
    line: msgspec.Raw | UnsetType = UNSET
    mask: msgspec.Raw | UnsetType = UNSET
    answer: msgspec.Raw | UnsetType = UNSET


_SHAPE = msgspec.json.Decoder(_Shape)
_SHAPES: tuple[type[Base], ...] = (
    *SHAPE_KEYS.values(),
    TextClassification,
    RadioClassification,
    ChecklistClassification,
)
_DECODERS: dict[type[Base], msgspec.json.Decoder[Any]] = {cls: msgspec.json.Decoder(cls) for cls in _SHAPES}
_VIDEO = msgspec.json.Decoder(VideoObject)
_FIRST_BYTE: dict[type, int] = {str: ord('"'), dict: ord("{"), list: ord("["), tuple: ord("[")}
_ANSWER_BY_BYTE: dict[int, type[Base]] = {
    ord('"'): TextClassification,
    ord("{"): RadioClassification,
    ord("["): ChecklistClassification,
}
_EXPECTED_SHAPE = "one of segments, masks, bbox, polygon, point, line, mask, answer"


class ShapeError(Exception):
    """The object has none, or more than one, of the keys that decide a line's shape."""

    def __init__(self, message: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected, self.actual = expected, actual


def _shape_of(keys: list[str], answer_first: int | None) -> type[Base]:
    if len(keys) != 1:
        found = ", ".join(keys) if keys else "none of them"
        raise ShapeError("a line needs exactly one shape key", _EXPECTED_SHAPE, found)
    if keys[0] != "answer":
        return SHAPE_KEYS[keys[0]]
    cls = _ANSWER_BY_BYTE.get(answer_first) if answer_first is not None else None
    if cls is None:
        raise ShapeError("answer must be a string, an object or a list", "string, object or array", "other")
    return cls


def _raw_keys(shape: _Shape) -> tuple[list[str], int | None]:
    keys = [k for k in _Shape.__struct_fields__ if getattr(shape, k) is not UNSET]
    answer = shape.answer
    first = None
    if answer is not UNSET:
        body = bytes(answer).lstrip()
        first = body[0] if body else None
    return keys, first


_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.DOTALL)
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Object contains unknown field `(?P<actual>.*)`$"), "decode.unknown_field"),
    (re.compile(r"^Object missing required field `(?P<expected>.*)`$"), "decode.missing_field"),
    (re.compile(r"^Expected `(?P<expected>[^`]*)`, got `(?P<actual>[^`]*)`$"), "decode.type"),
    (re.compile(r"^Expected (?P<expected>.*)$"), "decode.value"),
)


def problem_from_msgspec(err: msgspec.MsgspecError, *, file: str, line: int) -> Problem:
    """A msgspec DecodeError/ValidationError as a Problem, with its JSON path and values."""
    text = str(err)
    if isinstance(err, msgspec.DecodeError) and not isinstance(err, msgspec.ValidationError):
        return Problem(file=file, line=line, path="$", rule="decode.json", message=text)
    m = _PATH.match(text)
    assert m is not None  # the pattern matches any string
    msg, path = m["msg"], m["path"] or "$"
    for pattern, rule in _RULES:
        hit = pattern.match(msg)
        if hit:
            groups = hit.groupdict()
            expected = groups.get("expected") or ("a known field" if rule == "decode.unknown_field" else "")
            actual = groups.get("actual") or ("absent" if rule == "decode.missing_field" else "")
            return Problem(
                file=file, line=line, path=path, rule=rule, message=msg, expected=expected, actual=actual
            )
    return Problem(file=file, line=line, path=path, rule="decode.invalid", message=msg)


def shape_problem(e: ShapeError, *, file: str, line: int) -> Problem:
    """A line whose keys fit no annotation shape."""
    return Problem(
        file=file,
        line=line,
        path="$",
        rule="annotation.shape",
        message=str(e),
        expected=e.expected,
        actual=e.actual,
    )


def decode_line(raw: bytes, *, file: str, number: int) -> Line | Problem:
    """One NDJSON line: its :class:`Line`, or the :class:`Problem` that stops it."""
    if b'"segments"' in raw:  # most lines are tracks: try that shape first, without the shape pass
        try:
            return Line(file=file, number=number, annotation=_VIDEO.decode(raw))
        except msgspec.MsgspecError:
            pass  # not (only) a track: the shape pass below says what it is, or what is wrong
    try:
        keys, first = _raw_keys(_SHAPE.decode(raw))
        cls = _shape_of(keys, first)
        ann: Annotation = _DECODERS[cls].decode(raw)
    except msgspec.MsgspecError as e:
        return problem_from_msgspec(e, file=file, line=number)
    except ShapeError as e:
        return shape_problem(e, file=file, line=number)
    return Line(file=file, number=number, annotation=ann)


def iter_ndjson(data: bytes, *, source: str) -> Iterator[Line | Problem]:
    """Each non-blank line of ``data`` in order, decoded or reported (1-based line numbers)."""
    start, number, size = 0, 0, len(data)
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        number += 1
        raw = data[start:end]
        start = end + 1
        if raw.strip():
            yield decode_line(raw, file=source, number=number)


def _split(items: Iterable[Line | Problem]) -> tuple[list[Line], list[Problem]]:
    lines: list[Line] = []
    problems: list[Problem] = []
    for item in items:
        (lines if isinstance(item, Line) else problems).append(item)  # type: ignore[arg-type]
    return lines, problems


def decode_ndjson(data: bytes, *, source: str) -> tuple[list[Line], list[Problem]]:
    """Every line of an NDJSON file: the good ones, and one problem per bad one."""
    return _split(iter_ndjson(data, source=source))


def convert_one(obj: Mapping[str, Any], *, file: str, number: int) -> Line | Problem:
    """One already-parsed line (a dict, as converters build them) through the same model."""
    if not isinstance(obj, Mapping):
        return Problem(
            file=file,
            line=number,
            path="$",
            rule="decode.type",
            message="a line must be an object",
            expected="object",
            actual=type(obj).__name__,
        )
    keys = [k for k in _Shape.__struct_fields__ if k in obj]
    answer = obj.get("answer")
    first = _FIRST_BYTE.get(type(answer))
    try:
        cls = _shape_of(keys, first)
        ann: Annotation = msgspec.convert(obj, type=cls)  # type: ignore[assignment]
    except msgspec.MsgspecError as e:
        return problem_from_msgspec(e, file=file, line=number)
    except ShapeError as e:
        return shape_problem(e, file=file, line=number)
    return Line(file=file, number=number, annotation=ann)


def convert_dicts(items: Iterable[Mapping[str, Any]], *, source: str) -> tuple[list[Line], list[Problem]]:
    """Already-parsed lines (numbered from 1 in order) -> lines and problems, like decode_ndjson."""
    return _split(convert_one(obj, file=source, number=i) for i, obj in enumerate(items, 1))
