"""Frame rates stored as a rounded frame duration, turned back into the rate the encoder used.

Containers store a frame's duration in whole clock units (Matroska nanoseconds, AVI
microseconds, MPEG-TS 90 kHz ticks), rounded or truncated, so ``1 / duration`` is rarely the
rate itself (33366666 ns is 29.97000...03 fps). A common rate (a whole number up to 240, or
n x 1000/1001 for the NTSC family) whose frame duration is within one unit of the stored one
is taken; any other rate is reported as the exact fraction the container stores.
"""

from __future__ import annotations

from fractions import Fraction

COMMON_RATES: tuple[Fraction, ...] = tuple(
    sorted(
        {Fraction(n) for n in range(1, 241)}
        | {Fraction(n * 1000, 1001) for n in (12, 15, 24, 30, 48, 60, 120, 240)}
    )
)


def from_frame_duration(units_per_second: int, frame_duration: Fraction) -> Fraction:
    """The frame rate of frames lasting ``frame_duration`` units of a ``units_per_second`` clock."""
    for rate in COMMON_RATES:
        if abs(units_per_second / rate - frame_duration) < 1:
            return rate
    return units_per_second / frame_duration
