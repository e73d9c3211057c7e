"""The ``data-upload-jobs`` request body in the ``dataItems`` dialect (ref/encord.md 1.3, 2.2, 2.6).

The build stage encodes each object once as a :class:`workers.payloads.encord.Item` (the
registration-file item; its metadata objects use the documented snake_case names). The API's
``dataItems`` dialect is camelCase throughout, metadata included (``fileSize``, ``mimeType``,
``sampleRate``...), so :func:`upload_job` re-encodes those items into::

    {"dataItems": {"videos": [...], "images": [...], "audio": [...], "skipDuplicateUrls": true},
     "integrationHash": "<uuid>", "ignoreErrors": true, "fileName": "<batch id>"}

Empty arrays are left out. The camelCase metadata Structs are derived from the ones in
``workers.rules.encord`` (same fields, ``rename="camel"``), so the field lists live in one place.
Whether metadata is present at all was decided by the rules (only when the probe's values are
trustworthy; always under strict access): this module never adds or drops it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import msgspec

from workers.payloads import encord as enc
from workers.rules.encord import AudioMetadata, ImageMetadata, VideoMetadata


def _camel(cls: type[msgspec.Struct]) -> Any:
    fields: list[Any] = []
    for f in msgspec.structs.fields(cls):
        fields.append((f.name, f.type) if f.required else (f.name, f.type, f.default))
    return msgspec.defstruct(cls.__name__, fields, rename="camel", kw_only=True, omit_defaults=True)


if TYPE_CHECKING:  # the same fields, so the same types for the checker
    VideoMetadataCamel = VideoMetadata
    ImageMetadataCamel = ImageMetadata
    AudioMetadataCamel = AudioMetadata
else:
    VideoMetadataCamel = _camel(VideoMetadata)
    ImageMetadataCamel = _camel(ImageMetadata)
    AudioMetadataCamel = _camel(AudioMetadata)


class DataItem(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One video, image or audio item of ``dataItems`` (wire names = field names)."""

    objectUrl: str
    title: str | None = None
    clientMetadata: dict[str, Any] | None = None
    videoMetadata: VideoMetadataCamel | None = None
    imageMetadata: ImageMetadataCamel | None = None
    audioMetadata: AudioMetadataCamel | None = None


class DataItems(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel", gc=False):
    skip_duplicate_urls: bool  # no default: always sent
    videos: list[DataItem] = msgspec.field(default_factory=list)
    images: list[DataItem] = msgspec.field(default_factory=list)
    audio: list[DataItem] = msgspec.field(default_factory=list)


class UploadJob(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel", gc=False):
    """``POST storage/folders/{folderUuid}/data-upload-jobs``."""

    data_items: DataItems
    integration_hash: str
    ignore_errors: bool  # no default: always sent
    file_name: str | None = None


class Sent(msgspec.Struct, frozen=True, gc=False):
    """What was sent for one object: enough to map the job's answer back to it."""

    key: str
    url: str
    title: str


_item_decoder = msgspec.json.Decoder(enc.Item)
_encoder = msgspec.json.Encoder()


def default_title(url: str) -> str:
    """Encord's own default title: the URL's path (seed: register cloud data)."""
    return unquote(urlsplit(url).path) or url


def data_item(item: enc.Item) -> DataItem:
    """The wire item; the title is always sent, so the created item's name is known."""
    return DataItem(
        objectUrl=item.objectUrl,
        title=item.title or default_title(item.objectUrl),
        clientMetadata=item.clientMetadata,
        videoMetadata=_convert(item.videoMetadata, VideoMetadataCamel),
        imageMetadata=_convert(item.imageMetadata, ImageMetadataCamel),
        audioMetadata=_convert(item.audioMetadata, AudioMetadataCamel),
    )


def _convert(value: msgspec.Struct | None, typ: Any) -> Any:
    return None if value is None else msgspec.convert(value, typ, from_attributes=True)


def upload_job(
    items: list[tuple[str, str, bytes]], *, integration_hash: str, file_name: str | None = None
) -> tuple[bytes, list[Sent]]:
    """The request body for ``items`` given as ``(key, kind, encoded Item)``, and what was sent.

    ``kind`` is ``VIDEO``/``IMAGE``/``AUDIO`` (the build stage's kind). Raises ``ValueError`` for
    another kind and ``msgspec.DecodeError`` for a body that is not an encoded Item.
    """
    groups: dict[str, list[DataItem]] = {"videos": [], "images": [], "audio": []}
    sent: list[Sent] = []
    for key, kind, body in items:
        group = enc.GROUP.get(kind)
        if group is None:
            raise ValueError(f"item {key!r}: kind {kind!r} cannot be registered with Encord")
        item = _item_decoder.decode(body)
        wire = data_item(item)
        groups[group].append(wire)
        sent.append(Sent(key, wire.objectUrl, wire.title or ""))
    job = UploadJob(
        data_items=DataItems(skip_duplicate_urls=True, **groups),
        integration_hash=integration_hash,
        ignore_errors=True,
        file_name=file_name,
    )
    return _encoder.encode(job), sent
