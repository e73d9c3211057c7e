"""daemon.sources.s3events: S3 / SNS / EventBridge bodies -> refs, skips, errors."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.jobs import ObjectRef
from daemon.sources.s3events import decode_body

KEYS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=200)


def s3_record(key: str, *, event: str = "ObjectCreated:Put", bucket: str = "media", **obj: object) -> dict:
    """A record as S3 writes it: the key form-encoded ('+' for space, '%2B' for '+', '/' kept)."""
    o = {"key": quote_plus(key, safe="/"), "size": 1234, "eTag": "abc", "sequencer": "0055AED6DCD90281E5"}
    o.update(obj)
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": event,
        "userIdentity": {"principalId": "AWS:X"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": o,
        },
    }


def sns(inner: dict | str) -> bytes:
    msg = inner if isinstance(inner, str) else json.dumps(inner)
    return json.dumps(
        {"Type": "Notification", "MessageId": "m", "TopicArn": "arn:t", "Message": msg}
    ).encode()


def eventbridge(key: str, detail_type: str = "Object Created", source: str = "aws.s3") -> bytes:
    return json.dumps(
        {
            "version": "0",
            "detail-type": detail_type,
            "source": source,
            "detail": {
                "version": "0",
                "bucket": {"name": "media"},
                "object": {
                    "key": quote(key, safe="/+"),
                    "size": 9,
                    "etag": "e",
                    "version-id": "v1",
                    "sequencer": "s",
                },
                "reason": "PutObject",
            },
        }
    ).encode()


class TestNotifications:
    def test_record_fields(self) -> None:
        """A created record gives a ref with bucket, decoded key, size, etag, version and sequencer."""
        d = decode_body(json.dumps({"Records": [s3_record("red flower.jpg", versionId="v9")]}))
        assert d.error is None
        assert d.refs == [
            ObjectRef(
                origin="s3",
                bucket="media",
                key="red flower.jpg",
                size=1234,
                etag="abc",
                version="v9",
                sequencer="0055AED6DCD90281E5",
            )
        ]

    def test_literal_encodings(self) -> None:
        """'red+flower.jpg' is 'red flower.jpg'; '%2B' is a real '+'."""
        body = {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": "b"}, "object": {"key": "a+b%2Bc%2Fd"}},
                }
            ]
        }
        assert decode_body(json.dumps(body)).refs[0].key == "a b+c/d"

    @settings(max_examples=400)
    @given(keys=st.lists(KEYS, min_size=1, max_size=5))
    def test_any_key_round_trips(self, keys: list[str]) -> None:
        """Whatever the keys, a multi-record body gives every key back, in order."""
        d = decode_body(json.dumps({"Records": [s3_record(k) for k in keys]}).encode())
        assert [r.key for r in d.refs] == keys

    @settings(max_examples=200)
    @given(key=KEYS)
    def test_sns_wrapped(self, key: str) -> None:
        """An SNS envelope is unwrapped: same refs as the raw notification."""
        assert decode_body(sns({"Records": [s3_record(key)]})).refs[0].key == key

    def test_test_event_skipped(self) -> None:
        """s3:TestEvent (raw or via SNS) is skipped, not an error."""
        ev = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "t", "Bucket": "media"}
        for body in (json.dumps(ev).encode(), sns(ev)):
            d = decode_body(body)
            assert (d.refs, d.skipped, d.error) == ([], ["s3:TestEvent"], None)

    def test_removed_skipped_or_error(self) -> None:
        """ObjectRemoved is skipped by default and an error when skip_removed is off."""
        body = json.dumps({"Records": [s3_record("a b", event="ObjectRemoved:Delete"), s3_record("c")]})
        d = decode_body(body)
        assert [r.key for r in d.refs] == ["c"] and d.skipped == ["ObjectRemoved:Delete s3://media/a b"]
        d = decode_body(body, skip_removed=False)
        assert d.refs == [] and "ObjectRemoved:Delete for s3://media/a b" in (d.error or "")

    @pytest.mark.parametrize(
        ("body", "needle"),
        [
            (b"not json", "body is not JSON"),
            (b"[1,2]", "Expected `object`, got `array`"),
            (b'{"hello": 1}', "no Records, Event, SNS Message or EventBridge"),
            (b'{"Records": []}', "Records is empty"),
            (
                b'{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, '
                b'"object": {}}}]}',
                "missing required field `key` - at `$.Records[0].s3.object`",
            ),
            (
                json.dumps({"Records": [s3_record("k", event="ObjectRestore:Completed")]}).encode(),
                "unsupported eventName 'ObjectRestore:Completed'",
            ),
            (b'{"Event": "s3:Other"}', "unsupported S3 Event 's3:Other'"),
            (sns("garbage"), "SNS Message: body is not JSON"),
            (sns(sns({"Event": "s3:TestEvent"}).decode()), "nested in an SNS notification"),
            (eventbridge("k", source="aws.ec2"), "source 'aws.ec2'"),
            (eventbridge("k", detail_type="Object Restore Completed"), "'Object Restore Completed'"),
        ],
    )
    def test_errors_name_the_problem(self, body: bytes, needle: str) -> None:
        """Malformed or unsupported bodies yield an error naming what was wrong, never refs."""
        d = decode_body(body)
        assert d.refs == [] and d.error is not None and needle in d.error


class TestEventBridge:
    @settings(max_examples=300)
    @given(key=KEYS)
    def test_created(self, key: str) -> None:
        """EventBridge keys are percent-decoded only: a literal '+' stays a '+'."""
        (ref,) = decode_body(eventbridge(key)).refs
        assert (ref.bucket, ref.key, ref.size, ref.etag, ref.version, ref.sequencer) == (
            "media",
            key,
            9,
            "e",
            "v1",
            "s",
        )

    def test_plus_is_literal(self) -> None:
        """'c++ notes.txt' written as 'c++%20notes.txt' decodes to itself."""
        body = eventbridge("x").replace(b'"key": "x"', b'"key": "c++%20notes.txt"')
        assert decode_body(body).refs[0].key == "c++ notes.txt"

    def test_deleted(self) -> None:
        """Object Deleted is skipped (default) or an error."""
        assert decode_body(eventbridge("k", "Object Deleted")).skipped == ["Object Deleted s3://media/k"]
        assert "skip_removed is off" in (
            decode_body(eventbridge("k", "Object Deleted"), skip_removed=False).error or ""
        )


@settings(max_examples=300)
@given(body=st.binary(max_size=300))
def test_never_raises(body: bytes) -> None:
    """Arbitrary bytes never raise: either refs/skips or an error string."""
    d = decode_body(body)
    assert d.error is not None or d.refs or d.skipped
