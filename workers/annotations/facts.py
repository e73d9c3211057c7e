"""What the annotation validators need to know about the media: kind, size, frames."""

from __future__ import annotations

import msgspec

from workers.probe.media import Kind, MediaInfo


class MediaFacts(msgspec.Struct, kw_only=True, frozen=True):
    """The probed media as annotations see it. ``None``: not known, so not checked.

    ``width`` x ``height`` are the *displayed* dimensions (what a labeller draws on): a video
    whose track is rotated by 90 or 270 degrees shows its coded height as its width.
    ``frame_count`` is the number of frames, numbered 1..frame_count in Labelbox NDJSON.
    """

    kind: Kind
    width: int | None = None
    height: int | None = None
    frame_count: int | None = None
    fps: float | None = None

    @classmethod
    def from_media_info(cls, info: MediaInfo) -> MediaFacts:
        """From the probe's result (presented frames when the edit list says so)."""
        width, height = info.width, info.height
        if info.rotation in (90, 270):
            width, height = height, width
        frames = info.presented_frames if info.presented_frames is not None else info.frames
        return cls(
            kind=info.kind,
            width=width,
            height=height,
            frame_count=frames if info.kind == "video" else None,
            fps=info.fps,
        )
