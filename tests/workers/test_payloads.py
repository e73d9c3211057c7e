"""workers.payloads: Labelbox data rows as in the seeds, Encord registration JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.payloads import encord as enc
from workers.payloads import labelbox as lb
from workers.rules.encord import AudioMetadata, ImageMetadata, VideoMetadata

# The JSON import-format examples of Labelbox's "Import video data" / "Import image data" pages
# (the seeds), copied verbatim.
SEED_ROWS: dict[str, list[dict[str, Any]]] = json.loads(
    (Path(__file__).parent / "data" / "labelbox_import_rows.json").read_text()
)


def seed_rows(media: str) -> list[dict[str, Any]]:
    return SEED_ROWS[media]


def row_from_input(given: lb.DataRowInput) -> lb.DataRow:
    assert given.global_key is not None
    return lb.DataRow(
        row_data=given.row_data,
        global_key=given.global_key,
        media_type=given.media_type,
        external_id=given.external_id,
        metadata_fields=given.metadata_fields,
        attachments=given.attachments,
    )


class TestLabelboxRows:
    @pytest.mark.parametrize("seed", ["video", "image"])
    def test_seed_rows_round_trip_exactly(self, seed: str) -> None:
        """Every seed example row decodes as input and re-encodes to the same JSON object."""
        for row in seed_rows(seed):
            given = msgspec.convert(row, lb.DataRowInput)
            body = lb.encode(row_from_input(given))
            assert json.loads(body) == row

    def test_seed_metadata_by_name_and_by_schema_id(self) -> None:
        """Metadata fields addressed by name or by schema id keep exactly that key."""
        rows = seed_rows("video")
        by_name = [m for r in rows for m in r["metadata_fields"] if "name" in m]
        by_id = [m for r in rows for m in r["metadata_fields"] if "schema_id" in m]
        assert by_name and by_id
        for m in by_name + by_id:
            out = json.loads(msgspec.json.encode(msgspec.convert(m, lb.MetadataField)))
            assert out == m

    def test_optional_fields_are_omitted(self) -> None:
        """A minimal row carries only row_data, global_key and media_type."""
        row = lb.DataRow(row_data="https://h/a.jpg", global_key="a.jpg", media_type="IMAGE")
        assert json.loads(lb.encode(row)) == {
            "row_data": "https://h/a.jpg",
            "global_key": "a.jpg",
            "media_type": "IMAGE",
        }

    def test_json_array_is_the_upload_file(self) -> None:
        """The files document is a JSON array of the rows in order."""
        rows = seed_rows("image")
        bodies = [lb.encode(row_from_input(msgspec.convert(r, lb.DataRowInput))) for r in rows]
        assert json.loads(lb.json_array(bodies)) == rows
        assert lb.json_array([]) == b"[]"

    def test_input_refuses_unknown_keys(self) -> None:
        """A manifest row with a typo is refused naming the key."""
        with pytest.raises(msgspec.ValidationError, match="metadata_field"):
            msgspec.convert({"row_data": "https://h/a", "metadata_field": []}, lb.DataRowInput)

    @pytest.mark.parametrize("kind", sorted(lb.ATTACHMENT_TYPES))
    def test_documented_attachment_types_are_accepted(self, kind: str) -> None:
        """Each documented attachment type with a value is fine."""
        assert lb.attachment_problem(lb.Attachment(type=kind, value="https://h/x")) is None

    def test_bad_attachments_are_explained(self) -> None:
        """An unknown type is named with the allowed ones; an empty value is refused."""
        problem = lb.attachment_problem(lb.Attachment(type="IMAGE_OVERLAYS", value="v"))
        assert problem is not None and "'IMAGE_OVERLAYS'" in problem and "IMAGE_OVERLAY" in problem
        assert lb.attachment_problem(lb.Attachment(type="RAW_TEXT", value="")) == "attachment value is empty"


VIDEO_META = VideoMetadata(
    fps=25.0, duration=4.0, width=640, height=360, file_size=123456, mime_type="video/mp4"
)


def item_of(kind: str, n: int) -> enc.Item:
    url = f"https://bucket.s3.eu-west-2.amazonaws.com/{kind.lower()}/{n}"
    if kind == "VIDEO":
        return enc.Item(objectUrl=url, title=f"v{n}", videoMetadata=VIDEO_META)
    if kind == "IMAGE":
        return enc.Item(
            objectUrl=url,
            imageMetadata=ImageMetadata(mime_type="image/png", file_size=10, width=2, height=3),
        )
    return enc.Item(
        objectUrl=url,
        clientMetadata={"n": n, "tags": ["a", "é"]},
        audioMetadata=AudioMetadata(duration=1.5, file_size=99, mime_type="audio/mpeg", sample_rate=44100),
    )


class TestEncordItems:
    def test_video_item_has_documented_keys(self) -> None:
        """A video item carries objectUrl, title, clientMetadata and a full videoMetadata."""
        item = enc.Item(
            objectUrl="https://b.s3.amazonaws.com/v.mp4",
            title="v.mp4",
            clientMetadata={"split": "train"},
            videoMetadata=VIDEO_META,
        )
        assert json.loads(enc.encode(item)) == {
            "objectUrl": "https://b.s3.amazonaws.com/v.mp4",
            "title": "v.mp4",
            "clientMetadata": {"split": "train"},
            "videoMetadata": {
                "fps": 25.0,
                "duration": 4.0,
                "width": 640,
                "height": 360,
                "file_size": 123456,
                "mime_type": "video/mp4",
            },
        }

    def test_absent_metadata_is_omitted(self) -> None:
        """An item without metadata has only objectUrl (Encord then runs its own checks)."""
        assert json.loads(enc.encode(enc.Item(objectUrl="https://h/x"))) == {"objectUrl": "https://h/x"}

    def test_audio_metadata_omits_unknown_fields(self) -> None:
        """Unknown optional audio values are left out rather than sent as null."""
        meta = json.loads(
            msgspec.json.encode(AudioMetadata(duration=2.0, file_size=5, mime_type="audio/wav"))
        )
        assert meta == {"duration": 2.0, "file_size": 5, "mime_type": "audio/wav"}

    def test_spec_item_input_accepts_the_documented_keys(self) -> None:
        """An item as written in an Encord JSON spec decodes; a typo is refused."""
        spec = {
            "objectUrl": "https://h/v.mp4",
            "title": "t",
            "createVideo": False,
            "clientMetadata": {"a": 1},
            "videoMetadata": {"fps": 30},
        }
        assert msgspec.convert(spec, enc.ItemInput).objectUrl == "https://h/v.mp4"
        with pytest.raises(msgspec.ValidationError, match="objectURL"):
            msgspec.convert({"objectURL": "https://h"}, enc.ItemInput)


class TestRegistrationJson:
    def test_groups_and_skip_duplicates(self) -> None:
        """Items are grouped under videos, images and audio, and skip_duplicate_urls is true."""
        items = [("VIDEO", enc.encode(item_of("VIDEO", 1))), ("IMAGE", enc.encode(item_of("IMAGE", 2)))]
        doc = json.loads(enc.registration_json(items))
        assert doc["skip_duplicate_urls"] is True
        assert set(doc) == {"videos", "images", "skip_duplicate_urls"}
        assert doc["videos"][0]["videoMetadata"]["fps"] == 25.0
        assert doc["images"][0]["imageMetadata"]["width"] == 2

    def test_empty_document_is_still_valid(self) -> None:
        """No items gives a document with only the flag."""
        assert json.loads(enc.registration_json([])) == {"skip_duplicate_urls": True}

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(kinds=st.lists(st.sampled_from(["VIDEO", "IMAGE", "AUDIO"]), max_size=30))
    def test_any_mix_is_valid_json_with_order_kept_per_group(self, kinds: list[str]) -> None:
        """For any mix of kinds the document is valid JSON holding every item once, in order per group."""
        items = [item_of(k, n) for n, k in enumerate(kinds)]
        doc = json.loads(
            enc.registration_json([(k, enc.encode(i)) for k, i in zip(kinds, items, strict=True)])
        )
        assert doc.pop("skip_duplicate_urls") is True
        for kind, group in enc.GROUP.items():
            expected = [json.loads(enc.encode(i)) for k, i in zip(kinds, items, strict=True) if k == kind]
            assert doc.pop(group, []) == expected
        assert doc == {}
