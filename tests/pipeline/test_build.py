"""daemon.pipeline.build: one probed object becomes a payload item or a rejection that says why."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.jobs import Job, ObjectRef
from daemon.pipeline.build import Builder, file_url, manifest_key_problem
from workers.probe.media import MediaInfo, invalid
from workers.rules.verdict import Violation
from workers.urls import ENCORD_MAX_URL_BYTES as ENCORD_MAX_URL
from workers.urls import url_violations


def url_problem(url: str, platform: str) -> Violation | None:
    """The first URL rule broken (the build stage rejects on it)."""
    found = url_violations(url, platform)  # type: ignore[arg-type]
    return found[0] if found else None


PREFIX = "https://storage.example.com/demo/"

VIDEO = MediaInfo(
    valid=True,
    kind="video",
    container="mp4",
    mime_type="video/mp4",
    file_size=1000,
    width=320,
    height=240,
    codec="h264",
    fps=25.0,
    nominal_fps=25.0,
    duration=2.0,
    frames=50,
    vfr=False,
    negative_pts=False,
    sar="1:1",
)
IMAGE = MediaInfo(
    valid=True, kind="image", container="png", mime_type="image/png", file_size=10, width=4, height=3
)
AUDIO = MediaInfo(
    valid=True, kind="audio", container="wav", mime_type="audio/wav", file_size=44, duration=1.0, channels=1
)


def url_from_key(ref: ObjectRef) -> str:
    return file_url(PREFIX, ref.key)


def builder(platform: str = "labelbox", *, strict: bool = False, make_url: Any = url_from_key) -> Builder:
    return Builder(
        platform=platform, accept_kinds=["video", "image", "audio"], strict=strict, make_url=make_url
    )


def job(info: MediaInfo, key: str = "clips/a.mp4", metadata: dict[str, Any] | None = None) -> Job:
    ref = ObjectRef(origin="file", key=key, path=f"/srv/{key}", metadata=metadata)
    return Job(ref=ref, message_id="m1", global_key=f"demo/{key}", info=info)


def built(b: Builder, j: Job) -> dict[str, Any]:
    b.build(j)
    assert j.rejection is None, j.rejection
    assert j.state == "built"
    out: dict[str, Any] = json.loads(j.body)
    return out


def rejected(b: Builder, j: Job) -> Any:
    b.build(j)
    assert j.state == "dead" and j.body == b""
    assert j.rejection is not None
    return j.rejection


class TestLabelbox:
    @pytest.mark.parametrize(("info", "kind"), [(VIDEO, "VIDEO"), (IMAGE, "IMAGE"), (AUDIO, "AUDIO")])
    def test_valid_media_becomes_a_data_row(self, info: MediaInfo, kind: str) -> None:
        """A valid object gets a data row with the URL, the global key and the media type."""
        j = job(info)
        row = built(builder(), j)
        assert row == {
            "row_data": PREFIX + "clips/a.mp4",
            "global_key": "demo/clips/a.mp4",
            "media_type": kind,
        }
        assert j.kind == kind

    def test_manifest_metadata_and_attachments_pass_through(self) -> None:
        """Metadata fields (by name or schema id), attachments and external_id from a manifest pass."""
        meta = {
            "metadata_fields": [
                {"name": "tag", "value": "x"},
                {"schema_id": "cko8s9r5v0001h2dk9elqdidh", "value": 1},
            ],
            "attachments": [{"type": "IMAGE_OVERLAY", "value": "https://h/o.png", "name": "RGB"}],
            "external_id": "ext-1",
            "media_type": "video",
        }
        row = built(builder(), job(VIDEO, metadata=meta))
        assert row["metadata_fields"] == meta["metadata_fields"]
        assert row["attachments"] == meta["attachments"]
        assert row["external_id"] == "ext-1"
        assert row["media_type"] == "VIDEO"

    def test_unknown_attachment_type_is_rejected_naming_it(self) -> None:
        """An attachment of an undocumented type refuses the object at the build stage."""
        rej = rejected(builder(), job(VIDEO, metadata={"attachments": [{"type": "OVERLAY", "value": "v"}]}))
        assert (rej.stage, rej.rule, rej.actual) == ("build", "labelbox.attachment", "OVERLAY")

    def test_malformed_metadata_fields_are_rejected(self) -> None:
        """A metadata field with an unknown key is a schema error naming the key."""
        rej = rejected(builder(), job(VIDEO, metadata={"metadata_fields": [{"nam": "tag", "value": "x"}]}))
        assert rej.rule == "labelbox.row.schema" and "nam" in rej.message

    def test_media_type_mismatch_is_rejected(self) -> None:
        """A manifest saying IMAGE for a video is refused with both values."""
        rej = rejected(builder(), job(VIDEO, metadata={"media_type": "IMAGE"}))
        assert (rej.rule, rej.expected, rej.actual) == ("labelbox.media_type", "VIDEO", "IMAGE")

    def test_rule_violations_are_rejected_with_all_of_them(self) -> None:
        """The first broken rule is the rejection's rule; the message lists every one."""
        bad = msgspec.structs.replace(VIDEO, container="mov", codec="vp9")
        rej = rejected(builder(), job(bad))
        assert rej.stage == "validate"
        assert rej.rule == "labelbox.video.container" and rej.actual == "mov"
        assert "labelbox.video.codec" in rej.message

    def test_warnings_are_kept_on_the_job(self) -> None:
        """A warning (over 9000 px) does not block and is recorded on the job."""
        j = job(msgspec.structs.replace(IMAGE, width=12000), key="big.png")
        built(builder(), j)
        assert any("labelbox.image.dims" in w for w in j.warnings)

    @pytest.mark.parametrize("char", ["#", "<", ">", "|"])
    def test_refused_url_characters_are_named(self, char: str) -> None:
        """A URL with a character Labelbox refuses is rejected at the URL stage naming it."""
        rej = rejected(builder(make_url=lambda ref: f"https://h/a{char}b{char}.mp4"), job(VIDEO))
        assert (rej.stage, rej.rule, rej.actual) == ("url", "labelbox.url.characters", char)

    def test_all_refused_characters_are_listed_once(self) -> None:
        """Several refused characters are listed sorted, each once."""
        v = url_problem("https://h/a|b#c<d>e#", "labelbox")
        assert v is not None and v.actual == "#<>|"


