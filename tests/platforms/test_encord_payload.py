"""The ``dataItems`` upload-job body and Encord's answers mapped back to objects (pure)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.payloads import encord as enc
from workers.platforms.encord import payload, responses
from workers.platforms.encord.payload import Sent
from workers.rules.encord import AudioMetadata, ImageMetadata, VideoMetadata

VIDEO = enc.Item(
    objectUrl="https://bkt.s3.eu-west-2.amazonaws.com/cam1/2024/clip%20001.mp4",
    title="cam1/2024/clip 001.mp4",
    clientMetadata={"src.sqsMessageId": "m-1", "probe.vfr": False},
    videoMetadata=VideoMetadata(
        fps=29.97, duration=60.06, width=1920, height=1080, file_size=73400320, mime_type="video/mp4"
    ),
)
IMAGE = enc.Item(
    objectUrl="https://bkt.s3.eu-west-2.amazonaws.com/img/a.jpg",
    imageMetadata=ImageMetadata(mime_type="image/jpeg", file_size=123456, width=4000, height=3000),
)
AUDIO = enc.Item(
    objectUrl="https://bkt.s3.eu-west-2.amazonaws.com/a/b.wav",
    audioMetadata=AudioMetadata(
        duration=12.5,
        file_size=2205044,
        mime_type="audio/wav",
        sample_rate=44100,
        bit_depth=16,
        codec="pcm",
        num_channels=2,
    ),
)


class TestUploadJob:
    def test_body_matches_the_reference_example(self) -> None:
        """Section 2.6 of the notes, item for item: camelCase down to the metadata fields."""
        body, sent = payload.upload_job(
            [
                ("k1", "VIDEO", enc.encode(VIDEO)),
                ("k2", "IMAGE", enc.encode(IMAGE)),
                ("k3", "AUDIO", enc.encode(AUDIO)),
            ],
            integration_hash="0f0e0d0c-0000-4000-8000-000000000001",
            file_name="batch-0007",
        )
        assert msgspec.json.decode(body) == {
            "integrationHash": "0f0e0d0c-0000-4000-8000-000000000001",
            "ignoreErrors": True,
            "fileName": "batch-0007",
            "dataItems": {
                "skipDuplicateUrls": True,
                "videos": [
                    {
                        "objectUrl": "https://bkt.s3.eu-west-2.amazonaws.com/cam1/2024/clip%20001.mp4",
                        "title": "cam1/2024/clip 001.mp4",
                        "clientMetadata": {"src.sqsMessageId": "m-1", "probe.vfr": False},
                        "videoMetadata": {
                            "fps": 29.97,
                            "duration": 60.06,
                            "width": 1920,
                            "height": 1080,
                            "fileSize": 73400320,
                            "mimeType": "video/mp4",
                        },
                    }
                ],
                "images": [
                    {
                        "objectUrl": "https://bkt.s3.eu-west-2.amazonaws.com/img/a.jpg",
                        "title": "/img/a.jpg",
                        "imageMetadata": {
                            "mimeType": "image/jpeg",
                            "fileSize": 123456,
                            "width": 4000,
                            "height": 3000,
                        },
                    }
                ],
                "audio": [
                    {
                        "objectUrl": "https://bkt.s3.eu-west-2.amazonaws.com/a/b.wav",
                        "title": "/a/b.wav",
                        "audioMetadata": {
                            "duration": 12.5,
                            "fileSize": 2205044,
                            "mimeType": "audio/wav",
                            "sampleRate": 44100,
                            "bitDepth": 16,
                            "codec": "pcm",
                            "numChannels": 2,
                        },
                    }
                ],
            },
        }
        assert sent == [
            Sent("k1", VIDEO.objectUrl, "cam1/2024/clip 001.mp4"),
            Sent("k2", IMAGE.objectUrl, "/img/a.jpg"),
            Sent("k3", AUDIO.objectUrl, "/a/b.wav"),
        ]

    def test_no_metadata_means_no_metadata_key_and_no_empty_arrays(self) -> None:
        """An item the rules gave no metadata is sent without it; unused arrays are left out."""
        bare = enc.Item(objectUrl="https://h/v.webm", title="v")
        body, _ = payload.upload_job([("k", "VIDEO", enc.encode(bare))], integration_hash="i")
        doc = msgspec.json.decode(body)
        assert doc["dataItems"] == {
            "skipDuplicateUrls": True,
            "videos": [{"objectUrl": "https://h/v.webm", "title": "v"}],
        }
        assert "fileName" not in doc and doc["ignoreErrors"] is True

    def test_unregistrable_kind_is_refused_by_name(self) -> None:
        with pytest.raises(ValueError, match="kind 'PDF'"):
            payload.upload_job([("k", "PDF", enc.encode(VIDEO))], integration_hash="i")


def _status(**kw: object) -> bytes:
    return msgspec.json.encode({"status": "DONE", **kw})


class TestResponses:
    def test_job_id_is_a_bare_uuid_string(self) -> None:
        assert (
            responses.job_id(b'"3f0c1b2a-1111-4222-8333-444455556666"')
            == "3f0c1b2a-1111-4222-8333-444455556666"
        )
        for bad in (b'{"id": 1}', b'"not-a-uuid"', b"<html>"):
            with pytest.raises(responses.ResponseError):
                responses.job_id(bad)

    def test_outcomes_map_created_skipped_and_failed_units_to_their_objects(self) -> None:
        """Created -> accepted, unit error -> rejected with Encord's words, absent -> duplicate."""
        sent = [
            Sent("a", "https://h/a.mp4", "a"),
            Sent("b", "https://h/b.mp4", "b"),
            Sent("c", "https://h/c.mp4", "c"),
        ]
        state = responses.job_status(
            _status(
                itemsWithNames=[{"itemUuid": "u1", "name": "a"}],
                unitErrors=[
                    {
                        "objectUrls": ["https://h/c.mp4"],
                        "error": "Access denied to object",
                        "subtaskUuid": "s-9",
                        "actionDescription": "fetch",
                    }
                ],
                unitsDoneCount=1,
                unitsErrorCount=1,
                someNewField={"x": 1},
            )
        )
        assert responses.outcomes(sent, state) == [
            responses.Outcome("a", "accepted"),
            responses.Outcome("b", "duplicate"),
            responses.Outcome("c", "rejected", "fetch: Access denied to object (subtask s-9)"),
        ]

    def test_cancelled_job_leaves_unfinished_items_retryable(self) -> None:
        sent = [Sent("a", "u:a", "a"), Sent("b", "u:b", "b")]
        state = responses.job_status(
            msgspec.json.encode({"status": "CANCELLED", "itemsWithNames": [{"itemUuid": "1", "name": "a"}]})
        )
        out = responses.outcomes(sent, state)
        assert [o.status for o in out] == ["accepted", "retryable"]
        assert "CANCELLED" in (out[1].reason or "")

    def test_pending_job_has_no_outcomes(self) -> None:
        with pytest.raises(ValueError, match="still PENDING"):
            responses.outcomes([], responses.job_status(b'{"status": "PENDING"}'))

    def test_integration_found_by_hash_or_unique_title(self) -> None:
        found = responses.integrations(
            b'{"result": [{"integrationUuid": "h1", "title": "S3 prod"},'
            b' {"integrationUuid": "h2", "title": "dup"}, {"integrationUuid": "h3", "title": "dup"}]}'
        )
        assert responses.find_integration(found, "S3 prod") == found[0]
        assert responses.find_integration(found, "h3") == found[2]
        assert responses.find_integration(found, "dup") is None  # ambiguous: not guessed
        assert responses.find_integration(found, "nope") is None


