"""Property tests of the ISO BMFF parser: only ProbeError escapes; feeding order does not matter."""

from __future__ import annotations

import struct
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.probe import bmff
from workers.probe.engine import probe_bytes
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Need, Sparse, run_parser

FTYP = struct.pack(">I4s4sI4s", 20, b"ftyp", b"isom", 512, b"isom")
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def parse_whole(data: bytes) -> MediaInfo | str:
    """The result of parsing all of ``data``, or the ProbeError message."""
    try:
        return bmff.parse(Sparse.whole(data))
    except ProbeError as e:
        return f"error: {e}"


def parse_byte_by_byte(data: bytes) -> MediaInfo | str:
    """Start from nothing and satisfy each Need with exactly one byte."""
    buf = Sparse(len(data))
    for _ in range(len(data) + 1):
        try:
            result = run_parser(bmff.parse, buf)
        except ProbeError as e:
            return f"error: {e}"
        if not isinstance(result, Need):
            return result
        assert 0 <= result.offset < len(data) and result.length > 0, result
        assert not buf.has(result.offset, 1), f"Need {result} asks for a known byte"
        buf.add(result.offset, data[result.offset : result.offset + 1])
    raise AssertionError("parser asked for more bytes than the file has")


def _same(a: MediaInfo | str, b: MediaInfo | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return msgspec.structs.replace(a, file_size=None) == msgspec.structs.replace(b, file_size=None)


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_probe_error(data: bytes) -> None:
    """Random bytes, with or without a valid ftyp in front, never raise anything else."""
    parse_whole(data)
    parse_whole(FTYP + data)
    info = probe_bytes(FTYP + data)  # through the driver: always a result, never an exception
    assert info.valid or info.error


@SETTINGS
@given(data=st.data())
def test_truncations_raise_only_probe_error(corpus: dict[str, Any], data: st.DataObject) -> None:
    """Any prefix of any corpus file parses or fails with ProbeError."""
    clip = corpus[data.draw(st.sampled_from(sorted(corpus)))]
    raw = clip.data
    cut = data.draw(st.integers(0, len(raw)))
    result = parse_whole(raw[:cut])
    if cut < len(raw) and clip.valid and not clip.truth.get("fragmented"):
        # ffmpeg ends every non-fragmented file with sample data or moov: losing one byte of
        # either is detected (sample tables pointing past the end, or a box past the end)
        assert isinstance(result, str), f"{clip.name} cut at {cut} of {len(raw)} parsed"


@SETTINGS
@given(data=st.data())
def test_mutated_moov_raises_only_probe_error(corpus: dict[str, Any], data: st.DataObject) -> None:
    """Corrupting bytes inside a real moov (sizes, counts, versions) never raises anything else."""
    name = data.draw(st.sampled_from(["h264_25_first", "hevc_hvc1", "audio_first", "fragmented_av", "vfr"]))
    raw = bytearray(corpus[name].data)
    moov = raw.find(b"moov") - 4
    moov_end = moov + struct.unpack_from(">I", raw, moov)[0]
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(moov, moov_end - 1))
        raw[at] = data.draw(st.integers(0, 255))
    parse_whole(bytes(raw))


@pytest.mark.parametrize(
    "name",
    ["h264_25_first", "h264_24_last", "hevc_hev1", "audio_first", "fragmented_av", "big_last",
     "mdat_64bit", "preamble_udta", "cut_editlist", "m4a_aac", "no_moov", "truncated_moov"],
)  # fmt: skip
def test_byte_by_byte_equals_whole(corpus: dict[str, Any], name: str) -> None:
    """Satisfying each Need with a single byte gives exactly the result of parsing the whole file."""
    raw = corpus[name].data
    whole = parse_whole(raw)
    assert _same(parse_byte_by_byte(raw), whole)


@SETTINGS
@given(data=st.data())
def test_trailing_bytes_do_not_change_the_result(corpus: dict[str, Any], data: st.DataObject) -> None:
    """Bytes appended after a (non-fragmented) file's end leave the result unchanged."""
    name = data.draw(st.sampled_from(sorted(n for n, c in corpus.items() if c.trailing_ok and c.valid)))
    raw = corpus[name].data
    tail = data.draw(st.binary(min_size=1, max_size=300))
    assert _same(parse_whole(raw + tail), parse_whole(raw))
