"""The ``manifest`` source: a JSON array, NDJSON or CSV list of objects.

Each entry is one message. Accepted entry forms:

* a string: an ``https://``/``http://`` URL, an ``s3://bucket/key`` URI or a local path
  (relative to the manifest's folder);
* a Labelbox data row as in the seeds' JSON import format (``row_data``, ``global_key``,
  ``media_type``, ``metadata_fields``, ``attachments``, ``external_id``);
* an Encord item (``objectUrl``, ``title``, ``clientMetadata``...), and a whole Encord JSON
  spec (``{"videos": [...], "images": [...], "audio": [...]}``) as the file's top level;
* a generic object with ``url`` or ``path`` (plus ``global_key``, ``title``, ``metadata``).

Any object entry may carry ``annotations``: the location of its annotation file (URL, ``s3://``
or path) or the annotation lines inline (a list of Labelbox NDJSON objects). The entry then
announces two objects, the media and its sidecar (see ``daemon.pipeline.annotate``).

CSV: a header row naming the columns (case-insensitive): ``url``/``path``/``row_data``/
``objecturl``, optionally ``global_key``, ``external_id``, ``title``/``video title``/
``image title``. Encord's CSV headings are therefore accepted as they are.

NDJSON and CSV are streamed line by line (memory independent of the file's length); a JSON
array is decoded whole. A malformed entry becomes a message with ``error`` and the raw line:
it is dead-lettered while everything else flows on.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec

from daemon.core.jobs import ObjectRef
from daemon.sources.local import LocalMessage, Outstanding

BATCH = 256
_URL_KEYS = ("row_data", "objectUrl", "url", "path")
_PASSTHROUGH = (
    "global_key",
    "media_type",
    "metadata_fields",
    "attachments",
    "external_id",
    "title",
    "clientMetadata",
)
# keys of Encord's own item format that the probe re-derives: accepted and not passed through
_REDERIVED = ("videoMetadata", "imageMetadata", "audioMetadata", "createVideo")
_CSV_URL = ("url", "path", "row_data", "objecturl")
_CSV_TITLE = ("title", "video title", "image title", "audio title")


class EntryError(Exception):
    pass


def ref_from_target(target: str, base: Path, metadata: dict[str, Any] | None = None) -> ObjectRef:
    """An ObjectRef for a URL, s3:// URI or local path."""
    if not isinstance(target, str) or not target.strip():
        raise EntryError(f"object location must be a non-empty string, got {target!r}")
    t = target.strip()
    if t.startswith(("https://", "http://")):
        return ObjectRef(origin="url", key=t, url=t, metadata=metadata)
    if t.startswith("s3://"):
        bucket, _, key = t[5:].partition("/")
        if not bucket or not key:
            raise EntryError(f"s3 URI must be s3://bucket/key, got {t!r}")
        return ObjectRef(origin="s3", bucket=bucket, key=key, metadata=metadata)
    if "://" in t:
        raise EntryError(f"unsupported URL scheme in {t!r} (use https://, http://, s3:// or a path)")
    path = Path(t)
    full = path if path.is_absolute() else base / path
    return ObjectRef(origin="file", key=t, path=str(full), metadata=metadata)


def ref_from_entry(entry: Any, base: Path) -> ObjectRef:
    """One manifest entry (decoded JSON value) to an ObjectRef; raises EntryError."""
    if isinstance(entry, str):
        return ref_from_target(entry, base)
    if not isinstance(entry, dict):
        raise EntryError(f"entry must be a string or an object, got {type(entry).__name__}")
    found = [k for k in _URL_KEYS if k in entry]
    if len(found) != 1:
        raise EntryError(
            f"entry must have exactly one of {list(_URL_KEYS)}, found {found or 'none'} "
            f"(keys: {sorted(entry)[:10]})"
        )
    extra = set(entry) - set(_URL_KEYS) - set(_PASSTHROUGH) - set(_REDERIVED) - {"metadata", "annotations"}
    if extra:
        raise EntryError(f"unknown keys in entry: {sorted(extra)}")
    meta = {k: entry[k] for k in _PASSTHROUGH if entry.get(k) is not None}
    if isinstance(entry.get("metadata"), dict):
        meta.setdefault("clientMetadata", entry["metadata"])
    if "global_key" in meta and not isinstance(meta["global_key"], str):
        raise EntryError(f"global_key must be a string, got {meta['global_key']!r}")
    return ref_from_target(entry[found[0]], base, meta or None)