class TestEncord:
    def test_video_item_with_metadata_and_title(self) -> None:
        """A video becomes an Encord item titled by its key, with videoMetadata from the probe."""
        j = job(VIDEO)
        item = built(builder("encord"), j)
        assert item["objectUrl"] == PREFIX + "clips/a.mp4"
        assert item["title"] == "clips/a.mp4"
        assert item["videoMetadata"] == {
            "fps": 25.0,
            "duration": 2.0,
            "width": 320,
            "height": 240,
            "file_size": 1000,
            "mime_type": "video/mp4",
        }
        assert j.kind == "VIDEO"

    @pytest.mark.parametrize(
        ("info", "kind", "meta"), [(IMAGE, "IMAGE", "imageMetadata"), (AUDIO, "AUDIO", "audioMetadata")]
    )
    def test_image_and_audio_items(self, info: MediaInfo, kind: str, meta: str) -> None:
        """Images and audio get their own metadata object and kind."""
        j = job(info, key="x")
        item = built(builder("encord"), j)
        assert meta in item and j.kind == kind

    def test_manifest_title_and_client_metadata(self) -> None:
        """A title and clientMetadata from the manifest are used."""
        item = built(builder("encord"), job(IMAGE, metadata={"title": "T", "clientMetadata": {"a": [1]}}))
        assert item["title"] == "T" and item["clientMetadata"] == {"a": [1]}

    def test_client_metadata_must_be_an_object(self) -> None:
        """clientMetadata that is not a JSON object is rejected with its type."""
        rej = rejected(builder("encord"), job(IMAGE, metadata={"clientMetadata": ["a"]}))
        assert (rej.rule, rej.actual) == ("encord.client_metadata", "list")

    def test_vfr_omits_metadata_unless_strict(self) -> None:
        """A VFR video registers without videoMetadata, or is refused under strict access."""
        vfr = msgspec.structs.replace(VIDEO, vfr=True)
        j = job(vfr)
        assert "videoMetadata" not in built(builder("encord"), j)
        assert any("encord.video.vfr" in w for w in j.warnings)
        assert rejected(builder("encord", strict=True), job(vfr)).rule == "encord.video.vfr"

    def test_characters_labelbox_refuses_are_fine_for_encord(self) -> None:
        """Encord has no '#' rule."""
        item = built(builder("encord", make_url=lambda ref: "https://h/a#b.mp4"), job(VIDEO))
        assert item["objectUrl"] == "https://h/a#b.mp4"

    def test_url_over_16_kb_is_refused(self) -> None:
        """An Encord URL longer than 16 KB is refused with its length; exactly 16 KB is fine."""
        head = "https://h/"
        at_limit = head + "a" * (ENCORD_MAX_URL - len(head))
        assert url_problem(at_limit, "encord") is None
        rej = rejected(builder("encord", make_url=lambda ref: at_limit + "b"), job(VIDEO))
        assert (rej.stage, rej.rule, rej.actual) == ("url", "encord.url.length", ENCORD_MAX_URL + 1)
        assert url_problem(at_limit + "b", "labelbox") is None


