"""The one-pass H.264 SAR reader answers what the reference SPS parser answers, errors included.

The reference (:func:`workers.probe.h26x.h264_sps`) reads every field by name; the fast reader
(:mod:`workers.probe.h26x_sar`) hands anything unusual back to it. Inputs: real SPS NAL units
written by x264 (profiles baseline, main, high, high 4:2:2/4:4:4, interlaced, cropped, with
scaling matrices, with and without VUI and emulation-prevention bytes), the same with bits
flipped, bytes replaced, cut short or emulation bytes inserted, and arbitrary bytes.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.probe import h26x, h26x_sar
from workers.probe.h26x_sar import h264_sps_sar
from workers.probe.media import ProbeError

SETTINGS = settings(max_examples=400, deadline=None)
X264_SPS = [
    bytes.fromhex(h)
    for h in (
        "6742c00ada11ec0440000003004000000c83c489a8",  # baseline 3gp
        "6764000aacd9447b011000003e90001d4c00f1225960",  # high, 59.94
        "6764000dacd94141fb011000000300100000030320f1429960",  # high, 320x240, emulation bytes
        "67f4000baeb41423f2e022000003000200000300641e285540",  # high 4:4:4 predictive, lossless
        "6742c00ada11ec3840000003004000000c83c489a8",  # SAR 4:3 in the VUI
        "6764000aacb423d87080000003008000001907891350",  # scaling matrices (cqm=jvt)
        "6742c00ada11e840000003004000000c83c489a8",  # no aspect ratio
        "677a000ab6cd94527888fc0440000003004000000c83c4896580",  # high 4:2:2 10-bit
        "67f4000a919b28a4f1f1f808800000030080000019078912cb",  # 4:4:4
        "6764000af365149e3e3f016c800000030080000019078912cb",  # monochrome
        "67640015acd9444fcb808800000300080000030190f8a14cb0",  # interlaced
        "6764000aacd945278888c044000003000400000300c83c489658",  # cropped 66x50
        "67419ae010a1bc545305c00ba60a62e005d30e0002fc50003738000bf2c000dc9612ef8cf3ff4c0b",
    )
]


def reference(nal: bytes) -> object:
    try:
        return h26x.h264_sps(nal).sar
    except ProbeError as e:
        return f"error: {e}"


def fast(nal: bytes) -> object:
    try:
        return h264_sps_sar(nal)
    except ProbeError as e:
        return f"error: {e}"


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    nal = bytearray(draw(st.sampled_from(X264_SPS)))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(1, len(nal) - 1))
        kind = draw(st.sampled_from(["flip", "byte", "cut", "escape"]))
        if kind == "flip":
            nal[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            nal[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del nal[at:]
            break
        else:
            nal[at:at] = b"\x00\x00\x03"
    return bytes(nal)


def test_real_sps_units() -> None:
    for nal in X264_SPS:
        assert fast(nal) == reference(nal)
    assert fast(X264_SPS[4]) == (4, 3)


@SETTINGS
@given(damaged())
def test_damaged_sps_units(nal: bytes) -> None:
    assert fast(nal) == reference(nal)


@SETTINGS
@given(st.binary(max_size=40), st.sampled_from([b"", b"\x67", b"\x67\x64", b"\x67\x42", b"\x67\xf4"]))
def test_arbitrary_bytes(data: bytes, head: bytes) -> None:
    assert fast(head + data) == reference(head + data)


@SETTINGS
@given(st.lists(st.sampled_from([b"\x00", b"\x03", b"\x00\x00\x03", b"\x01", b"\xff"]), max_size=16))
def test_replace_is_unescape(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert data.replace(b"\x00\x00\x03", b"\x00\x00") == h26x.unescape(data)


@SETTINGS
@given(st.sampled_from(X264_SPS), st.binary(max_size=12))
def test_trailing_bytes(nal: bytes, tail: bytes) -> None:
    """Bytes after the SPS (rbsp trailing bits, padding, junk) change nothing the reference sees."""
    assert fast(nal + tail) == reference(nal + tail)


def _regex_and_walk(nal: bytes) -> tuple[object, object]:
    """What the one-match reader and the field-by-field walk give for ``nal`` (``"decline"``
    when one hands it to the reference)."""
    rbsp = nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")
    bits = format(int.from_bytes(rbsp, "big"), "b").zfill(len(rbsp) * 8)

    def run(read: Callable[[], object]) -> object:
        try:
            return read()
        except h26x_sar._Decline:
            return "decline"

    return run(lambda: h26x_sar._read_sar(rbsp)), run(lambda: h26x_sar._walk(bits, rbsp[0]))


def test_real_sps_units_take_the_one_match_path() -> None:
    matched = 0
    for nal in X264_SPS:
        rbsp = nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")
        bits = format(int.from_bytes(rbsp, "big"), "b").zfill(len(rbsp) * 8)
        pattern = h26x_sar._HIGH if rbsp[0] in h26x_sar._HIGH_PROFILES else h26x_sar._PLAIN
        matched += pattern.match(bits) is not None
        fast_answer, walked = _regex_and_walk(nal)
        assert fast_answer == walked
    assert matched >= 8  # the usual syntax is read by the one match, not the walk


@SETTINGS
@given(damaged())
def test_one_match_equals_the_walk(nal: bytes) -> None:
    if len(nal) >= 4:
        fast_answer, walked = _regex_and_walk(nal)
        assert fast_answer == walked
