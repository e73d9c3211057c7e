"""The probe's result type and its one error type.

Definitions (shared by every parser and by the rules):

* ``frames``: the container's video sample count (stsz/stz2, or the ``trun`` entries of a
  fragmented file).
* ``duration``: the *video stream's* duration in seconds (edit list if present, else the media
  header), never the container's. For audio files it is the audio stream's duration.
* ``fps``: frames actually presented (inside the edit list) divided by ``duration``;
  ``fps_rational`` is the same value as an exact fraction ``"num/den"``.
* ``nominal_fps``: the stream's base rate from its most common sample delta
  (``timescale / delta``), also as ``nominal_fps_rational``.
* ``vfr``: the sample deltas are not all equal (the last sample may differ).
* ``negative_pts``: an edit list or composition offsets make some samples' presentation time
  negative (those samples are discarded by players).
* ``sar``: the container's ``pasp`` if present, else the codec's VUI, as ``"h:v"``;
  ``sar_square`` (in the rules) requires both to be 1:1.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Kind = Literal["video", "image", "audio", "document", "other"]


class ProbeError(Exception):
    """The only exception a parser may raise: the input is not what it claims to be.

    The message is specific: which structure, at which offset, which value.
    """


class AudioInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An audio stream inside a video container (or the audio file's own stream)."""

    codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    duration: float | None = None
    bit_depth: int | None = None


class MediaInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the probe learned about one object. ``None`` means "not known", never a guess."""

    valid: bool
    kind: Kind = "other"
    container: str = "unknown"  # mp4, mov, m4a, 3gp, jpeg, png, bmp, gif, webp, tiff, mp3, wav, ...
    mime_type: str = "application/octet-stream"
    file_size: int | None = None
    error: str | None = None
    width: int | None = None  # coded width (display dims follow from rotation/sar)
    height: int | None = None
    rotation: int | None = None  # degrees clockwise from the tkhd matrix: 0, 90, 180, 270
    orientation: int | None = None  # Exif orientation 1..8
    codec: str | None = None  # h264, hevc, mp4v, av1, vp9, ...; for audio files mp3, pcm, flac, ...
    fps: float | None = None
    fps_rational: str | None = None
    nominal_fps: float | None = None
    nominal_fps_rational: str | None = None
    duration: float | None = None
    duration_estimated: bool | None = None
    frames: int | None = None
    presented_frames: int | None = None  # samples inside the edit list
    vfr: bool | None = None
    negative_pts: bool | None = None
    sar: str | None = None
    sar_pasp: str | None = None
    sar_vui: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    bit_depth: int | None = None
    audio: AudioInfo | None = None
    pages: int | None = None
    fragmented: bool | None = None
    warnings: list[str] | None = None  # damage a decoder tolerates (and so does the probe), named
    # Cost of the probe (filled by the driver).
    bytes_read: int = 0
    requests: int = 0


def invalid(error: str, *, file_size: int | None = None, container: str = "unknown") -> MediaInfo:
    """A result for input that could not be parsed; no metadata is invented."""
    return MediaInfo(valid=False, error=error, file_size=file_size, container=container)