class TestRejections:
    @pytest.mark.parametrize("platform", ["labelbox", "encord"])
    def test_invalid_media_is_a_probe_rejection(self, platform: str) -> None:
        """Media the probe could not read is rejected at the probe stage with its error."""
        rej = rejected(builder(platform), job(invalid("moov not found", container="mp4")))
        assert (rej.stage, rej.rule, rej.message, rej.actual) == (
            "probe",
            "media.invalid",
            "moov not found",
            "mp4",
        )

    @pytest.mark.parametrize("platform", ["labelbox", "encord"])
    def test_http_url_is_refused(self, platform: str) -> None:
        """Plain http URLs are refused for both platforms, naming the scheme."""
        rej = rejected(builder(platform, make_url=lambda ref: "http://h/a.mp4"), job(VIDEO))
        assert (rej.stage, rej.rule, rej.actual) == ("url", "url.https", "http")

    def test_url_maker_error_is_a_url_rejection(self) -> None:
        """A URL that cannot be made is rejected at the URL stage with the object's key."""

        def fail(ref: ObjectRef) -> str:
            raise ValueError("no url_prefix configured")

        rej = rejected(builder(make_url=fail), job(VIDEO))
        assert (rej.stage, rej.rule, rej.actual) == ("url", "url.make", "clips/a.mp4")
        assert rej.message == "no url_prefix configured"

    def test_kind_not_accepted(self) -> None:
        """Kinds outside accept_kinds are refused naming the kind and container."""
        b = Builder(platform="labelbox", accept_kinds=["image"], strict=False, make_url=url_from_key)
        rej = rejected(b, job(VIDEO))
        assert (rej.rule, rej.expected, rej.actual) == ("target.kind", ["image"], "video (mp4)")

    def test_manifest_key_check_is_labelbox_only(self) -> None:
        """An explicit global key is checked against Labelbox rules, not rewritten; Encord has none."""
        v = manifest_key_problem("bad#key", "labelbox")
        assert v is not None and v.rule == "labelbox.global_key.characters"
        assert manifest_key_problem("bad#key", "encord") is None


class TestFileUrl:
    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(rel=st.text(min_size=1, max_size=80).filter(lambda s: "\x00" not in s))
    def test_percent_encoding_round_trips_and_is_url_safe(self, rel: str) -> None:
        """The path is percent-encoded so it decodes back exactly and has no character URLs forbid."""
        url = file_url(PREFIX, rel)
        assert url.startswith(PREFIX)
        tail = url[len(PREFIX) :]
        assert unquote(tail, errors="strict") == rel
        assert tail.isascii()
        assert not set(tail) & set(' #?<>|"\\^`{}[]\t\n')
        assert url_problem(url, "labelbox") is None

    def test_examples(self) -> None:
        """Spaces, '#', '?', '%' and non-ASCII are escaped; slashes are kept."""
        assert file_url(PREFIX, "a b/c#d?e%f/é.mp4") == PREFIX + "a%20b/c%23d%3Fe%25f/%C3%A9.mp4"
