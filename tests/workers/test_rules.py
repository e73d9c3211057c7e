"""workers.rules: each documented platform rule, with the rule id, expected and actual values."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from workers.probe.media import MediaInfo, invalid
from workers.rules import encord, labelbox
from workers.rules.verdict import Violation

MIB = 1024 * 1024


def video(**changes: Any) -> MediaInfo:
    """A video Labelbox and Encord both accept: 10 s, 25 fps, 250 frames, H.264 in MP4."""
    base = MediaInfo(
        valid=True,
        kind="video",
        container="mp4",
        mime_type="video/mp4",
        file_size=5 * MIB,
        width=1280,
        height=720,
        codec="h264",
        fps=25.0,
        nominal_fps=25.0,
        duration=10.0,
        frames=250,
        vfr=False,
        negative_pts=False,
        sar="1:1",
        sar_vui="1:1",
    )
    return msgspec.structs.replace(base, **changes)


def image(**changes: Any) -> MediaInfo:
    base = MediaInfo(
        valid=True,
        kind="image",
        container="jpeg",
        mime_type="image/jpeg",
        file_size=MIB,
        width=800,
        height=600,
    )
    return msgspec.structs.replace(base, **changes)


def audio(**changes: Any) -> MediaInfo:
    base = MediaInfo(
        valid=True,
        kind="audio",
        container="mp3",
        mime_type="audio/mpeg",
        file_size=MIB,
        duration=61.5,
        codec="mp3",
        sample_rate=44100,
        channels=2,
    )
    return msgspec.structs.replace(base, **changes)


def rules(violations: list[Violation]) -> list[str]:
    return [v.rule for v in violations]


def only(violations: list[Violation], rule: str) -> Violation:
    found = [v for v in violations if v.rule == rule]
    assert len(found) == 1, rules(violations)
    return found[0]


class TestLabelboxVideo:
    def test_conforming_video_is_accepted_with_every_check_true(self) -> None:
        """An MP4/H.264 video within all limits passes and the report says why."""
        r = labelbox.check(video())
        assert r.accept and not r.errors and not r.warnings
        assert r.container_mp4 and r.codec_supported and r.frame_count_consistent and r.sar_square
        assert r.over_20000_frames is False
        assert labelbox.verdict(video()).ok

    def test_hevc_is_accepted(self) -> None:
        """H.265 is a documented codec."""
        assert labelbox.check(video(codec="hevc")).accept

    @pytest.mark.parametrize("container", ["mov", "matroska", "webm"])
    def test_only_mp4_containers(self, container: str) -> None:
        """QuickTime, Matroska and WebM are refused, naming the container found."""
        r = labelbox.check(video(container=container))
        v = only(r.errors, "labelbox.video.container")
        assert (v.expected, v.actual) == ("mp4", container)
        assert r.container_mp4 is False and not r.accept

    @pytest.mark.parametrize("codec", ["vp9", "av1", "mp4v", None])
    def test_only_h264_or_h265(self, codec: str | None) -> None:
        """Other or unknown codecs are refused with the codec found."""
        v = only(labelbox.check(video(codec=codec)).errors, "labelbox.video.codec")
        assert v.expected == ["h264", "hevc"] and v.actual == codec

    def test_size_limit_is_1024_mib_inclusive(self) -> None:
        """1024 MiB is accepted; one byte more is refused with the size."""
        assert labelbox.check(video(file_size=1024 * MIB)).accept
        v = only(labelbox.check(video(file_size=1024 * MIB + 1)).errors, "labelbox.video.max_size")
        assert v.actual == 1024 * MIB + 1 and str(1024 * MIB) in v.expected

    def test_frame_limit_is_20000_inclusive(self) -> None:
        """20,000 frames is accepted; 20,001 is refused with the count."""
        assert labelbox.check(video(frames=20_000, duration=800.0)).accept
        r = labelbox.check(video(frames=20_001, duration=800.04))
        v = only(r.errors, "labelbox.video.max_frames")
        assert v.actual == 20_001 and "20000" in v.expected
        assert r.over_20000_frames is True

    def test_unknown_frame_count_is_refused(self) -> None:
        """A video whose frame count could not be read cannot be shown to be within limits."""
        assert "labelbox.video.frames_known" in rules(labelbox.check(video(frames=None)).errors)

    def test_fps_times_duration_must_equal_frames(self) -> None:
        """round(fps * duration) != frames is refused showing the product and the frame count."""
        r = labelbox.check(video(fps=25.0, nominal_fps=25.0, duration=10.0, frames=260))
        v = only(r.errors, "labelbox.video.frame_count_consistency")
        assert v.expected == 260
        assert "round(fps*duration)" in v.actual and "= 250" in v.actual
        assert r.frame_count_consistent is False

    def test_nominal_fps_times_duration_must_equal_frames_too(self) -> None:
        """The second formula uses the nominal rate: it can fail when the first holds."""
        r = labelbox.check(video(fps=25.0, nominal_fps=30.0, duration=10.0, frames=250))
        v = only(r.errors, "labelbox.video.frame_count_consistency")
        assert "nominal_fps" in v.actual and "= 300" in v.actual

    def test_rounding_tolerates_fractional_rates(self) -> None:
        """29.97 fps for 10.01 s has 300 frames: consistent after rounding."""
        r = labelbox.check(video(fps=30000 / 1001, nominal_fps=30000 / 1001, duration=10.01, frames=300))
        assert r.frame_count_consistent is True and r.accept

    def test_unknown_fps_makes_consistency_unknown_not_an_error(self) -> None:
        """Without fps the consistency check cannot run and says so (None)."""
        r = labelbox.check(video(fps=None))
        assert r.frame_count_consistent is None
        assert "labelbox.video.frame_count_consistency" not in rules(r.errors)

    def test_vfr_is_refused(self) -> None:
        """Variable frame rate is an error with expected False, actual True."""
        v = only(labelbox.check(video(vfr=True)).errors, "labelbox.video.vfr")
        assert (v.expected, v.actual) == (False, True)

    def test_negative_pts_is_refused(self) -> None:
        """Negative presentation timestamps are an error."""
        v = only(labelbox.check(video(negative_pts=True)).errors, "labelbox.video.negative_pts")
        assert (v.expected, v.actual) == (False, True)

    @pytest.mark.parametrize(
        ("pasp", "vui", "sar"),
        [("4:3", None, "4:3"), (None, "64:45", "64:45"), ("1:1", "4:3", "1:1"), ("4:3", "1:1", "4:3")],
    )
    def test_sar_must_be_square_in_pasp_and_vui(self, pasp: str | None, vui: str | None, sar: str) -> None:
        """A non-square SAR in either the container (pasp) or the codec (VUI) is refused, naming it."""
        r = labelbox.check(video(sar_pasp=pasp, sar_vui=vui, sar=sar))
        v = only(r.errors, "labelbox.video.sar")
        assert v.expected == "1:1"
        assert v.actual in {pasp, vui} - {None, "1:1"}
        assert r.sar_square is False

    @pytest.mark.parametrize(("pasp", "vui"), [("1:1", "1:1"), ("3:3", None), (None, "0:0"), (None, None)])
    def test_square_or_unspecified_sar_passes(self, pasp: str | None, vui: str | None) -> None:
        """Equal terms, or VUI's 'unspecified' 0:0, are square; no SAR at all is unknown (None)."""
        r = labelbox.check(video(sar_pasp=pasp, sar_vui=vui, sar=pasp or vui))
        assert "labelbox.video.sar" not in rules(r.errors)
        assert r.sar_square is (None if pasp is None and vui is None else True)

    def test_all_failures_are_reported_together(self) -> None:
        """A video breaking several rules lists each one."""
        r = labelbox.check(video(container="mov", codec="vp9", vfr=True, negative_pts=True))
        assert set(rules(r.errors)) >= {
            "labelbox.video.container",
            "labelbox.video.codec",
            "labelbox.video.vfr",
            "labelbox.video.negative_pts",
        }


