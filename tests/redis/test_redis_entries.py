"""Decoding of stream entry bodies (pure): manifest-style entries and S3 event notifications."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote_plus

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from daemon.core.jobs import ObjectRef
from daemon.sources.redis_entries import decode_entry

BASE = Path("/srv/media")


def s3_event(*records: dict[str, object]) -> bytes:
    return msgspec.json.encode({"Records": list(records)})


def record(
    key: str, *, name: str = "ObjectCreated:Put", bucket: str = "b", **obj: object
) -> dict[str, object]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": name,
        "s3": {"bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}, "object": {"key": key, **obj}},
    }


def decode(body: bytes) -> tuple[list[ObjectRef], str | None, bytes | None]:
    d = decode_entry("st", "1-0", {b"body": body}, BASE)
    return d.refs, d.error, d.raw


class TestManifestStyle:
    def test_url_string(self) -> None:
        """A JSON string URL is one url ref."""
        refs, err, _ = decode(b'"https://cdn.example.com/a.mp4"')
        assert err is None
        assert refs == [
            ObjectRef(origin="url", key="https://cdn.example.com/a.mp4", url="https://cdn.example.com/a.mp4")
        ]

    def test_s3_uri_and_objects(self) -> None:
        """s3:// URIs, Labelbox rows and relative paths decode exactly as manifest entries do."""
        assert decode(b'"s3://bkt/dir/x.jpg"')[0] == [ObjectRef(origin="s3", bucket="bkt", key="dir/x.jpg")]
        refs, err, _ = decode(b'{"row_data": "https://h/x.png", "global_key": "gk-1"}')
        assert err is None
        assert refs[0].url == "https://h/x.png"
        assert refs[0].metadata == {"global_key": "gk-1"}
        refs, _, _ = decode(b'{"path": "clips/a.mp4"}')
        assert refs == [ObjectRef(origin="file", key="clips/a.mp4", path=str(BASE / "clips/a.mp4"))]

    def test_a_key_named_records_is_still_a_manifest_entry(self) -> None:
        """The word "Records" inside a value does not make the body an S3 event."""
        refs, err, _ = decode(b'{"url": "https://h/\\"Records\\".mp4"}')
        assert err is None
        assert refs[0].url == 'https://h/"Records".mp4'


class TestS3Events:
    def test_records_become_s3_refs_with_decoded_keys(self) -> None:
        """Keys are URL-decoded ('+' is a space); size, eTag, versionId, sequencer are kept."""
        body = s3_event(
            record("my+clip%2B1%2F%C3%A9.mp4", size=123, eTag="abc", versionId="v1", sequencer="00AB"),
            record("b.jpg", bucket="other"),
        )
        refs, err, _ = decode(body)
        assert err is None
        assert refs == [
            ObjectRef(
                origin="s3",
                bucket="b",
                key="my clip+1/é.mp4",
                size=123,
                etag="abc",
                version="v1",
                sequencer="00AB",
            ),
            ObjectRef(origin="s3", bucket="other", key="b.jpg"),
        ]

    def test_removed_objects_are_skipped(self) -> None:
        """ObjectRemoved records announce nothing to import."""
        refs, err, _ = decode(s3_event(record("gone.mp4", name="ObjectRemoved:Delete"), record("new.mp4")))
        assert err is None
        assert [r.key for r in refs] == ["new.mp4"]

    def test_removed_objects_refused_when_not_skipped(self) -> None:
        """With skip_removed off, a removal is an error naming it (dead-lettered, never silent),
        as on the SQS source."""
        body = s3_event(record("gone.mp4", name="ObjectRemoved:Delete"))
        d = decode_entry("st", "1-0", {b"body": body}, BASE, skip_removed=False)
        assert (
            d.refs == []
            and d.error is not None
            and "ObjectRemoved:Delete" in d.error
            and "gone.mp4" in d.error
        )

    def test_s3_test_event_is_empty(self) -> None:
        """The s3:TestEvent sent when a notification is configured carries no object."""
        refs, err, _ = decode(b'{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}')
        assert (refs, err) == ([], None)

    @given(st.text(min_size=1, max_size=80))
    def test_any_key_round_trips_through_the_notification_encoding(self, key: str) -> None:
        """Whatever the key, S3's encoding of it (quote_plus) decodes back to it."""
        refs, err, _ = decode(s3_event(record(quote_plus(key, safe="/"))))
        assert err is None
        assert refs[0].key == key

    def test_sns_wrapped_and_eventbridge_bodies(self) -> None:
        """Entries carrying SNS-wrapped notifications or EventBridge events decode like on SQS."""
        sns = json.dumps({"Type": "Notification", "Message": s3_event(record("a+b.jpg")).decode()}).encode()
        refs, err, _ = decode(sns)
        assert err is None and [r.key for r in refs] == ["a b.jpg"]
        eb = json.dumps(
            {
                "version": "0",
                "detail-type": "Object Created",
                "source": "aws.s3",
                "detail": {"bucket": {"name": "b"}, "object": {"key": "c.jpg", "size": 3}},
            }
        ).encode()
        refs, err, _ = decode(eb)
        assert err is None and [(r.bucket, r.key) for r in refs] == [("b", "c.jpg")]


class TestMalformed:
    def test_not_json(self) -> None:
        """The error names the stream, the entry and the JSON problem; raw is the body."""
        refs, err, raw = decode(b"{not json")
        assert refs == []
        assert err is not None
        assert err.startswith("stream 'st' entry 1-0: body is not valid JSON")
        assert raw == b"{not json"

    def test_wrong_shapes(self) -> None:
        """Numbers, objects without a location and broken S3 records are errors, not refs."""
        for body, words in [
            (b"42", "must be a string or an object"),
            (b'{"title": "x"}', "exactly one of"),
            (b'"ftp://h/x"', "unsupported URL scheme"),
            (b'{"Records": [{"eventName": "ObjectCreated:Put"}]}', "missing required field `s3`"),
            (b'{"Records": [{"s3": {"bucket": {}, "object": {"key": "k"}}}]}', "field `name`"),
            (b'{"Records": "x"}', "not an S3 event"),
        ]:
            refs, err, raw = decode(body)
            assert refs == [], body
            assert err is not None and words in err, (body, err)
            assert err.startswith("stream 'st' entry 1-0: ")
            assert raw == body

    def test_no_body_field(self) -> None:
        """An entry without ``body`` is an error listing its fields; raw is the entry as JSON."""
        d = decode_entry("st", "7-1", {b"url": b"https://h/a.mp4"}, BASE)
        assert d.refs == []
        assert d.error == "stream 'st' entry 7-1: no 'body' field (fields: ['url'])"
        assert msgspec.json.decode(d.raw or b"") == {"url": "https://h/a.mp4"}

    @given(st.binary(max_size=200))
    def test_any_body_gives_refs_or_an_error(self, body: bytes) -> None:
        """No body makes decoding raise: it is refs, or an error with the raw body."""
        refs, err, raw = decode(body)
        assert (err is None) or (refs == [] and raw == body)