def refs_from_entry(entry: Any, base: Path) -> list[ObjectRef]:
    """The objects one entry announces: its media, and its annotations when it names them."""
    media = ref_from_entry(entry, base)
    notes = entry.get("annotations") if isinstance(entry, dict) else None
    if notes is None:
        return [media]
    return [media, sidecar_ref(media, notes, base)]


def sidecar_ref(media: ObjectRef, notes: Any, base: Path) -> ObjectRef:
    """The sidecar of ``media`` given in a manifest: a location, or lines inline.

    Its key is the media's key plus ``.labels.ndjson`` (inline) or the location's own name, so it
    gets a global key of its own; ``metadata.annotations_for`` names the media it labels."""
    target = {k: v for k, v in msgspec.structs.asdict(media).items() if v is not None}
    if isinstance(notes, list):
        if not all(isinstance(x, dict) for x in notes):
            raise EntryError("annotations inline must be a list of objects (Labelbox NDJSON lines)")
        meta = {"annotations_for": target, "annotations_inline": notes}
        return ObjectRef(origin="file", key=f"{media.key}.labels.ndjson", metadata=meta)
    if not isinstance(notes, str):
        raise EntryError(f"annotations must be a location or a list of lines, got {type(notes).__name__}")
    ref = ref_from_target(notes, base, {"annotations_for": target})
    return msgspec.structs.replace(ref, key=f"{media.key}#{ref.key}")


def _encord_spec(doc: dict[str, Any]) -> Iterator[Any]:
    for group in ("videos", "images", "audio"):
        items = doc.get(group) or []
        if not isinstance(items, list):
            raise EntryError(f"Encord spec: {group!r} must be an array")
        yield from items
    unknown = set(doc) - {"videos", "images", "audio", "skip_duplicate_urls", "image_groups", "dicom_series"}
    if unknown:
        raise EntryError(f"Encord spec: unknown top-level keys {sorted(unknown)}")


def detect_format(path: Path, head: bytes) -> str:
    ext = path.suffix.lower()
    if ext in (".ndjson", ".jsonl"):
        return "ndjson"
    if ext == ".csv":
        return "csv"
    if ext == ".json":
        return "json"
    return "json" if head.lstrip()[:1] in (b"[", b"{") and b"\n{" not in head else "ndjson"


