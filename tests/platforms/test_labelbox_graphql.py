"""Labelbox GraphQL documents, the multipart body and answer sorting (graphql.py)."""

from __future__ import annotations

import json
import re

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.platforms.labelbox import graphql as gql
from workers.platforms.labelbox.graphql import Kind, read_answer


def _err(code: str, message: str = "boom", status: int | None = None) -> bytes:
    ext: dict[str, object] = {"code": code}
    if status is not None:
        ext["exception"] = {"status": status}
    return json.dumps({"data": None, "errors": [{"message": message, "extensions": ext}]}).encode()


class TestReadAnswer:
    def test_ok_answer_keeps_the_data(self) -> None:
        """A 2xx JSON answer without errors is ok and its data decodes to the shape asked for."""
        a = read_answer(200, "application/json", b'{"data": {"user": {"id": "u1"}}}')
        assert a.kind is Kind.OK
        assert gql.data_as(a, gql.UserData).user.id == "u1"

    @pytest.mark.parametrize(
        ("status", "body", "header", "retry"),
        [
            (429, b'{"message": "You have exceeded the limit"}', "7", 7.0),
            (429, b"slow down", None, None),
            (200, b'{"message": "You have exceeded 1500 requests per minute"}', None, None),
            (400, b'{"message": "You have exceeded"}', "2", 2.0),
        ],
    )
    def test_rate_limited(self, status: int, body: bytes, header: str | None, retry: float | None) -> None:
        """429 or a "You have exceeded" message is rate limited; Retry-After is honoured if sent."""
        a = read_answer(status, "application/json", body, retry_after=header)
        assert a.kind is Kind.RATE_LIMITED and a.retry_after == retry and a.status == 429

    @pytest.mark.parametrize(
        ("status", "ctype", "body"),
        [
            (502, "text/html", b"<html><body>Bad Gateway</body></html>"),
            (520, "text/plain", b"upstream connect error or disconnect/reset before headers"),
            (503, "application/json", b'{"message": "unavailable"}'),
            (200, "text/html", b"<!doctype html><p>captive portal</p>"),
            (200, "application/json", b'{"data": '),
            (200, "application/json", _err("INTERNAL_SERVER_ERROR", status=500)),
            (200, "application/json", _err("SOMETHING_NEW")),
            (200, "", b""),
        ],
    )
    def test_transient(self, status: int, ctype: str, body: bytes) -> None:
        """5xx, 520, HTML and non-JSON bodies, malformed JSON, server errors: retry."""
        assert read_answer(status, ctype, body).kind is Kind.TRANSIENT

    @pytest.mark.parametrize(
        ("status", "body", "kind"),
        [
            (200, _err("AUTHENTICATION_ERROR", "Invalid API key"), Kind.REFUSED),
            (401, _err("AUTHENTICATION_ERROR", "Invalid API key"), Kind.REFUSED),
            (200, _err("AUTHORIZATION_ERROR", "not allowed"), Kind.REFUSED),
            (403, b"<html>forbidden</html>", Kind.REFUSED),
            (200, _err("GRAPHQL_VALIDATION_FAILED", "Query complexity limit exceeded"), Kind.PERMANENT),
            (200, _err("INTERNAL_SERVER_ERROR", "quota", status=426), Kind.PERMANENT),
            (200, _err("INTERNAL_SERVER_ERROR", "bad", status=400), Kind.PERMANENT),
            (200, _err("INTERNAL_SERVER_ERROR", "bad", status=422), Kind.PERMANENT),
            (422, b'{"message": "unprocessable"}', Kind.PERMANENT),
        ],
    )
    def test_refused_and_permanent(self, status: int, body: bytes, kind: Kind) -> None:
        """Credentials/authorization are refused (not the rows' fault); the rest is permanent."""
        a = read_answer(status, "application/json", body)
        assert a.kind is kind
        assert a.message

    def test_refusal_wins_over_other_errors(self) -> None:
        """With several errors, the most severe decides, and its message comes first."""
        body = json.dumps(
            {
                "errors": [
                    {"message": "x", "extensions": {"code": "INTERNAL_SERVER_ERROR"}},
                    {"message": "bad key", "extensions": {"code": "AUTHENTICATION_ERROR"}},
                ]
            }
        ).encode()
        a = read_answer(200, "application/json", body)
        assert a.kind is Kind.REFUSED and a.code == "AUTHENTICATION_ERROR"

    @given(
        status=st.integers(100, 599),
        ctype=st.sampled_from(["application/json", "text/html", "", "text/plain"]),
        body=st.one_of(
            st.binary(max_size=200),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                max_leaves=10,
            ).map(lambda v: json.dumps(v).encode()),
        ),
    )
    def test_any_answer_is_sorted_without_raising(self, status: int, ctype: str, body: bytes) -> None:
        """Whatever comes back, read_answer sorts it into one kind; ok only for 2xx."""
        a = read_answer(status, ctype, body, retry_after="3")
        assert a.kind in set(Kind)
        if a.kind is Kind.OK:
            assert 200 <= status < 300
        if a.kind is not Kind.RATE_LIMITED:
            assert a.retry_after is None

    @given(st.binary(max_size=300))
    def test_data_as_raises_only_protocol_errors(self, raw: bytes) -> None:
        """Any data member decodes to the asked shape or raises ProtocolError."""
        a = gql.Answer(kind=Kind.OK, status=200, data=msgspec.Raw(raw))
        try:
            gql.data_as(a, gql.FailedData)
        except gql.ProtocolError:
            pass


class TestDocuments:
    def test_upload_body_is_a_graphql_multipart_request(self) -> None:
        """operations + map + file part "1", the true byte length, a boundary not in the file."""
        content = '[{"a": "é"}]'.encode()
        ctype, body = gql.upload_body(content, filename="json_import.json")
        boundary = ctype.split("boundary=")[1]
        parts = body.split(b"--" + boundary.encode())
        assert parts[0] == b"" and parts[-1] == b"--\r\n"
        ops = json.loads(parts[1].split(b"\r\n\r\n", 1)[1])
        assert ops["variables"] == {"file": None, "contentLength": len(content), "sign": False}
        assert "uploadFile(" in ops["query"]
        assert parts[2].split(b"\r\n\r\n", 1)[1] == b'{"1":["variables.file"]}\r\n'
        head, file = parts[3].split(b"\r\n\r\n", 1)
        assert b'name="1"; filename="json_import.json"' in head
        assert b"Content-Type: application/json" in head
        assert file == content + b"\r\n"

    def test_tasks_query_reads_several_tasks_in_one_request(self) -> None:
        """Aliases t0..tn on the creating user; the answer maps back to each task id."""
        q = gql.tasks_query(["a", "b"])
        assert re.findall(r"(t\d): createdTasks", q) == ["t0", "t1"]
        assert gql.tasks_variables("u", ["a", "b"]) == {"userId": "u", "t0": "a", "t1": "b"}
        body = {"data": {"user": {"t0": [{"id": "a", "status": "COMPLETE"}], "t1": []}}}
        a = read_answer(200, "application/json", json.dumps(body).encode())
        views = gql.decode_tasks(a, ["a", "b"])
        assert views["a"] is not None and views["a"].finished and views["b"] is None
        with pytest.raises(ValueError, match="no task"):
            gql.tasks_query([])
