"""Encord registration items and the registration JSON (seed: register cloud data).

The JSON file a user uploads has top-level arrays ``videos``, ``images``, ``audio`` and the
``skip_duplicate_urls: true`` flag that makes a repeated upload idempotent. Item keys are
camelCase (``objectUrl``, ``title``, ``clientMetadata``, ``videoMetadata``...); the metadata
objects use the documented snake_case field names (``file_size``, ``mime_type``...).
"""

from __future__ import annotations

from typing import Any

import msgspec

from workers.rules.encord import AudioMetadata, ImageMetadata, VideoMetadata

GROUP = {"VIDEO": "videos", "IMAGE": "images", "AUDIO": "audio"}


class Item(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    objectUrl: str
    title: str | None = None
    videoMetadata: VideoMetadata | None = None
    imageMetadata: ImageMetadata | None = None
    audioMetadata: AudioMetadata | None = None
    clientMetadata: dict[str, Any] | None = None


class ItemInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An item as users write it in an Encord JSON spec (metadata from the spec is re-derived)."""

    objectUrl: str
    title: str | None = None
    clientMetadata: dict[str, Any] | None = None
    createVideo: bool | None = None
    videoMetadata: dict[str, Any] | None = None
    imageMetadata: dict[str, Any] | None = None
    audioMetadata: dict[str, Any] | None = None


_encoder = msgspec.json.Encoder()


def encode(item: Item) -> bytes:
    return _encoder.encode(item)


def registration_json(items: list[tuple[str, bytes]]) -> bytes:
    """The registration document for encoded items given as ``(kind, body)``."""
    groups: dict[str, list[bytes]] = {"videos": [], "images": [], "audio": []}
    for kind, body in items:
        groups[GROUP[kind]].append(body)
    parts = [
        b'"' + name.encode() + b'":[' + b",".join(bodies) + b"]" for name, bodies in groups.items() if bodies
    ]
    parts.append(b'"skip_duplicate_urls":true')
    return b"{" + b",".join(parts) + b"}"