class TestLabelboxOther:
    @pytest.mark.parametrize("container", ["jpeg", "png", "bmp"])
    def test_supported_image_formats(self, container: str) -> None:
        """JPEG, PNG and BMP are accepted."""
        assert labelbox.check(image(container=container)).accept

    @pytest.mark.parametrize("container", ["gif", "webp", "tiff"])
    def test_other_image_formats_are_refused(self, container: str) -> None:
        """GIF, WebP and TIFF images are refused with the format named."""
        v = only(labelbox.check(image(container=container)).errors, "labelbox.image.format")
        assert v.actual == container and v.expected == ["bmp", "jpeg", "png"]

    def test_image_size_limit_is_256_mib_inclusive(self) -> None:
        """256 MiB is accepted; one byte more is refused with the size."""
        assert labelbox.check(image(file_size=256 * MIB)).accept
        v = only(labelbox.check(image(file_size=256 * MIB + 1)).errors, "labelbox.image.max_size")
        assert v.actual == 256 * MIB + 1

    def test_over_9000_px_is_a_warning_not_an_error(self) -> None:
        """A side over 9000 px warns with the dimensions and is still accepted."""
        r = labelbox.check(image(width=9001, height=200))
        assert r.accept and r.dims_recommended is False
        w = only(r.warnings, "labelbox.image.dims")
        assert w.actual == "9001x200" and "9000" in w.expected
        assert labelbox.verdict(image(width=9001, height=200)).ok

    def test_9000_px_is_fine(self) -> None:
        """Exactly 9000 px on a side is within the recommendation."""
        r = labelbox.check(image(width=9000, height=9000))
        assert r.dims_recommended is True and not r.warnings

    def test_audio_is_accepted(self) -> None:
        """Audio files become AUDIO rows."""
        assert labelbox.check(audio()).accept
        assert labelbox.MEDIA_TYPE["audio"] == "AUDIO"

    def test_unsupported_audio_container(self) -> None:
        """An audio kind in an unknown container is refused with the container."""
        assert only(labelbox.check(audio(container="aiff")).errors, "labelbox.audio.format").actual == "aiff"

    def test_non_media_is_refused(self) -> None:
        """Documents and other files are not importable media."""
        v = only(
            labelbox.check(MediaInfo(valid=True, kind="other", container="text")).errors, "labelbox.kind"
        )
        assert v.actual == "text"

    def test_invalid_media_is_refused_with_the_probe_error(self) -> None:
        """Unreadable media carries the probe's error into the rule message."""
        r = labelbox.check(invalid("moov box not found"))
        v = only(r.errors, "labelbox.media.valid")
        assert "moov box not found" in v.message and not r.accept


