"""S3 event bodies -> object refs (pure: bytes in, refs/skip/error out).

Three shapes arrive on a queue (ref/pipelines.md 2.1):

* S3 event notification ``{"Records": [{"eventName": "ObjectCreated:Put", "s3": {...}}]}``:
  keys are form-encoded (``red flower.jpg`` arrives as ``red+flower.jpg``, a real ``+`` as
  ``%2B``), decoded with ``unquote_plus``. ``{"Event": "s3:TestEvent"}`` is skipped.
* SNS-wrapped: ``{"Type": "Notification", "Message": "<one of the above as a JSON string>"}``.
* EventBridge: ``{"detail-type": "Object Created", "source": "aws.s3", "detail": {...}}``.
  Its keys are not form-encoded (a ``+`` is a ``+``): they are percent-decoded only, with a
  separate decoder (see guidance-for-medialake-on-aws PR #21 in ref/pipelines.md).

``ObjectRemoved:*`` / "Object Deleted" are skipped when ``skip_removed`` (the default); otherwise
they are errors, so the message is dead-lettered for an operator to see. Any other event or
shape is an error naming what was wrong: the pipeline dead-letters the raw body.

Only the fields we use are declared (msgspec view Structs): unknown fields cost nothing.
"""

from __future__ import annotations

from urllib.parse import unquote, unquote_plus

import msgspec

from daemon.core.jobs import ObjectRef


class _Bucket(msgspec.Struct):
    name: str


class _Object(msgspec.Struct):
    key: str
    size: int | None = None
    eTag: str | None = None
    versionId: str | None = None
    sequencer: str | None = None


class _Entity(msgspec.Struct):
    bucket: _Bucket
    object: _Object


class _Record(msgspec.Struct):
    eventName: str
    s3: _Entity


class _EbObject(msgspec.Struct):
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = msgspec.field(name="version-id", default=None)
    sequencer: str | None = None


class _EbDetail(msgspec.Struct):
    bucket: _Bucket
    object: _EbObject


class _Envelope(msgspec.Struct):
    """Every top-level field any of the three shapes uses; each one is optional."""

    Records: list[_Record] | None = None
    Event: str | None = None
    Type: str | None = None
    Message: str | None = None
    detail_type: str | None = msgspec.field(name="detail-type", default=None)
    source: str | None = None
    detail: _EbDetail | None = None


class Decoded(msgspec.Struct, frozen=True):
    """What one body says: refs to process, what was skipped and why, or an error."""

    refs: list[ObjectRef]
    skipped: list[str] = msgspec.field(default_factory=list)
    error: str | None = None


_DECODER = msgspec.json.Decoder(_Envelope)
_EB_CREATED = "Object Created"
_EB_DELETED = "Object Deleted"


def _form_decode(key: str) -> str:
    if "%" in key:
        return unquote_plus(key)
    return key.replace("+", " ") if "+" in key else key  # unquote_plus without escapes, in C


def _records(records: list[_Record], skip_removed: bool) -> Decoded:
    refs: list[ObjectRef] = []
    skipped: list[str] = []
    for i, r in enumerate(records):
        o, bucket = r.s3.object, r.s3.bucket.name
        key = _form_decode(o.key)
        name = r.eventName.removeprefix("s3:")
        if name.startswith("ObjectCreated:"):
            refs.append(
                ObjectRef(
                    origin="s3",
                    bucket=bucket,
                    key=key,
                    size=o.size,
                    etag=o.eTag,
                    version=o.versionId,
                    sequencer=o.sequencer,
                )
            )
        elif name.startswith("ObjectRemoved:") and skip_removed:
            skipped.append(f"{name} s3://{bucket}/{key}")
        elif name.startswith("ObjectRemoved:"):
            return Decoded(
                refs=[], error=f"Records[{i}]: {name} for s3://{bucket}/{key} (skip_removed is off)"
            )
        else:
            return Decoded(refs=[], error=f"Records[{i}]: unsupported eventName {r.eventName!r}")
    if not records:
        return Decoded(refs=[], error="Records is empty")
    return Decoded(refs=refs, skipped=skipped)


def _eventbridge(env: _Envelope, skip_removed: bool) -> Decoded:
    if env.source != "aws.s3":
        return Decoded(refs=[], error=f"EventBridge event from source {env.source!r}, expected 'aws.s3'")
    if env.detail is None:
        return Decoded(refs=[], error=f"EventBridge {env.detail_type!r} event without 'detail'")
    o, bucket = env.detail.object, env.detail.bucket.name
    key = unquote(o.key) if "%" in o.key else o.key
    if env.detail_type == _EB_CREATED:
        ref = ObjectRef(
            origin="s3",
            bucket=bucket,
            key=key,
            size=o.size,
            etag=o.etag,
            version=o.version_id,
            sequencer=o.sequencer,
        )
        return Decoded(refs=[ref])
    if env.detail_type == _EB_DELETED:
        if skip_removed:
            return Decoded(refs=[], skipped=[f"{_EB_DELETED} s3://{bucket}/{key}"])
        return Decoded(refs=[], error=f"{_EB_DELETED} for s3://{bucket}/{key} (skip_removed is off)")
    return Decoded(refs=[], error=f"unsupported EventBridge detail-type {env.detail_type!r}")


def decode_body(body: bytes | str, *, skip_removed: bool = True, _depth: int = 0) -> Decoded:
    """Decode one queue message body. Never raises: problems come back as ``error``."""
    try:
        env = _DECODER.decode(body)
    except msgspec.ValidationError as e:
        return Decoded(refs=[], error=f"not an S3 event: {e}")
    except msgspec.DecodeError as e:
        return Decoded(refs=[], error=f"body is not JSON: {e}")
    except RecursionError:
        return Decoded(refs=[], error="body is nested too deeply")
    if env.Records is not None:
        return _records(env.Records, skip_removed)
    if env.Event is not None:
        if env.Event == "s3:TestEvent":
            return Decoded(refs=[], skipped=["s3:TestEvent"])
        return Decoded(refs=[], error=f"unsupported S3 Event {env.Event!r}")
    if env.Type == "Notification" and env.Message is not None:
        if _depth:
            return Decoded(refs=[], error="SNS notification nested in an SNS notification")
        inner = decode_body(env.Message, skip_removed=skip_removed, _depth=1)
        if inner.error:
            return Decoded(refs=[], error=f"SNS Message: {inner.error}")
        return inner
    if env.detail_type is not None:
        return _eventbridge(env, skip_removed)
    return Decoded(
        refs=[], error="not an S3 event: no Records, Event, SNS Message or EventBridge detail-type"
    )
