"""A project's ontology in Labelbox's normalized form (what ``ontology { normalized }`` returns).

``{"tools": [{"name", "tool", "classifications", "featureSchemaId"?}], "classifications":
[{"name", "type", "scope"?, "options": [{"value", "label", "options", "featureSchemaId"?}]}]}``.
It is Labelbox's format, not ours: keys we do not use are ignored. ``tool`` is one of the SDK's
``Tool.Type`` values (``rectangle``, ``polygon``, ``point``, ``line``, ``raster-segmentation``,
``superpixel``, ...); ``type`` is ``radio`` | ``checklist`` | ``text`` (``dropdown`` in old
ontologies); ``scope`` is ``global`` | ``index`` (frame-based on video), absent meaning global.
"""

from __future__ import annotations

from difflib import get_close_matches

import msgspec


class OntologyError(ValueError):
    """The ontology file is not Labelbox's normalized form (with msgspec's JSON path)."""


class Option(msgspec.Struct, kw_only=True):
    value: str = ""
    label: str = ""
    feature_schema_id: str = msgspec.field(default="", name="featureSchemaId")
    options: list[OntologyClassification] = []

    @property
    def names(self) -> tuple[str, ...]:
        """What an answer may be called: the value, and the label when it differs."""
        return tuple(dict.fromkeys(n for n in (self.value, self.label) if n))


class OntologyClassification(msgspec.Struct, kw_only=True):
    name: str = ""
    instructions: str = ""
    type: str = ""
    scope: str = ""
    feature_schema_id: str = msgspec.field(default="", name="featureSchemaId")
    options: list[Option] = []

    @property
    def title(self) -> str:
        return self.name or self.instructions

    @property
    def frame_based(self) -> bool:
        return self.scope == "index"

    def option(self, name: str | None, schema_id: str | None) -> Option | None:
        for o in self.options:
            if (name is not None and name in o.names) or (schema_id and schema_id == o.feature_schema_id):
                return o
        return None

    def option_names(self) -> list[str]:
        return [n for o in self.options for n in o.names]


class Tool(msgspec.Struct, kw_only=True):
    name: str
    tool: str
    feature_schema_id: str = msgspec.field(default="", name="featureSchemaId")
    classifications: list[OntologyClassification] = []


class Ontology(msgspec.Struct, kw_only=True):
    tools: list[Tool] = []
    classifications: list[OntologyClassification] = []


_decoder = msgspec.json.Decoder(Ontology)


def load_ontology(data: bytes) -> Ontology:
    """Decode a normalized ontology; :class:`OntologyError` names what is wrong and where."""
    try:
        return _decoder.decode(data)
    except msgspec.MsgspecError as e:
        raise OntologyError(f"not a Labelbox normalized ontology: {e}") from None


def find_classification(
    items: list[OntologyClassification], name: str | None, schema_id: str | None
) -> OntologyClassification | None:
    for c in items:
        if (name is not None and name == c.title) or (schema_id and schema_id == c.feature_schema_id):
            return c
    return None


def suggest(name: str, candidates: list[str]) -> str:
    """``one of 'a', 'b'``: the close matches first (difflib), else every candidate (up to 10)."""
    close = get_close_matches(name, candidates, n=3, cutoff=0.6)
    if close:
        return "one of " + ", ".join(repr(c) for c in close)
    if not candidates:
        return "none defined here"
    more = ", ..." if len(candidates) > 10 else ""
    return "one of " + ", ".join(repr(c) for c in candidates[:10]) + more
