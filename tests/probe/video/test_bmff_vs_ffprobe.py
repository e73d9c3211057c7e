"""The probe against ffprobe, field by field, on every valid corpus file.

Fields compared: codec (``codec_name``), width, height, frames (``nb_read_packets``, and
``nb_frames`` when ffprobe reports it), fps (``avg_frame_rate``), nominal fps
(``r_frame_rate``), the video stream's duration (stream ``duration``), rotation (the display
matrix side data) and SAR (``sample_aspect_ratio``); for audio files codec, sample rate,
channels and duration. Rates and SARs are compared as exact fractions.

Where ffprobe disagrees, the probe is checked against ground truth computed from what ffmpeg
was told to make (and, for presented frames, from ffmpeg's own decoder), not against ffprobe:

1. Edit list that drops leading samples (``cut_editlist``: 75 frames at 25 fps cut with
   ``-ss 0.5 -c copy``): ffprobe says ``avg_frame_rate=25/1``. It divides *all* 75 samples by
   the whole media duration (3 s), including the 13 samples before the edit's media_time
   that are never shown. Truth: ffmpeg decodes 62 frames (``-count_frames`` gives
   ``nb_read_frames=62``) over the 2.5 s edit, so fps = 62/2.5 = 124/5, which the probe
   reports (and flags ``negative_pts``).
2. Same file: ffprobe's ``nb_frames``/``nb_read_packets`` = 75 count the discarded samples.
   The probe's ``frames`` is, by definition, that container count too (75) and agrees; the
   frames actually shown are ``presented_frames`` = 62, matching ffmpeg's decoder.
3. Fragmented MP4: ffprobe reports ``nb_frames=N/A`` (it only counts ``trun`` samples by
   reading every packet, ``-count_packets``). The probe counts them from the ``moof``
   headers: 30, equal to ``nb_read_packets`` and to the 30 frames encoded (1800 for the
   three 600-frame fragments of ``fragmented_big_moofs``). Worse, when the first fragment's
   samples sit in ``moov``'s own tables (``-movflags frag_keyframe`` without ``empty_moov``),
   ffprobe reports ``nb_frames=10``: only the ``stsz`` count, ignoring the 20 samples in the
   ``moof``s. Truth: 30 frames encoded, 30 packets read; the probe says 30.
4. Container vs stream duration: ffprobe's ``format.duration`` is the container's (mvhd,
   rounded to its millisecond timescale and covering the longest track and empty edits):
   2.0 s for ``audio_first`` (2 s audio, 1.2 s video), 1.6 s for ``itsoffset`` (0.4 s empty
   edit + 1.2 s), 0.518 s for ``bframes_5994`` (31 frames at 60000/1001 = 0.517183 s). The
   probe reports the video stream's duration as defined (1.2 s, 1.2 s, 0.517183 s), which
   equals ffprobe's *stream* duration.
5. Rotation sign: ffprobe's display-matrix ``rotation`` is counterclockwise (``-90`` for the
   iPhone portrait matrix ``0 1 -1 0``); the probe reports the clockwise angle players apply
   (90). Both read the same matrix; the comparison converts. Note that ffmpeg 5.1 given
   ``-metadata:s:v rotate=90`` with stream copy writes the matrix ``0 -1 1 0`` (ffprobe:
   ``rotation=90``, probe: 270): the matrix in the file is the truth for both.

Where ffprobe is right and the probe does not say:

6. MP3 in MP4 (``mp4_mp3``): ffprobe reports 1 channel from the MP3 frame headers inside
   ``mdat``; the sample entry holds the template value 2 and the probe never reads ``mdat``,
   so it reports channels unknown (``None``) rather than a wrong 2.
7. ``fragmented_many`` (120 fragments over 400 KiB): ffprobe reads the whole file; the probe
   stops after 16 fragments past the head (its read bound) and reports frames, fps and
   duration unknown rather than guessed. With a ``sidx`` in front (``fragmented_sidx``,
   ``+global_sidx``) the duration comes from the index and agrees with ffprobe (4.8 s).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from workers.probe.engine import probe_bytes
from workers.probe.media import MediaInfo

# clip -> fields where ffprobe is wrong or reports something else (numbers refer to the docstring)
FFPROBE_DIFFERS: dict[str, set[str]] = {
    "cut_editlist": {"fps"},  # 1 (2: frames agree by definition)
    "fragmented": {"nb_frames"},  # 3
    "fragmented_av": {"nb_frames"},  # 3
    "fragmented_big_moofs": {"nb_frames"},  # 3
    "fragmented_moov_samples": {"nb_frames"},  # 3
    "mp4_mp3": {"channels"},  # 6
    "fragmented_many": {"frames", "fps", "nominal_fps", "duration"},  # 7 (ffprobe: nb_frames N/A too)
    "fragmented_sidx": {"frames", "fps", "nominal_fps"},  # 7, duration from the sidx agrees
}
# clip -> (probe, truth) checks for each disagreement above
TRUTH: dict[str, dict[str, Any]] = {
    "cut_editlist": {"fps_rational": "124/5", "presented_frames": 62, "frames": 75, "negative_pts": True},
    "fragmented": {"frames": 30},
    "fragmented_av": {"frames": 30},
    "fragmented_big_moofs": {"frames": 1800},
    "fragmented_moov_samples": {"frames": 30},
    "mp4_mp3": {"channels": None},
    "fragmented_many": {"frames": None, "fps": None, "duration": None},
    "fragmented_sidx": {"frames": None, "fps": None, "duration": 4.8},
}


def _frac(text: str | None) -> Fraction | None:
    if text in (None, "N/A", "0/0", "0:1"):
        return None
    assert text is not None
    return Fraction(text.replace(":", "/"))


def _video_view(info: MediaInfo) -> dict[str, Any]:
    return {
        "codec": info.codec,
        "width": info.width,
        "height": info.height,
        "frames": info.frames,
        "nb_frames": info.frames,
        "fps": _frac(info.fps_rational),
        "nominal_fps": _frac(info.nominal_fps_rational),
        "duration": None if info.duration is None else round(info.duration, 6),
        "rotation": info.rotation,
        "sar": _frac(info.sar),
    }


def _ffprobe_video(stream: dict[str, Any]) -> dict[str, Any]:
    rotation = [sd["rotation"] for sd in stream.get("side_data_list", []) if "rotation" in sd]
    nb_frames = stream.get("nb_frames", "N/A")
    return {
        "codec": stream["codec_name"],
        "width": stream["width"],
        "height": stream["height"],
        "frames": int(stream["nb_read_packets"]),
        "nb_frames": None if nb_frames == "N/A" else int(nb_frames),
        "fps": _frac(stream["avg_frame_rate"]),
        "nominal_fps": _frac(stream["r_frame_rate"]),
        "duration": round(float(stream["duration"]), 6) if "duration" in stream else None,
        "rotation": (-int(rotation[0])) % 360 if rotation else 0,
        "sar": _frac(stream.get("sample_aspect_ratio")),
    }


def _ffprobe_audio(stream: dict[str, Any]) -> dict[str, Any]:
    return {
        "codec": stream["codec_name"],
        "sample_rate": int(stream["sample_rate"]),
        "channels": stream["channels"],
        "duration": round(float(stream["duration"]), 3),
    }


def test_matches_ffprobe(
    corpus: dict[str, Any], valid_clip: str, ffprobe: Callable[[Path], dict[str, Any]]
) -> None:
    """Each field equals ffprobe's, except the documented cases, which equal the truth."""
    clip = corpus[valid_clip]
    info = probe_bytes(clip.data)
    assert info.valid, info.error
    streams = ffprobe(clip.path)["streams"]
    video = [s for s in streams if s["codec_type"] == "video"]
    if video:
        ours, theirs = _video_view(info), _ffprobe_video(video[0])
    else:
        audio = next(s for s in streams if s["codec_type"] == "audio")
        ours = {
            "codec": info.codec,
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "duration": None if info.duration is None else round(info.duration, 3),
        }
        theirs = _ffprobe_audio(audio)
    differs = {k for k in ours if ours[k] != theirs[k]}
    assert differs == FFPROBE_DIFFERS.get(valid_clip, set()), {k: (ours[k], theirs[k]) for k in differs}
    for key, value in TRUTH.get(valid_clip, {}).items():
        assert getattr(info, key) == value, (key, getattr(info, key), value)


