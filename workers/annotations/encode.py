"""Lines back to NDJSON bytes, deterministic uuids, and dropping ``confidence``.

Encoding writes exactly the keys a line was read with (absent keys are ``UNSET``), in the
model's field order; numbers read as ``617`` into a float field come back as ``617.0``, which
is the same JSON number. Lines are joined by ``\\n`` with a trailing newline.

A deterministic uuid is ``uuid5(NAMESPACE, data_row + "\\n" + the line's JSON without uuid)``:
the same content for the same data row is the same uuid, so a re-sent line is the same line and
Labelbox's status rows correlate with it across retries.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable
from typing import TypeVar

import msgspec
from msgspec import UNSET

from workers.annotations.model import Annotation, Line, row_key

NAMESPACE = uuidlib.uuid5(uuidlib.NAMESPACE_URL, "https://github.com/ingestd/annotations")

_encoder = msgspec.json.Encoder()
A = TypeVar("A", bound=Annotation)
T = TypeVar("T")


def encode_annotation(ann: Annotation) -> bytes:
    """One annotation as a JSON object (no newline)."""
    return _encoder.encode(ann)


def encode_ndjson(items: Iterable[Line | Annotation]) -> bytes:
    """Lines (or bare annotations) as NDJSON: one object per line, newline-terminated."""
    anns = [item.annotation if isinstance(item, Line) else item for item in items]
    return _encoder.encode_lines(anns)


def deterministic_uuid(ann: Annotation) -> str:
    """uuid5 of the data row and the line's content without its uuid."""
    body = _encoder.encode(msgspec.structs.replace(ann, uuid=UNSET))
    row = (row_key(ann) or "").encode()
    return str(uuidlib.uuid5(NAMESPACE, (row + b"\n" + body).decode("utf-8", "surrogatepass")))


def with_deterministic_uuid(item: A) -> A:
    """The annotation with a deterministic uuid when it has none (unchanged when it has one)."""
    if item.uuid is not UNSET:
        return item
    return msgspec.structs.replace(item, uuid=deterministic_uuid(item))


def line_with_deterministic_uuid(line: Line) -> Line:
    """:func:`with_deterministic_uuid` for a located line."""
    ann = with_deterministic_uuid(line.annotation)
    return line if ann is line.annotation else msgspec.structs.replace(line, annotation=ann)


def _strip(value: T) -> T:
    if isinstance(value, tuple):
        items = tuple(_strip(v) for v in value)
        same = all(a is b for a, b in zip(items, value, strict=True))
        return value if same else items  # type: ignore[return-value]
    if isinstance(value, msgspec.Struct):
        changes: dict[str, object] = {}
        for name in value.__struct_fields__:
            v = getattr(value, name)
            if name == "confidence" and v is not UNSET:
                changes[name] = UNSET
            elif isinstance(v, tuple | msgspec.Struct):
                stripped = _strip(v)
                if stripped is not v:
                    changes[name] = stripped
        return msgspec.structs.replace(value, **changes) if changes else value
    return value


def drop_confidence(ann: A) -> A:
    """The annotation without any ``confidence`` (MAL and ground truth ignore it; the server
    would drop it, we drop it here so the file says what is imported)."""
    return _strip(ann)
