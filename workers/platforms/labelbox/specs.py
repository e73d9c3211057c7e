"""Data-row specs for ``upsertDataRows``, built as they stream (shared/ref/labelbox.md 1.1).

A spec is ``{"id": {"type": "AUTO", "value": ""}, "payload": {<row>, "dataset_id": "<id>"}}``
(``GKEY`` with the global key as value when upserting). The row is the already-encoded data row
of ``workers/payloads/labelbox.py``: the spec is spliced around its bytes, never decoded and
encoded again (only a row whose metadata needs resolving is re-encoded, alone).

Chunks are JSON arrays of specs of at most ``CHUNK_BYTES`` each, cut as the specs arrive (the
SDK re-encodes the whole list at every halving); a task holds at most ``TASK_ROWS`` rows, so a
chunk never straddles two tasks. Only one chunk is held at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal, NamedTuple

import msgspec

CHUNK_BYTES = 10_000_000  # the SDK's UPSERT_CHUNK_SIZE_BYTES
TASK_ROWS = 150_000  # rows per upload task (docs/limits)

IdType = Literal["AUTO", "GKEY"]

_encode = msgspec.json.Encoder().encode
_AUTO = b'{"id":{"type":"AUTO","value":""},"payload":'


class SpecTooLarge(ValueError):
    """One spec alone exceeds the chunk limit: the row cannot be sent."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        super().__init__(f"data row spec of {size} bytes exceeds the {limit}-byte chunk limit")
        self.key = key
        self.size = size


def spec(row: bytes, dataset_id: str, *, id_type: IdType = "AUTO", key: str = "") -> bytes:
    """The spec for one encoded data row (a JSON object), with ``dataset_id`` added."""
    if len(row) < 2 or row[:1] != b"{" or row[-1:] != b"}":
        raise ValueError("a data row must be an encoded JSON object")
    head = _AUTO if id_type == "AUTO" else b'{"id":{"type":"GKEY","value":' + _encode(key) + b'},"payload":'
    sep = b"" if row == b"{}" else b","
    return b"".join((head, row[:-1], sep, b'"dataset_id":', _encode(dataset_id), b"}}"))


def fits(spec_bytes: bytes, limit: int = CHUNK_BYTES) -> bool:
    """Whether a spec fits a chunk by itself (``[`` + spec + ``]``)."""
    return len(spec_bytes) + 2 <= limit


class Chunk(NamedTuple):
    """One JSON array of specs; ``task`` numbers the task it belongs to (from 0)."""

    task: int
    data: bytes
    keys: list[str]


def chunks(
    specs: Iterable[tuple[str, bytes]], *, limit: int = CHUNK_BYTES, task_rows: int = TASK_ROWS
) -> Iterator[Chunk]:
    """Cut ``(key, spec)`` pairs into chunks of at most ``limit`` bytes and tasks of at most
    ``task_rows`` rows, in order. Raises :class:`SpecTooLarge` for a spec that fits no chunk."""
    if limit < 3 or task_rows < 1:
        raise ValueError("chunk limit must be >= 3 bytes and task_rows >= 1")
    buf = bytearray(b"[")
    keys: list[str] = []
    task = 0
    in_task = 0
    for key, s in specs:
        if not fits(s, limit):
            raise SpecTooLarge(key, len(s), limit)
        if keys and (len(buf) + 1 + len(s) + 1 > limit or in_task == task_rows):
            buf += b"]"
            yield Chunk(task, bytes(buf), keys)
            buf = bytearray(b"[")
            keys = []
        if in_task == task_rows:
            task += 1
            in_task = 0
        if keys:
            buf += b","
        buf += s
        keys.append(key)
        in_task += 1
    if keys:
        buf += b"]"
        yield Chunk(task, bytes(buf), keys)


class Manifest(msgspec.Struct, kw_only=True):
    """The upload manifest ``upsertDataRows(manifestUri)`` reads: the chunks' URLs."""

    source: str = "SDK"  # the only value seen on the wire (SDK 7.17); others are unverified
    item_count: int
    chunk_uris: list[str]


def manifest(chunk_uris: list[str], item_count: int) -> bytes:
    return _encode(Manifest(item_count=item_count, chunk_uris=chunk_uris))
