"""Labelbox's documented import rules (seeds: import image data, import video data).

Video: MP4 only (not QuickTime, Matroska, WebM) with H.264 or H.265, <= 1024 MiB,
<= 20,000 frames, frame-count consistent (``round(fps * duration) == frames`` and
``round(nominal_fps * duration) == frames``), not VFR, no negative PTS, square SAR.
Images: JPEG, PNG, BMP, <= 256 MiB; a side over 9000 px is a warning ("not recommended").
Audio: accepted as AUDIO data rows (no limits documented in the seeds).
"""

from __future__ import annotations

import msgspec

from workers.probe.media import MediaInfo
from workers.rules.verdict import Verdict, Violation

MIB = 1024 * 1024
VIDEO_MAX_BYTES = 1024 * MIB
VIDEO_MAX_FRAMES = 20_000
VIDEO_CONTAINERS = frozenset({"mp4"})
VIDEO_CODECS = frozenset({"h264", "hevc"})
IMAGE_CONTAINERS = frozenset({"jpeg", "png", "bmp"})
IMAGE_MAX_BYTES = 256 * MIB
IMAGE_RECOMMENDED_SIDE = 9000
AUDIO_CONTAINERS = frozenset({"mp3", "wav", "m4a", "flac", "ogg", "adts"})

MEDIA_TYPE = {"video": "VIDEO", "image": "IMAGE", "audio": "AUDIO", "document": "PDF"}


def media_type(info: MediaInfo) -> str:
    """The data row's ``media_type`` for a probed object (text documents are TEXT, not PDF)."""
    if info.kind == "document" and info.container == "text":
        return "TEXT"
    return MEDIA_TYPE[info.kind]


class LabelboxReport(msgspec.Struct, kw_only=True):
    """The ``labelbox`` object of ``ingestd probe --json``."""

    accept: bool
    container_mp4: bool | None = None
    codec_supported: bool | None = None
    over_20000_frames: bool | None = None
    frame_count_consistent: bool | None = None
    sar_square: bool | None = None
    dims_recommended: bool | None = None
    errors: list[Violation] = msgspec.field(default_factory=list)
    warnings: list[Violation] = msgspec.field(default_factory=list)


def _consistent(info: MediaInfo) -> tuple[bool | None, str]:
    if info.frames is None or info.duration is None or info.fps is None:
        return None, "frames, fps or duration unknown"
    by_fps = round(info.fps * info.duration)
    if by_fps != info.frames:
        shown = ""
        if info.presented_frames is not None and info.presented_frames != info.frames:
            shown = f" ({info.presented_frames} of {info.frames} presented; the edit list drops the rest)"
        return False, f"round(fps*duration) = round({info.fps:.6g}*{info.duration:.6g}) = {by_fps}{shown}"
    if info.nominal_fps is not None:
        by_nominal = round(info.nominal_fps * info.duration)
        if by_nominal != info.frames:
            product = f"{info.nominal_fps:.6g}*{info.duration:.6g}"
            return False, f"round(nominal_fps*duration) = round({product}) = {by_nominal}"
    return True, ""


def _sar_square(info: MediaInfo) -> bool | None:
    known = [s for s in (info.sar_pasp, info.sar_vui, info.sar) if s is not None]
    if not known:
        return None
    return all(_is_one(s) for s in known)


def _non_square(info: MediaInfo) -> str | None:
    """The SAR that is not square (pasp, then VUI): ``sar`` alone may be a square pasp over a VUI."""
    candidates = (info.sar_pasp, info.sar_vui, info.sar)
    return next((s for s in candidates if s is not None and not _is_one(s)), None)


def _is_one(sar: str) -> bool:
    h, _, v = sar.partition(":")
    return h == v or (h in ("0", "1") and v in ("0", "1"))


