"""What a Redis stream entry says: its ``body`` field decoded to object refs (pure, no I/O).

The ``body`` field holds JSON, one of:

* a manifest-style entry, exactly what :func:`daemon.sources.manifest.ref_from_entry` accepts
  (a URL or ``s3://`` URI string, or an object with ``url``/``row_data``/``objectUrl``/``path``
  plus ``global_key``, ``metadata``...);
* an S3 event notification (``{"Records": [...]}``, also SNS-wrapped or as an EventBridge
  "Object Created" event), decoded exactly as the SQS source decodes it
  (``daemon.sources.s3events``): one ref per created object, keys form-decoded; removals
  yield no ref when ``skip_removed``; ``s3:TestEvent`` yields none.

Anything else raises :class:`EntryError` naming the stream, the entry id and what is wrong; the
source turns it into a message with ``error`` and ``raw`` that the pipeline dead-letters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from daemon.core.jobs import ObjectRef
from daemon.sources.manifest import EntryError, refs_from_entry
from daemon.sources.s3events import decode_body

BODY = b"body"


_ANY = msgspec.json.Decoder()
_EVENT_KEYS = ("Records", "Event", "detail-type")


def _is_event(doc: object) -> bool:
    """An S3 notification, SNS-wrapped notification or EventBridge event (not a manifest entry)."""
    if not isinstance(doc, dict):
        return False
    if any(k in doc for k in _EVENT_KEYS):
        return True
    return doc.get("Type") == "Notification" and "Message" in doc


def refs_from_body(body: bytes, base: Path, *, skip_removed: bool = True) -> list[ObjectRef]:
    """The refs one entry body announces; raises EntryError (or msgspec.DecodeError).

    Event bodies go through the same decoder as the SQS source (``daemon.sources.s3events``).
    """
    doc = _ANY.decode(body)
    if _is_event(doc):
        decoded = decode_body(body, skip_removed=skip_removed)
        if decoded.error is not None:
            raise EntryError(decoded.error)
        return decoded.refs
    return refs_from_entry(doc, base)


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
