"""The ISO BMFF probe on the ffmpeg-made corpus, checked against what ffmpeg was told to make."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from workers.probe import bmff
from workers.probe.engine import probe_bytes
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse


def _field(info: MediaInfo, key: str) -> Any:
    if key.startswith("audio_"):
        return getattr(info.audio, key.removeprefix("audio_"), None)
    return getattr(info, key)


def test_truth(corpus: dict[str, Any], clip_name: str) -> None:
    """Every field ffmpeg was told to produce comes out of the probe unchanged."""
    clip = corpus[clip_name]
    info = probe_bytes(clip.data)
    assert info.valid is clip.valid, info.error
    wrong = {k: (v, _field(info, k)) for k, v in clip.truth.items() if _field(info, k) != v}
    assert not wrong, f"{clip_name}: field: (truth, probe) {wrong}"


def test_invalid_files_name_the_problem(corpus: dict[str, Any], clip_name: str) -> None:
    """Broken files are invalid with a message naming the box/offset; no metadata is invented."""
    clip = corpus[clip_name]
    if clip.valid:
        return
    info = probe_bytes(clip.data)
    assert not info.valid
    assert info.error is not None and clip.error in info.error
    assert info.frames is None and info.codec is None and info.duration is None
    with pytest.raises(ProbeError):
        bmff.parse(Sparse.whole(clip.data))


def test_rates_are_exact(corpus: dict[str, Any]) -> None:
    """NTSC rates come out as exact rationals, not rounded floats."""
    info = probe_bytes(corpus["h264_30000_1001_last"].data)
    assert info.fps_rational == "30000/1001"
    assert info.fps == pytest.approx(29.97002997)
    assert info.duration == pytest.approx(30 * 1001 / 30000)
    info = probe_bytes(corpus["h264_24000_1001_first"].data)
    assert Fraction(info.nominal_fps_rational or "0") == Fraction(24000, 1001)


def test_codecs_and_containers(corpus: dict[str, Any]) -> None:
    """Sample entry fourccs map to codec names; brands map to containers and MIME types."""
    expect = {
        "hevc_hvc1": ("hevc", "mp4", "video/mp4"),
        "hevc_hev1": ("hevc", "mp4", "video/mp4"),
        "mpeg4": ("mpeg4", "mp4", "video/mp4"),
        "vp9": ("vp9", "mp4", "video/mp4"),
        "av1": ("av1", "mp4", "video/mp4"),
        "mov": ("h264", "mov", "video/quicktime"),
        "3gp": ("h264", "3gp", "video/3gpp"),
        "m4a_aac": ("aac", "m4a", "audio/mp4"),
        "mp4_mp3": ("mp3", "m4a", "audio/mp4"),
    }
    got = {}
    for name in expect:
        info = probe_bytes(corpus[name].data)
        got[name] = (info.codec, info.container, info.mime_type)
    assert got == expect


def test_audio_only_fields_are_top_level(corpus: dict[str, Any]) -> None:
    """An M4A is kind audio with codec, rate, channels and duration at the top level."""
    info = probe_bytes(corpus["m4a_aac"].data)
    assert (info.kind, info.codec, info.sample_rate, info.channels) == ("audio", "aac", 44100, 1)
    assert info.duration == pytest.approx(1.0, abs=0.001)
    assert info.audio is None and info.frames is None and info.width is None


def test_audio_track_first(corpus: dict[str, Any]) -> None:
    """The video track is found when it is not the first trak; audio is reported beside it."""
    info = probe_bytes(corpus["audio_first"].data)
    assert (info.kind, info.codec, info.frames) == ("video", "h264", 30)
    assert info.audio is not None
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 44100, 1)
    assert info.audio.duration == pytest.approx(2.0, abs=0.03)


def test_edit_list_that_drops_samples(corpus: dict[str, Any]) -> None:
    """-ss with stream copy keeps 13 leading samples before the edit: discarded, negative PTS.

    75 frames at 25 fps cut at 0.5 s: samples 0..12 (PTS < 0.5 s) lie before the edit's
    media_time; 62 frames are presented over 2.5 s (ffmpeg decodes exactly 62).
    """
    info = probe_bytes(corpus["cut_editlist"].data)
    assert (info.frames, info.presented_frames, info.negative_pts) == (75, 62, True)
    assert info.duration == pytest.approx(2.5)
    assert info.fps_rational == "124/5"
    assert info.nominal_fps_rational == "25/1"


def test_empty_edit_delays_but_does_not_count(corpus: dict[str, Any]) -> None:
    """-itsoffset writes an empty edit: the stream's duration and fps ignore the delay."""
    info = probe_bytes(corpus["itsoffset"].data)
    assert (info.frames, info.presented_frames, info.fps_rational) == (30, 30, "25/1")
    assert info.duration == pytest.approx(1.2)


def test_sar_sources(corpus: dict[str, Any]) -> None:
    """sar is pasp when present, else the SPS VUI; both are also reported separately."""
    got = {
        name: (i.sar, i.sar_pasp, i.sar_vui)
        for name in ("sar_pasp_only", "sar_sps_only", "sar_sps_only_hevc", "sar_both", "sar_none", "sar_cqm")
        for i in [probe_bytes(corpus[name].data)]
    }
    assert got == {
        "sar_pasp_only": ("4:3", "4:3", None),
        "sar_sps_only": ("4:3", None, "4:3"),
        "sar_sps_only_hevc": ("4:3", None, "4:3"),
        "sar_both": ("4:3", "4:3", "4:3"),
        "sar_none": (None, None, None),
        "sar_cqm": ("4:3", "4:3", "4:3"),
    }


def test_fragmented_beyond_the_read_bound_reports_frames_unknown(corpus: dict[str, Any]) -> None:
    """120 one-frame fragments over 400 KiB: codec and size known, frame count not guessed."""
    info = probe_bytes(corpus["fragmented_many"].data)
    assert info.valid and info.fragmented
    assert (info.codec, info.width, info.height) == ("h264", 160, 120)
    assert info.frames is None and info.fps is None and info.duration is None
    assert info.requests <= 24