def check(info: MediaInfo) -> LabelboxReport:
    """All Labelbox checks for one probed object."""
    r = LabelboxReport(accept=False)
    err = r.errors.append
    if not info.valid:
        err(Violation(rule="labelbox.media.valid", message=f"not readable media: {info.error}"))
        return r
    size = info.file_size
    if info.kind == "video":
        r.container_mp4 = info.container in VIDEO_CONTAINERS
        r.codec_supported = info.codec in VIDEO_CODECS
        if not r.container_mp4:
            err(
                Violation(
                    rule="labelbox.video.container",
                    message="video must be MP4",
                    expected="mp4",
                    actual=info.container,
                )
            )
        if not r.codec_supported:
            err(
                Violation(
                    rule="labelbox.video.codec",
                    message="video codec must be H.264 or H.265",
                    expected=sorted(VIDEO_CODECS),
                    actual=info.codec,
                )
            )
        if size is not None and size > VIDEO_MAX_BYTES:
            err(
                Violation(
                    rule="labelbox.video.max_size",
                    message="video larger than 1024 MiB",
                    expected=f"<= {VIDEO_MAX_BYTES}",
                    actual=size,
                )
            )
        if info.frames is None:
            err(Violation(rule="labelbox.video.frames_known", message="video frame count could not be read"))
        else:
            r.over_20000_frames = info.frames > VIDEO_MAX_FRAMES
            if r.over_20000_frames:
                err(
                    Violation(
                        rule="labelbox.video.max_frames",
                        message="more than 20,000 frames",
                        expected=f"<= {VIDEO_MAX_FRAMES}",
                        actual=info.frames,
                    )
                )
        consistent, detail = _consistent(info)
        r.frame_count_consistent = consistent
        if consistent is False:
            err(
                Violation(
                    rule="labelbox.video.frame_count_consistency",
                    message=f"FPS x duration != frames: {detail}",
                    expected=info.frames,
                    actual=detail,
                )
            )
        if info.vfr:
            err(
                Violation(
                    rule="labelbox.video.vfr", message="variable frame rate", expected=False, actual=True
                )
            )
        if info.negative_pts:
            err(
                Violation(
                    rule="labelbox.video.negative_pts",
                    message="negative presentation timestamps",
                    expected=False,
                    actual=True,
                )
            )
        r.sar_square = _sar_square(info)
        if r.sar_square is False:
            err(
                Violation(
                    rule="labelbox.video.sar",
                    message="non-square sample aspect ratio",
                    expected="1:1",
                    actual=_non_square(info),
                )
            )
    elif info.kind == "image":
        if info.container not in IMAGE_CONTAINERS:
            err(
                Violation(
                    rule="labelbox.image.format",
                    message="image must be JPEG, PNG or BMP",
                    expected=sorted(IMAGE_CONTAINERS),
                    actual=info.container,
                )
            )
        if size is not None and size > IMAGE_MAX_BYTES:
            err(
                Violation(
                    rule="labelbox.image.max_size",
                    message="image larger than 256 MiB",
                    expected=f"<= {IMAGE_MAX_BYTES}",
                    actual=size,
                )
            )
        if info.width is not None and info.height is not None:
            r.dims_recommended = max(info.width, info.height) <= IMAGE_RECOMMENDED_SIDE
            if not r.dims_recommended:
                r.warnings.append(
                    Violation(
                        rule="labelbox.image.dims",
                        message="larger than 9000 px on a side is not recommended",
                        expected=f"<= {IMAGE_RECOMMENDED_SIDE}",
                        actual=f"{info.width}x{info.height}",
                    )
                )
    elif info.kind == "audio":
        if info.container not in AUDIO_CONTAINERS:
            err(
                Violation(
                    rule="labelbox.audio.format",
                    message="unsupported audio container",
                    expected=sorted(AUDIO_CONTAINERS),
                    actual=info.container,
                )
            )
    else:
        err(
            Violation(
                rule="labelbox.kind",
                message=f"{info.container} ({info.kind}) is not importable media",
                expected="video, image or audio",
                actual=info.container,
            )
        )
    r.accept = not r.errors
    return r


def verdict(info: MediaInfo) -> Verdict:
    rep = check(info)
    return Verdict(errors=rep.errors, warnings=rep.warnings)