class TestEncordVideo:
    def test_metadata_from_the_probe(self) -> None:
        """A clean video gets videoMetadata with fps, duration, size and MIME type from the probe."""
        r = encord.check(video())
        assert not r.errors and not r.warnings
        assert r.videoMetadata == encord.VideoMetadata(
            fps=25.0, duration=10.0, width=1280, height=720, file_size=5 * MIB, mime_type="video/mp4"
        )
        assert encord.metadata(r) == {"videoMetadata": r.videoMetadata}

    @pytest.mark.parametrize("container", ["mp4", "mov", "webm", "matroska"])
    def test_encord_containers(self, container: str) -> None:
        """MP4, MOV, WebM and MKV video register."""
        assert not encord.check(video(container=container)).errors

    def test_other_container_is_an_error(self) -> None:
        """An AVI video is refused with the container named."""
        assert only(encord.check(video(container="avi")).errors, "encord.video.container").actual == "avi"

    @pytest.mark.parametrize(
        ("changes", "rule"),
        [
            ({"vfr": True}, "encord.video.vfr"),
            ({"negative_pts": True}, "encord.video.negative_pts"),
            ({"frames": 251}, "encord.video.frame_count_consistency"),
            ({"fps": None}, "encord.video.metadata"),
            ({"width": None}, "encord.video.metadata"),
        ],
    )
    def test_untrustworthy_metadata_is_omitted_with_a_warning(
        self, changes: dict[str, Any], rule: str
    ) -> None:
        """Without strict access, doubtful or missing values are not sent and a warning says why."""
        r = encord.check(video(**changes))
        assert not r.errors
        assert rule in rules(r.warnings)
        assert r.videoMetadata is None and encord.metadata(r) == {}

    @pytest.mark.parametrize(
        ("changes", "rule"),
        [
            ({"vfr": True}, "encord.video.vfr"),
            ({"negative_pts": True}, "encord.video.negative_pts"),
            ({"frames": 251}, "encord.video.frame_count_consistency"),
            ({"duration": None}, "encord.video.metadata"),
        ],
    )
    def test_strict_access_turns_them_into_errors(self, changes: dict[str, Any], rule: str) -> None:
        """Under strict client-only access the same problems refuse the object."""
        r = encord.check(video(**changes), strict=True)
        assert rule in rules(r.errors) and not r.warnings
        assert not encord.verdict(video(**changes), strict=True).ok

    def test_inconsistent_frames_names_both_values(self) -> None:
        """The frame-count violation shows the frame count and round(fps x duration)."""
        v = only(encord.check(video(frames=251)).warnings, "encord.video.frame_count_consistency")
        assert (v.expected, v.actual) == (251, 250)

    def test_missing_values_are_listed(self) -> None:
        """The metadata violation lists which values are missing."""
        v = only(encord.check(video(fps=None, height=None)).warnings, "encord.video.metadata")
        assert v.actual == {"missing": ["fps", "height"]}


