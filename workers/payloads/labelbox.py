"""Labelbox data rows (seeds: import image/video data; "upload a JSON file" format)."""

from __future__ import annotations

from typing import Any

import msgspec

ATTACHMENT_TYPES = frozenset(
    {"AUDIO", "VIDEO", "IMAGE", "IMAGE_OVERLAY", "HTML", "RAW_TEXT", "TEXT_URL", "PDF_URL", "CAMERA_IMAGE"}
)


class MetadataField(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """A metadata value, addressed by field ``name`` or by ``schema_id``."""

    value: Any
    name: str | None = None
    schema_id: str | None = None


class Attachment(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    type: str
    value: str
    name: str | None = None


class DataRow(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    row_data: str
    global_key: str
    media_type: str | None = None
    external_id: str | None = None
    metadata_fields: list[MetadataField] | None = None
    attachments: list[Attachment] | None = None


class DataRowInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A data row as users write it in a manifest (the seeds' JSON import format)."""

    row_data: str
    global_key: str | None = None
    media_type: str | None = None
    external_id: str | None = None
    metadata_fields: list[MetadataField] | None = None
    attachments: list[Attachment] | None = None


_encoder = msgspec.json.Encoder()


def encode(row: DataRow) -> bytes:
    return _encoder.encode(row)


def attachment_problem(att: Attachment) -> str | None:
    if att.type not in ATTACHMENT_TYPES:
        return f"attachment type {att.type!r} is not one of {sorted(ATTACHMENT_TYPES)}"
    if not att.value:
        return "attachment value is empty"
    return None


def json_array(bodies: list[bytes]) -> bytes:
    """The "upload a JSON file" document: a JSON array of encoded data rows."""
    return b"[" + b",".join(bodies) + b"]"