class ManifestSource:
    name = "manifest"

    def __init__(self, path: Path, *, fmt: str = "auto", max_attempts: int = 5) -> None:
        self.path = path
        self.base = path.parent
        self.fmt = fmt
        self.outstanding = Outstanding(max_attempts)
        self._read_all = False
        self._closed = False
        self.entries = 0

    def _message(self, n: int, raw: bytes, make: Any) -> LocalMessage:
        mid = f"manifest:{self.path.name}:{n}"
        try:
            refs = make()
        except (EntryError, msgspec.DecodeError, msgspec.ValidationError) as e:
            return LocalMessage(id=mid, refs=[], raw=raw, error=f"{self.path.name} entry {n}: {e}")
        return LocalMessage(id=mid, refs=refs if isinstance(refs, list) else [refs])

    def _entries(self) -> Iterator[LocalMessage]:
        with self.path.open("rb") as f:
            head = f.read(4096)
        fmt = detect_format(self.path, head) if self.fmt == "auto" else self.fmt
        if fmt == "ndjson":
            yield from self._ndjson()
        elif fmt == "csv":
            yield from self._csv()
        else:
            yield from self._json()

    def _ndjson(self) -> Iterator[LocalMessage]:
        with self.path.open("rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                yield self._message(
                    n,
                    line.rstrip(b"\r\n"),
                    lambda line=line: refs_from_entry(msgspec.json.decode(line), self.base),
                )

    def _json(self) -> Iterator[LocalMessage]:
        raw = self.path.read_bytes()
        try:
            doc = msgspec.json.decode(raw)
        except msgspec.DecodeError as e:
            yield LocalMessage(
                id=f"manifest:{self.path.name}:0",
                refs=[],
                raw=raw[:65536],
                error=f"{self.path.name}: not valid JSON: {e}",
            )
            return
        if isinstance(doc, dict):
            try:
                items = list(_encord_spec(doc))
            except EntryError as e:
                yield LocalMessage(
                    id=f"manifest:{self.path.name}:0",
                    refs=[],
                    raw=raw[:65536],
                    error=f"{self.path.name}: {e}",
                )
                return
        elif isinstance(doc, list):
            items = doc
        else:
            yield LocalMessage(
                id=f"manifest:{self.path.name}:0",
                refs=[],
                raw=raw[:65536],
                error=f"{self.path.name}: top level must be an array or an Encord spec object",
            )
            return
        for n, item in enumerate(items, 1):
            yield self._message(
                n, msgspec.json.encode(item), lambda item=item: refs_from_entry(item, self.base)
            )

    def _csv(self) -> Iterator[LocalMessage]:
        with self.path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header: list[str] | None = None
            for row in reader:
                n = reader.line_num
                if not any(c.strip() for c in row):
                    continue
                cols = [c.strip().lower() for c in row]
                if any(c in _CSV_URL for c in cols):
                    header = cols  # (a new header may start a new section, as in Encord CSVs)
                    continue
                if header is None:
                    yield self._message(
                        n,
                        _csv_line(row),
                        _raise(f"row {n} comes before a header naming one of {list(_CSV_URL)}"),
                    )
                    continue
                yield self._message(
                    n, _csv_line(row), lambda row=row, header=header: _csv_ref(header, row, self.base)
                )

    @property
    def exhausted(self) -> bool:
        return self._read_all and self.outstanding.idle

    async def batches(self) -> AsyncIterator[list[LocalMessage]]:
        chunk: list[LocalMessage] = []
        for msg in self._entries():
            if self._closed:
                return
            self.entries += 1
            self.outstanding.handed(msg)
            chunk.append(msg)
            if len(chunk) >= BATCH:
                yield chunk
                chunk = []
            while not self.outstanding.retries.empty():
                retry = self.outstanding.retries.get_nowait()
                self.outstanding.handed(retry)
                chunk.append(retry)
        if chunk:
            yield chunk
        self._read_all = True
        while not self._closed and self.outstanding.count:
            await self.outstanding.changed()
            retries = []
            while not self.outstanding.retries.empty():
                retry = self.outstanding.retries.get_nowait()
                self.outstanding.handed(retry)
                retries.append(retry)
            if retries:
                yield retries

    async def close(self) -> None:
        self._closed = True
        self.outstanding.cancel()


def _csv_line(row: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    return buf.getvalue().rstrip("\r\n").encode()


def _raise(message: str) -> Any:
    def fail() -> ObjectRef:
        raise EntryError(message)

    return fail


def _csv_ref(header: list[str], row: list[str], base: Path) -> ObjectRef:
    if len(row) > len(header):
        raise EntryError(f"{len(row)} cells but the header has {len(header)} columns")
    cells = dict(zip(header, (c.strip() for c in row), strict=False))
    target = next((cells[c] for c in _CSV_URL if cells.get(c)), "")
    meta: dict[str, Any] = {}
    if cells.get("global_key"):
        meta["global_key"] = cells["global_key"]
    if cells.get("external_id"):
        meta["external_id"] = cells["external_id"]
    title = next((cells[c] for c in _CSV_TITLE if cells.get(c)), None)
    if title:
        meta["title"] = title
    return ref_from_target(target, base, meta or None)
