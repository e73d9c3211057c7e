"""Encord's registration rules (seed: register cloud data; ref/encord.md section 2 and 5).

Encord accepts mp4/webm/mkv/mov video, common images and mpeg/wav/flac/m4a audio. The
``videoMetadata``/``imageMetadata``/``audioMetadata`` objects let Encord skip its own
checks; under *strict client-only access* they are required. Because Encord derives frame
indices from ``fps x duration``, supplying metadata for a VFR video, one with negative PTS,
whose frame count is inconsistent or whose duration is not the video stream's own (a Matroska
Segment's, audio included) would silently misalign labels: such metadata is an error under
strict access, and is omitted (Encord's own checks then run) otherwise.
"""

from __future__ import annotations

from typing import Any

import msgspec

from workers.probe.media import MediaInfo
from workers.rules.verdict import Verdict, Violation

VIDEO_CONTAINERS = frozenset({"mp4", "webm", "matroska", "mov"})
IMAGE_CONTAINERS = frozenset({"jpeg", "png", "bmp", "gif", "webp", "tiff"})
AUDIO_CONTAINERS = frozenset({"mp3", "wav", "flac", "m4a", "ogg", "adts"})
ITEM_KEY = {"video": "videos", "image": "images", "audio": "audio"}


class VideoMetadata(msgspec.Struct, kw_only=True):
    fps: float
    duration: float
    width: int
    height: int
    file_size: int
    mime_type: str


class ImageMetadata(msgspec.Struct, kw_only=True):
    mime_type: str
    file_size: int
    width: int
    height: int


class AudioMetadata(msgspec.Struct, kw_only=True, omit_defaults=True):
    duration: float
    file_size: int
    mime_type: str
    sample_rate: int | None = None
    bit_depth: int | None = None
    codec: str | None = None
    num_channels: int | None = None


Metadata = VideoMetadata | ImageMetadata | AudioMetadata


class EncordReport(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The ``encord`` object of ``ingestd probe --json``."""

    videoMetadata: VideoMetadata | None = None
    imageMetadata: ImageMetadata | None = None
    audioMetadata: AudioMetadata | None = None
    errors: list[Violation] = msgspec.field(default_factory=list)
    warnings: list[Violation] = msgspec.field(default_factory=list)


def _missing(info: MediaInfo, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if getattr(info, n) is None]


def _frame_problems(info: MediaInfo) -> list[Violation]:
    out: list[Violation] = []
    if info.vfr:
        out.append(
            Violation(
                rule="encord.video.vfr",
                message="variable frame rate: fps x duration misaligns frames",
                expected=False,
                actual=True,
            )
        )
    if info.negative_pts:
        out.append(
            Violation(
                rule="encord.video.negative_pts",
                message="negative presentation timestamps",
                expected=False,
                actual=True,
            )
        )
    if info.duration_estimated:
        out.append(
            Violation(
                rule="encord.video.duration_estimated",
                message="duration is not the video stream's own (a container's, other tracks included)",
                expected=False,
                actual=True,
            )
        )
    if info.frames is not None and info.fps is not None and info.duration is not None:
        derived = round(info.fps * info.duration)
        if derived != info.frames:
            out.append(
                Violation(
                    rule="encord.video.frame_count_consistency",
                    message="round(fps x duration) != frames",
                    expected=info.frames,
                    actual=derived,
                )
            )
    return out


def check(info: MediaInfo, *, strict: bool = False) -> EncordReport:
    """Metadata for the registration item, and what stops it."""
    r = EncordReport()
    if not info.valid:
        r.errors.append(Violation(rule="encord.media.valid", message=f"not readable media: {info.error}"))
        return r
    kind = info.kind
    req: tuple[str, ...]
    if kind == "video":
        if info.container not in VIDEO_CONTAINERS:
            r.errors.append(
                Violation(
                    rule="encord.video.container",
                    message="unsupported video container",
                    expected=sorted(VIDEO_CONTAINERS),
                    actual=info.container,
                )
            )
        req = ("fps", "duration", "width", "height", "file_size")
        problems = _frame_problems(info)
        missing = _missing(info, req)
        if missing or problems:
            target = r.errors if strict else r.warnings
            if missing:
                target.append(
                    Violation(
                        rule="encord.video.metadata",
                        message="videoMetadata incomplete",
                        expected=list(req),
                        actual={"missing": missing},
                    )
                )
            target.extend(problems)
        else:
            assert info.fps is not None and info.duration is not None
            assert info.width is not None and info.height is not None and info.file_size is not None
            r.videoMetadata = VideoMetadata(
                fps=info.fps,
                duration=info.duration,
                width=info.width,
                height=info.height,
                file_size=info.file_size,
                mime_type=info.mime_type,
            )
    elif kind == "image":
        if info.container not in IMAGE_CONTAINERS:
            r.errors.append(
                Violation(
                    rule="encord.image.format",
                    message="unsupported image format",
                    expected=sorted(IMAGE_CONTAINERS),
                    actual=info.container,
                )
            )
        req = ("width", "height", "file_size")
        missing = _missing(info, req)
        if missing:
            (r.errors if strict else r.warnings).append(
                Violation(
                    rule="encord.image.metadata",
                    message="imageMetadata incomplete",
                    expected=list(req),
                    actual={"missing": missing},
                )
            )
        else:
            assert info.width is not None and info.height is not None and info.file_size is not None
            r.imageMetadata = ImageMetadata(
                mime_type=info.mime_type, file_size=info.file_size, width=info.width, height=info.height
            )
    elif kind == "audio":
        if info.container not in AUDIO_CONTAINERS:
            r.errors.append(
                Violation(
                    rule="encord.audio.format",
                    message="unsupported audio format",
                    expected=sorted(AUDIO_CONTAINERS),
                    actual=info.container,
                )
            )
        req = ("duration", "file_size")
        missing = _missing(info, req)
        if missing or info.duration_estimated:
            (r.errors if strict else r.warnings).append(
                Violation(
                    rule="encord.audio.metadata",
                    message="audioMetadata incomplete or estimated",
                    expected=list(req),
                    actual={"missing": missing, "duration_estimated": bool(info.duration_estimated)},
                )
            )
        else:
            assert info.duration is not None and info.file_size is not None
            r.audioMetadata = AudioMetadata(
                duration=info.duration,
                file_size=info.file_size,
                mime_type=info.mime_type,
                sample_rate=info.sample_rate,
                bit_depth=info.bit_depth,
                codec=info.codec,
                num_channels=info.channels,
            )
    else:
        r.errors.append(
            Violation(
                rule="encord.kind",
                message=f"{info.container} ({kind}) is not registrable media",
                expected="video, image or audio",
                actual=info.container,
            )
        )
    return r


def metadata(report: EncordReport) -> dict[str, Any]:
    """The metadata key/value for the registration item (empty when omitted)."""
    for name in ("videoMetadata", "imageMetadata", "audioMetadata"):
        value = getattr(report, name)
        if value is not None:
            return {name: value}
    return {}


def verdict(info: MediaInfo, *, strict: bool = False) -> Verdict:
    rep = check(info, strict=strict)
    return Verdict(errors=rep.errors, warnings=rep.warnings)
