"""workers.sqs_wire: JSON-protocol answers decoded as botocore's dicts; any failure is an SqsError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.sqs_wire import SqsError, decode_response, encode_request, error_from, headers_for, kind_of

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=10), _json, max_size=6))
def test_objects_round_trip(doc: dict[str, Any]) -> None:
    assert decode_response(200, None, json.dumps(doc).encode()) == doc
    assert json.loads(encode_request(doc)) == doc


@given(st.integers(100, 599), st.none() | st.text(max_size=30), st.binary(max_size=200))
def test_anything_decodes_or_raises_sqs_error(status: int, query_error: str | None, body: bytes) -> None:
    try:
        out = decode_response(status, query_error, body)
    except SqsError as e:
        assert e.code and e.kind in ("throttled", "denied", "no_queue", "bad_handle", "server", "client")
        assert e.status == status
    else:
        assert 200 <= status < 300 and isinstance(out, dict)


def test_empty_ok_body_is_empty_dict_and_non_objects_refused() -> None:
    assert decode_response(200, None, b"") == {}
    with pytest.raises(SqsError, match="JSON list"):
        decode_response(200, None, b"[1]")
    with pytest.raises(SqsError, match="not JSON"):
        decode_response(200, None, b"<html>")


@pytest.mark.parametrize(
    ("status", "query_error", "body", "code", "kind"),
    [
        (400, None, {"__type": "com.amazonaws.sqs#QueueDoesNotExist"}, "QueueDoesNotExist", "no_queue"),
        (
            400,
            "AWS.SimpleQueueService.NonExistentQueue;Sender",
            {},
            "AWS.SimpleQueueService.NonExistentQueue",
            "no_queue",
        ),
        (400, None, {"__type": "ThrottlingException:http://internal"}, "ThrottlingException", "throttled"),
        (429, None, {}, "HTTP429", "throttled"),
        (403, None, {"code": "SignatureDoesNotMatch"}, "SignatureDoesNotMatch", "denied"),
        (
            400,
            "AWS.SimpleQueueService.MessageNotInflight;Sender",
            {},
            "AWS.SimpleQueueService.MessageNotInflight",
            "bad_handle",
        ),
        (400, None, {"__type": "com.amazonaws.sqs#InvalidParameterValue"}, "InvalidParameterValue", "client"),
        (502, None, {}, "ServiceUnavailable", "server"),
    ],
)
def test_error_codes(
    status: int, query_error: str | None, body: dict[str, Any], code: str, kind: str
) -> None:
    e = error_from(status, query_error, json.dumps(body).encode())
    assert (e.code, e.kind) == (code, kind)
    assert kind_of(code, status) == kind


def test_headers_name_the_action() -> None:
    h = headers_for("ReceiveMessage")
    assert h == {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "AmazonSQS.ReceiveMessage",
        "x-amzn-query-mode": "true",
    }
