"""What a Redis stream entry says: its ``body`` field decoded to object refs (pure, no I/O).

The ``body`` field holds JSON, one of:

* a manifest-style entry, exactly what :func:`daemon.sources.manifest.ref_from_entry` accepts
  (a URL or ``s3://`` URI string, or an object with ``url``/``row_data``/``objectUrl``/``path``
  plus ``global_key``, ``metadata``...);
* an S3 event notification (``{"Records": [...]}``), as S3 sends it to SQS/SNS: one ref per
  ``ObjectCreated`` record. Keys arrive URL-encoded with ``+`` for a space and are decoded here.
  ``ObjectRemoved`` records yield no ref when ``skip_removed``; the ``s3:TestEvent`` S3 sends
  when a notification is configured yields none.

Anything else raises :class:`EntryError` naming the stream, the entry id and what is wrong; the
source turns it into a message with ``error`` and ``raw`` that the pipeline dead-letters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote_plus

import msgspec

from daemon.jobs import ObjectRef
from daemon.sources.manifest import EntryError, ref_from_entry

BODY = b"body"


class S3Bucket(msgspec.Struct, frozen=True):
    name: str


class S3Object(msgspec.Struct, frozen=True):
    key: str
    size: int | None = None
    eTag: str | None = None
    versionId: str | None = None
    sequencer: str | None = None


class S3Section(msgspec.Struct, frozen=True):
    bucket: S3Bucket
    object: S3Object


class S3Record(msgspec.Struct, frozen=True):
    eventName: str = ""
    s3: S3Section | None = None


class S3Notification(msgspec.Struct, frozen=True):
    """The few fields of an S3 event notification that identify the objects."""

    Records: list[S3Record]


_NOTIFICATION = msgspec.json.Decoder(S3Notification)
_ANY = msgspec.json.Decoder()


def s3_key(encoded: str) -> str:
    """An S3 notification's key decoded: ``+`` is a space, ``%XX`` a UTF-8 byte."""
    if "%" in encoded:
        return unquote_plus(encoded)
    return encoded.replace("+", " ")


def refs_from_notification(event: S3Notification, *, skip_removed: bool = True) -> list[ObjectRef]:
    refs: list[ObjectRef] = []
    for n, rec in enumerate(event.Records):
        if rec.s3 is None:
            raise EntryError(f"S3 event record {n} ({rec.eventName or 'no eventName'}) has no 's3' section")
        if skip_removed and rec.eventName.startswith("ObjectRemoved"):
            continue
        obj = rec.s3.object
        refs.append(
            ObjectRef(
                origin="s3",
                bucket=rec.s3.bucket.name,
                key=s3_key(obj.key),
                size=obj.size,
                etag=obj.eTag,
                version=obj.versionId,
                sequencer=obj.sequencer,
            )
        )
    return refs


def refs_from_body(body: bytes, base: Path, *, skip_removed: bool = True) -> list[ObjectRef]:
    """The refs one entry body announces; raises EntryError (or msgspec.DecodeError)."""
    if b'"Records"' in body:
        try:
            return refs_from_notification(_NOTIFICATION.decode(body), skip_removed=skip_removed)
        except msgspec.ValidationError as e:
            doc = _ANY.decode(body)
            if isinstance(doc, dict) and "Records" in doc:
                raise EntryError(f"S3 event notification: {e}") from None
            # "Records" was only inside a value (a key named so): a manifest-style entry
            return [ref_from_entry(doc, base)]
    doc = _ANY.decode(body)
    if isinstance(doc, dict) and doc.get("Event") == "s3:TestEvent":
        return []
    return [ref_from_entry(doc, base)]


def field_map(fields: Mapping[bytes, bytes] | Sequence[bytes]) -> Mapping[bytes, bytes]:
    """Entry fields as a mapping: redis-py gives a dict, a script reply a flat list."""
    if isinstance(fields, Mapping):
        return fields
    return dict(zip(fields[::2], fields[1::2], strict=True))


def raw_fields(fields: Mapping[bytes, bytes]) -> bytes:
    """The entry as JSON, for a dead letter when it has no usable ``body``."""
    return msgspec.json.encode(
        {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}
    )


class Decoded(msgspec.Struct, frozen=True):
    refs: list[ObjectRef]
    raw: bytes | None = None
    error: str | None = None


def decode_entry(
    stream: str,
    entry_id: str,
    fields: Mapping[bytes, bytes],
    base: Path,
    *,
    skip_removed: bool = True,
) -> Decoded:
    """One entry to its refs, or to an error naming the stream, the entry and the problem."""
    body = fields.get(BODY)
    where = f"stream {stream!r} entry {entry_id}"
    if body is None:
        names = sorted(k.decode(errors="replace") for k in fields)[:10]
        return Decoded([], raw_fields(fields), f"{where}: no 'body' field (fields: {names})")
    try:
        return Decoded(refs_from_body(body, base, skip_removed=skip_removed))
    except msgspec.DecodeError as e:
        return Decoded([], body, f"{where}: body is not valid JSON: {e}")
    except EntryError as e:
        return Decoded([], body, f"{where}: {e}")
