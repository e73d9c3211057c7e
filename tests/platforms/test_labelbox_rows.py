"""Labelbox metadata resolution and task results mapped back to global keys."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.payloads import labelbox as lb
from workers.platforms.labelbox.graphql import FailedRow, FailedSpec, TaskView
from workers.platforms.labelbox.metadata import (
    MetadataError,
    MetadataMiss,
    MetadataOption,
    MetadataSchema,
    Ontology,
    needs_ontology,
    resolve_row,
    utc_z,
)
from workers.platforms.labelbox.results import outcomes

ONTOLOGY = Ontology(
    [
        MetadataSchema(id="s-tag", name="tag", kind="CustomMetadataString", reserved=True),
        MetadataSchema(id="s-n", name="score", kind="CustomMetadataNumber"),
        MetadataSchema(id="s-dt", name="captureDateTime", kind="CustomMetadataDateTime", reserved=True),
        MetadataSchema(
            id="s-split",
            name="split",
            kind="CustomMetadataEnum",
            reserved=True,
            options=[MetadataOption(id="o-train", name="train"), MetadataOption(id="o-test", name="test")],
        ),
        MetadataSchema(id="s-emb", name="emb", kind="CustomMetadataEmbedding"),
    ]
)


class TestMetadata:
    def test_each_kind_in_wire_form(self) -> None:
        """string as is, number as float, datetime ...Z in UTC, enum as two entries, embedding floats."""
        fields = [
            {"name": "tag", "value": "t"},
            {"name": "score", "value": 3},
            {"name": "captureDateTime", "value": "2024-05-01T12:00:00+02:00"},
            {"name": "split", "value": "train"},
            {"schema_id": "s-split", "value": "o-test"},
            {"name": "emb", "value": list(range(128))},
        ]
        wire = ONTOLOGY.wire(fields)
        assert wire[:6] == [
            {"schemaId": "s-tag", "value": "t"},
            {"schemaId": "s-n", "value": 3.0},
            {"schemaId": "s-dt", "value": "2024-05-01T10:00:00Z"},
            {"schemaId": "s-split", "value": {}},
            {"schemaId": "o-train", "value": {}},
            {"schemaId": "s-split", "value": {}},
        ]
        assert wire[6] == {"schemaId": "o-test", "value": {}}
        assert wire[7]["value"][:2] == [0.0, 1.0] and isinstance(wire[7]["value"][5], float)

    def test_unknown_names_and_ids_are_misses_naming_the_field(self) -> None:
        """An unknown name or schema id asks for a refresh; the message names it."""
        with pytest.raises(MetadataMiss, match="'colour'"):
            ONTOLOGY.wire([{"name": "colour", "value": "red"}])
        with pytest.raises(MetadataMiss, match="'s-x'"):
            ONTOLOGY.wire([{"schema_id": "s-x", "value": 1}])

    @pytest.mark.parametrize(
        ("field", "match"),
        [
            ({"name": "score", "value": "many"}, "score"),
            ({"name": "score", "value": True}, "number"),
            ({"name": "split", "value": "valid"}, "options"),
            ({"name": "tag", "value": 3}, "string"),
            ({"name": "tag", "value": "x" * 5000}, "4096"),
            ({"name": "emb", "value": [1.0]}, "128"),
            ({"name": "captureDateTime", "value": "yesterday"}, "captureDateTime"),
            ({"schema_id": "o-train", "value": 1}, "enum option"),
            ({"value": 1}, "neither"),
        ],
    )
    def test_bad_values_name_the_field(self, field: dict[str, object], match: str) -> None:
        """A value the kind does not accept is an error naming the field (a dead letter)."""
        with pytest.raises(MetadataError, match=match):
            ONTOLOGY.wire([field])

    def test_naive_times_are_utc(self) -> None:
        """A date-time without offset is read as UTC; Z is accepted."""
        assert utc_z("2024-01-02T03:04:05") == "2024-01-02T03:04:05Z"
        assert utc_z("2024-01-02T03:04:05.9Z") == "2024-01-02T03:04:05Z"

    def test_resolve_row_rewrites_only_the_metadata(self) -> None:
        """The row keeps its other fields; rows without metadata are not touched."""
        row = lb.encode(
            lb.DataRow(
                row_data="https://x/a.jpg",
                global_key="k",
                metadata_fields=[lb.MetadataField(name="tag", value="v")],
            )
        )
        assert needs_ontology(row)
        doc = json.loads(resolve_row(row, ONTOLOGY))
        assert doc["metadata_fields"] == [{"schemaId": "s-tag", "value": "v"}]
        assert doc["row_data"] == "https://x/a.jpg" and doc["global_key"] == "k"
        plain = lb.encode(lb.DataRow(row_data="https://x/a.jpg", global_key="k"))
        assert not needs_ontology(plain)

    @given(st.text(max_size=40))
    def test_datetime_parser_never_raises_other_errors(self, text: str) -> None:
        """Any text is a UTC date-time or a ValueError."""
        try:
            out = utc_z(text)
        except ValueError:
            return
        assert out.endswith("Z") and len(out) == 20


def _failed(key: str | None, message: str) -> FailedRow:
    return FailedRow(message=message, spec=FailedSpec(globalKey=key))


class TestOutcomes:
    def test_complete_task_with_partial_failures(self) -> None:
        """Duplicate global key -> duplicate; other failures -> rejected with the message; rest accepted."""
        task = TaskView(id="t", status="COMPLETE")
        out, strangers = outcomes(
            ["a", "B", "c", "d"],
            task,
            [
                _failed("a", "Duplicate global key: 'a'"),
                _failed("b", "Failed to access URL: 403"),
                _failed("zzz", "Duplicate global key: 'zzz'"),
                _failed(None, "whatever"),
            ],
        )
        assert [(o.key, o.status, o.reason) for o in out] == [
            ("a", "duplicate", None),
            ("B", "rejected", "Failed to access URL: 403"),
            ("c", "accepted", None),
            ("d", "accepted", None),
        ]
        assert len(strangers) == 2

    def test_failed_task_keeps_unreported_rows_retryable(self) -> None:
        """FAILED: listed successes are accepted, the rest retryable with the task's error."""
        task = TaskView(id="t9", status="FAILED", errors=[{"message": "Failed to access URL: 404"}])
        out, _ = outcomes(["a", "b", "c"], task, [_failed("c", "bad row")], succeeded=["A"])
        assert [(o.key, o.status) for o in out] == [("a", "accepted"), ("b", "retryable"), ("c", "rejected")]
        assert out[1].reason is not None and "Failed to access URL: 404" in out[1].reason

    def test_older_duplicate_wordings(self) -> None:
        """Every historical duplicate wording counts as duplicate."""
        task = TaskView(id="t", status="COMPLETE")
        out, _ = outcomes(
            ["a", "b"],
            task,
            [
                _failed("a", "Duplicate global keys found: a"),
                _failed("b", "Data rows contain duplicate global keys"),
            ],
        )
        assert {o.status for o in out} == {"duplicate"}
