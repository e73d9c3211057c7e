"""Matroska/WebM, AVI and MPEG-TS timing (fps, duration) against ffprobe, on files ffmpeg makes.

The clips are small (64x48, 2-3 s) and made once per module; ``big.ts`` (160x120, 8 s, 425 KB)
puts the last timestamps beyond the head so the tail window costs its one read. ``live.webm``
is written to a pipe, as live muxers write it: Segment and Clusters of unknown size, no
``Duration``.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.probe import mpegts
from workers.probe.engine import DEFAULT_HEAD_BYTES, probe_bytes
from workers.probe.engine import parse as engine_parse
from workers.probe.mpegts import PACKET, WINDOW_PACKETS
from workers.probe.sparse import Sparse
from workers.rules import encord

from .test_image_properties import fed, outcome, sized

X264 = ["-c:v", "libx264", "-preset", "ultrafast"]
# name -> (ffmpeg output options, frame rate, duration in seconds, size)
CLIPS: dict[str, tuple[list[str], str, int, str]] = {
    "ntsc.mkv": (X264, "30000/1001", 2, "64x48"),
    "film.mkv": ([*X264, "-bf", "2"], "24000/1001", 3, "64x48"),
    "sixty.mkv": (X264, "60", 2, "64x48"),
    "vp9.webm": (["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"], "25", 2, "64x48"),
    "vp8.webm": (["-c:v", "libvpx", "-deadline", "realtime"], "30000/1001", 2, "64x48"),
    "live.webm": (["-c:v", "libvpx", "-deadline", "realtime", "-f", "webm"], "25", 2, "64x48"),
    "mpeg4.avi": (["-c:v", "mpeg4"], "24", 2, "64x48"),
    "ntsc.avi": (["-c:v", "mpeg4"], "30000/1001", 3, "64x48"),
    "mjpeg.avi": (["-c:v", "mjpeg"], "50", 2, "64x48"),
    "ntsc.ts": (X264, "30000/1001", 2, "64x48"),
    "film.ts": ([*X264, "-bf", "3"], "24000/1001", 2, "64x48"),
    "mpeg2.ts": (["-c:v", "mpeg2video"], "25", 2, "64x48"),
    "hevc.ts": (["-c:v", "libx265", "-x265-params", "log-level=none"], "50", 2, "64x48"),
    "big.ts": (X264, "30000/1001", 8, "160x120"),
    # sizes that are not whole macroblocks / CTBs: the SPS's cropping window
    "cropped.ts": (X264, "30", 2, "100x74"),
    "cropped-hevc.ts": (["-c:v", "libx265", "-x265-params", "log-level=none"], "24", 2, "100x74"),
    "cropped.mkv": (X264, "30", 2, "100x74"),
    # 4 s of audio, 2 s of video: the Segment lasts 4 s, the video track's DURATION tag 2 s
    "audio-longer.mkv": (
        ["-f", "lavfi", "-i", "sine=duration=4", *X264, "-c:a", "libopus"],
        "25",
        2,
        "64x48",
    ),
    "interlaced.ts": ([*X264, "-flags", "+ildct+ilme", "-x264opts", "tff=1"], "25", 2, "64x48"),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("container-timing")
    for name, (args, rate, seconds, size) in CLIPS.items():
        src = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
        cmd = ["ffmpeg", "-v", "error", "-y", *src, *args]
        if name == "live.webm":  # to a pipe: the muxer cannot seek back to write sizes
            with (root / name).open("wb") as out:
                subprocess.run([*cmd, "pipe:1"], check=True, timeout=60, stdout=out)
        else:
            subprocess.run([*cmd, str(root / name)], check=True, timeout=60)
    return {name: root / name for name in CLIPS}


def ffprobe(path: Path) -> dict[str, Any]:
    entries = "stream=width,height,r_frame_rate,duration,nb_frames:stream_tags=DURATION:format=duration"
    cmd = ["ffprobe", "-v", "quiet", "-select_streams", "v:0", "-show_entries", entries, "-of", "json"]
    out = subprocess.run([*cmd, str(path)], capture_output=True, check=True, timeout=60, text=True).stdout
    parsed = json.loads(out)
    stream: dict[str, Any] = parsed["streams"][0]
    stream["format_duration"] = parsed.get("format", {}).get("duration")
    tag = stream.get("tags", {}).get("DURATION")  # Matroska's per-track statistics, H:MM:SS.nnnnnnnnn
    if tag is not None:
        hours, minutes, seconds = tag.split(":")
        stream["tag_duration"] = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return stream


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_fps_and_duration_match_ffprobe(clips: dict[str, Path], name: str) -> None:
    """fps exactly as ffprobe's r_frame_rate, duration within a millisecond of the stream's
    (for Matroska the video track's DURATION tag, as ffprobe shows it; the Segment's without)."""
    info = probe_bytes(clips[name].read_bytes())
    theirs = ffprobe(clips[name])
    assert info.valid, info.error
    told = Fraction(CLIPS[name][1])
    assert info.fps_rational == theirs["r_frame_rate"] == f"{told.numerator}/{told.denominator}"
    assert info.fps == float(told)
    duration = theirs.get("duration") or theirs.get("tag_duration") or theirs["format_duration"]
    if name == "live.webm":
        assert duration is None and info.duration is None
    else:
        assert info.duration is not None and abs(info.duration - float(duration)) < 1e-3
        assert abs(info.duration - CLIPS[name][2]) < 1 / info.fps  # what ffmpeg was told
        assert round(info.fps * info.duration) == round(Fraction(CLIPS[name][1]) * CLIPS[name][2])
    assert (info.width, info.height) == (theirs["width"], theirs["height"])
    if info.container == "avi":
        assert str(info.frames) == theirs["nb_frames"]
        assert round(info.fps * info.duration) == info.frames
    else:
        assert info.frames is None  # not in these containers' headers


@pytest.mark.parametrize("name", sorted(name for name in CLIPS if name.endswith(".ts")))
def test_ts_rate_declared_in_the_bitstream(clips: dict[str, Path], name: str) -> None:
    """The SPS VUI timing (x264, x265) or MPEG-2 frame_rate_code agrees with the timestamps,
    and stands in for them when a stream has a single timestamp."""
    data = clips[name].read_bytes()
    head = mpegts._head_packets(Sparse.whole(data))
    pid, codec = mpegts._video_stream(mpegts._sections(head)) or (0, "")
    picture = mpegts._picture(codec, mpegts._first_pes_data(head, pid))
    assert picture is not None and picture[2] == Fraction(CLIPS[name][1])
    assert mpegts._timing(mpegts._pts(head, pid)[:1], [], picture[2]) == {
        "fps": float(picture[2]),
        "fps_rational": f"{picture[2].numerator}/{picture[2].denominator}",
    }


@pytest.mark.parametrize("name", ["ntsc.mkv", "film.mkv", "vp9.webm", "vp8.webm", "audio-longer.mkv"])
def test_encord_gets_video_metadata(clips: dict[str, Path], name: str) -> None:
    """The point of reading the timing: Encord's videoMetadata is complete for Matroska/WebM."""
    info = probe_bytes(clips[name].read_bytes())
    assert info.duration_estimated is False  # the video track's own DURATION tag
    report = encord.check(info, strict=True)
    assert report.errors == [] and report.videoMetadata is not None
    assert (report.videoMetadata.fps, report.videoMetadata.duration) == (info.fps, info.duration)


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_requests_stay_few(clips: dict[str, Path], name: str) -> None:
    """One read for headers in the head; a TS longer than the head costs exactly one more, for
    its tail window (big.ts: 130 KB of 425 KB)."""
    data = clips[name].read_bytes()
    info = probe_bytes(data)
    if len(data) <= DEFAULT_HEAD_BYTES:
        assert (info.requests, info.bytes_read) == (1, len(data))
    elif name.endswith(".ts"):
        assert info.requests == 2
        assert info.bytes_read <= min(len(data), DEFAULT_HEAD_BYTES + WINDOW_PACKETS * PACKET)
    else:
        assert info.requests == 1


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_same_result_however_the_bytes_arrive(clips: dict[str, Path], name: str) -> None:
    """Whole, need by need (one byte per need for the small ones), and with trailing data."""
    data = clips[name].read_bytes()
    whole = outcome(engine_parse, Sparse.whole(data))
    assert whole[0] == "ok"
    assert fed(engine_parse, data, one_byte=len(data) < 8000) == whole
    assert fed(engine_parse, data, one_byte=False) == whole
    padded = data + bytes(range(256)) * 20
    assert sized(outcome(engine_parse, Sparse.whole(padded)), len(data)) == whole


@settings(
    max_examples=200,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    index=st.integers(0, 10**6),
    cut=st.one_of(st.integers(0, 2000), st.integers(0, 500_000)),
    at=st.integers(0, 10**6),
    garbage=st.binary(min_size=1, max_size=32),
)
def test_damaged_files_give_a_result_or_a_rejection(
    clips: dict[str, Path], index: int, cut: int, at: int, garbage: bytes
) -> None:
    """Real files cut anywhere and overwritten anywhere: a result or a ProbeError, the same
    whether the bytes come whole or need by need; never an exception."""
    names = sorted(CLIPS)
    data = clips[names[index % len(names)]].read_bytes()[:cut]
    if not data:
        return
    where = at % len(data)
    damaged = data[:where] + garbage + data[where + len(garbage) :]
    for sample in (data, damaged):
        whole = outcome(engine_parse, Sparse.whole(sample))
        assert fed(engine_parse, sample, one_byte=False) == whole
