"""``metadata_fields`` of a data row -> Labelbox's wire form, through the metadata ontology.

Input (the seeds' import format): ``[{"name" | "schema_id": ..., "value": ...}]``. Wire form:
``[{"schemaId": ..., "value": ...}]`` per kind (shared/ref/labelbox.md 1.2, ``parse_upsert_metadata``):

* string: as is (<= 4,096 characters);  number: ``float(value)``;
* datetime: ISO 8601 in, ``YYYY-MM-DDTHH:MM:SSZ`` (UTC) out; a naive time is read as UTC;
* enum: the option by name or id, sent as two entries ``{enum, {}}`` and ``{option, {}}``;
* embedding: exactly 128 floats.

A name or id the ontology does not hold is a :class:`MetadataMiss` (the caller refreshes the
ontology once and asks again); a bad value is a :class:`MetadataError`. Both name the field.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import msgspec

STRING_MAX = 4096
EMBEDDING_DIMS = 128


class MetadataOption(msgspec.Struct):
    id: str
    name: str
    kind: str = "CustomMetadataEnumOption"
    reserved: bool = False


class MetadataSchema(msgspec.Struct):
    id: str
    name: str
    kind: str
    reserved: bool = False
    options: list[MetadataOption] | None = None


class OntologyData(msgspec.Struct):
    customMetadataOntology: list[MetadataSchema]


class MetadataError(ValueError):
    """A metadata value the field's kind does not accept."""


class MetadataMiss(MetadataError):
    """A field name or schema id the ontology (as last fetched) does not hold."""


class Ontology:
    """The metadata schemas by name and by id (an enum's options by id too)."""

    def __init__(self, schemas: list[MetadataSchema]) -> None:
        self.by_name = {s.name: s for s in schemas}
        self.by_id: dict[str, MetadataSchema] = {s.id: s for s in schemas}
        self.options: dict[str, MetadataOption] = {o.id: o for s in schemas for o in s.options or ()}

    def __len__(self) -> int:
        return len(self.by_id)

    def wire(self, fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The wire entries for a row's ``metadata_fields``; raises :class:`MetadataError`."""
        out: list[dict[str, Any]] = []
        for f in fields:
            out.extend(self._one(f))
        return out

    def _one(self, f: dict[str, Any]) -> list[dict[str, Any]]:
        name, sid = f.get("name"), f.get("schema_id")
        if "value" not in f:
            raise MetadataError(f"metadata field {name or sid!r}: no value")
        if sid is not None:
            schema = self.by_id.get(sid)
            if schema is None:
                if sid in self.options:
                    raise MetadataError(f"metadata schema id {sid!r} is an enum option, not a field")
                raise MetadataMiss(f"metadata schema id {sid!r} is not in the metadata ontology")
        elif name is not None:
            schema = self.by_name.get(name)
            if schema is None:
                raise MetadataMiss(f"metadata field {name!r} is not in the metadata ontology")
        else:
            raise MetadataError("metadata field has neither name nor schema_id")
        try:
            return convert(schema, f["value"])
        except (TypeError, ValueError, OverflowError) as e:
            raise MetadataError(f"metadata field {schema.name!r}: {e}") from None


def convert(schema: MetadataSchema, value: Any) -> list[dict[str, Any]]:
    """Wire entries for one value of ``schema``'s kind."""
    kind = schema.kind
    if kind == "CustomMetadataString":
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {type(value).__name__}")
        if len(value) > STRING_MAX:
            raise ValueError(f"string longer than {STRING_MAX} characters ({len(value)})")
        return [{"schemaId": schema.id, "value": value}]
    if kind == "CustomMetadataNumber":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(f"expected a number, got {type(value).__name__}")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {value!r}")
        return [{"schemaId": schema.id, "value": number}]
    if kind == "CustomMetadataDateTime":
        return [{"schemaId": schema.id, "value": utc_z(value)}]
    if kind == "CustomMetadataEnum":
        option = next((o for o in schema.options or () if value in (o.name, o.id)), None)
        if option is None:
            names = sorted(o.name for o in schema.options or ())
            raise ValueError(f"{value!r} is not one of its options {names}")
        return [{"schemaId": schema.id, "value": {}}, {"schemaId": option.id, "value": {}}]
    if kind == "CustomMetadataEmbedding":
        if not isinstance(value, list) or len(value) != EMBEDDING_DIMS:
            raise ValueError(f"an embedding is a list of exactly {EMBEDDING_DIMS} numbers")
        return [{"schemaId": schema.id, "value": [float(x) for x in value]}]
    raise ValueError(f"unsupported metadata kind {kind!r}")


def utc_z(value: Any) -> str:
    """An ISO 8601 date-time as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 date-time string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_decode_row = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


def needs_ontology(row: bytes) -> bool:
    """Whether an encoded row carries metadata (the only part that must be rewritten)."""
    return b'"metadata_fields"' in row


def resolve_row(row: bytes, ontology: Ontology) -> bytes:
    """The row with its ``metadata_fields`` in wire form (re-encodes this one row only)."""
    doc = _decode_row(row)
    fields = doc.get("metadata_fields")
    if not fields:
        return row
    if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
        raise MetadataError("metadata_fields must be a list of objects")
    doc["metadata_fields"] = ontology.wire(fields)
    return _encode(doc)