def test_audio_stream_matches_ffprobe(
    corpus: dict[str, Any], ffprobe: Callable[[Path], dict[str, Any]]
) -> None:
    """The audio track beside the video agrees with ffprobe's audio stream."""
    for name in ("audio_first", "big_first", "fragmented_av"):
        info = probe_bytes(corpus[name].data)
        audio = next(s for s in ffprobe(corpus[name].path)["streams"] if s["codec_type"] == "audio")
        assert info.audio is not None
        got = {
            "codec": info.audio.codec,
            "sample_rate": info.audio.sample_rate,
            "channels": info.audio.channels,
            "duration": None if info.audio.duration is None else round(info.audio.duration, 3),
        }
        assert got == _ffprobe_audio(audio), name


def test_presented_frames_match_ffmpeg_decoder(corpus: dict[str, Any]) -> None:
    """presented_frames equals the number of frames ffmpeg's decoder outputs (edit list applied)."""
    import subprocess  # noqa: PLC0415 - only this test runs the decoder

    for name in ("cut_editlist", "bframes_editlist", "itsoffset", "vfr"):
        out = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(corpus[name].path), "-map", "0:v", "-fps_mode",
             "passthrough", "-f", "framecrc", "-"],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        decoded = sum(1 for line in out.splitlines() if line and not line.startswith("#"))
        assert probe_bytes(corpus[name].data).presented_frames == decoded, name
