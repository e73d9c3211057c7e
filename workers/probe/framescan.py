"""Walking a run of self-delimiting audio frames (MPEG audio, ADTS) within a bounded byte budget.

The budget is what keeps the probe at one request: frames are counted only while their header
starts before :func:`scan_end`, which stays inside the driver's default 64 KiB head when the first
frame is near the start, and covers a fixed 16 KiB window otherwise (after a big ID3v2 tag).
If the walk reaches the end of the file (or data that is not a frame: a trailing tag, garbage)
before the budget runs out, the count is exact; otherwise the caller extrapolates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from workers.probe.sparse import Sparse

#: frames are scanned while their header starts before this offset of the file ...
SCAN_END_IN_HEAD = 60 * 1024
#: ... or at least this many bytes after the first frame, whichever is further.
SCAN_MIN = 16 * 1024


class FrameSpec(msgspec.Struct, frozen=True):
    """One frame's size in bytes, the PCM samples it decodes to and its bitrate (0 if unknown)."""

    length: int
    samples: int
    bitrate: int = 0


class Walk(msgspec.Struct, frozen=True):
    """The outcome of walking frames from ``start``."""

    start: int
    frames: int
    samples: int
    nbytes: int  # bytes of the frames walked (the last one may be cut by the end of the file)
    bitrates: frozenset[int]
    stop: Literal["eof", "junk", "budget"]


def scan_end(first: int, size: int) -> int:
    """The end of the scan budget for a run of frames starting at ``first``."""
    return min(size, max(SCAN_END_IN_HEAD, first + SCAN_MIN))


def walk_frames(
    buf: Sparse,
    start: int,
    header_len: int,
    frame_at: Callable[[bytes], FrameSpec | None],
    limit: int,
) -> Walk:
    """Count frames from ``start`` while their header starts before ``limit``.

    ``frame_at`` decodes a header (``header_len`` bytes) or returns ``None`` for anything that
    does not continue the run. The whole window is requested at once (one ``Need``).
    """
    window = buf.get(start, limit + header_len - start)
    pos, frames, samples = 0, 0, 0
    end = limit - start
    bitrates: set[int] = set()
    stop: Literal["eof", "junk", "budget"] = "budget"
    while pos < end:
        head = window[pos : pos + header_len]
        if len(head) < header_len:
            stop = "eof" if start + pos >= buf.size or frames else "junk"
            break
        spec = frame_at(head)
        if spec is None:
            stop = "junk"
            break
        frames += 1
        samples += spec.samples
        bitrates.add(spec.bitrate)
        pos += spec.length
    else:
        if start + pos >= buf.size:
            stop = "eof"
    pos += start
    return Walk(
        start=start,
        frames=frames,
        samples=samples,
        nbytes=min(pos, buf.size) - start,
        bitrates=frozenset(bitrates),
        stop=stop,
    )
