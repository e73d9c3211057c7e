"""The pure halves of project batches and annotation imports (workers/platforms/labelbox)."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.platforms.labelbox import imports as imp
from workers.platforms.labelbox import project as prj


def test_batch_name_is_a_function_of_the_key_set_case_insensitive() -> None:
    assert prj.batch_name(["b", "A"]) == prj.batch_name(["a", "B", "a"])
    assert prj.batch_name(["a"]) != prj.batch_name(["a", "b"])
    assert prj.batch_name(["a"]).startswith("ingestd-")


def test_create_batch_variables_use_keys_and_refuse_the_async_size() -> None:
    v = prj.create_batch_variables("p1", "n", ["k1"], priority=2, consensus=prj.consensus_input(3, 0.5))
    assert v["batchInput"] == {
        "name": "n",
        "dataRowIds": [],
        "globalKeys": ["k1"],
        "priority": 2,
        "consensusSettings": {"numberOfLabels": 3, "coveragePercentage": 0.5},
    }
    with pytest.raises(ValueError, match="createBatchV2"):
        prj.create_batch_variables("p1", "n", ["k"] * prj.SYNC_BATCH_ROWS, priority=5, consensus=None)
    assert prj.consensus_input(1, 1.0) is None


def test_project_view_gives_the_ontology_as_json_string_or_object() -> None:
    obj = msgspec.json.decode(
        b'{"project": {"id": "p", "mediaType": "VIDEO", "ontology": {"normalized": {"tools": []}}}}',
        type=prj.ProjectData,
    )
    assert obj.project is not None and obj.project.ontology_json() == b'{"tools":[]}'
    text = msgspec.json.decode(
        b'{"project": {"id": "p", "ontology": {"normalized": "{\\"tools\\": []}"}}}', type=prj.ProjectData
    )
    assert text.project is not None and text.project.ontology_json() == b'{"tools": []}'


def test_media_mismatch_names_both() -> None:
    assert prj.media_mismatch("video", "VIDEO") is None
    why = prj.media_mismatch("IMAGE", "VIDEO")
    assert why is not None and "IMAGE" in why and "VIDEO" in why


def test_import_name_is_a_function_of_the_lines() -> None:
    assert imp.import_name(b"a\nb") == imp.import_name(b"a\nb") != imp.import_name(b"b\na")


def test_file_body_carries_the_true_length_and_the_sdk_map() -> None:
    ndjson = '{"name": "é"}'.encode()
    ctype, body = imp.file_body("ground_truth", "p1", "n1", ndjson)
    assert ctype.startswith("multipart/form-data; boundary=")
    ops = body.split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[0]
    doc = json.loads(ops)
    assert doc["variables"]["contentLength"] == len(ndjson) == 14
    assert "createLabelImport" in doc["query"]
    assert b'{"p1__n1.ndjson":["variables.file"]}' in body
    assert b"Content-Type: application/x-ndjson\r\n\r\n" + ndjson + b"\r\n" in body


def test_documents_name_their_root_fields() -> None:
    assert "createModelAssistedLabelingPredictionImport" in imp.create_by_url("mal")
    assert "labelImport(where" in imp.read_job("ground_truth")


def test_status_file_lines_and_reasons() -> None:
    body = (
        b'{"uuid": "u1", "dataRow": {"globalKey": "k"}, "status": "SUCCESS"}\n\n'
        b'{"uuid": "u2", "dataRow": {"id": "d"}, "status": "FAILURE", '
        b'"errors": [{"name": "ValidationError", "message": "bad frame"}]}\nnot json\n'
    )
    lines, bad = imp.read_status_file(body)
    assert bad == 1
    assert [(s.uuid, s.status, s.row) for s in lines] == [("u1", "SUCCESS", "k"), ("u2", "FAILURE", "d")]
    assert lines[1].reason() == "ValidationError: bad frame"


def test_index_lines_maps_uuids_to_item_row_and_feature() -> None:
    nd = (
        b'{"uuid": "u1", "name": "bbox", "dataRow": {"globalKey": "clip.mp4"}}\n'
        b'{"uuid": "u2", "dataRow": {"globalKey": "clip.mp4"}, "masks": {"instances": [{"name": "m"}]}}'
    )
    by_uuid, rows = imp.index_lines("clip.mp4.labels.ndjson", nd)
    assert rows == ["clip.mp4"]
    assert by_uuid["u1"] == imp.SentLine("clip.mp4.labels.ndjson", "clip.mp4", "bbox")
    assert by_uuid["u2"].feature == "m"


def test_join_ndjson_has_no_blank_or_trailing_line() -> None:
    assert imp.join_ndjson([b"a\n", b"\nb\n"]) == b"a\nb"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=8,
)


@given(st.lists(st.binary(max_size=40) | _json.map(lambda v: json.dumps(v).encode()), max_size=8))
def test_status_file_reader_never_raises(lines: list[bytes]) -> None:
    out, bad = imp.read_status_file(b"\n".join(lines))
    assert len(out) + bad <= sum(1 for ln in b"\n".join(lines).splitlines() if ln.strip())


@given(_json)
def test_answer_structs_decode_or_fail_cleanly(value: object) -> None:
    raw = json.dumps(value).encode()
    for typ in (prj.ProjectData, prj.CreateBatchData, prj.BatchByNameData, dict[str, imp.ImportJob | None]):
        try:
            msgspec.json.decode(raw, type=typ)
        except msgspec.ValidationError:
            pass


def test_import_records_round_trip_and_read_the_first_layout() -> None:
    rec = imp.ImportRecord("finished", "import-3", imported=7, failed=1)
    assert imp.read_record(imp.record_value(rec)) == rec
    assert imp.record_value(imp.ImportRecord("created")) == '{"state":"created"}'
    assert imp.read_record("creating") == imp.ImportRecord("created")
    assert imp.read_record("FAILED:import-4") == imp.ImportRecord("failed", "import-4")
    assert imp.read_record("FINISHED:") is None and imp.read_record('{"state":"lost"}') is None


def test_records_summarized_by_state_and_lines_by_outcome() -> None:
    values = ["creating", '{"state":"running","job":"j"}', '{"state":"finished","job":"k","imported":5}', "?"]
    assert imp.summarize_records(values) == (
        {"created": 1, "running": 1, "finished": 1, "unreadable": 1},
        {"imported": 5},
    )
    assert imp.summarize_records([]) == ({}, {})


@given(st.lists(st.text(max_size=30) | _json.map(json.dumps), max_size=6))
def test_summarizing_any_values_never_raises(values: list[str]) -> None:
    states, _ = imp.summarize_records(values)
    assert sum(states.values()) == len(values)


def test_the_staged_object_is_named_by_the_import_only() -> None:
    name = imp.import_name(b'{"a": 1}')
    assert imp.staging_key("staged/", name) == f"staged/{name}.ndjson" == imp.staging_key("staged/", name)
    assert imp.without_query("https://h/b/k.ndjson?X-Amz-Signature=abc") == "https://h/b/k.ndjson"