class TestEncordImageAudio:
    def test_image_metadata(self) -> None:
        """An image gets imageMetadata with MIME type, size and dimensions."""
        r = encord.check(image(container="webp", mime_type="image/webp"))
        assert r.imageMetadata == encord.ImageMetadata(
            mime_type="image/webp", file_size=MIB, width=800, height=600
        )

    def test_image_without_dimensions(self) -> None:
        """Unknown dimensions warn (omitted) normally and refuse under strict access."""
        assert rules(encord.check(image(width=None)).warnings) == ["encord.image.metadata"]
        assert rules(encord.check(image(width=None), strict=True).errors) == ["encord.image.metadata"]

    def test_unsupported_image_format(self) -> None:
        """An image container Encord does not take is refused."""
        assert only(encord.check(image(container="heic")).errors, "encord.image.format").actual == "heic"

    def test_audio_metadata(self) -> None:
        """Audio gets duration, size, MIME type and the stream values that are known."""
        r = encord.check(audio())
        assert r.audioMetadata == encord.AudioMetadata(
            duration=61.5,
            file_size=MIB,
            mime_type="audio/mpeg",
            sample_rate=44100,
            codec="mp3",
            num_channels=2,
        )

    def test_estimated_audio_duration(self) -> None:
        """An estimated duration is not sent: a warning normally, an error under strict access."""
        r = encord.check(audio(duration_estimated=True))
        v = only(r.warnings, "encord.audio.metadata")
        assert v.actual == {"missing": [], "duration_estimated": True}
        assert r.audioMetadata is None
        assert rules(encord.check(audio(duration_estimated=True), strict=True).errors) == [
            "encord.audio.metadata"
        ]

    def test_non_media_and_invalid(self) -> None:
        """Documents and unreadable files are errors whatever the access mode."""
        assert rules(encord.check(MediaInfo(valid=True, kind="document", container="pdf")).errors) == [
            "encord.kind"
        ]
        assert rules(encord.check(invalid("truncated")).errors) == ["encord.media.valid"]