_name = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_unit_error = st.builds(
    responses.UnitError,
    object_urls=st.lists(_name, max_size=3),
    error=_name,
    subtask_uuid=st.none() | _name,
    action_description=st.none() | _name,
)
_state = st.builds(
    responses.JobStatus,
    status=st.sampled_from(["PENDING", "DONE", "ERROR", "CANCELLED"]),
    items_with_names=st.lists(st.builds(responses.ItemWithName, item_uuid=_name, name=_name), max_size=4),
    errors=st.lists(_name, max_size=2),
    unit_errors=st.lists(_unit_error, max_size=3),
    units_done_count=st.integers(0, 10**6),
    file_name=st.none() | _name,
)


class TestDecoderProperties:
    @given(_state)
    def test_job_status_round_trips(self, state: responses.JobStatus) -> None:
        """Whatever status we can describe decodes back to the same value from camelCase JSON."""
        data = msgspec.json.encode(state)
        assert b"unitErrors" in data and b"itemsWithNames" in data
        assert responses.job_status(data) == state

    @given(st.lists(st.builds(responses.Integration, integration_uuid=_name, title=_name), max_size=5))
    def test_integration_list_round_trips(self, found: list[responses.Integration]) -> None:
        assert responses.integrations(msgspec.json.encode({"result": found})) == found

    @given(st.binary(max_size=64))
    def test_garbage_is_a_response_error_never_a_crash(self, data: bytes) -> None:
        for decode in (responses.job_status, responses.integrations, responses.folder, responses.job_id):
            try:
                decode(data)
            except responses.ResponseError:
                pass

    @given(_state, st.lists(st.tuples(_name, _name), max_size=6, unique_by=lambda t: t[0]))
    def test_every_sent_object_gets_exactly_one_outcome(
        self, state: responses.JobStatus, items: list[tuple[str, str]]
    ) -> None:
        """Terminal or not, no object is lost or doubled; accepted never exceeds created items."""
        sent = [Sent(key, url, url) for key, url in items]
        if not state.terminal:
            return
        out = responses.outcomes(sent, state)
        assert [o.key for o in out] == [s.key for s in sent]
        assert sum(o.status == "accepted" for o in out) <= len(state.items_with_names)
        failed = {u for e in state.unit_errors for u in e.object_urls}
        assert all((o.status == "rejected") == (s.url in failed) for o, s in zip(out, sent, strict=True))
