"""``ingestd probe --json``: the contract other tools read, on paths and on http(s) URLs."""

from __future__ import annotations

import json
from pathlib import Path

from bench.nginx import nginx
from tests.conftest import ROOT, ingestd, require_tool

MEDIA = ROOT / "examples" / "media"
CONTRACT = {
    "target",
    "valid",
    "kind",
    "container",
    "mime_type",
    "file_size",
    "width",
    "height",
    "labelbox",
    "encord",
    "bytes_read",
    "requests",
}
LABELBOX = {
    "accept",
    "container_mp4",
    "codec_supported",
    "over_20000_frames",
    "frame_count_consistent",
    "sar_square",
    "dims_recommended",
    "errors",
    "warnings",
}


def probe_json(*targets: str) -> tuple[int, list[dict[str, object]]]:
    proc = ingestd("probe", "--json", *targets)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


class TestContract:
    def test_video_image_audio_and_text(self) -> None:
        """One JSON object per target with the contract's fields and the platforms' verdicts."""
        code, (video, sar, image, audio, text) = probe_json(
            str(MEDIA / "videos" / "street.mp4"),
            str(MEDIA / "videos" / "anamorphic.mp4"),
            str(MEDIA / "images" / "chart.jpg"),
            str(MEDIA / "audio" / "tone.mp3"),
            str(MEDIA / "notes.txt"),
        )
        assert code == 0
        for rep in (video, sar, image, audio, text):
            assert set(rep) >= CONTRACT and set(rep["labelbox"]) >= LABELBOX  # type: ignore[arg-type]
        assert (video["kind"], video["container"], video["codec"]) == ("video", "mp4", "h264")
        assert (video["width"], video["height"], video["fps"], video["frames"]) == (320, 240, 30.0, 60)
        assert video["fps_rational"] == "30/1" and video["duration"] == 2.0 and video["sar"] == "1:1"
        assert video["labelbox"]["accept"] is True and video["requests"] == 1  # type: ignore[index]
        assert (
            video["encord"]["videoMetadata"]["file_size"] == (MEDIA / "videos" / "street.mp4").stat().st_size
        )  # type: ignore[index]
        assert sar["sar"] == "4:3" and sar["labelbox"]["sar_square"] is False  # type: ignore[index]
        assert [e["rule"] for e in sar["labelbox"]["errors"]] == ["labelbox.video.sar"]  # type: ignore[index]
        assert (image["kind"], image["container"], image["width"], image["height"]) == (
            "image",
            "jpeg",
            640,
            480,
        )
        assert image["labelbox"]["dims_recommended"] is True  # type: ignore[index]
        assert (audio["codec"], audio["sample_rate"], audio["channels"]) == ("mp3", 44100, 1)
        assert abs(float(audio["duration"]) - 2.0) < 0.03  # type: ignore[arg-type]
        assert "audioMetadata" in audio["encord"]  # type: ignore[operator]
        assert text["kind"] != "video" and text["labelbox"]["accept"] is False  # type: ignore[index]

    def test_invalid_media_exits_1_with_a_specific_error(self, tmp_path: Path) -> None:
        """A truncated MP4 is valid: false with an error naming what is wrong; exit status 1."""
        data = (MEDIA / "videos" / "street.mp4").read_bytes()
        cut = tmp_path / "cut.mp4"
        cut.write_bytes(data[:1000])
        code, (rep,) = probe_json(str(cut))
        assert code == 1 and rep["valid"] is False and rep["container"] in ("bmff", "mp4")
        assert rep["error"] and "labelbox.media.valid" in json.dumps(rep["labelbox"])

    def test_http_url_reads_only_the_header(self, tmp_path: Path) -> None:
        """Over HTTP the probe uses Range requests: same answer as the file, far fewer bytes than
        the object when it is large."""
        require_tool("nginx")
        big = tmp_path / "big.jpg"
        big.write_bytes((MEDIA / "images" / "chart.jpg").read_bytes() + b"\0" * 3_000_000)
        (tmp_path / "street.mp4").write_bytes((MEDIA / "videos" / "street.mp4").read_bytes())
        with nginx(tmp_path) as base:
            code, (img, vid) = probe_json(f"{base}/big.jpg", f"{base}/street.mp4")
        assert code == 0
        assert (img["width"], img["height"], img["file_size"]) == (640, 480, big.stat().st_size)
        assert int(img["bytes_read"]) <= 65536 and img["requests"] == 1  # type: ignore[arg-type]
        assert vid["frames"] == 60 and vid["labelbox"]["accept"] is True  # type: ignore[index]


class TestVocabularyAndVerdicts:
    def test_plain_output_names_media_types_as_json_does(self) -> None:
        """One vocabulary: the MIME type in the plain output is the one --json gives."""
        targets = [str(MEDIA / "audio" / "tone.mp3"), str(MEDIA / "videos" / "bars.mov")]
        plain = ingestd("probe", *targets).stdout.splitlines()
        _, reports = probe_json(*targets)
        assert [r["mime_type"] for r in reports] == ["audio/mpeg", "video/quicktime"]
        for line, rep in zip(plain, reports, strict=True):
            assert f": {rep['mime_type']} container={rep['container']} " in line
        assert "audio/mp3" not in "".join(plain) and "video/mov" not in "".join(plain)

    def test_platform_makes_a_rejection_the_exit_status(self) -> None:
        """Valid media that a platform's rules reject: exit 0 without --platform, 1 with it."""
        mov = str(MEDIA / "videos" / "bars.mov")  # Labelbox wants MP4; Encord takes it
        assert ingestd("probe", mov).returncode == 0
        assert ingestd("probe", "--platform", "labelbox", mov).returncode == 1
        assert ingestd("probe", "--platform", "encord", mov).returncode == 0
        assert ingestd("probe", "--platform", "encord", str(MEDIA / "notes.txt")).returncode == 1
